//! Response heads, per protocol: an HTTP/1.x status line for HTTP and uwsgi,
//! a CGI `Status:` line for SCGI. Also decides how an HTTP body is framed.

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

/// What the server knows when it writes a response head.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    /// The WSGI status, e.g. `200 OK`.
    pub status: &'a [u8],
    /// The app's headers, already validated by the WSGI layer.
    pub headers: &'a [(Bytes, Bytes)],
    /// A body length known from the app's iterable, when it sent no
    /// Content-Length header itself.
    pub known_length: Option<u64>,
}

impl ResponseHead<'_> {
    /// The three-digit status code (0 if the status is malformed, which the
    /// WSGI layer never lets through).
    pub fn code(&self) -> u16 {
        match self.status {
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
}

/// The framing, given the app's valid Content-Length if any.
fn framing_for(head: &ResponseHead<'_>, content_length: Option<u64>, req: RequestShape) -> Framing {
    let code = head.code();
    if req.head || (100..200).contains(&code) || code == 204 || code == 304 {
        return Framing::Empty;
    }
    if let Some(len) = content_length.or(head.known_length) {
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

/// Writes a response head into `out` and says how its body is framed, in
/// one pass over the app's headers.
///
/// `date` is the preformatted `Date` value (cached by the caller, it changes
/// once a second).
pub fn encode_head(
    out: &mut BytesMut,
    head: &ResponseHead<'_>,
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
    out.put_slice(head.status);
    out.put_slice(b"\r\n");
    let mut seen = Seen::default();
    for (name, value) in head.headers {
        match Special::of(name) {
            Some(Special::ContentLength) => seen.note_length(value),
            Some(Special::Server) => seen.server = true,
            Some(Special::Date) => seen.date = true,
            Some(Special::HopByHop) if http => continue,
            Some(Special::HopByHop) | None => {}
        }
        put_header(out, name, value);
    }
    let framing = framing_for(head, seen.content_length, req);
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
                put_header(out, b"Content-Length", itoa(len).as_bytes())
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
            put_header(out, b"Content-Length", itoa(len).as_bytes());
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

fn itoa(n: u64) -> String {
    n.to_string()
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
        }
    }

    fn render(head: &ResponseHead<'_>, req: RequestShape) -> (String, Framing) {
        let mut out = BytesMut::new();
        let encoded = encode_head(&mut out, head, req, b"Thu, 01 Jan 2026 00:00:00 GMT");
        (String::from_utf8(out.to_vec()).unwrap(), encoded.framing)
    }

    #[test]
    fn unknown_length_on_http11_is_chunked() {
        let head = ResponseHead {
            status: b"200 OK",
            headers: &[],
            known_length: None,
        };
        let (text, framing) = render(&head, shape(Protocol::Http));
        assert_eq!(framing, Framing::Chunked);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Server: rwsgi\r\n"));
        assert!(text.contains("Date: "));
    }

    #[test]
    fn unknown_length_on_http10_closes() {
        let head = ResponseHead {
            status: b"200 OK",
            headers: &[],
            known_length: None,
        };
        let req = RequestShape {
            http10: true,
            ..shape(Protocol::Http)
        };
        let (text, framing) = render(&head, req);
        assert_eq!(framing, Framing::Close);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.contains("Connection: close\r\n"));
    }

    #[test]
    fn known_length_gets_content_length() {
        let head = ResponseHead {
            status: b"200 OK",
            headers: &[],
            known_length: Some(5),
        };
        let (text, framing) = render(&head, shape(Protocol::Http));
        assert_eq!(framing, Framing::Length(5));
        assert!(text.contains("Content-Length: 5\r\n"));
    }

    #[test]
    fn scgi_uses_a_status_line() {
        let headers = [(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain"),
        )];
        let head = ResponseHead {
            status: b"404 Not Found",
            headers: &headers,
            known_length: None,
        };
        let (text, _) = render(&head, shape(Protocol::Scgi));
        assert!(text.starts_with("Status: 404 Not Found\r\nContent-Type: text/plain\r\n"));
        assert!(!text.contains("Transfer-Encoding"));
    }

    #[test]
    fn no_body_statuses_are_empty() {
        for status in [&b"204 No Content"[..], b"304 Not Modified"] {
            let head = ResponseHead {
                status,
                headers: &[],
                known_length: None,
            };
            assert_eq!(render(&head, shape(Protocol::Http)).1, Framing::Empty);
        }
    }
}
