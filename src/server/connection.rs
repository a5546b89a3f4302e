//! One connection: the only place bytes meet a socket. Reads request heads
//! with the protocol's decoder, reads or streams the body, hands the request
//! to the app's thread pool and writes the response as it is produced, in
//! order, one request at a time (pipelined requests wait in the buffer).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::access_log::{Entry, RequestInfo};
use super::body::{read_body, BodyDecoder, BodyError};
use super::handoff::{dispatch, harakiri, overloaded, run_inline, Pumped};
use super::respond::ResponseWriter;
use super::round::Seat;
use super::spare::{self, Kind};
use super::stream::{write_within, Stream};
use super::{ListenerContext, Peer, Shared};
use crate::exchange::{Body, EventSink, Job, RequestLabel};
use crate::protocol::response::{reason, simple_response, RequestShape};
use crate::protocol::{Decoder, ErrorKind, Protocol, ProtocolError, Request};

/// How long a draining server waits for the first request of a connection
/// it accepted just before the drain.
const DRAIN_FIRST_REQUEST: std::time::Duration = std::time::Duration::from_secs(5);

/// How much room a read asks for. A request head is usually well under
/// 2 KiB (nginx itself starts each connection with 1 KiB and grows it);
/// a longer one takes a second read into a grown buffer, which the
/// worker's spares then keep. Each request in flight holds one of these
/// until its response is written, and a round of held inline responses has
/// every ready connection's in flight: at 256 connections, 4 KiB each was
/// 0.7 MiB more of a worker's peak memory than 2 KiB.
const READ_SIZE: usize = 2048;

/// How long a lingering close reads and discards, at most, before closing
/// (nginx's `lingering_time`).
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a lingering close waits for more bytes before closing
/// (nginx's `lingering_timeout`).
const LINGER_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// What the connection does after a request.
enum After {
    /// Read the next request; the previous one ended at this instant.
    KeepAlive(Instant),
    /// Close the connection: the client sends nothing more.
    Close,
    /// Close after a lingering read ([`linger`]): the client may still be
    /// sending (a body nobody read, a pipelined or next request).
    Linger,
}

/// Serves requests on `stream` until the peer closes or an error ends it.
pub async fn serve_connection<S: Stream>(mut stream: S, peer: Peer, ctx: Arc<ListenerContext>) {
    let _guard = ctx.shared.lifecycle.enter();
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(ctx.protocol, ctx.shared.limits.clone());
    let mut served = 0u64;
    let mut idle = Idle::new(&ctx.shared);
    // Dropped with the connection (also mid-request, at shutdown): bytes
    // still queued for the round are then withdrawn, never sent to a
    // closed (or reused) descriptor.
    let mut seat = Seat::default();
    let write_timeout = ctx.shared.timeouts.write;
    loop {
        let head = read_head(
            &mut stream,
            &mut buf,
            &mut decoder,
            &mut idle,
            &mut seat,
            served,
        )
        .await;
        // The previous response is out before this one's bytes (or a
        // 4xx, or the close) reach the socket.
        if !seat.is_settled() {
            if let Err(e) = seat.settle(&mut stream, write_timeout).await {
                tracing::debug!(peer = %peer, "client went away: {e}");
                return;
            }
        }
        let request = match head {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(HeadError::Timeout) => {
                // A client this slow gets one quiet spell to stop sending,
                // not the whole lingering time to go on trickling.
                if head_timed_out(&mut stream, &ctx, &peer, buf.len()).await {
                    linger(&mut stream, LINGER_QUIET).await;
                }
                return;
            }
            Err(HeadError::Protocol(e)) => {
                reject(&mut stream, &ctx, &peer, &e).await;
                linger(&mut stream, LINGER_TIME).await;
                return;
            }
            Err(HeadError::Io(e)) => {
                tracing::debug!(peer = %peer, "connection error before a request: {e}");
                return;
            }
            Err(HeadError::Idle) => {
                // The client may be sending its next request right now.
                linger(&mut stream, LINGER_TIME).await;
                break;
            }
        };
        served += 1;
        // A drain does not end a kept-alive connection here: its client
        // may be sending the next request already. That request is served
        // (answered with `Connection: close`); an idle one closes at its
        // keep-alive timeout, in `read_head`.
        let after = serve_request(&mut stream, &mut buf, &mut seat, request, &peer, &ctx).await;
        match after {
            After::KeepAlive(ended) => idle.since = ended,
            After::Close | After::Linger => {
                if let Err(e) = seat.settle(&mut stream, write_timeout).await {
                    tracing::debug!(peer = %peer, "client went away: {e}");
                } else if matches!(after, After::Linger) {
                    linger(&mut stream, LINGER_TIME).await;
                }
                break;
            }
        }
    }
    spare::give(Kind::Read, buf);
    // Dropping the stream closes it (and sends the FIN): a shutdown()
    // first would only add a syscall per connection.
}

/// Closes the way nginx's `lingering_close` does when the client may still
/// be sending: a close with unread bytes in the socket makes the kernel
/// send a reset, which can destroy the response before the client reads
/// it. So the write side is shut down first (the response and a FIN go
/// out), then what arrives is read and thrown away until the client closes,
/// stays quiet for [`LINGER_QUIET`], or `most` has passed.
async fn linger<S: Stream>(stream: &mut S, most: std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let until = tokio::time::Instant::now() + most;
    let mut scratch = [0u8; 4096];
    loop {
        let quiet = tokio::time::Instant::now() + LINGER_QUIET;
        match tokio::time::timeout_at(quiet.min(until), stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// Waits for a keep-alive connection's next request, until the keep-alive
/// timeout. The timer is made on the first wait and kept for the
/// connection's life: making, arming and dropping it on every request cost
/// more than the rest of the wait. It is only re-armed when it fires
/// before the current wait's deadline.
///
/// A drain does not cut the wait short. A client that reuses its
/// connection may be sending its next request at the moment the drain
/// starts, and closing the connection under it loses that request; so the
/// request is awaited as usual and answered with `Connection: close`. A
/// connection that stays idle closes at its keep-alive timeout, which the
/// worker's shutdown timeout bounds.
struct Idle<'a> {
    shared: &'a Shared,
    /// When the last response was written: the keep-alive timeout counts
    /// from there (the request's own end reading, so a wait reads no clock).
    since: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a> Idle<'a> {
    fn new(shared: &'a Shared) -> Self {
        Idle {
            shared,
            since: Instant::now(),
            timer: None,
        }
    }

    /// Waits for the next request's bytes or the keep-alive timeout, or for
    /// the previous response's bytes to need this connection (see
    /// [`Seat::settle`]).
    async fn wait<S: Stream>(&mut self, stream: &S, seat: &Seat) -> std::io::Result<Woken> {
        let deadline = tokio::time::Instant::from_std(self.since) + self.shared.timeouts.keepalive;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            tokio::select! {
                biased;
                () = std::future::poll_fn(|_| seat.poll_needs_settling()) => return Ok(Woken::Settle),
                ready = stream.readable() => return ready.map(|()| Woken::Readable),
                () = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(Woken::Over);
                    }
                    // Armed for an earlier wait: wait out this one's time.
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// What ended an idle wait.
enum Woken {
    /// The next request's bytes are readable.
    Readable,
    /// The keep-alive timeout passed.
    Over,
    /// The round's writer handed the previous response back.
    Settle,
}

enum HeadError {
    Protocol(ProtocolError),
    Io(std::io::Error),
    /// The head did not arrive within the header timeout.
    Timeout,
    /// A kept-alive connection stayed idle past the keep-alive timeout.
    Idle,
}

/// Reads until a whole request head is decoded. `Ok(None)`: the peer closed
/// cleanly between requests (or before sending anything), or the server is
/// draining and a new connection sent nothing.
///
/// A head must arrive whole within the header timeout, counted from the
/// connection's start for its first request and from the first byte for
/// later ones: a client trickling bytes (slowloris) cannot hold a
/// connection for long. A connection that has served nothing yet was
/// accepted for a request its client has sent or is sending: a drain does
/// not close it (that would lose the request); it only bounds the wait to
/// [`DRAIN_FIRST_REQUEST`].
async fn read_head<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    idle: &mut Idle<'_>,
    seat: &mut Seat,
    served: u64,
) -> Result<Option<Request>, HeadError> {
    let shared = idle.shared;
    let timeouts = shared.timeouts;
    let lifecycle = &shared.lifecycle;
    let mut deadline = (served == 0).then(|| Instant::now() + timeouts.header);
    loop {
        if !buf.is_empty() {
            if let Some(request) = decoder.decode(buf).map_err(HeadError::Protocol)? {
                return Ok(Some(request));
            }
            // Only a head still incomplete needs the clock read.
            deadline.get_or_insert_with(|| Instant::now() + timeouts.header);
        }
        let read = match deadline {
            None => {
                // Idle between requests: hold no buffer while waiting (an
                // idle keep-alive connection then costs a few hundred
                // bytes); the keep-alive timeout or a drain closes it. The
                // buffer goes back to the worker's spares for the next
                // connection that has bytes to read.
                spare::give(Kind::Read, std::mem::take(buf));
                match idle.wait(stream, seat).await {
                    Ok(Woken::Readable) => {}
                    Ok(Woken::Over) => return Err(HeadError::Idle),
                    Ok(Woken::Settle) => {
                        seat.settle(stream, timeouts.write)
                            .await
                            .map_err(HeadError::Io)?;
                        continue;
                    }
                    Err(e) => return Err(HeadError::Io(e)),
                }
                *buf = spare::take(Kind::Read);
                buf.reserve(READ_SIZE);
                stream.read_buf(buf).await
            }
            Some(at) => {
                if buf.capacity() == 0 {
                    *buf = spare::take(Kind::Read);
                }
                buf.reserve(READ_SIZE);
                let first_wait = served == 0 && buf.is_empty();
                let drained = async {
                    if !first_wait {
                        return std::future::pending().await;
                    }
                    lifecycle.drained().await;
                    tokio::time::sleep(DRAIN_FIRST_REQUEST).await;
                };
                let settle = std::future::poll_fn(|_| seat.poll_needs_settling());
                tokio::select! {
                    biased;
                    () = settle => {
                        seat.settle(stream, timeouts.write)
                            .await
                            .map_err(HeadError::Io)?;
                        continue;
                    }
                    read = tokio::time::timeout_at(at.into(), stream.read_buf(buf)) => match read {
                        Ok(read) => read,
                        Err(_) => return Err(HeadError::Timeout),
                    },
                    _ = drained => return Ok(None),
                }
            }
        };
        match read {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => {
                return Err(HeadError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("peer closed mid-head after {} bytes", buf.len()),
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// A head that did not arrive in time: 408 if the client sent part of one,
/// a quiet close if it sent nothing. True when a 408 went out.
async fn head_timed_out<S: Stream>(
    stream: &mut S,
    ctx: &ListenerContext,
    peer: &Peer,
    received: usize,
) -> bool {
    let limit = ctx.shared.timeouts.header.as_secs_f64();
    if received == 0 {
        tracing::debug!(peer = %peer, "no request within {limit} s; closing");
        return false;
    }
    tracing::info!(
        peer = %peer,
        listener = %ctx.name,
        "client error: request head incomplete after {limit} s ({received} bytes received; header-timeout) -> 408"
    );
    let response = simple_response(
        ctx.protocol,
        408,
        reason(408),
        "request head not received in time\n",
        &[],
    );
    write_within(stream, &response, ctx.shared.timeouts.write)
        .await
        .is_ok()
}

/// Answers a request the codec rejected, logs why, and lets the caller
/// close: nothing after a bad head can be trusted to be framed right.
async fn reject<S: Stream>(
    stream: &mut S,
    ctx: &ListenerContext,
    peer: &Peer,
    err: &ProtocolError,
) {
    tracing::info!(
        peer = %peer,
        listener = %ctx.name,
        "client error: {} -> {}", err.detail(), err.status()
    );
    // Someone speaking HTTP to a uwsgi/SCGI socket gets an HTTP answer.
    let protocol = if err.kind() == ErrorKind::WrongProtocol {
        Protocol::Http
    } else {
        ctx.protocol
    };
    let body = format!("{}\n", err.detail());
    let response = simple_response(protocol, err.status(), reason(err.status()), &body, &[]);
    let _ = write_within(stream, &response, ctx.shared.timeouts.write).await;
}

async fn serve_request<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    seat: &mut Seat,
    mut request: Request,
    peer: &Peer,
    ctx: &ListenerContext,
) -> After {
    let started = Instant::now();
    ctx.add_connection_vars(&mut request, peer);
    let label = RequestLabel::of(&request);
    let wanted_keep_alive = request.keep_alive;
    // Asked only when there are static maps: most servers have none, and
    // the call's future was made, polled and dropped for every request.
    if !ctx.shared.static_files.is_empty() {
        let served =
            super::static_files::serve(stream, buf, &request, peer, ctx, started, &label).await;
        if let Some(keep_alive) = served {
            return if keep_alive {
                After::KeepAlive(Instant::now())
            } else {
                closing(wanted_keep_alive, buf)
            };
        }
    }
    let info = ctx
        .shared
        .access_log
        .enabled()
        .then(|| RequestInfo::of(&request, &label));
    let shape = RequestShape {
        protocol: ctx.protocol,
        head: request.head,
        http10: request.http10,
        keep_alive: request.keep_alive && !ctx.shared.lifecycle.is_draining(),
        extra: ctx.shared.add_headers,
    };
    let shared = &ctx.shared;
    let decoder = BodyDecoder::new(request.body);
    if request.expect_continue
        && !decoder.is_done()
        && write_within(
            stream,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            shared.timeouts.write,
        )
        .await
        .is_err()
    {
        return After::Close;
    }
    let (body, feed, _charge) = match read_body(stream, buf, &mut request, decoder, ctx).await {
        Ok(read) => read,
        Err(e) => return body_failed(stream, ctx, peer, &label, e).await,
    };
    let mut writer = ResponseWriter::new(shape, shared.timeouts.write);
    let job = Job {
        request,
        body,
        events: EventSink::Buffer(spare::event_buffer()),
        label: label.clone(),
    };
    // With inline execution, one request runs Python at a time: wait for
    // the turn (or get a 503 when too many wait).
    let mut turn = match &shared.inline {
        Some(inline) => match inline.admit().await {
            Some(turn) => Some(turn),
            None => {
                overloaded(stream, ctx, peer, &label).await;
                return After::Linger;
            }
        },
        None => None,
    };
    let inline = shared
        .inline
        .as_ref()
        .filter(|i| matches!(job.body, Body::Buffered(_)) && i.preferred());
    let outcome = match inline {
        Some(inline) => {
            // Pipelined bytes wait: their request is served next, and its
            // response must not wait for this one's round.
            let seat = buf.is_empty().then_some(seat);
            run_inline(
                stream,
                inline,
                job,
                &mut writer,
                peer,
                &label,
                &mut turn,
                seat,
            )
            .await
        }
        None => match dispatch(
            stream,
            buf,
            job,
            feed,
            &mut writer,
            peer,
            &label,
            started,
            ctx,
        )
        .await
        {
            Some(pumped) => pumped,
            None => return After::Linger,
        },
    };
    let outcome = match outcome {
        Pumped::Complete => true,
        Pumped::Broken => false,
        Pumped::Harakiri => {
            harakiri(stream, &writer, &label, started, ctx).await;
            false
        }
    };
    let ended = Instant::now();
    let duration = ended.saturating_duration_since(started);
    if let Some(observer) = &shared.observer {
        observer.request_finished(ctx.protocol, writer.status, writer.body_bytes, duration);
    }
    if let Some(info) = &info {
        shared.access_log.record(&Entry {
            request: info,
            protocol: ctx.protocol,
            status: writer.status,
            bytes: writer.body_bytes,
            duration,
            complete: outcome,
        });
    }
    if outcome && writer.keep_alive {
        After::KeepAlive(ended)
    } else if outcome {
        closing(wanted_keep_alive, buf)
    } else {
        After::Close
    }
}

/// Answers a body that could not be read: the client's fault (a 4xx, or
/// it went away) or the server's (no room to spool it: a 500).
async fn body_failed<S: Stream>(
    stream: &mut S,
    ctx: &ListenerContext,
    peer: &Peer,
    label: &RequestLabel,
    error: BodyError,
) -> After {
    match error {
        BodyError::Protocol(e) => {
            reject(stream, ctx, peer, &e).await;
            After::Linger
        }
        BodyError::Io(why) => {
            tracing::info!(peer = %peer, request = %label, "client error: {why}");
            After::Close
        }
        BodyError::Spool(why) => {
            tracing::error!(source = "rwsgi", peer = %peer, request = %label, "{why} -> 500");
            let response = simple_response(
                ctx.protocol,
                500,
                reason(500),
                "Internal Server Error\n",
                &[],
            );
            let _ = write_within(stream, &response, ctx.shared.timeouts.write).await;
            After::Linger
        }
    }
}

/// How to close after a response that ended its connection: with a
/// lingering read when the client meant to go on (it may be sending its
/// next request, or a body nobody read) or sent bytes nobody read; plainly
/// when it asked to close and sent nothing more.
fn closing(wanted_keep_alive: bool, buf: &BytesMut) -> After {
    if wanted_keep_alive || !buf.is_empty() {
        After::Linger
    } else {
        After::Close
    }
}
