//! Turns a parsed head into the CGI variables WSGI wants and the framing facts
//! the server needs: `HTTP_*` names, combining of repeated fields, body
//! framing (Content-Length vs Transfer-Encoding, the smuggling rules of RFC
//! 9112 §6), keep-alive and `Expect`. Values are zero-copy slices of the head.

use bytes::{Bytes, BytesMut};

use super::request_line::RequestLine;
use super::syntax::{trim_ows, FieldLine};
use super::target;
use crate::protocol::{BodyFraming, ErrorKind, Limits, ProtocolError, Request};

/// Header names that get a `HTTP_` variable without building it byte by byte.
const COMMON_NAMES: &[(&[u8], &[u8])] = &[
    (b"host", b"HTTP_HOST"),
    (b"user-agent", b"HTTP_USER_AGENT"),
    (b"accept", b"HTTP_ACCEPT"),
    (b"accept-encoding", b"HTTP_ACCEPT_ENCODING"),
    (b"accept-language", b"HTTP_ACCEPT_LANGUAGE"),
    (b"connection", b"HTTP_CONNECTION"),
    (b"cookie", b"HTTP_COOKIE"),
    (b"referer", b"HTTP_REFERER"),
    (b"authorization", b"HTTP_AUTHORIZATION"),
    (b"cache-control", b"HTTP_CACHE_CONTROL"),
    (b"origin", b"HTTP_ORIGIN"),
    (b"transfer-encoding", b"HTTP_TRANSFER_ENCODING"),
    (b"x-forwarded-for", b"HTTP_X_FORWARDED_FOR"),
    (b"x-forwarded-proto", b"HTTP_X_FORWARDED_PROTO"),
    (b"x-real-ip", b"HTTP_X_REAL_IP"),
    (b"x-request-id", b"HTTP_X_REQUEST_ID"),
];

/// Fields the head builder treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    ContentType,
    TransferEncoding,
    Host,
    Connection,
    Expect,
    Cookie,
    Other,
}

impl Field {
    fn of(name: &[u8]) -> Field {
        const KNOWN: &[(&[u8], Field)] = &[
            (b"content-length", Field::ContentLength),
            (b"content-type", Field::ContentType),
            (b"transfer-encoding", Field::TransferEncoding),
            (b"host", Field::Host),
            (b"connection", Field::Connection),
            (b"expect", Field::Expect),
            (b"cookie", Field::Cookie),
        ];
        KNOWN
            .iter()
            .find(|(known, _)| known.len() == name.len() && known.eq_ignore_ascii_case(name))
            .map_or(Field::Other, |(_, field)| *field)
    }
}

/// What the fields said about framing and the connection, gathered while the
/// variables are built and judged once all fields are seen.
#[derive(Debug, Default)]
struct HeadFacts {
    /// The Content-Length value; repeats must agree.
    content_length: Option<u64>,
    /// A Transfer-Encoding field was present (even an empty one).
    te_present: bool,
    /// How many times `chunked` appeared across all transfer-codings.
    te_chunked: u32,
    /// The last transfer-coding seen was `chunked`.
    te_last_chunked: bool,
    /// A coding other than `chunked` / `identity` (we do not decode gzip...).
    te_unsupported: bool,
    /// `Connection: close` seen.
    close: bool,
    /// `Connection: keep-alive` seen (matters for HTTP/1.0 only).
    keep_alive: bool,
    /// `Expect: 100-continue` seen.
    expect_continue: bool,
    /// A Host field was seen; a second one is a 400 (RFC 9112 §3.2).
    host: bool,
    /// A Content-Type field was seen; a second one is ambiguous.
    content_type: bool,
}

/// Builds the [`Request`] from a complete `head` (request line + fields).
pub(super) fn build(
    head: &Bytes,
    line: &RequestLine,
    fields: &[FieldLine],
    limits: &Limits,
) -> Result<Request, ProtocolError> {
    let method = &head[line.method.clone()];
    let parts = target::split(method, &head[line.target.clone()])?;
    let http10 = line.minor == 0;
    let at = line.target.start;
    let mut vars = Vec::with_capacity(5 + fields.len() + crate::protocol::CONNECTION_VARS);
    vars.push((var(b"REQUEST_METHOD"), head.slice(line.method.clone())));
    vars.push((var(b"REQUEST_URI"), head.slice(line.target.clone())));
    vars.push((var(b"PATH_INFO"), target::path_info(head, at, parts.path)));
    let query = at + parts.query.start..at + parts.query.end;
    vars.push((var(b"QUERY_STRING"), head.slice(query)));
    let protocol: &'static [u8] = if http10 { b"HTTP/1.0" } else { b"HTTP/1.1" };
    vars.push((var(b"SERVER_PROTOCOL"), var(protocol)));
    let facts = add_fields(head, fields, &mut vars)?;
    let body = facts.framing(http10, limits)?;
    if !http10 && !facts.host {
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
        // without a Host field.
        return Err(ProtocolError::bad(
            "Host field missing (required in HTTP/1.1)",
        ));
    }
    Ok(Request {
        vars,
        body,
        keep_alive: !facts.close && (!http10 || facts.keep_alive),
        expect_continue: !http10 && facts.expect_continue,
        http10,
        head: method == b"HEAD",
    })
}

/// A static variable name or value.
fn var(name: &'static [u8]) -> Bytes {
    Bytes::from_static(name)
}

/// Adds one variable per field name (repeats combined), gathering the facts.
/// Names with `_` are dropped: `X_Foo` and `X-Foo` would both become
/// `HTTP_X_FOO`, which lets a client smuggle a header past a proxy.
fn add_fields(
    head: &Bytes,
    fields: &[FieldLine],
    vars: &mut Vec<(Bytes, Bytes)>,
) -> Result<HeadFacts, ProtocolError> {
    let mut facts = HeadFacts::default();
    let first_header = vars.len();
    for field in fields {
        let name = &head[field.name.clone()];
        if name.contains(&b'_') {
            continue;
        }
        let value = head.slice(field.value.clone());
        let kind = Field::of(name);
        match kind {
            Field::ContentLength => {
                if facts.content_length(&value)? {
                    vars.push((var(b"CONTENT_LENGTH"), value));
                }
                continue;
            }
            Field::ContentType => {
                if std::mem::replace(&mut facts.content_type, true) {
                    return Err(ProtocolError::bad("more than one Content-Type"));
                }
                vars.push((var(b"CONTENT_TYPE"), value));
                continue;
            }
            Field::Host if std::mem::replace(&mut facts.host, true) => {
                return Err(ProtocolError::bad("more than one Host"));
            }
            Field::TransferEncoding => facts.transfer_encoding(&value),
            Field::Connection => facts.connection(&value),
            Field::Expect => facts.expect_continue |= value.eq_ignore_ascii_case(b"100-continue"),
            _ => {}
        }
        let separator: &[u8] = if kind == Field::Cookie { b"; " } else { b", " };
        add_header(vars, first_header, name, value, separator);
    }
    Ok(facts)
}

/// Adds `HTTP_<NAME>`, or appends to the variable an earlier field of the
/// same name made (RFC 9110 §5.3: the same as one comma-joined field; Cookie
/// is joined with `; `, RFC 9113 §8.2.3).
fn add_header(
    vars: &mut Vec<(Bytes, Bytes)>,
    first_header: usize,
    name: &[u8],
    value: Bytes,
    separator: &[u8],
) {
    let earlier = vars
        .get_mut(first_header..)
        .and_then(|headers| headers.iter_mut().find(|(k, _)| names_field(k, name)));
    match earlier {
        Some((_, joined)) => {
            let mut both = BytesMut::with_capacity(joined.len() + separator.len() + value.len());
            both.extend_from_slice(joined);
            both.extend_from_slice(separator);
            both.extend_from_slice(&value);
            *joined = both.freeze();
        }
        None => vars.push((http_name(name), value)),
    }
}

/// `HTTP_` + the name uppercased with `-` as `_`.
fn http_name(name: &[u8]) -> Bytes {
    let common = COMMON_NAMES
        .iter()
        .find(|(field, _)| field.len() == name.len() && field.eq_ignore_ascii_case(name));
    if let Some((_, var_name)) = common {
        return Bytes::from_static(var_name);
    }
    let mut out = BytesMut::with_capacity(5 + name.len());
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&b| cgi_byte(b)));
    out.freeze()
}

/// Whether `var_name` is the `HTTP_` variable of field `name`.
fn names_field(var_name: &[u8], name: &[u8]) -> bool {
    var_name.len() == name.len() + 5
        && var_name.starts_with(b"HTTP_")
        && var_name[5..]
            .iter()
            .zip(name)
            .all(|(&v, &n)| v == cgi_byte(n))
}

/// One field-name byte as it appears in a CGI variable name.
fn cgi_byte(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_uppercase()
    }
}

/// The comma-separated, OWS-trimmed, non-empty elements of a list field.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

impl HeadFacts {
    /// Records a Content-Length; true if it is the first one. `1*DIGIT`
    /// only: signs, lists (`5, 5`) and a second, different value are 400s.
    fn content_length(&mut self, value: &[u8]) -> Result<bool, ProtocolError> {
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(ProtocolError::bad("Content-Length is not a number"));
        }
        let n = value.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        let Some(n) = n else {
            return Err(ProtocolError::bad("Content-Length overflows"));
        };
        match self.content_length.replace(n) {
            None => Ok(true),
            Some(old) if old == n => Ok(false),
            Some(_) => Err(ProtocolError::bad("two different Content-Length values")),
        }
    }

    /// Folds one Transfer-Encoding field's codings into the facts.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te_present = true;
        for element in list_elements(value) {
            let chunked = element.eq_ignore_ascii_case(b"chunked");
            self.te_chunked += u32::from(chunked);
            self.te_last_chunked = chunked;
            let identity = element.eq_ignore_ascii_case(b"identity");
            self.te_unsupported |= !chunked && !identity;
        }
    }

    /// Folds one Connection field's options into the facts.
    fn connection(&mut self, value: &[u8]) {
        for option in list_elements(value) {
            self.close |= option.eq_ignore_ascii_case(b"close");
            self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }

    /// Decides the body framing (RFC 9112 §6.3).
    fn framing(&self, http10: bool, limits: &Limits) -> Result<BodyFraming, ProtocolError> {
        if !self.te_present {
            let len = self.content_length.unwrap_or(0);
            limits.check_body(len)?;
            return Ok(BodyFraming::Length(len));
        }
        if self.content_length.is_some() {
            return Err(ProtocolError::bad(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if http10 {
            return Err(ProtocolError::bad(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if !self.te_last_chunked || self.te_chunked != 1 {
            return Err(ProtocolError::bad(
                "chunked is not the final transfer-coding, exactly once",
            ));
        }
        if self.te_unsupported {
            return Err(ProtocolError::new(
                ErrorKind::NotImplemented,
                "transfer-coding other than chunked or identity",
            ));
        }
        Ok(BodyFraming::Chunked)
    }
}
