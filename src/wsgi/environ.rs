//! Builds the environ dict (PEP 3333) from a request's CGI variables.
//! String values are the raw bytes decoded as latin-1, so a UTF-8 path
//! `/caf%C3%A9` arrives as `'cafÃ©'`, as the PEP requires.

use std::cell::RefCell;

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
        let known = known_index(key);
        environ.set_item(key_str(py, key, known), value_str(py, known, value))?;
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

/// The variables most requests carry, and whether a value's str may be
/// kept for the next request ([`value_str`]): not for credentials, which
/// would then stay in memory after their request.
const KNOWN: [(&str, bool); 39] = [
    ("REQUEST_METHOD", true),
    ("REQUEST_URI", true),
    ("PATH_INFO", true),
    ("QUERY_STRING", true),
    ("SERVER_PROTOCOL", true),
    ("SCRIPT_NAME", true),
    ("SERVER_NAME", true),
    ("SERVER_PORT", true),
    ("REMOTE_ADDR", true),
    ("REMOTE_PORT", true),
    ("CONTENT_TYPE", true),
    ("CONTENT_LENGTH", true),
    ("DOCUMENT_ROOT", true),
    ("DOCUMENT_URI", true),
    ("REQUEST_SCHEME", true),
    ("HTTPS", true),
    ("HTTP_HOST", true),
    ("HTTP_USER_AGENT", true),
    ("HTTP_ACCEPT", true),
    ("HTTP_ACCEPT_ENCODING", true),
    ("HTTP_ACCEPT_LANGUAGE", true),
    ("HTTP_CONNECTION", true),
    ("HTTP_REFERER", true),
    ("HTTP_CACHE_CONTROL", true),
    ("HTTP_UPGRADE_INSECURE_REQUESTS", true),
    ("HTTP_X_FORWARDED_FOR", true),
    ("HTTP_X_FORWARDED_PROTO", true),
    ("HTTP_X_REAL_IP", true),
    ("HTTP_ORIGIN", true),
    ("HTTP_SEC_FETCH_SITE", true),
    ("HTTP_SEC_FETCH_MODE", true),
    ("HTTP_SEC_FETCH_DEST", true),
    ("HTTP_DNT", true),
    ("HTTP_PRAGMA", true),
    ("HTTP_IF_NONE_MATCH", true),
    ("HTTP_IF_MODIFIED_SINCE", true),
    ("HTTP_COOKIE", false),
    ("HTTP_AUTHORIZATION", false),
    ("HTTP_PROXY_AUTHORIZATION", false),
];

/// The index of `key` in [`KNOWN`]. Each request looks up every one of
/// its variables, so the names are spread over [`BUCKETS`] by their
/// length and last byte and a lookup compares at most three of them, not
/// the whole list (callgrind, hello app: 900 fewer instructions per
/// request than the linear search, of 26,500).
fn known_index(key: &[u8]) -> Option<usize> {
    static TABLE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = vec![Vec::new(); BUCKETS];
        for (i, (name, _)) in KNOWN.iter().enumerate() {
            table[bucket(name.as_bytes())].push(i as u8);
        }
        table
    });
    table[bucket(key)]
        .iter()
        .map(|&i| usize::from(i))
        .find(|&i| KNOWN[i].0.as_bytes() == key)
}

/// Buckets in [`known_index`]'s table.
const BUCKETS: usize = 64;

/// A name's bucket: its length and last byte, which tell most CGI
/// variables apart (`SERVER_NAME` and `SERVER_PORT` share a length).
fn bucket(name: &[u8]) -> usize {
    let last = name.last().map_or(0, |&b| usize::from(b));
    (name.len().wrapping_mul(7) ^ last.wrapping_mul(13)) % BUCKETS
}

/// Variable names are interned: the same few dozen come with every request.
/// The known ones are created once per interpreter and found without
/// hashing; the rest go through Python's interning table.
fn key_str<'py>(py: Python<'py>, key: &[u8], known: Option<usize>) -> Bound<'py, PyString> {
    static KEYS: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
    if let Some(i) = known {
        let keys = KEYS.get_or_init(py, || {
            KNOWN
                .iter()
                .map(|(name, _)| PyString::intern(py, name).unbind())
                .collect()
        });
        return keys[i].bind(py).clone();
    }
    match std::str::from_utf8(key) {
        Ok(s) => PyString::intern(py, s),
        Err(_) => latin1(py, key),
    }
}

/// Values longer than this are decoded afresh each time.
const REUSE_MAX: usize = 96;

/// The latest value of one known variable on this thread, with its str.
struct Recent {
    bytes: Vec<u8>,
    /// A strong reference, held until a different value replaces it.
    string: *mut pyo3::ffi::PyObject,
}

thread_local! {
    /// Per Python thread, indexed like [`KNOWN`].
    static RECENT: RefCell<Vec<Recent>> = const { RefCell::new(Vec::new()) };
}

/// A variable's value as a str. Most values repeat from request to
/// request (the method, the protocol, the server's name and port, the
/// client's address, the Host header): a repeat of a known variable's
/// latest value on this thread reuses its str (strs are immutable), which
/// saves decoding it and, after the request, freeing it.
fn value_str<'py>(py: Python<'py>, known: Option<usize>, value: &[u8]) -> Bound<'py, PyString> {
    let Some(i) = known.filter(|&i| KNOWN[i].1 && value.len() <= REUSE_MAX) else {
        return latin1(py, value);
    };
    RECENT.with_borrow_mut(|recent| {
        if recent.is_empty() {
            recent.resize_with(KNOWN.len(), || Recent {
                bytes: Vec::new(),
                string: std::ptr::null_mut(),
            });
        }
        let slot = &mut recent[i];
        if !slot.string.is_null() && slot.bytes == value {
            // SAFETY: `slot.string` is a str this thread holds a reference
            // to; we are attached to the interpreter.
            return unsafe { Bound::from_borrowed_ptr(py, slot.string).cast_into_unchecked() };
        }
        let fresh = latin1(py, value);
        let old = std::mem::replace(&mut slot.string, fresh.clone().into_ptr());
        if !old.is_null() {
            // SAFETY: the reference the slot held; freeing a str runs no
            // Python code.
            unsafe { pyo3::ffi::Py_DECREF(old) };
        }
        slot.bytes.clear();
        slot.bytes.extend_from_slice(value);
        fresh
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_variable_is_found_at_its_index() {
        for (i, (name, _)) in KNOWN.iter().enumerate() {
            assert_eq!(known_index(name.as_bytes()), Some(i), "{name}");
        }
    }

    #[test]
    fn other_names_are_not_known() {
        for name in [
            "",
            "X",
            "HTTP_X_CUSTOM",
            "REQUEST_METHOD_",
            "request_method",
            "SERVER_PORX",
            "HTTP_COOKIES",
        ] {
            assert_eq!(known_index(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn buckets_hold_few_names() {
        let mut counts = [0usize; BUCKETS];
        for (name, _) in KNOWN {
            counts[bucket(name.as_bytes())] += 1;
        }
        assert!(counts.iter().all(|&n| n <= 3), "{counts:?}");
    }
}
