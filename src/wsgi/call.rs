//! One request on a Python thread: build the environ, call the app, send
//! its body as it is produced, and always call the iterable's `close()`:
//! after success, after an exception, and when the client went away.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::environ::{self, WorkerFacts};
use super::file_wrapper::FileWrapper;
use super::interpreter::LoadedApp;
use super::responder::{Disconnected, Responder};
use crate::exchange::{Event, Job};

/// Body pieces up to this size are copied; larger ones are shared with the
/// Python bytes object (no copy).
const COPY_LIMIT: usize = 16 * 1024;

/// How a response ended, for the caller's bookkeeping.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The app's response was sent in full.
    Ok,
    /// The app raised (logged with its traceback).
    AppError,
    /// The client went away before the response was complete.
    ClientGone,
}

/// Runs `job` through the app.
pub fn run(py: Python<'_>, app: &LoadedApp, facts: WorkerFacts, job: Job) -> Outcome {
    let Job {
        request,
        body,
        events,
        label,
    } = job;
    let responder = match Bound::new(py, Responder::new(events)) {
        Ok(r) => r,
        Err(e) => {
            log_app_error(py, &label, "could not create start_response", &e);
            return Outcome::AppError;
        }
    };
    let result = environ::build(py, &request, body, &label, facts, app.file_wrapper.bind(py))
        .and_then(|environ| {
            let start_response = responder.getattr(pyo3::intern!(py, "start_response"))?;
            app.callable.bind(py).call1((environ, start_response))
        });
    let iterable = match result {
        Ok(iterable) => iterable,
        Err(e) => return fail(py, &responder, &label, "the app raised", &e),
    };
    let sent = send_body(py, &responder, &iterable);
    let closed = close(py, &iterable);
    match (sent, closed) {
        (Err(e), _) => fail(
            py,
            &responder,
            &label,
            "the app's response iterable raised",
            &e,
        ),
        (Ok(Err(Disconnected)), _) => {
            tracing::debug!(request = %label, "client went away mid-response; close() called");
            Outcome::ClientGone
        }
        (Ok(Ok(())), Err(e)) => fail(py, &responder, &label, "the app's close() raised", &e),
        (Ok(Ok(())), Ok(())) => finish(py, &responder, &label),
    }
}

/// Sends the iterable's body: a file by sendfile when possible, else each
/// item as it is produced.
fn send_body(
    py: Python<'_>,
    responder: &Bound<'_, Responder>,
    iterable: &Bound<'_, PyAny>,
) -> PyResult<Result<(), Disconnected>> {
    if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
        if let Some(file) = wrapper.borrow().sendable(py) {
            let mut r = responder.borrow_mut();
            if r.started() {
                if let Err(gone) = r.send_head(py, Some(file.len))? {
                    return Ok(Err(gone));
                }
                return Ok(r.send(
                    py,
                    Event::File {
                        file: file.file,
                        offset: file.offset,
                        len: file.len,
                    },
                ));
            }
        }
    }
    let known_length = sequence_length(iterable);
    for item in iterable.try_iter()? {
        let item = item?;
        let bytes = item.cast::<PyBytes>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the app's iterable yielded {}, not bytes",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let data = to_bytes(bytes);
        if data.is_empty() {
            continue;
        }
        let mut r = responder.borrow_mut();
        if !r.head_sent() {
            if let Err(gone) = r.send_head(py, known_length)? {
                return Ok(Err(gone));
            }
        }
        if let Err(gone) = r.send_body(py, data)? {
            return Ok(Err(gone));
        }
    }
    Ok(Ok(()))
}

/// The body length of a list or tuple of bytes, known before sending.
fn sequence_length(iterable: &Bound<'_, PyAny>) -> Option<u64> {
    fn total<'py>(mut items: impl Iterator<Item = Bound<'py, PyAny>>) -> Option<u64> {
        items.try_fold(0u64, |acc, item| {
            let b = item.cast::<PyBytes>().ok()?;
            Some(acc + b.as_bytes().len() as u64)
        })
    }
    if let Ok(list) = iterable.cast::<PyList>() {
        return total(list.iter());
    }
    if let Ok(tuple) = iterable.cast::<PyTuple>() {
        return total(tuple.iter());
    }
    None
}

/// Small pieces are copied; large ones keep the Python object alive and
/// share its buffer.
fn to_bytes(bytes: &Bound<'_, PyBytes>) -> Bytes {
    let slice = bytes.as_bytes();
    if slice.len() <= COPY_LIMIT {
        Bytes::copy_from_slice(slice)
    } else {
        Bytes::from_owner(SharedPyBytes(bytes.clone().unbind()))
    }
}

/// A Python bytes object as a byte buffer. Bytes objects are immutable and
/// their buffer lives as long as the object, so it may be read without
/// the GIL.
struct SharedPyBytes(Py<PyBytes>);

impl AsRef<[u8]> for SharedPyBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the object is kept alive by `self.0`, and a bytes
        // object's buffer never moves or changes after creation.
        unsafe {
            let ptr = self.0.as_ptr();
            let data = pyo3::ffi::PyBytes_AsString(ptr) as *const u8;
            let len = pyo3::ffi::PyBytes_Size(ptr) as usize;
            std::slice::from_raw_parts(data, len)
        }
    }
}

/// Calls the iterable's `close()`, if it has one.
fn close(py: Python<'_>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    if iterable.hasattr(pyo3::intern!(py, "close"))? {
        iterable.call_method0(pyo3::intern!(py, "close"))?;
    }
    Ok(())
}

/// Completes a response whose body was fully iterated.
fn finish(py: Python<'_>, responder: &Bound<'_, Responder>, label: &str) -> Outcome {
    let mut r = responder.borrow_mut();
    if !r.started() {
        drop(r);
        let e = pyo3::exceptions::PyRuntimeError::new_err(
            "the app returned without calling start_response",
        );
        return fail(py, responder, label, "the app broke the WSGI protocol", &e);
    }
    let head = r.send_head(py, Some(0));
    let sent = match head {
        Ok(Ok(())) => r.send(py, Event::End),
        Ok(Err(gone)) => Err(gone),
        Err(e) => {
            drop(r);
            return fail(py, responder, label, "the app broke the WSGI protocol", &e);
        }
    };
    match sent {
        Ok(()) => Outcome::Ok,
        Err(Disconnected) => Outcome::ClientGone,
    }
}

/// Logs an app failure with its traceback, then answers 500 if nothing was
/// sent yet, or aborts the connection if the head is already out.
fn fail(
    py: Python<'_>,
    responder: &Bound<'_, Responder>,
    label: &str,
    what: &str,
    err: &PyErr,
) -> Outcome {
    let mut r = responder.borrow_mut();
    if r.gone() {
        return Outcome::ClientGone;
    }
    log_app_error(py, label, what, err);
    if r.head_sent() {
        let _ = r.send(py, Event::Abort);
    } else {
        let body = Bytes::from_static(b"Internal Server Error\n");
        let head = Event::Head {
            status: Bytes::from_static(b"500 Internal Server Error"),
            headers: vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/plain; charset=utf-8"),
            )],
            known_length: Some(body.len() as u64),
        };
        let _ = r
            .send(py, head)
            .and_then(|()| r.send(py, Event::Data(body)))
            .and_then(|()| r.send(py, Event::End));
    }
    Outcome::AppError
}

/// Logs an exception from the app, naming the request, with its traceback.
pub fn log_app_error(py: Python<'_>, label: &str, what: &str, err: &PyErr) {
    tracing::error!(
        source = "app",
        request = %label,
        "{what} ({label}): {}",
        super::interpreter::format_traceback(py, err)
    );
}
