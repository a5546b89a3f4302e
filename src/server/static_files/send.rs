//! Writes a static reply for the connection's protocol (one write for
//! the head and a small body, sendfile for a large one), logs it like an
//! app response, and reads and drops a request body so an HTTP
//! connection can be kept.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::reply::{Payload, Reply};
use crate::exchange::RequestLabel;
use crate::protocol::response::{encode_head, Encoded, Framing, Head, RequestShape};
use crate::protocol::{BodyFraming, Request};
use crate::server::access_log::{Entry, RequestInfo};
use crate::server::body::{BodyDecoder, Piece};
use crate::server::date::http_date;
use crate::server::stream::{sendfile, write_within, Stream};
use crate::server::{ListenerContext, Peer};

/// Most request-body bytes read and dropped after a static response (a
/// POST answered 405, a GET with a body) to keep the connection; a larger
/// body closes it.
const DISCARD_LIMIT: u64 = 64 * 1024;

/// Writes `reply`, logs it, tells the observer; returns whether the
/// connection may be kept.
pub(super) async fn send<S: Stream>(
    stream: &mut S,
    reply: Reply,
    request: &Request,
    peer: &Peer,
    ctx: &ListenerContext,
    started: Instant,
    label: &RequestLabel,
) -> bool {
    let shared = &ctx.shared;
    let shape = RequestShape {
        protocol: ctx.protocol,
        head: request.head,
        http10: request.http10,
        keep_alive: request.keep_alive
            && body_discardable(request)
            && !shared.lifecycle.is_draining(),
        extra: shared.add_headers,
    };
    let mut head = Head::new(reply.status.as_bytes());
    for (name, value) in &reply.headers {
        head.push(name, value);
    }
    let code = head.code();
    if let Some(reason) = &reply.refused {
        if code >= 500 {
            tracing::error!(source = "rwsgi", peer = %peer, request = %label, "static: {reason} -> {code}");
        } else {
            tracing::info!(peer = %peer, listener = %ctx.name, request = %label, "client error: static: {reason} -> {code}");
        }
    }
    let mut out = BytesMut::with_capacity(512);
    let Encoded {
        framing,
        keep_alive,
    } = encode_head(&mut out, &head, None, shape, &http_date());
    let body = if framing == Framing::Empty {
        Payload::Empty
    } else {
        reply.body
    };
    let written = write(stream, out, body, shared.timeouts.write).await;
    let body_bytes = match &written {
        Ok(n) => *n,
        Err((n, e)) => {
            tracing::debug!(peer = %peer, request = %label, "static: response not completed: {e}");
            *n
        }
    };
    let elapsed = started.elapsed();
    if let Some(observer) = &shared.observer {
        observer.request_finished(ctx.protocol, code, body_bytes, elapsed);
    }
    if shared.access_log.wants(code) {
        shared.access_log.record(&Entry {
            request: &RequestInfo::of(request, label),
            protocol: ctx.protocol,
            status: code,
            bytes: body_bytes,
            duration: elapsed,
            complete: written.is_ok(),
        });
    }
    written.is_ok() && keep_alive
}

/// Writes the encoded head `out` and the body; returns the body bytes
/// sent, also on failure.
async fn write<S: Stream>(
    stream: &mut S,
    mut out: BytesMut,
    body: Payload,
    timeout: Duration,
) -> Result<u64, (u64, io::Error)> {
    match body {
        Payload::Empty => write_within(stream, &out, timeout)
            .await
            .map(|()| 0)
            .map_err(|e| (0, e)),
        Payload::Bytes(bytes) => {
            out.extend_from_slice(&bytes);
            match write_within(stream, &out, timeout).await {
                Ok(()) => Ok(bytes.len() as u64),
                Err(e) => Err((0, e)),
            }
        }
        Payload::File { file, offset, len } => {
            write_within(stream, &out, timeout)
                .await
                .map_err(|e| (0, e))?;
            match sendfile(stream, &file, offset, len, timeout).await {
                Ok(sent) if sent == len => Ok(sent),
                Ok(sent) => Err((
                    sent,
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file shrank: sent {sent} of {len} bytes"),
                    ),
                )),
                // sendfile's partial progress is not reported on error.
                Err(e) => Err((0, e)),
            }
        }
    }
}

/// Whether the request's body can be read and dropped after the response:
/// not when the client waits for a `100 Continue` (it has not sent it),
/// nor when it is announced larger than [`DISCARD_LIMIT`]. A chunked body
/// is tried.
fn body_discardable(request: &Request) -> bool {
    match request.body {
        BodyFraming::Length(0) => true,
        _ if request.expect_continue => false,
        BodyFraming::Length(n) => n <= DISCARD_LIMIT,
        BodyFraming::Chunked => true,
    }
}

/// Reads and drops the request's body (the next request follows it);
/// false when it is too large, broken or waits for a `100 Continue`.
pub(super) async fn discard_body<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    request: &Request,
    ctx: &ListenerContext,
) -> bool {
    let mut decoder = BodyDecoder::new(request.body);
    if decoder.is_done() {
        return true;
    }
    if !body_discardable(request) {
        return false;
    }
    let mut discarded = 0u64;
    loop {
        match decoder.read(stream, buf, ctx.shared.timeouts.body).await {
            Ok(Piece::Data(data)) => {
                discarded += data.len() as u64;
                if discarded > DISCARD_LIMIT {
                    return false;
                }
            }
            Ok(Piece::End) => return true,
            Err(_) => return false,
        }
    }
}
