//! Per-thread reuse of the Python objects every request makes: its
//! `start_response`, `wsgi.input` and `wsgi.errors`. Making and freeing
//! the three was about 2,000 of a small request's 24,000 instructions
//! (callgrind). When a request is over and nothing else holds one of them
//! (an app may keep `start_response`, or the environ with the other two),
//! it waits in its thread's spare slot for the next request, cleared of
//! the request's resources (body, channel, label) at once.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::False;
use pyo3::PyClass;

use super::errors::ErrorStream;
use super::input::Input;
use super::responder::Responder;

/// One thread's spare objects.
#[derive(Default)]
pub struct Spares {
    responder: Option<Py<Responder>>,
    input: Option<Py<Input>>,
    errors: Option<Py<ErrorStream>>,
}

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::new(Spares::default());
}

/// A per-request object that may be reused on its thread.
pub trait Recycled: PyClass<Frozen = False> + Into<pyo3::PyClassInitializer<Self>> {
    /// Where a thread keeps its spare of the type.
    fn slot(spares: &mut Spares) -> &mut Option<Py<Self>>;

    /// Lets go of what the request gave it (a spare holds nothing of a
    /// request that ended).
    fn clear(&mut self);
}

impl Recycled for Responder {
    fn slot(spares: &mut Spares) -> &mut Option<Py<Self>> {
        &mut spares.responder
    }

    fn clear(&mut self) {
        self.clear_for_reuse();
    }
}

impl Recycled for Input {
    fn slot(spares: &mut Spares) -> &mut Option<Py<Self>> {
        &mut spares.input
    }

    fn clear(&mut self) {
        self.clear_for_reuse();
    }
}

impl Recycled for ErrorStream {
    fn slot(spares: &mut Spares) -> &mut Option<Py<Self>> {
        &mut spares.errors
    }

    fn clear(&mut self) {
        self.clear_for_reuse();
    }
}

/// `value` as a Python object: the thread's spare, set to `value`, or a
/// new object.
pub fn take_or_new<T: Recycled>(py: Python<'_>, value: T) -> PyResult<Bound<'_, T>> {
    match SPARES.with_borrow_mut(|s| T::slot(s).take()) {
        Some(spare) => {
            let spare = spare.into_bound(py);
            *spare.borrow_mut() = value;
            Ok(spare)
        }
        None => Bound::new(py, value),
    }
}

/// Keeps `obj` as its thread's spare if nothing but `obj` holds it; it is
/// cleared first. False if something else holds it.
pub fn recycle<T: Recycled>(py: Python<'_>, obj: &Py<T>) -> bool {
    // SAFETY: a live object's reference count, read while attached.
    if unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) } != 1 {
        return false;
    }
    let Ok(mut inner) = obj.bind(py).try_borrow_mut() else {
        return false;
    };
    inner.clear();
    drop(inner);
    let spare = obj.clone_ref(py);
    SPARES.with_borrow_mut(|s| *T::slot(s) = Some(spare));
    true
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use bytes::Bytes;

    use super::*;
    use crate::exchange::{Body, EventSink};
    use crate::wsgi::input::Input;
    use crate::wsgi::responder::Responder;

    fn responder(py: Python<'_>) -> Py<Responder> {
        take_or_new(py, Responder::new(EventSink::buffer().0))
            .unwrap()
            .unbind()
    }

    #[test]
    fn an_object_only_its_call_held_is_handed_out_again() {
        Python::initialize();
        Python::attach(|py| {
            let first = responder(py);
            let at = first.as_ptr();
            assert!(recycle(py, &first));
            drop(first);
            let second = responder(py);
            assert_eq!(second.as_ptr(), at, "the spare was reused");
            recycle(py, &second);
        });
    }

    /// An app that keeps `start_response` (or the environ) after its
    /// request must never find it serving another request.
    #[test]
    fn an_object_the_app_kept_is_not_reused() {
        Python::initialize();
        Python::attach(|py| {
            let first = responder(py);
            let kept_by_app = first.clone_ref(py);
            assert!(!recycle(py, &first));
            drop(first);
            let second = responder(py);
            assert_ne!(second.as_ptr(), kept_by_app.as_ptr());
        });
    }

    struct Tracked(#[allow(dead_code)] Arc<()>);

    impl AsRef<[u8]> for Tracked {
        fn as_ref(&self) -> &[u8] {
            b"body"
        }
    }

    /// A spare holds nothing of the request it served: its body's memory
    /// is let go when the request ends, not when the next one starts.
    #[test]
    fn a_spare_input_lets_go_of_its_body() {
        Python::initialize();
        Python::attach(|py| {
            let owner = Arc::new(());
            let body: Weak<()> = Arc::downgrade(&owner);
            let input = take_or_new(
                py,
                Input::new(Body::Buffered(Bytes::from_owner(Tracked(owner)))),
            )
            .unwrap()
            .unbind();
            assert!(recycle(py, &input));
            assert!(body.upgrade().is_none(), "the body outlived its request");
            drop(input);
            let again = take_or_new(py, Input::new(Body::Buffered(Bytes::new()))).unwrap();
            recycle(py, &again.unbind());
        });
    }
}
