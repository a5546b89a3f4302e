//! The chunked transfer-coding (RFC 9112 §7.1): a resumable state machine
//! that turns a chunked request body into plain body bytes as they arrive,
//! without ever holding more than one chunk-size line or the trailer section.
//! It owns chunk syntax, extensions and trailer checks; it does not enforce
//! the body size limit (the server counts the bytes it hands on) and it
//! discards trailer fields (WSGI has nowhere to put them).

#[cfg(test)]
mod tests;

use bytes::{Buf, Bytes, BytesMut};
use nom::bytes::complete::take_while1;
use nom::combinator::all_consuming;
use nom::Parser;

use super::http::syntax::{self, chunk_extensions, hex_value, PResult};
use super::{ErrorKind, ProtocolError};

/// Longest chunk-size line (size, extensions, CRLF) we buffer.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section (all trailer lines and the final CRLF).
const MAX_TRAILER_SECTION: usize = 8192;
/// Most significant hex digits in a chunk size: 16 fill a u64.
const MAX_SIZE_DIGITS: usize = 16;
/// Trailer fields that could change how the message is framed or routed
/// (RFC 9110 §6.5.1) if some later hop merged them into the header section.
const FORBIDDEN_TRAILERS: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"trailer",
    b"te",
    b"connection",
    b"upgrade",
];

/// One step of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes (de-chunked), possibly part of a wire chunk.
    Data(Bytes),
    /// The last chunk and the trailer section have been consumed.
    End,
}

/// Where the decoder is within the chunked body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data; this many bytes of it are still to come.
    Data(u64),
    /// After a chunk's data, waiting for its CRLF.
    DataEnd,
    /// After the last chunk, reading trailer lines up to the empty line.
    Trailers,
    /// The body is complete; nothing more is consumed.
    Done,
}

/// Resumable state machine over a chunked body.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    /// Which part of the body comes next.
    state: State,
    /// Bytes of the current line already searched for LF, so a line split
    /// over many reads is scanned once.
    searched: usize,
    /// Trailer bytes consumed so far, capped by `MAX_TRAILER_SECTION`.
    trailer_len: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder::default()
    }

    /// Decodes the next piece from the front of `buf`, removing what it used.
    /// `Ok(None)`: more bytes are needed. Data is returned as soon as any of
    /// the current chunk is buffered, never reaching past the chunk; after
    /// [`Chunk::End`] nothing more is consumed (the next request stays).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, ProtocolError> {
        if buf.len() < self.searched {
            self.searched = 0;
        }
        loop {
            match self.state {
                State::Size => {
                    let Some(len) = self.next_line(buf, MAX_SIZE_LINE, size_line_too_long)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(buf.get(..len).unwrap_or_default())?;
                    buf.advance(len + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => return Ok(self.data(buf, left)),
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    None if buf.first().is_none_or(|&b| b == b'\r') => return Ok(None),
                    _ => return Err(ProtocolError::bad("chunk data not followed by CRLF")),
                },
                State::Trailers => {
                    let budget = MAX_TRAILER_SECTION.saturating_sub(self.trailer_len);
                    let Some(len) = self.next_line(buf, budget, trailers_too_large)? else {
                        return Ok(None);
                    };
                    if len > 0 {
                        check_trailer(buf.get(..len).unwrap_or_default())?;
                    }
                    buf.advance(len + 2);
                    self.trailer_len += len + 2;
                    if len == 0 {
                        self.state = State::Done;
                    }
                }
                State::Done => return Ok(Some(Chunk::End)),
            }
        }
    }

    /// Hands on up to `left` buffered bytes of the current chunk.
    fn data(&mut self, buf: &mut BytesMut, left: u64) -> Option<Chunk> {
        if buf.is_empty() {
            return None;
        }
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let data = buf.split_to(n).freeze();
        let left = left - data.len() as u64;
        self.state = if left == 0 {
            State::DataEnd
        } else {
            State::Data(left)
        };
        Some(Chunk::Data(data))
    }

    /// Length (CRLF excluded) of the line at the front of `buf` once its CRLF
    /// has arrived. A line that would exceed `cap` bytes with its CRLF is
    /// refused with `too_long()` as soon as that is certain.
    fn next_line(
        &mut self,
        buf: &[u8],
        cap: usize,
        too_long: fn() -> ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        let from = self.searched;
        let Some(lf) = buf.get(from..).and_then(syntax::find_lf).map(|i| from + i) else {
            self.searched = buf.len();
            let partial = buf.len() - usize::from(buf.last() == Some(&b'\r'));
            if partial + 2 > cap {
                return Err(too_long());
            }
            return Ok(None);
        };
        self.searched = 0;
        if lf + 1 > cap {
            return Err(too_long());
        }
        if lf == 0 || buf.get(lf - 1) != Some(&b'\r') {
            return Err(ProtocolError::bad("bare LF in chunked body"));
        }
        Ok(Some(lf - 1))
    }
}

/// Parses a chunk-size line (CRLF removed): `1*HEXDIG [ chunk-ext ]`.
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits: PResult<&[u8]> = take_while1(|b: u8| b.is_ascii_hexdigit()).parse(line);
    let Ok((extensions, digits)) = digits else {
        return Err(ProtocolError::bad("chunk size is not a hex number"));
    };
    if all_consuming(chunk_extensions).parse(extensions).is_err() {
        let extension_follows = extensions
            .first()
            .is_some_and(|&b| b == b';' || syntax::is_ows(b));
        return Err(ProtocolError::bad(if extension_follows {
            "invalid chunk extension"
        } else {
            "chunk size is not a hex number"
        }));
    }
    let significant = digits
        .iter()
        .position(|&d| d != b'0')
        .map_or(&[][..], |first| &digits[first..]);
    if significant.len() > MAX_SIZE_DIGITS {
        return Err(ProtocolError::bad("chunk size overflows"));
    }
    Ok(significant
        .iter()
        .filter_map(|&d| hex_value(d))
        .fold(0u64, |n, d| n << 4 | u64::from(d)))
}

/// Checks one trailer field line: valid syntax and not a forbidden field.
fn check_trailer(line: &[u8]) -> Result<(), ProtocolError> {
    let field = syntax::field_line(line)?;
    let name = line.get(field.name).unwrap_or_default();
    if FORBIDDEN_TRAILERS
        .iter()
        .any(|forbidden| forbidden.eq_ignore_ascii_case(name))
    {
        return Err(ProtocolError::bad(format!(
            "{} is not allowed in a trailer",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// The error for a chunk-size line over `MAX_SIZE_LINE`.
fn size_line_too_long() -> ProtocolError {
    ProtocolError::bad(format!("chunk-size line longer than {MAX_SIZE_LINE} bytes"))
}

/// The error for a trailer section over `MAX_TRAILER_SECTION`.
fn trailers_too_large() -> ProtocolError {
    ProtocolError::new(
        ErrorKind::HeadersTooLarge,
        format!("trailer section larger than {MAX_TRAILER_SECTION} bytes"),
    )
}
