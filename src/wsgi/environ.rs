//! Builds the environ dict (PEP 3333) from a request's CGI variables.
//! String values are the raw bytes decoded as latin-1, so a UTF-8 path
//! `/caf%C3%A9` arrives as `'cafÃ©'`, as the PEP requires.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::errors::ErrorStream;
use super::input::Input;
use crate::exchange::{Body, RequestLabel};
use crate::protocol::Request;

/// Per-worker facts every environ carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerFacts {
    /// `wsgi.multithread`: more than one Python thread.
    pub multithread: bool,
    /// `wsgi.multiprocess`: more than one worker process.
    pub multiprocess: bool,
}

/// Decodes raw bytes as latin-1 into a Python str.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe a live slice; latin-1
    // decoding cannot fail, and a NULL (memory error) is handled below.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        if ptr.is_null() {
            return PyString::new(py, &String::from_utf8_lossy(bytes));
        }
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked()
    }
}

/// Builds the environ for `request`, taking its body as `wsgi.input`.
pub fn build<'py>(
    py: Python<'py>,
    request: &Request,
    body: Body,
    label: &RequestLabel,
    facts: WorkerFacts,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = template(py, facts, file_wrapper)?.copy()?;
    for (key, value) in &request.vars {
        environ.set_item(key_str(py, key), latin1(py, value))?;
    }
    if is_https(request) {
        environ.set_item(pyo3::intern!(py, "wsgi.url_scheme"), "https")?;
    }
    environ.set_item(pyo3::intern!(py, "wsgi.input"), Input::new(body))?;
    environ.set_item(pyo3::intern!(py, "wsgi.errors"), ErrorStream::new(label))?;
    Ok(environ)
}

/// Room for this many entries (CPython rounds the table up so 42 fit):
/// nginx's params plus a browser's headers plus the `wsgi.*` keys go in
/// without a resize, and the table stays small enough for malloc's
/// per-thread cache.
const ENVIRON_ROOM: isize = 32;

/// The worker's environ template: the `wsgi.*` entries that are the same
/// for every request, in a dict sized for a whole environ. Each request
/// starts from a copy (CPython copies such a dict with one memcpy, keeping
/// its size, so the request's variables go in without resizing it).
fn template<'py>(
    py: Python<'py>,
    facts: WorkerFacts,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    static TEMPLATE: PyOnceLock<(WorkerFacts, Py<PyDict>)> = PyOnceLock::new();
    let fresh = || -> PyResult<Py<PyDict>> {
        // SAFETY: _PyDict_NewPresized (public in CPython's cpython/
        // headers since 3.6, not in pyo3-ffi) returns a new reference or
        // NULL with an exception set.
        let dict = unsafe {
            let ptr = _PyDict_NewPresized(ENVIRON_ROOM as pyo3::ffi::Py_ssize_t);
            Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyDict>()
        };
        dict.set_item(pyo3::intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        dict.set_item(pyo3::intern!(py, "wsgi.url_scheme"), "http")?;
        dict.set_item(pyo3::intern!(py, "wsgi.multithread"), facts.multithread)?;
        dict.set_item(pyo3::intern!(py, "wsgi.multiprocess"), facts.multiprocess)?;
        dict.set_item(pyo3::intern!(py, "wsgi.run_once"), false)?;
        dict.set_item(pyo3::intern!(py, "wsgi.input_terminated"), true)?;
        dict.set_item(pyo3::intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
        Ok(dict.unbind())
    };
    let (cached_facts, dict) = TEMPLATE.get_or_try_init(py, || fresh().map(|d| (facts, d)))?;
    if *cached_facts == facts {
        Ok(dict.bind(py).clone())
    } else {
        // Only tests run workers of different shapes in one process.
        Ok(fresh()?.into_bound(py))
    }
}

extern "C" {
    fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
}

/// Variable names are interned: the same few dozen come with every request.
/// The common ones are looked up without hashing (each is created once per
/// interpreter); the rest through Python's interning table.
fn key_str<'py>(py: Python<'py>, key: &Bytes) -> Bound<'py, PyString> {
    macro_rules! known {
        ($($name:literal),* $(,)?) => {
            match key.as_ref() {
                $(k if k == $name.as_bytes() => return pyo3::intern!(py, $name).clone(),)*
                _ => {}
            }
        };
    }
    known!(
        "REQUEST_METHOD",
        "REQUEST_URI",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_PROTOCOL",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "DOCUMENT_ROOT",
        "DOCUMENT_URI",
        "REQUEST_SCHEME",
        "HTTPS",
        "HTTP_HOST",
        "HTTP_USER_AGENT",
        "HTTP_ACCEPT",
        "HTTP_ACCEPT_ENCODING",
        "HTTP_ACCEPT_LANGUAGE",
        "HTTP_CONNECTION",
        "HTTP_COOKIE",
        "HTTP_REFERER",
        "HTTP_CACHE_CONTROL",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_REAL_IP",
        "HTTP_ORIGIN",
        "HTTP_AUTHORIZATION",
        "HTTP_SEC_FETCH_SITE",
        "HTTP_SEC_FETCH_MODE",
        "HTTP_SEC_FETCH_DEST",
        "HTTP_DNT",
        "HTTP_PRAGMA",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
    );
    match std::str::from_utf8(key) {
        Ok(s) => PyString::intern(py, s),
        Err(_) => latin1(py, key),
    }
}

/// Whether the proxy says the client used TLS (`HTTPS=on` from nginx's
/// params, or `REQUEST_SCHEME=https` / `UWSGI_SCHEME=https`).
fn is_https(request: &Request) -> bool {
    let on = |key: &[u8], want: &[&[u8]]| {
        request
            .var(key)
            .is_some_and(|v| want.iter().any(|w| v.eq_ignore_ascii_case(w)))
    };
    on(b"HTTPS", &[b"on", b"1"])
        || on(b"REQUEST_SCHEME", &[b"https"])
        || on(b"UWSGI_SCHEME", &[b"https"])
        || on(b"wsgi.url_scheme", &[b"https"])
}
