//! One request on a Python thread: build the environ, call the app, send
//! its body as it is produced, and always call the iterable's `close()`:
//! after success, after an exception, and when the client went away.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};

use super::environ::{self, WorkerFacts};
use super::errors::ErrorStream;
use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::interpreter::LoadedApp;
use super::panics;
use super::recycle;
use super::responder::{claim, Disconnected, Responder};
use crate::exchange::{Event, Job, RequestLabel};
use crate::protocol::response::Head;

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
    /// rwsgi panicked (a bug): the request failed, the worker should be
    /// replaced.
    Panicked,
}

/// Runs `job` through the app to the end (a pool thread: sends block while
/// the connection is behind). Also says how long sends waited for the
/// connection, which is not the app's service time.
pub fn run(
    py: Python<'_>,
    app: &LoadedApp,
    facts: WorkerFacts,
    job: Job,
) -> (Outcome, std::time::Duration) {
    match AppCall::start(py, app, facts, job) {
        Ok(mut call) => loop {
            if let Progress::Done(outcome) = call.advance(py, false) {
                let waited = call.responder.bind(py).try_borrow().map(|r| r.waited());
                return (outcome, waited.unwrap_or_default());
            }
        },
        Err(outcome) => (outcome, std::time::Duration::ZERO),
    }
}

/// One app call in progress: the app has been called; its body is sent by
/// [`AppCall::advance`], all at once (pool threads) or a chunk at a time
/// (inline on the I/O thread, which writes between chunks).
pub struct AppCall {
    responder: Py<Responder>,
    /// The environ's `wsgi.input` and `wsgi.errors`, reused when the call
    /// is over if the app kept neither.
    input: Py<Input>,
    errors: Py<ErrorStream>,
    iterable: Py<PyAny>,
    /// The iterator, once iteration started.
    iterator: Option<Py<PyIterator>>,
    /// The body length of a list/tuple response.
    known_length: Option<u64>,
    label: RequestLabel,
    /// Panic before sending the body (tests only, see
    /// [`panics::TEST_ONLY_PANIC_ENV`]).
    test_only_panic: bool,
    /// Whether `close()` was called, so that after a panic it is called
    /// if it was not, and only then.
    closed: bool,
}

impl Drop for AppCall {
    /// Its objects go back to this thread for its next request.
    fn drop(&mut self) {
        Python::attach(|py| {
            // The iterable first: a generator's frame holds start_response.
            self.iterator = None;
            drop(std::mem::replace(&mut self.iterable, py.None()));
            if !recycle::recycle(py, &self.responder) {
                // The app kept it: later calls raise rather than send nowhere.
                if let Ok(mut r) = self.responder.bind(py).try_borrow_mut() {
                    r.end();
                }
            }
            recycle::recycle(py, &self.input);
            recycle::recycle(py, &self.errors);
        });
    }
}

/// Where an [`AppCall`] stands after [`AppCall::advance`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// A chunk was sent; call `advance` again.
    More,
    /// The response is complete (or failed); `close()` has been called.
    Done(Outcome),
}

impl AppCall {
    /// Builds the environ and calls the app. `Err` if the app raised (the
    /// 500 has been sent).
    pub fn start(
        py: Python<'_>,
        app: &LoadedApp,
        facts: WorkerFacts,
        job: Job,
    ) -> Result<AppCall, Outcome> {
        let Job {
            request,
            body,
            events,
            label,
        } = job;
        let made = (
            recycle::take_or_new(py, Responder::new(events)),
            recycle::take_or_new(py, Input::new(body)),
            recycle::take_or_new(py, ErrorStream::new(&label)),
        );
        let (responder, input, errors) = match made {
            (Ok(r), Ok(i), Ok(e)) => (r, i, e),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                log_app_error(py, &label, "could not create the request's objects", &e);
                return Err(Outcome::AppError);
            }
        };
        let file_wrapper = app.file_wrapper.bind(py);
        let called = catch_unwind(AssertUnwindSafe(|| {
            environ::build(py, &request, &input, &errors, facts, file_wrapper)
                .and_then(|environ| app.callable.bind(py).call1((environ, &responder)))
        }));
        match called {
            Ok(Ok(iterable)) => Ok(AppCall {
                responder: responder.unbind(),
                input: input.unbind(),
                errors: errors.unbind(),
                iterable: iterable.unbind(),
                iterator: None,
                known_length: None,
                test_only_panic: panics::test_only_panic_requested(&label),
                closed: false,
                label,
            }),
            Ok(Err(e)) => Err(fail(py, &responder, &label, "the app raised", &e)),
            Err(panic) => Err(fail_panicked(py, &responder, &label, &*panic)),
        }
    }

    /// Sends more of the body: everything, or (with `one_chunk`) up to the
    /// next non-empty chunk.
    pub fn advance(&mut self, py: Python<'_>, one_chunk: bool) -> Progress {
        match catch_unwind(AssertUnwindSafe(|| self.advance_unguarded(py, one_chunk))) {
            Ok(progress) => progress,
            Err(panic) => {
                let responder = self.responder.bind(py);
                let outcome = fail_panicked(py, responder, &self.label, &*panic);
                if !std::mem::replace(&mut self.closed, true) {
                    if let Err(e) = close(py, self.iterable.bind(py)) {
                        log_app_error(py, &self.label, "the app's close() raised", &e);
                    }
                }
                Progress::Done(outcome)
            }
        }
    }

    /// [`AppCall::advance`], which catches what this may panic with.
    fn advance_unguarded(&mut self, py: Python<'_>, one_chunk: bool) -> Progress {
        if self.test_only_panic {
            panics::test_only_panic();
        }
        let responder = self.responder.bind(py).clone();
        let iterable = self.iterable.bind(py).clone();
        let sent = self.send_some(py, &responder, &iterable, one_chunk);
        if let Ok(Ok(false)) = sent {
            return Progress::More;
        }
        self.closed = true;
        let closed = close(py, &iterable);
        let label = &self.label;
        Progress::Done(match (sent, closed) {
            (Err(e), _) => fail(
                py,
                &responder,
                label,
                "the app's response iterable raised",
                &e,
            ),
            (Ok(Err(Disconnected)), _) => {
                tracing::debug!(request = %label, "client went away mid-response; close() called");
                Outcome::ClientGone
            }
            (Ok(Ok(_)), Err(e)) => fail(py, &responder, label, "the app's close() raised", &e),
            (Ok(Ok(_)), Ok(())) => finish(py, &responder, label),
        })
    }

    /// The client went away: stop and call `close()`.
    pub fn abandon(self, py: Python<'_>) {
        if let Err(e) = close(py, self.iterable.bind(py)) {
            log_app_error(py, &self.label, "the app's close() raised", &e);
        }
    }

    /// Sends body pieces. `Ok(Ok(true))`: the body is exhausted;
    /// `Ok(Ok(false))`: a chunk was sent and `one_chunk` asked to pause.
    fn send_some(
        &mut self,
        py: Python<'_>,
        responder: &Bound<'_, Responder>,
        iterable: &Bound<'_, PyAny>,
        one_chunk: bool,
    ) -> PyResult<Result<bool, Disconnected>> {
        if self.iterator.is_none() {
            if let Some(sent) = send_file(py, responder, iterable)? {
                return Ok(sent.map(|()| true));
            }
            self.known_length = sequence_length(iterable);
            self.iterator = Some(iterable.try_iter()?.unbind());
        }
        // A list or tuple is already in memory: no point pausing in it.
        let pause = one_chunk && self.known_length.is_none();
        let iterator = self
            .iterator
            .as_ref()
            .map(|i| i.bind(py).clone())
            .expect("set above");
        for item in iterator {
            let data = chunk_bytes(&item?)?;
            if data.is_empty() {
                continue;
            }
            let mut r = claim(responder)?;
            if !r.head_sent() {
                if let Err(gone) = r.send_head(py, self.known_length)? {
                    return Ok(Err(gone));
                }
            }
            if let Err(gone) = r.send_body(py, data)? {
                return Ok(Err(gone));
            }
            if pause {
                return Ok(Ok(false));
            }
        }
        Ok(Ok(true))
    }
}

/// A `wsgi.file_wrapper` around a regular file goes out by sendfile:
/// `Some` if it was sent that way.
fn send_file(
    py: Python<'_>,
    responder: &Bound<'_, Responder>,
    iterable: &Bound<'_, PyAny>,
) -> PyResult<Option<Result<(), Disconnected>>> {
    let Ok(wrapper) = iterable.cast::<FileWrapper>() else {
        return Ok(None);
    };
    // Checked first: the descriptor is duplicated only for a file that
    // will be sent. Not borrowed across `sendable`, which runs the app's
    // code (that may call `start_response`).
    if !claim(responder)?.started() {
        return Ok(None);
    }
    let Some(file) = wrapper.borrow().sendable(py) else {
        return Ok(None);
    };
    let mut r = claim(responder)?;
    if let Err(gone) = r.send_head(py, Some(file.len))? {
        return Ok(Some(Err(gone)));
    }
    Ok(Some(r.send(
        py,
        Event::File {
            file: file.file,
            offset: file.offset,
            len: file.len,
        },
    )))
}

/// An item of the app's iterable as bytes (a TypeError for anything else).
fn chunk_bytes(item: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    let bytes = item.cast::<PyBytes>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's iterable yielded {}, not bytes",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(to_bytes(bytes))
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
        Bytes::from_owner(SharedPyBytes::new(bytes))
    }
}

/// A Python bytes object's buffer, readable by the I/O thread without the
/// GIL. Where the buffer is and how long it is are read once, while
/// attached: afterwards no Python API is called (the C API may not be
/// used by a thread that is not attached), only the memory is read.
struct SharedPyBytes {
    /// Keeps the object, hence its buffer, alive.
    _owner: Py<PyBytes>,
    /// The object's buffer, as read while attached.
    data: *const u8,
    /// Its length.
    len: usize,
}

impl SharedPyBytes {
    fn new(bytes: &Bound<'_, PyBytes>) -> Self {
        let slice = bytes.as_bytes();
        SharedPyBytes {
            _owner: bytes.clone().unbind(),
            data: slice.as_ptr(),
            len: slice.len(),
        }
    }
}

// SAFETY: the pointer is only read (by `as_ref`), into memory that no one
// writes: a bytes object is immutable once created, its buffer is part of
// the object and never moves, and `_owner` keeps the object alive until
// this value is dropped (its reference is then released by pyo3, which
// defers it to the next attached thread if need be).
unsafe impl Send for SharedPyBytes {}

impl AsRef<[u8]> for SharedPyBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data` and `len` describe the buffer of the bytes object
        // `_owner` holds alive; see the `Send` impl for why it stays valid
        // and unchanged without the GIL.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// Calls the iterable's `close()`, if it has one. A plain list or tuple
/// (the common `return [body]`) has none: asking would raise and catch an
/// AttributeError on every request.
fn close(py: Python<'_>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = iterable.getattr_opt(pyo3::intern!(py, "close"))? {
        close.call0()?;
    }
    Ok(())
}

/// Completes a response whose body was fully iterated.
fn finish(py: Python<'_>, responder: &Bound<'_, Responder>, label: &RequestLabel) -> Outcome {
    let mut r = match claim(responder) {
        Ok(r) => r,
        Err(e) => return fail(py, responder, label, "the app broke the WSGI protocol", &e),
    };
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
    label: &RequestLabel,
    what: &str,
    err: &PyErr,
) -> Outcome {
    let Ok(mut r) = responder.try_borrow_mut() else {
        // Another of the app's threads is in `write()`: the response is
        // theirs to end (the connection answers 500 if they do not).
        log_app_error(py, label, what, err);
        return Outcome::AppError;
    };
    if r.gone() {
        return Outcome::ClientGone;
    }
    log_app_error(py, label, what, err);
    answer_failure(py, &mut r);
    Outcome::AppError
}

/// Logs a panic caught while serving `label`'s request, and fails the
/// request as [`fail`] does, if its responder is free: the panic may have
/// come from code that had it borrowed elsewhere (then the connection
/// answers 500 when its response channel closes).
fn fail_panicked(
    py: Python<'_>,
    responder: &Bound<'_, Responder>,
    label: &RequestLabel,
    panic: &(dyn std::any::Any + Send),
) -> Outcome {
    panics::log(label, &panics::cause(panic));
    if let Ok(mut r) = responder.try_borrow_mut() {
        if !r.gone() {
            answer_failure(py, &mut r);
        }
    }
    Outcome::Panicked
}

/// Answers 500 if nothing was sent yet, or aborts the connection if the
/// head is already out.
fn answer_failure(py: Python<'_>, r: &mut Responder) {
    if r.head_sent() {
        let _ = r.send(py, Event::Abort);
        return;
    }
    let body = Bytes::from_static(b"Internal Server Error\n");
    let head = Event::Head {
        head: Head::new(b"500 Internal Server Error")
            .header(b"Content-Type", b"text/plain; charset=utf-8"),
        known_length: Some(body.len() as u64),
    };
    let _ = r
        .send(py, head)
        .and_then(|()| r.send(py, Event::Data(body)))
        .and_then(|()| r.send(py, Event::End));
}

/// Logs an exception from the app, naming the request, with its traceback.
pub fn log_app_error(py: Python<'_>, label: &RequestLabel, what: &str, err: &PyErr) {
    tracing::error!(
        source = "app",
        request = %label,
        "{what} ({label}): {}",
        super::interpreter::format_traceback(py, err)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::EventSink;

    /// An app call to an app returning `[b'hello']`, its events buffered.
    fn hello_call(py: Python<'_>) -> AppCall {
        let module = pyo3::types::PyModule::from_code(
            py,
            c"def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hello']\n",
            c"hello_call.py",
            c"hello_call",
        )
        .unwrap();
        let app = LoadedApp {
            callable: module.getattr("application").unwrap().unbind(),
            file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
        };
        let facts = WorkerFacts {
            multithread: true,
            multiprocess: false,
        };
        let mut job = Job::get_for_tests();
        job.events = EventSink::buffer().0;
        AppCall::start(py, &app, facts, job).unwrap_or_else(|_| panic!("the app ran"))
    }

    /// One of the app's threads waiting in `write()` holds the responder:
    /// the body cannot go out, which is the app's doing, not a bug of
    /// rwsgi's (no panic, no worker replaced).
    #[test]
    fn a_responder_held_by_an_app_thread_fails_the_request_as_an_app_error() {
        Python::initialize();
        Python::attach(|py| {
            let mut call = hello_call(py);
            let responder = call.responder.clone_ref(py);
            let in_write = responder.bind(py).borrow_mut();
            assert_eq!(call.advance(py, false), Progress::Done(Outcome::AppError));
            drop(in_write);
        });
    }

    /// A large piece is shared with its bytes object, and stays readable
    /// on a thread that is not attached to Python once the app's own
    /// reference is gone.
    #[test]
    fn a_shared_body_piece_is_read_without_python_after_the_app_let_go() {
        Python::initialize();
        let expected: Vec<u8> = (0..COPY_LIMIT * 4).map(|i| (i % 251) as u8).collect();
        let piece = Python::attach(|py| {
            let bytes = PyBytes::new(py, &expected);
            let piece = to_bytes(&bytes);
            assert_eq!(
                piece.as_ptr(),
                bytes.as_bytes().as_ptr(),
                "shared, not copied"
            );
            piece
        });
        let read = std::thread::spawn(move || piece.to_vec()).join().unwrap();
        assert!(read == expected);
    }
}
