//! Request bodies on the I/O side: framing (Content-Length or chunked),
//! reading small bodies whole before dispatch, and feeding large ones to the
//! app's `wsgi.input` through a bounded channel as the socket delivers them.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use std::time::Duration;

use super::stream::{read_within, Stream};
use crate::exchange::BodyMsg;
use crate::protocol::chunked::{Chunk, ChunkedDecoder};
use crate::protocol::{BodyFraming, ErrorKind, ProtocolError};

/// Most bytes handed to the app in one body message.
const MAX_PIECE: usize = 64 * 1024;

/// Where a request's body stands on the wire.
#[derive(Debug)]
pub enum BodyDecoder {
    /// This many bytes of a Content-Length body are still to come.
    Length(u64),
    /// A chunked body, mid-way.
    Chunked(ChunkedDecoder),
    /// The body has been read to its end.
    Done,
}

/// One decoded piece of a body.
#[derive(Debug)]
pub enum Piece {
    /// Body bytes.
    Data(Bytes),
    /// The end of the body.
    End,
}

/// Why reading a body stopped early.
#[derive(Debug)]
pub enum BodyError {
    /// The peer sent a malformed chunked body or too many bytes.
    Protocol(ProtocolError),
    /// The connection closed or failed before the body ended.
    Io(String),
}

impl BodyDecoder {
    /// The decoder for a request's framing.
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Takes the next piece out of `buf`; `Ok(None)` when more bytes are
    /// needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, ProtocolError> {
        match self {
            BodyDecoder::Done => Ok(Some(Piece::End)),
            BodyDecoder::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let take = (*remaining).min(buf.len() as u64).min(MAX_PIECE as u64) as usize;
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Some(Piece::Data(buf.split_to(take).freeze())))
            }
            BodyDecoder::Chunked(decoder) => match decoder.decode(buf)? {
                None => Ok(None),
                Some(Chunk::Data(data)) => Ok(Some(Piece::Data(data))),
                Some(Chunk::End) => {
                    *self = BodyDecoder::Done;
                    Ok(Some(Piece::End))
                }
            },
        }
    }

    /// Reads the next piece, from `buf` first, then from the socket,
    /// waiting at most `stall` for each read.
    pub async fn read<S: Stream>(
        &mut self,
        stream: &mut S,
        buf: &mut BytesMut,
        stall: Duration,
    ) -> Result<Piece, BodyError> {
        loop {
            if let Some(piece) = self.next(buf).map_err(BodyError::Protocol)? {
                return Ok(piece);
            }
            buf.reserve(MAX_PIECE.min(16 * 1024));
            match read_within(stream, buf, stall).await {
                Ok(0) => {
                    return Err(BodyError::Io(
                        "client closed the connection mid-body".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(BodyError::Io(format!("read error mid-body: {e}"))),
            }
        }
    }
}

/// What pre-buffering a body produced.
#[derive(Debug)]
pub enum Prebuffered {
    /// The whole body.
    Complete(Bytes),
    /// The first part of a body larger than the pre-buffer limit; the rest
    /// is streamed.
    Partial(Bytes),
}

/// Reads up to `limit` bytes of the body before the app is called, so small
/// bodies cost a slow client memory rather than a Python thread. `max_body`
/// (0: none) caps the decoded size of chunked bodies.
pub async fn prebuffer<S: Stream>(
    decoder: &mut BodyDecoder,
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    max_body: u64,
    stall: Duration,
) -> Result<Prebuffered, BodyError> {
    if let BodyDecoder::Length(n) = *decoder {
        if n <= limit as u64 {
            let n = n as usize;
            while buf.len() < n {
                buf.reserve(n - buf.len());
                match read_within(stream, buf, stall).await {
                    Ok(0) => {
                        return Err(BodyError::Io(
                            "client closed the connection mid-body".into(),
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(BodyError::Io(format!("read error mid-body: {e}"))),
                }
            }
            *decoder = BodyDecoder::Done;
            if n == 0 {
                // Not an empty slice of `buf`: that would share, and so
                // pin, the read buffer for as long as the body lives.
                return Ok(Prebuffered::Complete(Bytes::new()));
            }
            return Ok(Prebuffered::Complete(buf.split_to(n).freeze()));
        }
        // A large body of known length is streamed from its first byte.
        return Ok(Prebuffered::Partial(Bytes::new()));
    }
    let mut collected = BytesMut::new();
    loop {
        if decoder.is_done() {
            return Ok(Prebuffered::Complete(collected.freeze()));
        }
        if collected.len() >= limit {
            return Ok(Prebuffered::Partial(collected.freeze()));
        }
        match decoder.read(stream, buf, stall).await? {
            Piece::Data(data) => {
                collected.extend_from_slice(&data);
                check_total(collected.len() as u64, max_body)?;
            }
            Piece::End => return Ok(Prebuffered::Complete(collected.freeze())),
        }
    }
}

fn check_total(total: u64, max_body: u64) -> Result<(), BodyError> {
    if max_body != 0 && total > max_body {
        return Err(BodyError::Protocol(ProtocolError::new(
            ErrorKind::BodyTooLarge,
            format!("chunked body exceeds limit-post {max_body}"),
        )));
    }
    Ok(())
}

/// Feeds the rest of a large body to the app while its response is under
/// way.
#[derive(Debug)]
pub struct BodyFeed {
    /// Where the wire body stands.
    pub decoder: BodyDecoder,
    /// The app's end of `wsgi.input`; `None` once the body has ended or the
    /// app stopped listening.
    tx: Option<mpsc::Sender<BodyMsg>>,
    /// Decoded bytes so far, checked against `max_body`.
    total: u64,
    /// `limit-post` (0: none).
    max_body: u64,
    /// Longest wait for one read of the body.
    stall: Duration,
}

impl BodyFeed {
    /// A feed that sends to `tx`, starting after `already` decoded bytes.
    pub fn new(
        decoder: BodyDecoder,
        tx: Option<mpsc::Sender<BodyMsg>>,
        already: u64,
        max_body: u64,
        stall: Duration,
    ) -> Self {
        BodyFeed {
            decoder,
            tx,
            total: already,
            max_body,
            stall,
        }
    }

    /// Whether there is still body to pass to the app.
    pub fn active(&self) -> bool {
        self.tx.is_some()
    }

    /// Waits for room in the channel, reads one piece and passes it on.
    /// Cancel-safe: nothing is lost if dropped while waiting.
    pub async fn step<S: Stream>(
        &mut self,
        stream: &mut S,
        buf: &mut BytesMut,
    ) -> Result<(), BodyError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let Ok(permit) = tx.reserve().await else {
            // The app finished without reading the whole body.
            self.tx = None;
            return Ok(());
        };
        let piece = self.decoder.read(stream, buf, self.stall).await;
        let piece = piece.and_then(|p| {
            if let Piece::Data(d) = &p {
                self.total += d.len() as u64;
                check_total(self.total, self.max_body)?;
            }
            Ok(p)
        });
        match piece {
            Ok(Piece::Data(data)) => permit.send(BodyMsg::Data(data)),
            Ok(Piece::End) => {
                permit.send(BodyMsg::End);
                self.tx = None;
            }
            Err(e) => {
                let why = match &e {
                    BodyError::Protocol(p) => p.detail().to_string(),
                    BodyError::Io(s) => s.clone(),
                };
                permit.send(BodyMsg::Failed(why));
                self.tx = None;
                return Err(e);
            }
        }
        Ok(())
    }

    /// After the response: discards what is left of the body, up to
    /// `max` bytes, so the connection can serve the next request. Returns
    /// whether the body reached its end.
    pub async fn drain<S: Stream>(&mut self, stream: &mut S, buf: &mut BytesMut, max: u64) -> bool {
        self.tx = None;
        let mut discarded = 0u64;
        while !self.decoder.is_done() {
            match self.decoder.read(stream, buf, self.stall).await {
                Ok(Piece::Data(d)) => {
                    discarded += d.len() as u64;
                    if discarded > max {
                        return false;
                    }
                }
                Ok(Piece::End) => return true,
                Err(_) => return false,
            }
        }
        true
    }
}
