//! Wire codecs: bytes in, [`Request`] out, and response heads back to bytes.
//!
//! Each protocol (HTTP/1.1, uwsgi, SCGI) decodes into the same [`Request`]: a
//! list of CGI variables plus a description of how the body is framed. The
//! codecs are pure: they never touch a socket or Python, they work on any
//! split of the input (returning `Ok(None)` until a whole head is buffered),
//! and they check every declared size against [`Limits`] before buffering it.
//!
//! # Layout
//!
//! - `http`: HTTP/1.1 request heads (RFC 9112) and response heads.
//! - `chunked`: the chunked transfer-coding body decoder.
//! - `uwsgi`: the uwsgi binary packet.
//! - `scgi`: the SCGI netstring.
//! - `cgi`: what uwsgi and SCGI share: CGI variables into a [`Request`].
//! - `response`: response heads and body framing for each protocol.
//! - `error`: [`ProtocolError`], whose kind maps to an HTTP status.

mod cgi;
pub mod chunked;
mod error;
pub mod http;
pub mod response;
pub mod scgi;
pub mod uwsgi;

use bytes::{Bytes, BytesMut};

pub use error::{ErrorKind, ProtocolError};

/// Which wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 straight from clients or from `proxy_pass`.
    Http,
    /// The uwsgi binary protocol (`uwsgi_pass`).
    Uwsgi,
    /// SCGI (`scgi_pass`).
    Scgi,
}

impl Protocol {
    /// The lowercase name used in logs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Uwsgi => "uwsgi",
            Protocol::Scgi => "scgi",
        }
    }
}

/// The request-head decoder of one connection, whichever its protocol.
#[derive(Debug)]
pub enum Decoder {
    /// HTTP/1.x heads.
    Http(http::HttpCodec),
    /// uwsgi packets.
    Uwsgi(uwsgi::UwsgiCodec),
    /// SCGI netstrings.
    Scgi(scgi::ScgiCodec),
}

impl Decoder {
    /// A decoder for `protocol` enforcing `limits`.
    pub fn new(protocol: Protocol, limits: Limits) -> Self {
        match protocol {
            Protocol::Http => Decoder::Http(http::HttpCodec::new(limits)),
            Protocol::Uwsgi => Decoder::Uwsgi(uwsgi::UwsgiCodec::new(limits)),
            Protocol::Scgi => Decoder::Scgi(scgi::ScgiCodec::new(limits)),
        }
    }

    /// Decodes one request head from the front of `buf`, removing it.
    /// `Ok(None)`: not a whole head yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        match self {
            Decoder::Http(c) => c.decode(buf),
            Decoder::Uwsgi(c) => c.decode(buf),
            Decoder::Scgi(c) => c.decode(buf),
        }
    }
}

/// How the body that follows a request head is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes follow (0: no body).
    Length(u64),
    /// HTTP chunked transfer-coding; decode with [`chunked::ChunkedDecoder`].
    Chunked,
}

/// Room the HTTP codec leaves in [`Request::vars`] for the variables the
/// server adds from the connection (`SERVER_NAME`, `SERVER_PORT`,
/// `REMOTE_ADDR`, `REMOTE_PORT`, `SCRIPT_NAME`, `SERVER_SOFTWARE`), so adding them never
/// reallocates.
pub const CONNECTION_VARS: usize = 6;

/// One decoded request head, the same for every protocol.
#[derive(Debug, Clone)]
pub struct Request {
    /// CGI/WSGI variables in arrival order (`REQUEST_METHOD`, `PATH_INFO`,
    /// `HTTP_HOST`, ...). Values are raw bytes; the WSGI layer decodes them as
    /// latin-1. Connection facts (`REMOTE_ADDR`, `SERVER_PORT`) are added by
    /// the server when the protocol did not carry them.
    pub vars: Vec<(Bytes, Bytes)>,
    /// How the body is framed, so the server knows how much to read.
    pub body: BodyFraming,
    /// Whether the connection may serve another request after this one.
    /// Always false for uwsgi and SCGI, which close after each response.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` and waits before the body.
    pub expect_continue: bool,
    /// HTTP/1.0 clients get no chunked responses.
    pub http10: bool,
    /// `HEAD`: the response carries headers but no body.
    pub head: bool,
}

impl Request {
    /// The value of the first variable named `key`, if any.
    pub fn var(&self, key: &[u8]) -> Option<&Bytes> {
        self.vars
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an existing variable of that name.
    pub fn set_var(&mut self, key: &'static [u8], value: Bytes) {
        match self.vars.iter_mut().find(|(k, _)| k.as_ref() == key) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((Bytes::from_static(key), value)),
        }
    }
}

/// Size limits the codecs enforce before buffering what a peer declares.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest HTTP request line, in bytes, CRLF not counted (414 past it,
    /// as soon as that many bytes arrived without a CRLF). Default 8190.
    pub request_line: usize,
    /// Most header fields in one HTTP head (431 past it). Default 100.
    pub header_count: usize,
    /// Longest single HTTP header field line, in bytes, counting its name,
    /// colon, value and CRLF (431). The same measure as gunicorn's
    /// `limit_request_field_size`, so a value carried over behaves the same.
    /// Default 8190.
    pub header_field: usize,
    /// Largest whole HTTP head, in bytes (431). Default 65536.
    pub head_size: usize,
    /// Largest uwsgi vars block or SCGI netstring, in bytes (431).
    /// Default 65535, the most a uwsgi packet can declare.
    pub vars_block: usize,
    /// Largest request body in bytes, 0 for no limit (413). Default 0.
    pub body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8190,
            header_count: 100,
            header_field: 8190,
            head_size: 65536,
            vars_block: 65535,
            body: 0,
        }
    }
}

impl Limits {
    /// Checks a declared body length against [`Limits::body`].
    pub fn check_body(&self, len: u64) -> Result<(), ProtocolError> {
        if self.body != 0 && len > self.body {
            return Err(ProtocolError::new(
                ErrorKind::BodyTooLarge,
                format!("body of {len} bytes exceeds limit-post {}", self.body),
            ));
        }
        Ok(())
    }
}
