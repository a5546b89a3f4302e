//! The hand-off of a request to the app and of its response back to the
//! socket: to the Python thread pool (events over a bounded channel, while
//! the rest of the body is fed to `wsgi.input`), or inline on this thread a
//! step at a time; plus the 503 for a full queue and the 504 of harakiri.

use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::body::{BodyError, BodyFeed};
use super::respond::{Next, ResponseWriter};
use super::round::Seat;
use super::spare;
use super::stream::{write_within, Stream};
use super::{Inline, ListenerContext, Peer};
use crate::exchange::{Event, EventBuffer, EventSink, Job, RequestLabel};
use crate::protocol::response::{reason, simple_response};

/// Response events buffered between the app's thread and the socket.
const EVENT_QUEUE: usize = 16;
/// Most unread body bytes discarded after a response to keep a connection.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Hands `job` to the Python thread pool and moves its response to the
/// socket. `None` when the pool was full (a 503 was sent).
#[allow(clippy::too_many_arguments)]
pub(super) async fn dispatch<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    mut job: Job,
    feed: Option<BodyFeed>,
    writer: &mut ResponseWriter,
    peer: &Peer,
    label: &RequestLabel,
    started: Instant,
    ctx: &ListenerContext,
) -> Option<Pumped> {
    let shared = &ctx.shared;
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    if let EventSink::Buffer(unused) =
        std::mem::replace(&mut job.events, EventSink::Channel(events_tx))
    {
        spare::give_event_buffer(unused);
    }
    if let Err(job) = shared.dispatcher.dispatch(job) {
        drop(job);
        overloaded(stream, ctx, peer, label).await;
        return None;
    }
    let deadline = shared.harakiri.map(|limit| started + limit);
    Some(pump(stream, buf, events, feed, writer, peer, label, deadline).await)
}

/// Every Python thread is busy and the queue is full: a quick 503.
pub(super) async fn overloaded<S: Stream>(
    stream: &mut S,
    ctx: &ListenerContext,
    peer: &Peer,
    label: &RequestLabel,
) {
    tracing::warn!(
        peer = %peer,
        request = %label,
        "server overloaded: every Python thread is busy and the queue is full -> 503"
    );
    let retry = ctx.shared.retry_after.to_string();
    let response = simple_response(
        ctx.protocol,
        503,
        reason(503),
        "server overloaded, retry later\n",
        &[("Retry-After", &retry)],
    );
    let _ = write_within(stream, &response, ctx.shared.timeouts.write).await;
}

/// Runs the app on this thread a step at a time, writing each step's
/// output before the next (so chunks stream and a gone client is noticed).
///
/// A response whose bytes are all known (a filled Content-Length, or no
/// body) is not written at once: the call goes on to its end (the
/// iterable's last `next()` and `close()`), `turn` (the Python turn) is
/// given up, and the write waits for the other connections that are
/// ready now to run their apps first, so the responses of one round
/// leave back to back. A client (or nginx) then finds several responses
/// per wake-up instead of being woken, and preempting this worker, once
/// per response; bjoern gets the same from writing only on its next round
/// of events. One round of apps is the most a response waits; alone, it
/// waits for nothing. An app that once works on for long after its last
/// byte (post-response work in `close()`) has its bytes written at once
/// from then on ([`Inline::saw_tail`]). With a `seat`, the wait is the
/// round writer's, not this connection's: see [`finish_inline`].
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_inline<S: Stream>(
    stream: &mut S,
    inline: &Inline,
    job: Job,
    writer: &mut ResponseWriter,
    peer: &Peer,
    label: &RequestLabel,
    turn: &mut Option<tokio::sync::SemaphorePermit<'_>>,
    seat: Option<&mut Seat>,
) -> Pumped {
    let EventSink::Buffer(buffer) = job.events.clone() else {
        unreachable!("inline jobs carry a buffer sink");
    };
    let hold = inline.holds_final_bytes();
    let mut call = inline.runner.start(job);
    loop {
        if call.is_none() {
            // The call is over: all it produced is in the buffer.
            let ended = Ended {
                turn,
                seat,
                peer,
                label,
            };
            return finish_inline(stream, buffer, writer, ended).await;
        }
        let events = std::mem::take(&mut *buffer.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(over) = apply_events(stream, writer, events, peer, label).await {
            if let Some(call) = call.take() {
                call.abandon();
            }
            return over;
        }
        let complete = hold && writer.body_complete();
        if !complete {
            if let Err(e) = writer.flush(stream).await {
                tracing::debug!(peer = %peer, request = %label, "client went away: {e}");
                if let Some(call) = call.take() {
                    call.abandon();
                }
                return Pumped::Broken;
            }
        }
        if let Some(c) = call.as_mut() {
            // Each piece the app makes goes out at once while the socket
            // takes it, without leaving the GIL or this loop; the first
            // piece that cannot (a full socket, a file, a large piece)
            // is left for the loop above. Final bytes wait (see above).
            let mut sent = || {
                let mut events = buffer.lock().unwrap_or_else(|e| e.into_inner());
                let mut drain = events.drain(..);
                if let Err(needs_socket) = writer.buffer(&mut drain) {
                    let rest: Vec<Event> = std::iter::once(needs_socket).chain(drain).collect();
                    *events = rest;
                    return false;
                }
                drop(drain);
                (hold && writer.body_complete()) || matches!(writer.try_flush(&*stream), Ok(true))
            };
            let began = complete.then(Instant::now);
            if c.step(&mut sent) {
                call = None;
                if let Some(began) = began {
                    inline.saw_tail(began.elapsed());
                }
            }
        }
    }
}

/// How an inline call that is over leaves (see [`finish_inline`]).
struct Ended<'a, 'p> {
    /// The Python turn, given up before anything is written.
    turn: &'a mut Option<tokio::sync::SemaphorePermit<'p>>,
    /// Where a whole response may be handed to the round's writer; `None`
    /// when it must be written here (pipelined bytes wait to be served).
    seat: Option<&'a mut Seat>,
    peer: &'a Peer,
    label: &'a RequestLabel,
}

/// Writes the output of an inline call that is over, after giving up the
/// Python turn (see [`run_inline`]). What needs no socket (the head, small
/// pieces) is encoded into the write buffer first, so the memory it held is
/// freed before the other connections of the round run their apps: held
/// as events, a round of 32 responses kept 32 of each of their allocations
/// alive at once, more than malloc's per-thread cache takes back (7 per
/// size), and most of every request's allocations then took its slow path.
/// The emptied event buffer goes back to the pool for the next call.
///
/// A response that is whole in the buffer then goes to the round's writer
/// (`server::round`), which sends it after the other connections of the
/// round: this connection's task goes on to wait for its next request
/// without a second turn. Any other waits for the round here and writes
/// its own bytes.
async fn finish_inline<S: Stream>(
    stream: &mut S,
    buffer: EventBuffer,
    writer: &mut ResponseWriter,
    ended: Ended<'_, '_>,
) -> Pumped {
    let Ended {
        turn,
        seat,
        peer,
        label,
    } = ended;
    let (needs_socket, rest) = {
        let mut events = buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut events = events.drain(..);
        let needs_socket = writer.buffer(&mut events).err();
        // Usually nothing is left after the end (and nothing allocated).
        let rest: Vec<Event> = events.collect();
        (needs_socket, rest)
    };
    spare::give_event_buffer(buffer);
    let had_turn = turn.take().is_some();
    if let (Some(seat), Some(Event::End), true) = (seat, &needs_socket, rest.is_empty()) {
        if let Some(whole) = writer.take_whole() {
            match seat.hand_over(stream.as_raw_fd(), whole).await {
                Ok(()) => return Pumped::Complete,
                Err(whole) => {
                    writer.put_back(whole);
                    // The held bytes go first.
                    if let Err(e) = seat.settle(stream, writer.write_timeout()).await {
                        tracing::debug!(peer = %peer, request = %label, "client went away: {e}");
                        return Pumped::Broken;
                    }
                }
            }
        }
    }
    if had_turn {
        YieldOnce::default().await;
    }
    let events = needs_socket.into_iter().chain(rest);
    if let Some(over) = apply_events(stream, writer, events, peer, label).await {
        return over;
    }
    tracing::error!(source = "rwsgi", request = %label, "internal error: the app's response ended without End");
    Pumped::Broken
}

/// Writes `events` in order. `Some` once the response is over: sent in
/// full, aborted by the app, or the client went away (logged).
async fn apply_events<S: Stream>(
    stream: &mut S,
    writer: &mut ResponseWriter,
    events: impl IntoIterator<Item = Event>,
    peer: &Peer,
    label: &RequestLabel,
) -> Option<Pumped> {
    for event in events {
        match writer.apply(stream, event).await {
            Ok(Next::More) => {}
            Ok(Next::Done) => return Some(Pumped::Complete),
            Ok(Next::Abort) => return Some(Pumped::Broken),
            Err(e) => {
                tracing::debug!(peer = %peer, request = %label, "client went away: {e}");
                return Some(Pumped::Broken);
            }
        }
    }
    None
}

/// Lets every other task that is ready now run once before this one goes
/// on: the task wakes itself, so it goes to the back of the run queue,
/// ahead of what the next poll of the sockets brings (tokio's `yield_now`
/// would wait for that poll, an extra `epoll_wait` per request).
#[derive(Default)]
struct YieldOnce {
    yielded: bool,
}

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.yielded {
            return std::task::Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// How a response ended.
pub(super) enum Pumped {
    /// Sent in full.
    Complete,
    /// The client went away, or the app aborted it.
    Broken,
    /// The app ran past the harakiri deadline.
    Harakiri,
}

/// A request ran too long: answer 504 if nothing was sent yet (else the
/// connection just closes), log it, and tell the worker, which replaces
/// itself (the stuck Python thread cannot be stopped any other way).
pub(super) async fn harakiri<S: Stream>(
    stream: &mut S,
    writer: &ResponseWriter,
    label: &RequestLabel,
    started: Instant,
    ctx: &ListenerContext,
) {
    let elapsed = started.elapsed();
    tracing::error!(
        source = "app",
        request = %label,
        "harakiri: request ran for {:.1} s, longer than --harakiri {} s; answering 504 and replacing this worker",
        elapsed.as_secs_f64(),
        ctx.shared.harakiri.map(|h| h.as_secs()).unwrap_or_default()
    );
    if !writer.head_sent() {
        let response = simple_response(
            writer.protocol(),
            504,
            reason(504),
            "the app did not answer in time (harakiri)\n",
            &[],
        );
        let _ = write_within(stream, &response, ctx.shared.timeouts.write).await;
    }
    if let Some(observer) = &ctx.shared.observer {
        observer.harakiri(label, elapsed);
    }
}

/// Moves response events to the socket while feeding the body to the app.
#[allow(clippy::too_many_arguments)]
async fn pump<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    mut events: mpsc::Receiver<Event>,
    mut feed: Option<BodyFeed>,
    writer: &mut ResponseWriter,
    peer: &Peer,
    label: &RequestLabel,
    deadline: Option<Instant>,
) -> Pumped {
    let harakiri = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(harakiri);
    loop {
        let feeding = feed.as_ref().is_some_and(BodyFeed::active);
        let event = if writer.has_pending() {
            // Coalesce what is ready before writing.
            match events.try_recv() {
                Ok(event) => Some(event),
                Err(mpsc::error::TryRecvError::Empty) => {
                    if let Err(e) = writer.flush(stream).await {
                        tracing::debug!(peer = %peer, request = %label, "client went away: {e}");
                        return Pumped::Broken;
                    }
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        } else {
            tokio::select! {
                event = events.recv() => event,
                _ = &mut harakiri => return Pumped::Harakiri,
                result = async { feed.as_mut().expect("feeding").step(stream, buf).await }, if feeding => {
                    if let Err(e) = result {
                        match &e {
                            BodyError::Spool(why) => tracing::error!(source = "rwsgi", peer = %peer, request = %label, "{why}"),
                            _ => tracing::info!(peer = %peer, request = %label, "client error while reading the body: {e}"),
                        }
                        // The app sees the failure on wsgi.input; its
                        // response still goes out, then the connection closes.
                        writer.keep_alive = false;
                    }
                    continue;
                }
            }
        };
        let Some(event) = event else {
            tracing::error!(source = "rwsgi", request = %label, "internal error: the app's thread dropped the response");
            if !writer.head_sent() {
                let response = simple_response(
                    writer.protocol(),
                    500,
                    reason(500),
                    "Internal Server Error\n",
                    &[],
                );
                let _ = write_within(stream, &response, writer.write_timeout()).await;
            }
            return Pumped::Broken;
        };
        match writer.apply(stream, event).await {
            Ok(Next::More) => {}
            Ok(Next::Done) => break,
            Ok(Next::Abort) => return Pumped::Broken,
            Err(e) => {
                tracing::debug!(peer = %peer, request = %label, "client went away: {e}");
                return Pumped::Broken;
            }
        }
    }
    if let Some(feed) = feed.as_mut() {
        if !feed.decoder.is_done() && !feed.drain(stream, buf, DRAIN_LIMIT).await {
            writer.keep_alive = false;
        }
    }
    Pumped::Complete
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex, Weak};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::exchange::{InlineCall, InlineRunner, ServiceTime};
    use crate::protocol::response::{Head, RequestShape};
    use crate::protocol::Protocol;
    use crate::server::stream::Conn;
    use crate::server::Inline;

    /// A body piece whose memory the test can see being freed.
    struct Tracked(#[allow(dead_code)] Arc<()>);

    impl AsRef<[u8]> for Tracked {
        fn as_ref(&self) -> &[u8] {
            b"hello"
        }
    }

    /// What was true when the connection gave up the Python turn.
    #[derive(Debug, Default, PartialEq)]
    struct AtTheYield {
        piece_freed: bool,
        client_has_bytes: bool,
    }

    /// An app that answers at once, and a check, run by the next task in
    /// line: the one the connection lets go first when it yields.
    struct Answer {
        client: Arc<Mutex<std::net::TcpStream>>,
        seen: Arc<Mutex<Option<AtTheYield>>>,
    }

    impl InlineRunner for Answer {
        fn start(&self, job: Job) -> Option<Box<dyn InlineCall>> {
            let owner = Arc::new(());
            let piece: Weak<()> = Arc::downgrade(&owner);
            let EventSink::Buffer(events) = &job.events else {
                unreachable!("inline jobs carry a buffer sink")
            };
            events.lock().unwrap().extend([
                Event::Head {
                    head: Head::new(b"200 OK"),
                    known_length: Some(5),
                },
                Event::Data(Bytes::from_owner(Tracked(owner))),
                Event::End,
            ]);
            let (client, seen) = (self.client.clone(), self.seen.clone());
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                let client_has_bytes = client.lock().unwrap().read(&mut byte).is_ok();
                *seen.lock().unwrap() = Some(AtTheYield {
                    piece_freed: piece.upgrade().is_none(),
                    client_has_bytes,
                });
            });
            None
        }
    }

    /// A response held for the round is encoded before the connection
    /// gives up the Python turn: the app's pieces are freed then, not after
    /// every other connection of the round has run its app (which kept a
    /// whole round's allocations alive, past malloc's per-thread cache);
    /// the bytes still leave only after the yield.
    #[test]
    fn a_held_response_frees_the_apps_output_before_the_round_goes_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let client = Arc::new(Mutex::new(client));
        let seen = Arc::new(Mutex::new(None));
        let runner = Answer {
            client: client.clone(),
            seen: seen.clone(),
        };
        let inline = Inline::new(Arc::new(runner), 16, Arc::new(ServiceTime::default()));
        let job = Job::get_for_tests();
        let label = job.label.clone();
        let shape = RequestShape {
            protocol: Protocol::Http,
            head: false,
            http10: false,
            keep_alive: true,
            extra: b"",
        };
        let peer = Peer {
            addr: Bytes::from_static(b"127.0.0.1"),
            port: Bytes::from_static(b"1"),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pumped = runtime.block_on(async {
            let mut conn = Conn::new(server);
            let mut writer = ResponseWriter::new(shape, Duration::from_secs(5));
            let mut turn = inline.admit().await;
            let mut seat = Seat::default();
            let pumped = run_inline(
                &mut conn,
                &inline,
                job,
                &mut writer,
                &peer,
                &label,
                &mut turn,
                Some(&mut seat),
            )
            .await;
            seat.settle(&mut conn, Duration::from_secs(5))
                .await
                .unwrap();
            pumped
        });
        assert!(matches!(pumped, Pumped::Complete));
        assert_eq!(
            seen.lock().unwrap().take(),
            Some(AtTheYield {
                piece_freed: true,
                client_has_bytes: false,
            })
        );
        let client = client.lock().unwrap();
        client.set_nonblocking(false).unwrap();
        let mut reply = vec![0u8; 512];
        let n = (&*client).read(&mut reply).unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]);
        assert!(
            reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.ends_with("\r\n\r\nhello"),
            "{reply:?}"
        );
    }
}
