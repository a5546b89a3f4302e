//! Request-target forms (RFC 9112 §3.2) and what WSGI makes of them:
//! `PATH_INFO` (percent-decoded to raw bytes) and `QUERY_STRING`. Decides
//! which form is allowed with which method; never decodes text as UTF-8.

use std::ops::Range;

use bytes::Bytes;

use super::syntax::hex_value;
use crate::protocol::ProtocolError;

/// The path and query of a request-target, as ranges into the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TargetParts {
    /// The path (before `?` / `#`), or the whole target for `*` and
    /// authority-form. Empty only for an absolute-form URI without a path,
    /// whose path is then `/` (RFC 9112 §3.2.1).
    pub(super) path: Range<usize>,
    /// The query without its `?` and without any `#fragment`; empty if none.
    pub(super) query: Range<usize>,
}

/// Splits `target` according to its form, checking the form suits `method`:
/// origin-form (`/p?q`), absolute-form (`http://` or `https://`), `*` with
/// OPTIONS only, authority-form (`host:port`) with CONNECT only.
pub(super) fn split(method: &[u8], target: &[u8]) -> Result<TargetParts, ProtocolError> {
    let whole = TargetParts {
        path: 0..target.len(),
        query: target.len()..target.len(),
    };
    if method == b"CONNECT" {
        if !is_authority_form(target) {
            return Err(ProtocolError::bad(
                "CONNECT needs an authority-form target (host:port)",
            ));
        }
        return Ok(whole);
    }
    if target == b"*" {
        if method != b"OPTIONS" {
            return Err(ProtocolError::bad("asterisk-form target without OPTIONS"));
        }
        return Ok(whole);
    }
    if target.first() == Some(&b'/') {
        return Ok(path_and_query(target, 0));
    }
    if let Some(after_scheme) = absolute_scheme_len(target) {
        let authority_len = target[after_scheme..]
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(target.len() - after_scheme);
        if authority_len == 0 {
            return Err(ProtocolError::bad("absolute-form target without a host"));
        }
        return Ok(path_and_query(target, after_scheme + authority_len));
    }
    if is_authority_form(target) {
        return Err(ProtocolError::bad("authority-form target without CONNECT"));
    }
    Err(ProtocolError::bad(
        "request target is not origin-form, absolute-form, * or authority-form",
    ))
}

/// The path starts at `from`; it ends at the first `?` or `#`.
fn path_and_query(target: &[u8], from: usize) -> TargetParts {
    let rest = &target[from..];
    let path_end = from
        + rest
            .iter()
            .position(|b| matches!(b, b'?' | b'#'))
            .unwrap_or(rest.len());
    let query = match target.get(path_end) {
        Some(b'?') => {
            let q = &target[path_end + 1..];
            let len = q.iter().position(|&b| b == b'#').unwrap_or(q.len());
            path_end + 1..path_end + 1 + len
        }
        _ => target.len()..target.len(),
    };
    TargetParts {
        path: from..path_end,
        query,
    }
}

/// Length of a leading `http://` or `https://` (scheme is case-insensitive).
fn absolute_scheme_len(target: &[u8]) -> Option<usize> {
    [&b"http://"[..], &b"https://"[..]]
        .into_iter()
        .find(|scheme| {
            target
                .get(..scheme.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
        })
        .map(<[u8]>::len)
}

/// `host:port` with a non-empty host and a 1 to 5 digit port; no path,
/// query, fragment or userinfo.
fn is_authority_form(target: &[u8]) -> bool {
    if target
        .iter()
        .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@'))
    {
        return false;
    }
    let Some(colon) = target.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    let bracketed = host.first() == Some(&b'[');
    !host.is_empty()
        && bracketed == (host.last() == Some(&b']'))
        && (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
}

/// `PATH_INFO` for a target whose path is `path` within `target`, itself a
/// slice of `head`: `%XX` escapes decoded to raw bytes (not UTF-8 decoded),
/// zero-copy when there is nothing to decode. A `%` not followed by two hex
/// digits is kept as is, as CPython's `unquote_to_bytes` does.
pub(super) fn path_info(head: &Bytes, target_at: usize, path: Range<usize>) -> Bytes {
    if path.is_empty() {
        return Bytes::from_static(b"/");
    }
    let range = target_at + path.start..target_at + path.end;
    let raw = &head[range.clone()];
    if !raw.contains(&b'%') {
        return head.slice(range);
    }
    Bytes::from(percent_decode(raw))
}

/// Decodes every valid `%XX` escape in `raw`.
pub(crate) fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let [b, tail @ ..] = rest {
        match (b, tail) {
            (b'%', [hi, lo, after @ ..]) => match (hex_value(*hi), hex_value(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    rest = after;
                    continue;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(*b),
        }
        rest = tail;
    }
    out
}
