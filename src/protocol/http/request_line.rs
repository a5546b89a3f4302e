//! The request line (RFC 9112 §3): `method SP request-target SP HTTP-version`.
//! Owns method and version syntax; the target's form is judged later by
//! `target`, which needs the method.

use std::ops::Range;

use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::all_consuming;
use nom::sequence::terminated;
use nom::Parser;

use super::syntax::{is_target_byte, is_tchar, offset_in, PResult};
use crate::protocol::{ErrorKind, ProtocolError};

/// Shortest method accepted; every registered method has at least 3 bytes.
const METHOD_MIN: usize = 3;
/// Longest method accepted (gunicorn's bound; the longest registered method,
/// `UPDATEREDIRECTREF`, has 17 bytes).
const METHOD_MAX: usize = 20;

/// Where the parts of a request line sit in the head buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RequestLine {
    /// The method, kept as sent (it is case-sensitive).
    pub(super) method: Range<usize>,
    /// The raw request-target, becomes `REQUEST_URI`.
    pub(super) target: Range<usize>,
    /// The minor version: 0 or 1 (`HTTP/1.0` or `HTTP/1.1`).
    pub(super) minor: u8,
}

/// Parses a request line whose CRLF has been removed. `at` is the line's
/// offset in the head, so the ranges index the head directly.
pub(super) fn parse(line: &[u8], at: usize) -> Result<RequestLine, ProtocolError> {
    let method: PResult<&[u8]> = terminated(take_while1(is_tchar), tag(&b" "[..])).parse(line);
    let Ok((rest, method)) = method else {
        return Err(ProtocolError::bad("invalid request method"));
    };
    check_method(method)?;
    let target: PResult<&[u8]> =
        terminated(take_while1(is_target_byte), tag(&b" "[..])).parse(rest);
    let Ok((rest, target)) = target else {
        return Err(ProtocolError::bad("invalid request target"));
    };
    let minor = version(rest)?;
    let target_at = at + offset_in(line, target);
    Ok(RequestLine {
        method: at..at + method.len(),
        target: target_at..target_at + target.len(),
        minor,
    })
}

/// Methods are tokens; like gunicorn we also refuse lowercase letters and
/// odd lengths, which real clients never send and scanners often do.
fn check_method(method: &[u8]) -> Result<(), ProtocolError> {
    if method.iter().any(u8::is_ascii_lowercase) {
        return Err(ProtocolError::bad("request method has lowercase letters"));
    }
    if !(METHOD_MIN..=METHOD_MAX).contains(&method.len()) {
        return Err(ProtocolError::bad(format!(
            "request method of {} bytes (allowed {METHOD_MIN} to {METHOD_MAX})",
            method.len()
        )));
    }
    Ok(())
}

/// `HTTP/` DIGIT `.` DIGIT: malformed is a 400, well-formed but not 1.0 or
/// 1.1 is a 505.
fn version(input: &[u8]) -> Result<u8, ProtocolError> {
    let digit = || satisfy(|c: char| c.is_ascii_digit());
    let parsed: PResult<(&[u8], char, &[u8], char)> =
        all_consuming((tag(&b"HTTP/"[..]), digit(), tag(&b"."[..]), digit())).parse(input);
    match parsed {
        Ok((_, (_, '1', _, '0'))) => Ok(0),
        Ok((_, (_, '1', _, '1'))) => Ok(1),
        Ok((_, (_, major, _, minor))) => Err(ProtocolError::new(
            ErrorKind::VersionNotSupported,
            format!("HTTP/{major}.{minor} is not supported"),
        )),
        Err(_) => Err(ProtocolError::bad("malformed HTTP version")),
    }
}
