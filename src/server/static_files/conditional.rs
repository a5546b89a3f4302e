//! Validators and the request headers that test them (RFC 9110 §13, §14):
//! `ETag` / `Last-Modified`, `If-None-Match` / `If-Modified-Since` (304),
//! `Range` / `If-Range` (206, 416). Pure: no I/O.
//!
//! Not supported, by choice: `If-Match` / `If-Unmodified-Since` (ignored,
//! as for any resource that is only read), and multiple ranges: a `Range`
//! with more than one range gets the whole file with 200, which RFC 9110
//! §14.2 allows, instead of a `multipart/byteranges` body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::protocol::Request;

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    /// Modification time, whole seconds since the epoch (HTTP dates have no
    /// finer resolution).
    pub mtime: u64,
    /// Size in bytes.
    pub size: u64,
}

impl Validators {
    /// From a file's modification time and size.
    pub fn new(modified: Option<SystemTime>, size: u64) -> Self {
        let mtime = modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Validators { mtime, size }
    }

    /// A strong entity-tag, `"<mtime hex>-<size hex>"` (nginx's form, so
    /// tags stay valid across servers that share the files).
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime, self.size)
    }

    /// The `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified())
    }

    fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.mtime)
    }
}

/// The request headers that make a GET or HEAD conditional or partial.
#[derive(Debug, Clone, Default)]
pub(super) struct Conditions {
    /// `If-None-Match`.
    pub if_none_match: Option<Bytes>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<Bytes>,
    /// `Range`.
    pub range: Option<Bytes>,
    /// `If-Range`.
    pub if_range: Option<Bytes>,
}

impl Conditions {
    /// Takes the headers from the request's CGI variables (the same names
    /// over HTTP, uwsgi and SCGI).
    pub fn from_request(request: &Request) -> Self {
        let var = |name: &[u8]| request.var(name).cloned();
        Conditions {
            if_none_match: var(b"HTTP_IF_NONE_MATCH"),
            if_modified_since: var(b"HTTP_IF_MODIFIED_SINCE"),
            range: var(b"HTTP_RANGE"),
            if_range: var(b"HTTP_IF_RANGE"),
        }
    }
}

/// What to answer for an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive (as in `Content-Range`).
        end: u64,
    },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Evaluates the conditions in RFC 9110 §13.2.2 order. `get`: ranges apply
/// to GET only (a HEAD with `Range` gets the 200 headers).
pub(super) fn decide(file: &Validators, cond: &Conditions, get: bool) -> Decision {
    if let Some(list) = &cond.if_none_match {
        // If-None-Match wins over If-Modified-Since (§13.1.3).
        if none_match_hits(list, &file.etag()) {
            return Decision::NotModified;
        }
    } else if let Some(since) = cond.if_modified_since.as_deref().and_then(parse_date) {
        if file.modified() <= since {
            return Decision::NotModified;
        }
    }
    let Some(range) = cond.range.as_deref().filter(|_| get) else {
        return Decision::Full;
    };
    if let Some(if_range) = &cond.if_range {
        if !if_range_holds(if_range, file) {
            return Decision::Full;
        }
    }
    match parse_range(range) {
        Some(spec) => spec.resolve(file.size),
        None => Decision::Full,
    }
}

/// Whether `If-None-Match: list` matches `etag`: `*`, or any listed tag
/// by weak comparison (`W/"x"` matches `"x"`). A malformed list matches
/// nothing.
fn none_match_hits(list: &[u8], etag: &str) -> bool {
    if trim(list) == b"*" {
        return true;
    }
    let ours = etag.as_bytes();
    EntityTags(list).any(|(_, tag)| tag == ours)
}

/// `If-Range`: a strong entity-tag equal to ours, or a date equal to our
/// Last-Modified. Anything else means "send the whole file".
fn if_range_holds(value: &[u8], file: &Validators) -> bool {
    let value = trim(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        let mut tags = EntityTags(value);
        return match (tags.next(), tags.next()) {
            (Some((weak, tag)), None) => !weak && tag == file.etag().as_bytes(),
            _ => false,
        };
    }
    parse_date(value).is_some_and(|date| date == file.modified())
}

/// The entity-tags of a comma-separated list, as `(weak, "opaque")` with
/// the quotes; stops at the first malformed element.
struct EntityTags<'a>(&'a [u8]);

impl<'a> Iterator for EntityTags<'a> {
    type Item = (bool, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut rest = self.0;
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        let (weak, rest) = match rest.strip_prefix(b"W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.first() != Some(&b'"') {
            self.0 = &[];
            return None;
        }
        let close = 1 + rest[1..].iter().position(|&b| b == b'"')?;
        self.0 = &rest[close + 1..];
        Some((weak, &rest[..=close]))
    }
}

/// One byte range of a `Range: bytes=...` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `a-b` or `a-` (`last` is `None`).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    fn resolve(self, size: u64) -> Decision {
        if size == 0 {
            // No range of an empty file can be written as a Content-Range.
            return Decision::Full;
        }
        match self {
            RangeSpec::From { first, .. } if first >= size => Decision::Unsatisfiable,
            RangeSpec::From { first, last } => Decision::Partial {
                start: first,
                end: last.map_or(size - 1, |l| l.min(size - 1)),
            },
            RangeSpec::Suffix(0) => Decision::Unsatisfiable,
            RangeSpec::Suffix(n) => Decision::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        }
    }
}

/// Parses a single-range `bytes=` header; `None` for anything else (other
/// units, several ranges, bad syntax), which is served as a plain 200.
fn parse_range(value: &[u8]) -> Option<RangeSpec> {
    let value = trim(value);
    let unit = value.get(..6)?;
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return None;
    }
    let spec = trim(&value[6..]);
    if spec.contains(&b',') {
        return None;
    }
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RangeSpec::Suffix(digits(last)?)),
        (false, true) => Some(RangeSpec::From {
            first: digits(first)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (digits(first)?, digits(last)?);
            (first <= last).then_some(RangeSpec::From {
                first,
                last: Some(last),
            })
        }
    }
}

/// A run of ASCII digits, saturating at `u64::MAX` (a huge last-pos just
/// means "to the end").
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn parse_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(trim(value)).ok()?).ok()
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: Validators = Validators {
        mtime: 0x6000_0000,
        size: 1000,
    };

    fn cond(pairs: &[(&str, &str)]) -> Conditions {
        let mut c = Conditions::default();
        for (name, value) in pairs {
            let v = Some(Bytes::copy_from_slice(value.as_bytes()));
            match *name {
                "inm" => c.if_none_match = v,
                "ims" => c.if_modified_since = v,
                "range" => c.range = v,
                "if-range" => c.if_range = v,
                _ => unreachable!(),
            }
        }
        c
    }

    fn decide_get(pairs: &[(&str, &str)]) -> Decision {
        decide(&FILE, &cond(pairs), true)
    }

    #[test]
    fn etag_is_mtime_and_size_in_hex() {
        assert_eq!(FILE.etag(), "\"60000000-3e8\"");
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_a_list() {
        let tag = FILE.etag();
        for list in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            format!("\"a,b\",W/{tag}"),
            "*".to_string(),
        ] {
            assert_eq!(
                decide_get(&[("inm", &list)]),
                Decision::NotModified,
                "{list}"
            );
        }
        for list in ["\"other\"", "garbage", "", "\"60000000-3e9\""] {
            assert_eq!(decide_get(&[("inm", list)]), Decision::Full, "{list}");
        }
    }

    #[test]
    fn if_modified_since_is_304_unless_the_file_is_newer() {
        let at = FILE.last_modified();
        assert_eq!(decide_get(&[("ims", &at)]), Decision::NotModified);
        let later = httpdate::fmt_http_date(FILE.modified() + Duration::from_secs(60));
        assert_eq!(decide_get(&[("ims", &later)]), Decision::NotModified);
        let earlier = httpdate::fmt_http_date(FILE.modified() - Duration::from_secs(1));
        assert_eq!(decide_get(&[("ims", &earlier)]), Decision::Full);
        assert_eq!(decide_get(&[("ims", "not a date")]), Decision::Full);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let at = FILE.last_modified();
        assert_eq!(
            decide_get(&[("inm", "\"other\""), ("ims", &at)]),
            Decision::Full
        );
    }

    #[test]
    fn single_ranges_resolve_against_the_size() {
        let cases = [
            ("bytes=0-99", Decision::Partial { start: 0, end: 99 }),
            (
                "bytes=990-",
                Decision::Partial {
                    start: 990,
                    end: 999,
                },
            ),
            (
                "bytes=-10",
                Decision::Partial {
                    start: 990,
                    end: 999,
                },
            ),
            ("bytes=-5000", Decision::Partial { start: 0, end: 999 }),
            (
                "bytes=500-99999999999999999999999",
                Decision::Partial {
                    start: 500,
                    end: 999,
                },
            ),
            ("BYTES = 1-1 ", Decision::Full),
            ("Bytes=1-1", Decision::Partial { start: 1, end: 1 }),
            ("bytes=1000-", Decision::Unsatisfiable),
            ("bytes=1000-2000", Decision::Unsatisfiable),
            ("bytes=-0", Decision::Unsatisfiable),
            ("bytes=5-4", Decision::Full),
            ("bytes=0-1,5-6", Decision::Full),
            ("bytes=-", Decision::Full),
            ("bytes=a-b", Decision::Full),
            ("items=0-1", Decision::Full),
        ];
        for (range, want) in cases {
            assert_eq!(decide_get(&[("range", range)]), want, "{range}");
        }
    }

    #[test]
    fn head_and_empty_files_ignore_range() {
        assert_eq!(
            decide(&FILE, &cond(&[("range", "bytes=0-1")]), false),
            Decision::Full
        );
        let empty = Validators { mtime: 1, size: 0 };
        assert_eq!(
            decide(&empty, &cond(&[("range", "bytes=-5")]), true),
            Decision::Full
        );
    }

    #[test]
    fn if_range_needs_a_strong_matching_tag_or_the_exact_date() {
        let tag = FILE.etag();
        let at = FILE.last_modified();
        let partial = Decision::Partial { start: 0, end: 0 };
        assert_eq!(
            decide_get(&[("range", "bytes=0-0"), ("if-range", &tag)]),
            partial
        );
        assert_eq!(
            decide_get(&[("range", "bytes=0-0"), ("if-range", &at)]),
            partial
        );
        for stale in [
            format!("W/{tag}"),
            "\"other\"".into(),
            "Thu, 01 Jan 1970 00:00:00 GMT".into(),
        ] {
            assert_eq!(
                decide_get(&[("range", "bytes=0-0"), ("if-range", &stale)]),
                Decision::Full,
                "{stale}"
            );
        }
    }
}
