//! What uwsgi and SCGI have in common: their heads already are CGI
//! variables, as nginx fills them from `uwsgi_params` / `scgi_params`. This
//! module turns such a list into a [`Request`], the way the HTTP codec builds
//! one, so the WSGI layer sees the same variables whichever protocol came in.

use bytes::Bytes;

use super::{BodyFraming, Limits, ProtocolError, Request};

/// Builds a request from proxy-sent CGI variables.
///
/// - Repeated `HTTP_*` variables (nginx forwards each header line as its own
///   var) are combined as RFC 9110 says: `, ` between values, `; ` for Cookie.
/// - The `HTTP_CONTENT_TYPE` / `HTTP_CONTENT_LENGTH` copies nginx adds are
///   dropped: PEP 3333 has `CONTENT_TYPE` / `CONTENT_LENGTH` for them.
/// - The body length comes from `CONTENT_LENGTH` (missing or empty: 0).
pub fn request_from_vars(
    raw: Vec<(Bytes, Bytes)>,
    limits: &Limits,
) -> Result<Request, ProtocolError> {
    // Room for what the server adds later too, so it never reallocates.
    let mut vars: Vec<(Bytes, Bytes)> =
        Vec::with_capacity(raw.len() + 1 + crate::protocol::CONNECTION_VARS);
    for (key, value) in raw {
        if key.as_ref() == b"HTTP_CONTENT_TYPE" || key.as_ref() == b"HTTP_CONTENT_LENGTH" {
            continue;
        }
        if key.starts_with(b"HTTP_") {
            if let Some(slot) = vars.iter_mut().find(|(k, _)| *k == key) {
                let sep: &[u8] = if key.as_ref() == b"HTTP_COOKIE" {
                    b"; "
                } else {
                    b", "
                };
                let joined = [slot.1.as_ref(), sep, value.as_ref()].concat();
                slot.1 = Bytes::from(joined);
                continue;
            }
        }
        vars.push((key, value));
    }
    if !vars.iter().any(|(k, _)| k.as_ref() == b"PATH_INFO") {
        if let Some(path) = path_from_uri(&vars) {
            vars.push((Bytes::from_static(b"PATH_INFO"), path));
        }
    }
    let length = content_length(&vars)?;
    limits.check_body(length)?;
    let method_is = |m: &[u8]| {
        vars.iter()
            .any(|(k, v)| k.as_ref() == b"REQUEST_METHOD" && v.as_ref() == m)
    };
    let head = method_is(b"HEAD");
    let http10 = vars
        .iter()
        .any(|(k, v)| k.as_ref() == b"SERVER_PROTOCOL" && v.as_ref() == b"HTTP/1.0");
    Ok(Request {
        vars,
        body: BodyFraming::Length(length),
        keep_alive: false,
        expect_continue: false,
        http10,
        head,
    })
}

/// `PATH_INFO` when the proxy sent none (nginx's stock `scgi_params` does
/// not): its `DOCUMENT_URI`, else the path of `REQUEST_URI`, percent-decoded.
fn path_from_uri(vars: &[(Bytes, Bytes)]) -> Option<Bytes> {
    let find = |key: &[u8]| vars.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v);
    if let Some(doc) = find(b"DOCUMENT_URI") {
        return Some(doc.clone());
    }
    let uri = find(b"REQUEST_URI")?;
    let path = uri.split(|&b| b == b'?').next().unwrap_or_default();
    Some(Bytes::from(super::http::percent_decode(path)))
}

/// Parses `CONTENT_LENGTH` (absent or empty means 0).
fn content_length(vars: &[(Bytes, Bytes)]) -> Result<u64, ProtocolError> {
    let Some((_, value)) = vars.iter().find(|(k, _)| k.as_ref() == b"CONTENT_LENGTH") else {
        return Ok(0);
    };
    if value.is_empty() {
        return Ok(0);
    }
    parse_decimal(value).ok_or_else(|| {
        ProtocolError::bad(format!(
            "invalid CONTENT_LENGTH {:?}",
            String::from_utf8_lossy(value)
        ))
    })
}

/// Parses a non-empty run of ASCII digits into a u64, `None` on anything
/// else or on overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(k, v)| (Bytes::from(k.to_string()), Bytes::from(v.to_string())))
            .collect()
    }

    #[test]
    fn repeated_headers_are_comma_joined() {
        let req = request_from_vars(
            vars(&[("HTTP_ACCEPT", "a"), ("HTTP_ACCEPT", "b")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(req.var(b"HTTP_ACCEPT").unwrap().as_ref(), b"a, b");
    }

    #[test]
    fn repeated_cookies_are_semicolon_joined() {
        let req = request_from_vars(
            vars(&[("HTTP_COOKIE", "a=1"), ("HTTP_COOKIE", "b=2")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(req.var(b"HTTP_COOKIE").unwrap().as_ref(), b"a=1; b=2");
    }

    #[test]
    fn nginx_content_header_copies_are_dropped() {
        let req = request_from_vars(
            vars(&[
                ("CONTENT_TYPE", "text/plain"),
                ("HTTP_CONTENT_TYPE", "text/plain"),
                ("CONTENT_LENGTH", "3"),
                ("HTTP_CONTENT_LENGTH", "3"),
            ]),
            &Limits::default(),
        )
        .unwrap();
        assert!(req.var(b"HTTP_CONTENT_TYPE").is_none());
        assert!(req.var(b"HTTP_CONTENT_LENGTH").is_none());
        assert_eq!(req.body, BodyFraming::Length(3));
    }

    #[test]
    fn missing_path_info_comes_from_document_uri() {
        let req = request_from_vars(
            vars(&[("REQUEST_URI", "/a%20b?x=1"), ("DOCUMENT_URI", "/a b")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(req.var(b"PATH_INFO").unwrap().as_ref(), b"/a b");
    }

    #[test]
    fn missing_path_info_comes_from_the_request_uri_path() {
        let req = request_from_vars(
            vars(&[("REQUEST_URI", "/caf%C3%A9?x=1")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(req.var(b"PATH_INFO").unwrap().as_ref(), "/café".as_bytes());
    }

    #[test]
    fn empty_content_length_means_no_body() {
        let req = request_from_vars(vars(&[("CONTENT_LENGTH", "")]), &Limits::default()).unwrap();
        assert_eq!(req.body, BodyFraming::Length(0));
    }

    #[test]
    fn invalid_content_length_is_400() {
        let err =
            request_from_vars(vars(&[("CONTENT_LENGTH", "12a")]), &Limits::default()).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn body_over_limit_post_is_413() {
        let limits = Limits {
            body: 10,
            ..Limits::default()
        };
        let err = request_from_vars(vars(&[("CONTENT_LENGTH", "11")]), &limits).unwrap_err();
        assert_eq!(err.status(), 413);
    }
}
