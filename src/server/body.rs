//! Request bodies on the I/O side: framing (Content-Length or chunked),
//! reading bodies whole before dispatch (in memory, or spooled to a file
//! when large), and feeding large ones to the app's `wsgi.input` through a
//! bounded channel, from their spool file or (without post-buffering) as
//! the socket delivers them.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use std::time::Duration;

use super::spool::{BodyBudget, Charge, Spool};
use super::stream::{read_within, Stream};
use super::ListenerContext;
use crate::exchange::{Body, BodyMsg};
use crate::protocol::chunked::{Chunk, ChunkedDecoder};
use crate::protocol::{BodyFraming, ErrorKind, ProtocolError, Request};

/// Body messages buffered between the socket (or spool) and `wsgi.input`.
const BODY_QUEUE: usize = 4;

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
    /// The body could not be spooled (the server's side: a full disk, a
    /// temporary directory it cannot write).
    Spool(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Protocol(p) => p.fmt(f),
            BodyError::Io(s) | BodyError::Spool(s) => f.write_str(s),
        }
    }
}

impl BodyError {
    /// What went wrong, for logs and for the app's `wsgi.input`.
    pub fn detail(&self) -> String {
        match self {
            BodyError::Protocol(p) => p.detail().to_string(),
            BodyError::Io(s) | BodyError::Spool(s) => s.clone(),
        }
    }
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
            read_more(stream, buf, stall).await?;
        }
    }
}

/// What pre-buffering a body produced.
#[derive(Debug)]
pub enum Prebuffered<'a> {
    /// The whole body, and its charge to the worker's body budget.
    Complete(Bytes, Option<Charge<'a>>),
    /// The first part of a body larger than the pre-buffer limit, or than
    /// the budget had room for; the rest is still on the wire.
    Partial(Bytes),
}

/// Reads up to `limit` bytes of the body before the app is called, so small
/// bodies cost a slow client memory rather than a Python thread. The bytes
/// are charged to `budget` (a known length up front, a chunked body as it
/// arrives); what does not fit is left for [`spool_rest`]. `max_body`
/// (0: none) caps the decoded size of chunked bodies.
pub async fn prebuffer<'a, S: Stream>(
    decoder: &mut BodyDecoder,
    stream: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    max_body: u64,
    stall: Duration,
    budget: &'a BodyBudget,
) -> Result<Prebuffered<'a>, BodyError> {
    if let BodyDecoder::Length(n) = *decoder {
        let charge = (n <= limit as u64)
            .then(|| budget.charge(n as usize))
            .flatten();
        let Some(charge) = charge else {
            // Too large for memory: read from its first byte by the spool
            // (or the app, without post-buffering).
            return Ok(Prebuffered::Partial(Bytes::new()));
        };
        let n = n as usize;
        while buf.len() < n {
            // Grown as bytes arrive: a client that declares a large body
            // and sends nothing makes the worker allocate nothing.
            buf.reserve((n - buf.len()).min(MAX_PIECE));
            read_more(stream, buf, stall).await?;
        }
        *decoder = BodyDecoder::Done;
        if n == 0 {
            // Not an empty slice of `buf`: that would share, and so
            // pin, the read buffer for as long as the body lives.
            return Ok(Prebuffered::Complete(Bytes::new(), None));
        }
        return Ok(Prebuffered::Complete(
            buf.split_to(n).freeze(),
            Some(charge),
        ));
    }
    let mut collected = BytesMut::new();
    let mut charge = budget.nothing();
    loop {
        if decoder.is_done() {
            return Ok(Prebuffered::Complete(collected.freeze(), Some(charge)));
        }
        if collected.len() >= limit {
            return Ok(Prebuffered::Partial(collected.freeze()));
        }
        match decoder.read(stream, buf, stall).await? {
            Piece::Data(data) => {
                check_total((collected.len() + data.len()) as u64, max_body)?;
                if !charge.grow(data.len()) {
                    collected.extend_from_slice(&data);
                    return Ok(Prebuffered::Partial(collected.freeze()));
                }
                collected.extend_from_slice(&data);
            }
            Piece::End => return Ok(Prebuffered::Complete(collected.freeze(), Some(charge))),
        }
    }
}

/// Reads the rest of a body that [`prebuffer`] left on the wire into a
/// spool file in `dir`, after `first`, its part already read: the app is
/// called once the whole body is here. Each read may stall for `stall` at
/// most.
pub async fn spool_rest<S: Stream>(
    decoder: &mut BodyDecoder,
    stream: &mut S,
    buf: &mut BytesMut,
    first: Bytes,
    dir: Option<&std::path::Path>,
    max_body: u64,
    stall: Duration,
) -> Result<Spool, BodyError> {
    let failed = |e: std::io::Error| BodyError::Spool(format!("cannot spool the body: {e}"));
    let mut spool = Spool::create(dir).map_err(failed)?;
    spool.write(&first).map_err(failed)?;
    while let Piece::Data(data) = decoder.read(stream, buf, stall).await? {
        check_total(spool.len() + data.len() as u64, max_body)?;
        spool.write(&data).map_err(failed)?;
    }
    spool.rewind().map_err(failed)?;
    Ok(spool)
}

/// One read of more body bytes into `buf`, waiting at most `stall`; the
/// end of the connection before the body's end is an error.
async fn read_more<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    stall: Duration,
) -> Result<(), BodyError> {
    match read_within(stream, buf, stall).await {
        Ok(0) => Err(BodyError::Io(
            "client closed the connection mid-body".into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(BodyError::Io(format!("read error mid-body: {e}"))),
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
    /// Where the body is read from when it was spooled (the wire is then
    /// done with).
    spool: Option<Spool>,
}

impl BodyFeed {
    /// A feed that sends a spooled body to `tx`.
    pub fn spooled(spool: Spool, tx: mpsc::Sender<BodyMsg>) -> Self {
        BodyFeed {
            decoder: BodyDecoder::Done,
            tx: Some(tx),
            total: 0,
            max_body: 0,
            stall: Duration::ZERO,
            spool: Some(spool),
        }
    }

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
            spool: None,
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
        let piece = match &mut self.spool {
            Some(spool) => match spool.next_piece() {
                Ok(Some(data)) => Ok(Piece::Data(data)),
                Ok(None) => Ok(Piece::End),
                Err(e) => Err(BodyError::Spool(format!(
                    "cannot read the spooled body back: {e}"
                ))),
            },
            None => self.decoder.read(stream, buf, self.stall).await,
        };
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
                permit.send(BodyMsg::Failed(e.detail()));
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

/// Reads the request's body before the app runs: whole in memory when it
/// is small and the worker's body budget has room, else into a spool file
/// (the app reads it from there), so a slow client never holds a Python
/// thread. Without post-buffering (0), a body streams to the app as it
/// arrives, as in uWSGI.
pub(super) async fn read_body<'a, S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    request: &mut Request,
    mut decoder: BodyDecoder,
    ctx: &'a ListenerContext,
) -> Result<(Body, Option<BodyFeed>, Option<Charge<'a>>), BodyError> {
    let shared = &ctx.shared;
    let chunked = request.body == BodyFraming::Chunked;
    let first = match prebuffer(
        &mut decoder,
        stream,
        buf,
        shared.post_buffering,
        shared.limits.body,
        shared.timeouts.body,
        &shared.body_budget,
    )
    .await?
    {
        Prebuffered::Complete(bytes, charge) => {
            if chunked {
                // The whole de-chunked body is known: tell the app its
                // length, as frameworks that ignore wsgi.input_terminated
                // read only CONTENT_LENGTH bytes.
                request.set_var(b"CONTENT_LENGTH", Bytes::from(bytes.len().to_string()));
            }
            return Ok((Body::Buffered(bytes), None, charge));
        }
        Prebuffered::Partial(first) => first,
    };
    let (tx, rx) = mpsc::channel(BODY_QUEUE);
    if shared.post_buffering == 0 {
        let already = first.len() as u64;
        if !first.is_empty() {
            let _ = tx.try_send(BodyMsg::Data(first));
        }
        let feed = BodyFeed::new(
            decoder,
            Some(tx),
            already,
            shared.limits.body,
            shared.timeouts.body,
        );
        return Ok((Body::Stream(rx), Some(feed), None));
    }
    let spool = spool_rest(
        &mut decoder,
        stream,
        buf,
        first,
        None,
        shared.limits.body,
        shared.timeouts.body,
    )
    .await?;
    if chunked {
        request.set_var(b"CONTENT_LENGTH", Bytes::from(spool.len().to_string()));
    }
    Ok((Body::Stream(rx), Some(BodyFeed::spooled(spool, tx)), None))
}
