//! Response heads, per protocol: an HTTP/1.x status line for HTTP and uwsgi,
//! a CGI `Status:` line for SCGI. Also decides how an HTTP body is framed.
//! A [`Head`] is the status and headers an app (or the server) gave, laid
//! out as they go on the wire; [`encode_head`] adds what the protocol and
//! the connection need.

use bytes::{BufMut, Bytes, BytesMut};

use super::Protocol;

/// How the body after a head is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Content-Length bytes follow (the app's header or a length we know).
    Length(u64),
    /// HTTP/1.1 chunked transfer-coding.
    Chunked,
    /// The body ends when the connection closes.
    Close,
    /// No body may follow (HEAD, 1xx, 204, 304).
    Empty,
}

/// The largest response head an app may send, status line and headers
/// together. Past it the app's `start_response` raises (a 500): a head
/// this large is an app bug (a runaway cookie, a header per item), and
/// nginx refuses upstream heads over its proxy buffer (4 or 8 KiB by
/// default) anyway.
pub const MAX_APP_HEAD: usize = 64 * 1024;

/// A response's status and headers as they go on the wire: the status
/// line's value, then one `Name: value\r\n` line per header, in one
/// buffer, with what the head encoder acts on noted as each header is
/// added. Encoding it is then mostly one copy; building it is one
/// allocation (a list of pairs was four per response: the bytes, their
/// shared handle, the spans and the pairs).
#[derive(Debug, Default)]
pub struct Head {
    /// `200 OK\r\n`, then the header lines.
    buf: Vec<u8>,
    /// Where the status ends (its `\r\n` follows).
    status_end: usize,
    /// The app's headers the encoder acts on (its Content-Length, Server,
    /// Date), noted once as they are added rather than at each encoding.
    seen: Seen,
    /// The hop-by-hop header lines, which HTTP drops (the server owns
    /// them there). Usually none, and then nothing is allocated.
    hop_by_hop: Vec<std::ops::Range<usize>>,
}

impl Head {
    /// A head with room for the usual status and headers, its status
    /// appended by `status` (which may check what it appended: it starts
    /// at the buffer's beginning).
    pub fn build<E>(status: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Head, E> {
        let mut buf = Vec::with_capacity(256);
        status(&mut buf)?;
        let status_end = buf.len();
        buf.extend_from_slice(b"\r\n");
        Ok(Head {
            buf,
            status_end,
            ..Head::default()
        })
    }

    /// A head with a status the server made itself.
    pub fn new(status: &[u8]) -> Head {
        Head::build(|buf| {
            buf.extend_from_slice(status);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {})
    }

    /// This head with a header the server made itself added (see
    /// [`Head::push`]).
    pub fn header(mut self, name: &[u8], value: &[u8]) -> Head {
        self.push(name, value);
        self
    }

    /// Adds a header the server made itself (valid by construction).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_with(
            |buf| {
                buf.extend_from_slice(name);
                Ok::<(), std::convert::Infallible>(())
            },
            |buf| {
                buf.extend_from_slice(value);
                Ok(())
            },
        )
        .unwrap_or_else(|never| match never {})
    }

    /// Adds a header whose name and value `name` and `value` append to the
    /// buffer (each may check what it appended, from the length it found).
    /// Surrounding whitespace is not part of a field value (RFC 9110 5.5):
    /// it is dropped. On `Err` the head is as it was.
    pub fn push_with<E>(
        &mut self,
        name: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
        value: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let line = self.buf.len();
        let appended = name(&mut self.buf).and_then(|()| {
            let name_end = self.buf.len();
            self.buf.extend_from_slice(b": ");
            value(&mut self.buf).map(|()| name_end)
        });
        let name_end = match appended {
            Ok(name_end) => name_end,
            Err(e) => {
                self.buf.truncate(line);
                return Err(e);
            }
        };
        let value_start = name_end + 2;
        let value = &self.buf[value_start..];
        let trimmed = value.trim_ascii();
        let lead = trimmed.as_ptr() as usize - value.as_ptr() as usize;
        let kept = trimmed.len();
        if lead > 0 {
            self.buf.drain(value_start..value_start + lead);
        }
        self.buf.truncate(value_start + kept);
        match Special::of(&self.buf[line..name_end]) {
            Some(Special::ContentLength) => self.seen.note_length(&self.buf[value_start..]),
            Some(Special::Server) => self.seen.server = true,
            Some(Special::Date) => self.seen.date = true,
            Some(Special::HopByHop) => self.hop_by_hop.push(line..self.buf.len() + 2),
            None => {}
        }
        self.buf.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Bytes in the status and header lines so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the head holds nothing, not even a status.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The status line's value (`200 OK`).
    pub fn status(&self) -> &[u8] {
        &self.buf[..self.status_end]
    }

    /// The three-digit status code (0 if the status is malformed, which the
    /// WSGI layer never lets through).
    pub fn code(&self) -> u16 {
        match self.status() {
            [a, b, c, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => 0,
        }
    }
}

/// The app's headers that change what the server adds.
#[derive(Debug, Default)]
struct Seen {
    /// A Content-Length header was seen (the first one counts, as for any
    /// header).
    length_header: bool,
    /// That header's value, when valid.
    content_length: Option<u64>,
    /// A Server header.
    server: bool,
    /// A Date header.
    date: bool,
}

/// The app's header names the head encoder acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    ContentLength,
    Server,
    Date,
    /// Connection, Transfer-Encoding, Keep-Alive: the server owns them on
    /// an HTTP connection.
    HopByHop,
}

impl Special {
    /// Which of these `name` is. Lengths first: most names are none.
    fn of(name: &[u8]) -> Option<Special> {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is(b"content-length") => Some(Special::ContentLength),
            6 if is(b"server") => Some(Special::Server),
            4 if is(b"date") => Some(Special::Date),
            10 if is(b"connection") || is(b"keep-alive") => Some(Special::HopByHop),
            17 if is(b"transfer-encoding") => Some(Special::HopByHop),
            _ => None,
        }
    }
}

/// Facts about the request that shape the response head.
#[derive(Debug, Clone, Copy)]
pub struct RequestShape {
    /// The wire protocol of the connection.
    pub protocol: Protocol,
    /// The request was HEAD: no body on the wire.
    pub head: bool,
    /// HTTP/1.0: no chunked encoding.
    pub http10: bool,
    /// The connection may stay open after this response if framing allows.
    pub keep_alive: bool,
    /// Header lines (`Name: value\r\n`) the server adds to every response
    /// (`--add-header`); empty for none.
    pub extra: &'static [u8],
}

/// The framing, given the app's valid Content-Length if any, else the
/// length its iterable made known.
fn framing_for(code: u16, length: Option<u64>, req: RequestShape) -> Framing {
    if req.head || (100..200).contains(&code) || code == 204 || code == 304 {
        return Framing::Empty;
    }
    if let Some(len) = length {
        return Framing::Length(len);
    }
    // Chunked even when the connection closes afterwards: the last chunk
    // tells the client the body is complete, a bare close does not.
    if req.protocol == Protocol::Http && !req.http10 {
        Framing::Chunked
    } else {
        Framing::Close
    }
}

impl Seen {
    /// Notes a Content-Length header; only the first one counts.
    fn note_length(&mut self, value: &[u8]) {
        if !self.length_header {
            self.length_header = true;
            self.content_length = std::str::from_utf8(value.trim_ascii())
                .ok()
                .and_then(|v| v.parse().ok());
        }
    }
}

/// What [`encode_head`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// How the body is delimited.
    pub framing: Framing,
    /// The connection may stay open after the body (HTTP only; uwsgi and
    /// SCGI always close).
    pub keep_alive: bool,
}

/// Writes a response head into `out` and says how its body is framed.
/// `known_length` is the body length the app's iterable made known (a
/// list or tuple, or a file wrapper), used when it sent no Content-Length.
///
/// `date` is the preformatted `Date` value (cached by the caller, it changes
/// once a second).
pub fn encode_head(
    out: &mut BytesMut,
    head: &Head,
    known_length: Option<u64>,
    req: RequestShape,
    date: &[u8],
) -> Encoded {
    let http = req.protocol == Protocol::Http;
    match req.protocol {
        Protocol::Scgi => {
            out.put_slice(b"Status: ");
        }
        Protocol::Http | Protocol::Uwsgi => {
            out.put_slice(if req.http10 {
                b"HTTP/1.0 "
            } else {
                b"HTTP/1.1 "
            });
        }
    }
    if http && !head.hop_by_hop.is_empty() {
        let mut from = 0;
        for dropped in &head.hop_by_hop {
            out.put_slice(&head.buf[from..dropped.start]);
            from = dropped.end;
        }
        out.put_slice(&head.buf[from..]);
    } else {
        out.put_slice(&head.buf);
    }
    out.put_slice(req.extra);
    let seen = &head.seen;
    let framing = framing_for(head.code(), seen.content_length.or(known_length), req);
    let keep_alive = http && req.keep_alive && framing != Framing::Close;
    if http {
        if !seen.server {
            out.put_slice(b"Server: rwsgi\r\n");
        }
        if !seen.date {
            put_header(out, b"Date", date);
        }
        match framing {
            Framing::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::Length(len) if seen.content_length.is_none() => {
                put_header(out, b"Content-Length", itoa(len, &mut [0; 20]))
            }
            _ => {}
        }
        if !keep_alive {
            out.put_slice(b"Connection: close\r\n");
        } else if req.http10 {
            out.put_slice(b"Connection: keep-alive\r\n");
        }
    } else if let Framing::Length(len) = framing {
        if seen.content_length.is_none() && !req.head {
            put_header(out, b"Content-Length", itoa(len, &mut [0; 20]));
        }
    }
    out.put_slice(b"\r\n");
    Encoded {
        framing,
        keep_alive,
    }
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// `n` in decimal, in `digits` (no allocation).
fn itoa(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &digits[at..];
        }
    }
}

/// Writes the chunk-size line of one chunk.
pub fn encode_chunk_header(out: &mut BytesMut, len: usize) {
    // Hex digits by hand: `format!` allocated a String per chunk.
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut at = digits.len() - 2;
    digits[at..].copy_from_slice(b"\r\n");
    let mut rest = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789ABCDEF"[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// The last-chunk and empty trailer section of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A complete short response the server writes itself (errors, 503s),
/// always closing the connection.
pub fn simple_response(
    protocol: Protocol,
    status: u16,
    reason: &str,
    body: &str,
    extra_headers: &[(&str, &str)],
) -> Bytes {
    let mut out = String::with_capacity(128 + body.len());
    if protocol == Protocol::Scgi {
        out.push_str(&format!("Status: {status} {reason}\r\n"));
    } else {
        out.push_str(&format!("HTTP/1.1 {status} {reason}\r\n"));
    }
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    for (k, v) in extra_headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if protocol == Protocol::Http {
        out.push_str("Server: rwsgi\r\nConnection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    Bytes::from(out)
}

/// The reason phrase for a status the server itself sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_uppercase_hex() {
        for (len, want) in [
            (0, "0\r\n"),
            (1, "1\r\n"),
            (1024, "400\r\n"),
            (0xABCDEF, "ABCDEF\r\n"),
            (usize::MAX, "FFFFFFFFFFFFFFFF\r\n"),
        ] {
            let mut out = BytesMut::new();
            encode_chunk_header(&mut out, len);
            assert_eq!(&out[..], want.as_bytes(), "{len}");
        }
    }

    fn shape(protocol: Protocol) -> RequestShape {
        RequestShape {
            protocol,
            head: false,
            http10: false,
            keep_alive: true,
            extra: b"",
        }
    }

    fn render(head: &Head, known_length: Option<u64>, req: RequestShape) -> (String, Framing) {
        let mut out = BytesMut::new();
        let encoded = encode_head(
            &mut out,
            head,
            known_length,
            req,
            b"Thu, 01 Jan 2026 00:00:00 GMT",
        );
        (String::from_utf8(out.to_vec()).unwrap(), encoded.framing)
    }

    #[test]
    fn unknown_length_on_http11_is_chunked() {
        let head = Head::new(b"200 OK");
        let (text, framing) = render(&head, None, shape(Protocol::Http));
        assert_eq!(framing, Framing::Chunked);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Server: rwsgi\r\n"));
        assert!(text.contains("Date: "));
    }

    #[test]
    fn unknown_length_on_http10_closes() {
        let head = Head::new(b"200 OK");
        let req = RequestShape {
            http10: true,
            ..shape(Protocol::Http)
        };
        let (text, framing) = render(&head, None, req);
        assert_eq!(framing, Framing::Close);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.contains("Connection: close\r\n"));
    }

    #[test]
    fn known_length_gets_content_length() {
        let head = Head::new(b"200 OK");
        let (text, framing) = render(&head, Some(5), shape(Protocol::Http));
        assert_eq!(framing, Framing::Length(5));
        assert!(text.contains("Content-Length: 5\r\n"));
    }

    #[test]
    fn scgi_uses_a_status_line() {
        let head = Head::new(b"404 Not Found").header(b"Content-Type", b"text/plain");
        let (text, _) = render(&head, None, shape(Protocol::Scgi));
        assert!(text.starts_with("Status: 404 Not Found\r\nContent-Type: text/plain\r\n"));
        assert!(!text.contains("Transfer-Encoding"));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_over_http_only() {
        let head = Head::new(b"200 OK")
            .header(b"Connection", b"close")
            .header(b"X-A", b"1")
            .header(b"Transfer-Encoding", b"chunked")
            .header(b"Keep-Alive", b"timeout=5")
            .header(b"X-B", b"2");
        let (http, _) = render(&head, Some(0), shape(Protocol::Http));
        assert!(
            http.starts_with("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nServer: rwsgi\r\n"),
            "{http:?}"
        );
        let (uwsgi, _) = render(&head, Some(0), shape(Protocol::Uwsgi));
        assert!(
            uwsgi.starts_with(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nX-A: 1\r\nTransfer-Encoding: \
                 chunked\r\nKeep-Alive: timeout=5\r\nX-B: 2\r\n"
            ),
            "{uwsgi:?}"
        );
    }

    #[test]
    fn the_apps_content_length_server_and_date_are_kept_and_not_repeated() {
        let head = Head::new(b"200 OK")
            .header(b"content-length", b" 7 ")
            .header(b"Content-Length", b"9")
            .header(b"SERVER", b"app")
            .header(b"Date", b"yesterday");
        let (text, framing) = render(&head, Some(3), shape(Protocol::Http));
        assert_eq!(
            framing,
            Framing::Length(7),
            "the first Content-Length counts"
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\nContent-Length: 9\r\nSERVER: app\r\n\
             Date: yesterday\r\n\r\n"
        );
    }

    #[test]
    fn values_lose_surrounding_whitespace_and_a_refused_header_leaves_no_trace() {
        let mut head = Head::new(b"200 OK").header(b"X-A", b" \t spaced \t");
        let refused = head.push_with(
            |buf| {
                buf.extend_from_slice(b"Content-Length");
                Ok(())
            },
            |buf| {
                buf.extend_from_slice(b"1\r\n");
                Err("control character")
            },
        );
        assert_eq!(refused, Err("control character"));
        assert_eq!(head.status(), b"200 OK");
        assert_eq!(head.code(), 200);
        let (text, framing) = render(&head, None, shape(Protocol::Http));
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nX-A: spaced\r\nServer: rwsgi\r\n"),
            "{text:?}"
        );
        assert_eq!(
            framing,
            Framing::Chunked,
            "the refused length was not noted"
        );
    }

    #[test]
    fn lengths_of_any_size_are_written_in_decimal() {
        for len in [0, 7, 10, 1_000_000, u64::MAX] {
            let (text, _) = render(&Head::new(b"200 OK"), Some(len), shape(Protocol::Scgi));
            assert!(
                text.contains(&format!("\r\nContent-Length: {len}\r\n")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn no_body_statuses_are_empty() {
        for status in [&b"204 No Content"[..], b"304 Not Modified"] {
            let head = Head::new(status);
            assert_eq!(render(&head, None, shape(Protocol::Http)).1, Framing::Empty);
        }
    }
}
