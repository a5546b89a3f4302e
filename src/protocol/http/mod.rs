//! HTTP/1.1 request heads (RFC 9112). [`HttpCodec`] finds the end of a head
//! in a connection's read buffer as bytes arrive, parsing each line once when
//! its CRLF arrives and enforcing the head limits as it goes (so a peer can
//! never make it buffer past them), then turns the complete head into a
//! [`Request`]. It owns head syntax and message framing; it does not read
//! bodies (the server does, with [`super::chunked`] for chunked ones) and it
//! never does I/O.
//!
//! - `syntax`: byte classes and the field-line grammar (shared with chunked).
//! - `request_line`: method, target bytes and version.
//! - `target`: request-target forms, `PATH_INFO`, `QUERY_STRING`.
//! - `vars`: CGI variables, repeated fields, framing and keep-alive rules.

mod request_line;
pub(crate) mod syntax;
mod target;

pub(crate) use target::percent_decode;
mod vars;

#[cfg(test)]
mod tests;

use bytes::BytesMut;

use self::request_line::RequestLine;
use self::syntax::FieldLine;
use super::{ErrorKind, Limits, ProtocolError, Request};

/// Decodes HTTP/1.x request heads from a connection's read buffer.
///
/// Keeps how far it has scanned between calls, so each byte is looked at
/// once however the head is split across reads. The caller must only append
/// to the buffer between calls until a head (or an error) comes back.
#[derive(Debug)]
pub struct HttpCodec {
    /// Sizes enforced while the head arrives (414 / 431) and on the declared
    /// body (413).
    limits: Limits,
    /// Progress through the head at the front of the buffer.
    scan: HeadScan,
}

/// How far the current head has been read, so a call resumes where the last
/// one stopped instead of rescanning.
#[derive(Debug, Default)]
struct HeadScan {
    /// Offset of the first byte of the line whose CRLF has not arrived.
    line_start: usize,
    /// Offset up to which bytes were searched for LF.
    searched: usize,
    /// The request line, once its CRLF has arrived; before that, empty lines
    /// are skipped (RFC 9112 §2.2).
    request_line: Option<RequestLine>,
    /// Field lines parsed so far, as ranges into the head. Kept (cleared)
    /// across requests so a connection does not reallocate it each time.
    fields: Vec<FieldLine>,
}

impl HeadScan {
    /// Forgets the head, ready for the next one.
    fn reset(&mut self) {
        self.line_start = 0;
        self.searched = 0;
        self.request_line = None;
        self.fields.clear();
    }
}

impl HttpCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        HttpCodec {
            limits,
            scan: HeadScan::default(),
        }
    }

    /// Decodes one request head from the front of `buf`, removing exactly the
    /// head's bytes (the body, if any, stays in `buf`).
    /// `Ok(None)`: not a whole head yet; call again with more bytes appended.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        if buf.len() < self.scan.searched {
            // Not the buffer we were reading: start over rather than misread.
            self.scan.reset();
        }
        loop {
            let from = self.scan.searched;
            let Some(lf) = buf.get(from..).and_then(syntax::find_lf).map(|i| from + i) else {
                self.scan.searched = buf.len();
                self.check_partial(buf)?;
                return Ok(None);
            };
            let end = lf + 1;
            let start = self.scan.line_start;
            let crlf = lf > start && buf.get(lf - 1) == Some(&b'\r');
            // The same limits, in the same order, as while the line was
            // arriving: the verdict must not depend on how it was split.
            self.check_line(buf, start, lf - start - usize::from(crlf), end)?;
            if !crlf {
                return Err(ProtocolError::bad("bare LF in request head"));
            }
            self.scan.searched = end;
            self.scan.line_start = end;
            if self.on_line(buf, start, lf - 1)? {
                let head = buf.split_to(end).freeze();
                let result = match &self.scan.request_line {
                    Some(line) => vars::build(&head, line, &self.scan.fields, &self.limits),
                    None => Err(ProtocolError::bad("head without a request line")),
                };
                self.scan.reset();
                return result.map(Some);
            }
        }
    }

    /// Handles the complete line `buf[start..end]` (CRLF removed); true when
    /// it is the empty line that ends the head.
    fn on_line(&mut self, buf: &[u8], start: usize, end: usize) -> Result<bool, ProtocolError> {
        let line = buf.get(start..end).unwrap_or_default();
        if self.scan.request_line.is_none() {
            if line.is_empty() {
                return Ok(false);
            }
            self.scan.request_line = Some(request_line::parse(line, start)?);
            return Ok(false);
        }
        if line.is_empty() {
            return Ok(true);
        }
        let mut field = syntax::field_line(line)?;
        field.name = start + field.name.start..start + field.name.end;
        field.value = start + field.value.start..start + field.value.end;
        self.scan.fields.push(field);
        Ok(false)
    }

    /// Limits on the line still waiting for its CRLF, so an endless line is
    /// refused as soon as it is too long rather than when it ends.
    fn check_partial(&self, buf: &[u8]) -> Result<(), ProtocolError> {
        let start = self.scan.line_start;
        let partial = buf.get(start..).unwrap_or_default();
        let len = partial.len() - usize::from(partial.last() == Some(&b'\r'));
        self.check_line(buf, start, len, buf.len())
    }

    /// The head limits for the line starting at `start`, `len` bytes long
    /// without its line ending, with the head `upto` bytes long so far.
    ///
    /// When several limits are broken, the one a byte-by-byte reader would
    /// have hit first wins (ties: line length, then field count, then head
    /// size), so the verdict is the same however the head was split into
    /// reads, and the same for a line still arriving and a complete one.
    fn check_line(
        &self,
        buf: &[u8],
        start: usize,
        len: usize,
        upto: usize,
    ) -> Result<(), ProtocolError> {
        let mut first: Option<(usize, ProtocolError)> = None;
        let mut consider = |at: usize, err: fn(&Limits) -> ProtocolError| {
            if first.as_ref().is_none_or(|(earliest, _)| at < *earliest) {
                first = Some((at, err(&self.limits)));
            }
        };
        let (limit, too_long): (usize, fn(&Limits) -> ProtocolError) = match self.scan.request_line
        {
            None => (self.limits.request_line, uri_too_long),
            Some(_) => (self.limits.header_field.saturating_sub(2), field_too_long),
        };
        if len > limit {
            // A CR is not counted while it may still be the line's end.
            let cr = usize::from(buf.get(start + limit) == Some(&b'\r'));
            consider(start + limit + 1 + cr, too_long);
        }
        let another_field = self.scan.request_line.is_some()
            && buf.get(start).is_some_and(|&b| b != b'\r' && b != b'\n');
        if another_field && self.scan.fields.len() >= self.limits.header_count {
            consider(start + 1, too_many_fields);
        }
        if upto > self.limits.head_size {
            consider(self.limits.head_size + 1, head_too_large);
        }
        match first {
            Some((_, err)) => Err(err),
            None => Ok(()),
        }
    }
}

/// The 414 for a request line over [`Limits::request_line`].
fn uri_too_long(limits: &Limits) -> ProtocolError {
    ProtocolError::new(
        ErrorKind::UriTooLong,
        format!("request line longer than {} bytes", limits.request_line),
    )
}

/// The 431 for more than [`Limits::header_count`] fields.
fn too_many_fields(limits: &Limits) -> ProtocolError {
    ProtocolError::new(
        ErrorKind::HeadersTooLarge,
        format!("more than {} header fields", limits.header_count),
    )
}

/// The 431 for a field line over [`Limits::header_field`].
fn field_too_long(limits: &Limits) -> ProtocolError {
    ProtocolError::new(
        ErrorKind::HeadersTooLarge,
        format!(
            "header field line longer than {} bytes",
            limits.header_field
        ),
    )
}

/// The 431 for a head over [`Limits::head_size`].
fn head_too_large(limits: &Limits) -> ProtocolError {
    ProtocolError::new(
        ErrorKind::HeadersTooLarge,
        format!("request head larger than {} bytes", limits.head_size),
    )
}
