//! Builds the environ dict (PEP 3333) from a request's CGI variables.
//! String values are the raw bytes decoded as latin-1, so a UTF-8 path
//! `/caf%C3%A9` arrives as `'cafÃ©'`, as the PEP requires.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::errors::ErrorStream;
use super::input::Input;
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

/// Builds the environ for `request`, with its `wsgi.input` and
/// `wsgi.errors`.
pub fn build<'py>(
    py: Python<'py>,
    request: &Request,
    input: &Bound<'py, Input>,
    errors: &Bound<'py, ErrorStream>,
    facts: WorkerFacts,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let template = template(py, facts, file_wrapper)?;
    let environ = match super::shapes::environ(py, request, facts, &template) {
        Some(environ) => environ?,
        None => {
            let environ = template.copy()?;
            for (key, value) in &request.vars {
                let known = known_index(key);
                environ.set_item(key_str(py, key, known), value_str(py, known, value))?;
            }
            environ
        }
    };
    let https = request
        .vars
        .iter()
        .any(|(key, value)| says_https(key, value));
    if https {
        environ.set_item(pyo3::intern!(py, "wsgi.url_scheme"), "https")?;
    }
    environ.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
    environ.set_item(pyo3::intern!(py, "wsgi.errors"), errors)?;
    Ok(environ)
}

/// Room for this many entries (CPython rounds the table up so 42 fit):
/// nginx's params plus a browser's headers plus the `wsgi.*` keys go in
/// without a resize. The table (1,104 bytes in CPython 3.11) is just past
/// malloc's per-thread cache, so its malloc and free take glibc's slower
/// path, about 3 % of a hello request's instructions. A str-keyed table
/// (16-byte entries, 768 bytes) would fit, but CPython only makes one by
/// growing a dict: a template grown that way made requests 1 % slower
/// (callgrind), its lookups costing more than the malloc saved.
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
pub(super) const KNOWN: [(&str, bool); 39] = [
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
/// its variables: with literal patterns the compiler tells the names apart
/// by length and then compares a word or two inline, where a search
/// through a table called `memcmp` per candidate.
pub(super) fn known_index(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"REQUEST_METHOD" => 0,
        b"REQUEST_URI" => 1,
        b"PATH_INFO" => 2,
        b"QUERY_STRING" => 3,
        b"SERVER_PROTOCOL" => 4,
        b"SCRIPT_NAME" => 5,
        b"SERVER_NAME" => 6,
        b"SERVER_PORT" => 7,
        b"REMOTE_ADDR" => 8,
        b"REMOTE_PORT" => 9,
        b"CONTENT_TYPE" => 10,
        b"CONTENT_LENGTH" => 11,
        b"DOCUMENT_ROOT" => 12,
        b"DOCUMENT_URI" => 13,
        b"REQUEST_SCHEME" => 14,
        b"HTTPS" => 15,
        b"HTTP_HOST" => 16,
        b"HTTP_USER_AGENT" => 17,
        b"HTTP_ACCEPT" => 18,
        b"HTTP_ACCEPT_ENCODING" => 19,
        b"HTTP_ACCEPT_LANGUAGE" => 20,
        b"HTTP_CONNECTION" => 21,
        b"HTTP_REFERER" => 22,
        b"HTTP_CACHE_CONTROL" => 23,
        b"HTTP_UPGRADE_INSECURE_REQUESTS" => 24,
        b"HTTP_X_FORWARDED_FOR" => 25,
        b"HTTP_X_FORWARDED_PROTO" => 26,
        b"HTTP_X_REAL_IP" => 27,
        b"HTTP_ORIGIN" => 28,
        b"HTTP_SEC_FETCH_SITE" => 29,
        b"HTTP_SEC_FETCH_MODE" => 30,
        b"HTTP_SEC_FETCH_DEST" => 31,
        b"HTTP_DNT" => 32,
        b"HTTP_PRAGMA" => 33,
        b"HTTP_IF_NONE_MATCH" => 34,
        b"HTTP_IF_MODIFIED_SINCE" => 35,
        b"HTTP_COOKIE" => 36,
        b"HTTP_AUTHORIZATION" => 37,
        b"HTTP_PROXY_AUTHORIZATION" => 38,
        _ => return None,
    })
}

/// Variable names are interned: the same few dozen come with every request.
/// The known ones are created once per interpreter and found without
/// hashing; the rest go through Python's interning table.
pub(super) fn key_str<'py>(
    py: Python<'py>,
    key: &[u8],
    known: Option<usize>,
) -> Bound<'py, PyString> {
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
pub(super) fn value_str<'py>(
    py: Python<'py>,
    known: Option<usize>,
    value: &[u8],
) -> Bound<'py, PyString> {
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
        if !slot.string.is_null() && same_short(&slot.bytes, value) {
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

/// `a == b` for the short strings environ building compares (names, and
/// values of at most a few hundred bytes), a word at a time and inline:
/// slice equality calls libc's `memcmp`, and that call for each of a
/// request's variables was 2.6 % of a worker's time behind nginx (perf),
/// more than the comparison itself. The last word overlaps the one before
/// it instead of ending in a loop over single bytes.
#[inline]
pub(super) fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if chunk::<8>(a, at) != chunk::<8>(b, at) {
                return false;
            }
            at += 8;
        }
        return chunk::<8>(a, n - 8) == chunk::<8>(b, n - 8);
    }
    if n >= 4 {
        return chunk::<4>(a, 0) == chunk::<4>(b, 0)
            && chunk::<4>(a, n - 4) == chunk::<4>(b, n - 4);
    }
    a.iter().zip(b).all(|(p, q)| p == q)
}

/// The `N` bytes of `s` from `at` (zeros past its end), compared as one
/// word.
#[inline]
fn chunk<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    s.get(at..at + N)
        .and_then(|w| w.try_into().ok())
        .unwrap_or([0; N])
}

/// Whether the variable `key` = `value` says the client used TLS:
/// `HTTPS=on` from nginx's params, or `REQUEST_SCHEME=https` /
/// `UWSGI_SCHEME=https`. Every variable of every request is asked: the
/// literal patterns reject most names by their length alone.
fn says_https(key: &[u8], value: &[u8]) -> bool {
    let is = |want: &[u8]| value.eq_ignore_ascii_case(want);
    match key {
        b"HTTPS" => is(b"on") || is(b"1"),
        b"REQUEST_SCHEME" | b"UWSGI_SCHEME" | b"wsgi.url_scheme" => is(b"https"),
        _ => false,
    }
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
    fn each_proxy_variable_for_tls_says_https() {
        let says = |key: &str, value: &str| says_https(key.as_bytes(), value.as_bytes());
        assert!(says("HTTPS", "on") && says("HTTPS", "ON") && says("HTTPS", "1"));
        assert!(says("REQUEST_SCHEME", "https") && says("UWSGI_SCHEME", "HTTPS"));
        assert!(says("wsgi.url_scheme", "https"));
        assert!(!says("HTTPS", "off") && !says("REQUEST_SCHEME", "http"));
        assert!(!says("HTTP_X_FORWARDED_PROTO", "https") && !says("PATH_INFO", "https"));
    }

    #[test]
    fn short_values_compare_equal_only_when_every_byte_is() {
        let value = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        for len in 0..=value.len() {
            let a = &value[..len];
            let copy = a.to_vec();
            assert!(same_short(a, &copy), "{len}");
            assert!(!same_short(a, &value[..len.saturating_sub(1)]) || len == 0);
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_short(a, &b), "differs at {at} of {len}");
            }
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
}
