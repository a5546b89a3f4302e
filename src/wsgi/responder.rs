//! `start_response` and the `write()` callable it returns. Validates the
//! status and headers (a bad one raises in the app, which becomes a 500:
//! never a split or malformed response), honours `exc_info`, and sends the
//! head lazily, with the first non-empty body piece.

use tokio::sync::mpsc;

use crate::exchange::{Event, EventSink};
use crate::protocol::http::syntax::is_tchar;
use crate::protocol::response::{Head, MAX_APP_HEAD};
use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

/// The client is gone: the app's output has nowhere to go.
#[derive(Debug)]
pub struct Disconnected;

/// Response state of one request, shared by `start_response`, `write()`
/// and the body iteration.
#[pyclass(module = "rwsgi")]
pub struct Responder {
    /// The status and headers set by the latest `start_response`, until
    /// they are sent.
    head: Option<Head>,
    /// Whether the head has gone to the connection (no more changes).
    head_sent: bool,
    /// The connection's end of the response; `None` while the responder
    /// waits in this thread's spare slot for its next request.
    events: Option<EventSink>,
    /// Set once a send failed: the client disconnected.
    gone: bool,
    /// Its request is over, and the app kept it: `start_response` and
    /// `write()` raise instead of sending nowhere.
    ended: bool,
    /// Time spent waiting for the connection to take events (a full
    /// channel): the client's pace, not the app's.
    waited: std::time::Duration,
}

impl Responder {
    /// A responder that sends to `events`.
    pub fn new(events: EventSink) -> Self {
        Responder {
            head: None,
            head_sent: false,
            events: Some(events),
            gone: false,
            ended: false,
            waited: std::time::Duration::ZERO,
        }
    }

    /// How long sends waited for the connection to catch up.
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }

    /// Whether `start_response` has been called.
    pub fn started(&self) -> bool {
        self.head.is_some() || self.head_sent
    }

    /// Whether the head has been sent.
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Whether the client has gone away.
    pub fn gone(&self) -> bool {
        self.gone
    }

    /// Sends an event, waiting (without the GIL) while the connection is
    /// behind.
    pub fn send(&mut self, py: Python<'_>, event: Event) -> Result<(), Disconnected> {
        if self.gone {
            return Err(Disconnected);
        }
        match &self.events {
            None => {
                self.gone = true;
                return Err(Disconnected);
            }
            Some(EventSink::Channel(events)) => {
                // Usually there is room: send without giving up the GIL
                // (re-taking it can wait a whole switch interval when many
                // threads want it). Only a full channel waits, GIL released.
                let sent = match events.try_send(event) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(event)) => {
                        let began = std::time::Instant::now();
                        let sent = py.detach(|| events.blocking_send(event)).map_err(|_| ());
                        self.waited += began.elapsed();
                        sent
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                };
                if sent.is_err() {
                    self.gone = true;
                    return Err(Disconnected);
                }
            }
            Some(EventSink::Buffer(buffer)) => {
                buffer.lock().unwrap_or_else(|e| e.into_inner()).push(event)
            }
        }
        Ok(())
    }

    /// Sends the head, once. `known_length` is the body length when the
    /// iterable made it known.
    pub fn send_head(
        &mut self,
        py: Python<'_>,
        known_length: Option<u64>,
    ) -> PyResult<Result<(), Disconnected>> {
        if self.head_sent {
            return Ok(Ok(()));
        }
        let Some(head) = self.head.take() else {
            return Err(PyRuntimeError::new_err(
                "the app returned body data before calling start_response",
            ));
        };
        self.head_sent = true;
        Ok(self.send(py, Event::Head { head, known_length }))
    }

    /// Sends one body piece, sending the head first if needed. Empty
    /// pieces send nothing (a lazy generator may start the response later).
    pub fn send_body(&mut self, py: Python<'_>, data: Bytes) -> PyResult<Result<(), Disconnected>> {
        if data.is_empty() {
            return Ok(Ok(()));
        }
        if let Err(gone) = self.send_head(py, None)? {
            return Ok(Err(gone));
        }
        Ok(self.send(py, Event::Data(data)))
    }
}

impl Responder {
    /// Drops the connection's end (a channel must close when its request
    /// ends) and the head, for reuse by the thread's next request.
    /// Marks the responder of a request that is over but that the app
    /// still holds: a later `start_response` or `write()` raises.
    pub(super) fn end(&mut self) {
        self.events = None;
        self.ended = true;
    }

    pub(super) fn clear_for_reuse(&mut self) {
        self.events = None;
        self.head = None;
    }
}

#[pymethods]
impl Responder {
    /// PEP 3333 `start_response(status, response_headers, exc_info=None)`,
    /// and the `write(data)` callable it returns. The responder itself is
    /// both: the app gets it as `start_response` and back as `write`, told
    /// apart by their arguments (`write` takes one bytes object). Two bound
    /// methods would be two more objects made and freed per request.
    #[pyo3(signature = (status, headers=None, exc_info=None))]
    fn __call__<'py>(
        slf: Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: Option<&Bound<'py, PyAny>>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let Some(headers) = headers else {
            if status.is_instance_of::<PyBytes>() {
                busy_or(slf.try_borrow_mut())?.write(py, status)?;
                return Ok(py.None().into_bound(py));
            }
            return Err(PyTypeError::new_err(
                "start_response() needs status and response_headers \
                 (or, as write(), one bytes argument)",
            ));
        };
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut this = busy_or(slf.try_borrow_mut())?;
            if this.ended {
                return Err(ended_error("start_response"));
            }
            if let Some(exc_info) = exc_info {
                if this.head_sent {
                    return Err(reraise(exc_info));
                }
            } else if this.started() {
                return Err(PyRuntimeError::new_err(
                    "start_response called a second time without exc_info",
                ));
            }
            this.head = Some(validate(status, headers)?);
        }
        Ok(slf.into_any())
    }

    /// The legacy `write(data)` callable: sends `data` at once.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.ended {
            return Err(ended_error("write()"));
        }
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        let data = Bytes::copy_from_slice(bytes.as_bytes());
        match self.send_body(py, data)? {
            Ok(()) => Ok(()),
            Err(Disconnected) => Err(pyo3::exceptions::PyConnectionAbortedError::new_err(
                "client disconnected",
            )),
        }
    }
}

/// `responder`, for the server's thread to send with; an exception, for
/// the app, if one of the app's own threads is in `write()` with it
/// (borrowing it regardless would panic).
pub(super) fn claim<'py>(responder: &Bound<'py, Responder>) -> PyResult<PyRefMut<'py, Responder>> {
    responder.try_borrow_mut().map_err(|_| {
        PyRuntimeError::new_err(
            "the response could not be sent: another of the app's threads is in its write()",
        )
    })
}

/// The responder, or the error for a `start_response` or `write()` called
/// while it is in use: another of the app's threads is in `write()`,
/// waiting for the client with the GIL released. Borrowing it regardless
/// would panic.
fn busy_or<T>(borrowed: Result<T, pyo3::pycell::PyBorrowMutError>) -> PyResult<T> {
    borrowed.map_err(|_| {
        PyRuntimeError::new_err(
            "start_response/write() called while another thread is sending this response",
        )
    })
}

/// The error for a `start_response` or `write()` kept past its request.
fn ended_error(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!("{what} called after its request ended"))
}

/// Re-raises the exception in `exc_info` (type, value, traceback).
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info
        .cast::<PyTuple>()
        .ok()
        .and_then(|t| t.get_item(1).ok())
    {
        Some(value) if !value.is_none() => PyErr::from_value(value),
        _ => PyRuntimeError::new_err("start_response: exc_info given after headers were sent"),
    }
}

/// Checks the status and headers and lays them out as they go on the
/// wire, in one buffer (see [`Head`]).
fn validate(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let mut head = Head::build(|buf| validate_status(status, buf))?;
    validate_headers(headers, &mut head)?;
    Ok(head)
}

/// A status must be a str `NNN Reason`, latin-1, without control
/// characters. Appended to `buf`, which is empty.
fn validate_status(status: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> PyResult<()> {
    let text = status
        .cast::<PyString>()
        .map_err(|_| {
            PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
        })?
        .to_str()?;
    push_latin1_str(buf, text, "status")?;
    let bytes = &buf[..];
    let well_formed = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && bytes[0] != b'0';
    if !well_formed {
        return Err(PyValueError::new_err(format!(
            "status must look like '200 OK', got {text:?}"
        )));
    }
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PyValueError::new_err(format!(
            "status contains a control character: {text:?}"
        )));
    }
    Ok(())
}

/// Headers must be a list of (str, str) tuples: token names, latin-1
/// values without CR, LF or other control characters. Each is added to
/// `head` (which drops a value's surrounding whitespace).
fn validate_headers(headers: &Bound<'_, PyAny>, head: &mut Head) -> PyResult<()> {
    let list = headers.cast::<pyo3::types::PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response_headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    for (i, item) in list.iter().enumerate() {
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!(
                "each header must be a tuple, not {}",
                type_name(&item)
            ))
        })?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(
                "each header must be a (name, value) tuple",
            ));
        }
        let name_at = std::cell::Cell::new((0, 0));
        head.push_with(
            |buf| {
                let start = buf.len();
                push_latin1(buf, &pair.get_item(0)?, "header name")?;
                name_at.set((start, buf.len()));
                let name = &buf[start..];
                if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                    return Err(PyValueError::new_err(format!(
                        "invalid header name {:?}",
                        String::from_utf8_lossy(name)
                    )));
                }
                Ok(())
            },
            |buf| {
                let start = buf.len();
                push_latin1(buf, &pair.get_item(1)?, "header value")?;
                if buf[start..]
                    .iter()
                    .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                {
                    return Err(PyValueError::new_err(format!(
                        "header {} has a control character (CR/LF?) in its value",
                        String::from_utf8_lossy(&buf[name_at.get().0..name_at.get().1])
                    )));
                }
                Ok(())
            },
        )?;
        if head.len() > MAX_APP_HEAD {
            return Err(PyValueError::new_err(format!(
                "response headers larger than {MAX_APP_HEAD} bytes (at header {} of {})",
                i + 1,
                list.len()
            )));
        }
    }
    Ok(())
}

/// Appends a header name or value, which must be a latin-1 str, to `out`.
fn push_latin1(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
    let text = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(obj))))?
        .to_str()?;
    push_latin1_str(out, text, what)
}

/// Appends `text` encoded as latin-1, refusing characters past U+00FF.
fn push_latin1_str(out: &mut Vec<u8>, text: &str, what: &str) -> PyResult<()> {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "{what} is not latin-1: {text:?}"
                )))
            }
        }
    }
    Ok(())
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app thread calling `write()` while another of its threads waits
    /// in `write()` gets an exception it can handle, not a panic.
    #[test]
    fn start_response_on_a_responder_in_use_raises_a_runtime_error() {
        Python::initialize();
        Python::attach(|py| {
            let responder = Bound::new(py, Responder::new(EventSink::buffer().0)).unwrap();
            let in_use = responder.borrow_mut();
            let headers = pyo3::types::PyList::empty(py);
            for args in [
                PyTuple::new(py, [PyBytes::new(py, b"data").into_any()]).unwrap(),
                PyTuple::new(
                    py,
                    [
                        "200 OK".into_pyobject(py).unwrap().into_any(),
                        headers.into_any(),
                    ],
                )
                .unwrap(),
            ] {
                let err = responder.call1(args).unwrap_err();
                assert!(err.is_instance_of::<PyRuntimeError>(py), "{err}");
            }
            drop(in_use);
        });
    }
}
