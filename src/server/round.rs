//! Held final writes: the whole responses of a round of inline calls,
//! written together once every connection that was ready has run its app.
//!
//! A connection whose inline call left its whole response in the write
//! buffer (nothing written yet, the body complete, the connection kept)
//! hands the bytes to its [`Seat`] and goes straight on to wait for its
//! next request. This thread's round writer, a task queued behind the
//! connections that were ready when the first response of the round was
//! handed over, then sends each response with one `send`. The connection's
//! task is not polled a second time per request: with a round of 192
//! connections, that second turn found the task's memory cold (a cache
//! model of this machine's 1 MiB L2 counted 41 data misses per request
//! with it, 20 without).
//!
//! The request's access log line and counters are written when its bytes
//! are handed over: a client gone by the round's send (microseconds later)
//! is noted by its connection at debug level, as for any other write.
//!
//! A response the socket does not take whole, or a client gone, is handed
//! back to its connection ([`Seat::settle`]), which writes the rest with
//! the usual write timeout, or closes. A connection settles its seat
//! before anything else touches the socket (another response, a 4xx, the
//! close), so its bytes keep their order and the descriptor stays open
//! while the round writer may still use it; a connection dropped with
//! bytes queued withdraws them.
//!
//! Everything here runs on one I/O thread: the worker's runtime is a
//! current-thread one (the crate builds tokio without the multi-thread
//! scheduler), so the round writer runs on the thread that queued.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::spare::{self, Kind};
use super::stream::{send, write_within, Stream};

/// Nothing held.
const IDLE: u8 = 0;
/// Bytes wait for the round writer.
const QUEUED: u8 = 1;
/// Bytes wait for the round writer, and the connection waits for them.
const WAITED: u8 = 2;
/// The socket took only part: the rest is the connection's to write.
const REST: u8 = 3;
/// The write failed (the client went away).
const FAILED: u8 = 4;
/// The connection is gone: its queued bytes are dropped unsent.
const WITHDRAWN: u8 = 5;

/// One connection's place in the round: at most one response held.
#[derive(Default)]
pub struct Seat {
    /// Made on the first hand-over (uwsgi and SCGI connections, which
    /// close after one response, never make one).
    slot: Option<Arc<Slot>>,
}

/// What a seat shares with the round writer.
struct Slot {
    state: AtomicU8,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// The response's bytes; what is left of them after a partial send.
    out: BytesMut,
    /// Why the send failed.
    error: Option<io::Error>,
    /// The connection's task, woken when its bytes need it (a rest, a
    /// failure) or when it waits for them.
    waker: Option<Waker>,
}

impl Slot {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Held {
    /// Keeps the task to wake (the same task each time: no clone then).
    fn remember(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }
}

/// This thread's round: the seats whose bytes are to be sent.
struct Round {
    queue: Vec<(Arc<Slot>, RawFd)>,
    writer: Writer,
}

/// The round writer's task on this thread.
enum Writer {
    /// None yet (or its runtime is gone).
    Absent,
    /// Spawned, not yet polled: it will be, and will find the queue.
    Spawned,
    /// Waiting for the next round's first response.
    Parked(Waker),
}

thread_local! {
    static ROUND: RefCell<Round> = const {
        RefCell::new(Round { queue: Vec::new(), writer: Writer::Absent })
    };
}

/// Lives in the round writer's task: when its runtime drops the task, the
/// thread's next hand-over spawns a new one (a test thread runs many
/// runtimes, one after another).
struct WriterAlive;

impl Drop for WriterAlive {
    fn drop(&mut self) {
        let _ = ROUND.try_with(|r| {
            if let Ok(mut round) = r.try_borrow_mut() {
                round.writer = Writer::Absent;
                // Their connections went with the runtime.
                round.queue.clear();
            }
        });
    }
}

impl Seat {
    /// Hands `out`, a whole response for the socket `fd`, to this thread's
    /// round writer. `Err` gives `out` back when the seat still holds bytes
    /// (a connection settles before serving a request, so it does not):
    /// the caller settles, then writes it.
    pub async fn hand_over(&mut self, fd: RawFd, out: BytesMut) -> Result<(), BytesMut> {
        let mut out = Some(out);
        std::future::poll_fn(|cx| Poll::Ready(self.hand_over_now(fd, &mut out, cx))).await
    }

    fn hand_over_now(
        &mut self,
        fd: RawFd,
        out: &mut Option<BytesMut>,
        cx: &Context<'_>,
    ) -> Result<(), BytesMut> {
        let bytes = out.take().unwrap_or_default();
        let slot = self.slot.get_or_insert_with(|| {
            Arc::new(Slot {
                state: AtomicU8::new(IDLE),
                held: Mutex::new(Held::default()),
            })
        });
        if slot.state.load(Ordering::Acquire) != IDLE {
            return Err(bytes);
        }
        ROUND.with(|r| {
            let mut round = r.borrow_mut();
            match &round.writer {
                Writer::Parked(writer) if round.queue.is_empty() => writer.wake_by_ref(),
                Writer::Parked(_) | Writer::Spawned => {}
                Writer::Absent => {
                    let alive = WriterAlive;
                    tokio::spawn(std::future::poll_fn(move |cx| {
                        let _ = &alive;
                        write_round(cx)
                    }));
                    round.writer = Writer::Spawned;
                }
            }
            {
                let mut held = slot.held();
                held.out = bytes;
                held.remember(cx.waker());
            }
            slot.state.store(QUEUED, Ordering::Release);
            round.queue.push((Arc::clone(slot), fd));
            Ok(())
        })
    }

    /// Whether no bytes are held: [`Seat::settle`] has nothing to do.
    #[inline]
    pub fn is_settled(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|s| s.state.load(Ordering::Acquire) == IDLE)
    }

    /// Whether the round writer handed bytes back (a rest to write, or a
    /// failure): [`Seat::settle`] deals with them.
    pub fn needs_settling(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|s| matches!(s.state.load(Ordering::Acquire), REST | FAILED))
    }

    /// Ready when [`Seat::needs_settling`]; the round writer wakes the task
    /// that handed the bytes over.
    pub fn poll_needs_settling(&self) -> Poll<()> {
        if self.needs_settling() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Makes sure no bytes are held: waits for the round writer to send
    /// them, writes what it could not (within `limit`), or reports why
    /// the send failed. After `Ok`, the socket is this connection's alone.
    pub async fn settle<S: Stream>(&mut self, stream: &mut S, limit: Duration) -> io::Result<()> {
        let Some(slot) = &self.slot else {
            return Ok(());
        };
        loop {
            match slot.state.load(Ordering::Acquire) {
                QUEUED | WAITED => {
                    let _ = slot.state.compare_exchange(
                        QUEUED,
                        WAITED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    std::future::poll_fn(|cx| {
                        if !matches!(slot.state.load(Ordering::Acquire), QUEUED | WAITED) {
                            return Poll::Ready(());
                        }
                        slot.held().remember(cx.waker());
                        Poll::Pending
                    })
                    .await;
                }
                REST => {
                    let rest = std::mem::take(&mut slot.held().out);
                    slot.state.store(IDLE, Ordering::Release);
                    write_within(stream, &rest, limit).await?;
                    spare::give(Kind::Write, rest);
                }
                FAILED => {
                    let error = slot.held().error.take();
                    slot.state.store(IDLE, Ordering::Release);
                    return Err(error.unwrap_or_else(|| io::ErrorKind::BrokenPipe.into()));
                }
                _ => return Ok(()),
            }
        }
    }
}

impl Drop for Seat {
    /// Bytes still queued are withdrawn: the socket closes with the seat.
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.state.store(WITHDRAWN, Ordering::Release);
            // The slot's waker is this connection's own task.
            slot.held().waker = None;
        }
    }
}

/// The round writer's task: sends every queued response, then waits for
/// the next round's first.
fn write_round(cx: &mut Context<'_>) -> Poll<()> {
    let mut queue = ROUND.with(|r| {
        let mut round = r.borrow_mut();
        if !matches!(&round.writer, Writer::Parked(w) if w.will_wake(cx.waker())) {
            round.writer = Writer::Parked(cx.waker().clone());
        }
        std::mem::take(&mut round.queue)
    });
    for (slot, fd) in queue.drain(..) {
        send_held(&slot, fd);
    }
    // Keep the queue's memory for the next round.
    ROUND.with(|r| {
        let mut round = r.borrow_mut();
        if round.queue.is_empty() {
            round.queue = queue;
        }
    });
    Poll::Pending
}

/// Sends one seat's bytes, or hands them back to its connection.
fn send_held(slot: &Slot, fd: RawFd) {
    let state = slot.state.load(Ordering::Acquire);
    if !matches!(state, QUEUED | WAITED) {
        // Withdrawn: the descriptor may be closed, or another socket's.
        slot.held().out = BytesMut::new();
        return;
    }
    let mut held = slot.held();
    let mut sent = 0;
    let next = loop {
        if sent == held.out.len() {
            break IDLE;
        }
        match send(fd, &held.out[sent..]) {
            Ok(0) => {
                held.error = Some(io::ErrorKind::WriteZero.into());
                break FAILED;
            }
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break REST,
            Err(e) => {
                held.error = Some(e);
                break FAILED;
            }
        }
    };
    match next {
        // Sent whole: the buffer goes back unadvanced (an advanced one
        // would cost its next user a move back to the start).
        IDLE => spare::give(Kind::Write, std::mem::take(&mut held.out)),
        REST => held.out.advance(sent),
        _ => {}
    }
    slot.state.store(next, Ordering::Release);
    if next != IDLE || state == WAITED {
        if let Some(waker) = &held.waker {
            waker.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::server::stream::{test_runtime, Conn};

    const LIMIT: Duration = Duration::from_secs(5);

    fn pattern(len: usize) -> BytesMut {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()[..].into()
    }

    fn pair() -> (Conn<UnixStream>, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        (Conn::new(server), client)
    }

    /// Whether `client` has bytes to read now.
    fn has_bytes(client: &UnixStream) -> bool {
        let mut byte = 0u8;
        // SAFETY: a peek of at most one byte into a local.
        let n = unsafe {
            libc::recv(
                client.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n > 0
    }

    /// The round's writer runs after the tasks that were ready when the
    /// response was handed over: their apps run before it is sent.
    #[test]
    fn a_handed_over_response_leaves_after_the_tasks_ready_before_it() {
        let (mut conn, mut client) = pair();
        let client_probe = client.try_clone().unwrap();
        test_runtime().block_on(async {
            let before = tokio::spawn(async move { has_bytes(&client_probe) });
            let mut seat = Seat::default();
            seat.hand_over(conn.as_raw_fd(), pattern(100))
                .await
                .unwrap();
            assert!(!before.await.unwrap(), "sent before the round ran");
            seat.settle(&mut conn, LIMIT).await.unwrap();
            assert!(!seat.needs_settling());
        });
        let mut got = vec![0u8; 100];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, pattern(100));
    }

    /// A response longer than the socket takes at once comes back to its
    /// connection, which writes the rest as the client reads.
    #[test]
    fn the_rest_of_a_response_the_socket_did_not_take_is_written_by_its_connection() {
        let (mut conn, mut client) = pair();
        let len = 4 << 20;
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        test_runtime().block_on(async {
            let mut seat = Seat::default();
            seat.hand_over(conn.as_raw_fd(), pattern(len))
                .await
                .unwrap();
            tokio::task::yield_now().await;
            assert!(seat.needs_settling(), "4 MiB fit a Unix socket's buffer");
            seat.settle(&mut conn, LIMIT).await.unwrap();
        });
        drop(conn);
        assert!(reader.join().unwrap() == pattern(len)[..]);
    }

    /// A client gone before the round's send is reported when the
    /// connection settles, which then closes.
    #[test]
    fn a_client_gone_before_the_send_is_reported_by_settle() {
        let (mut conn, client) = pair();
        drop(client);
        test_runtime().block_on(async {
            let mut seat = Seat::default();
            seat.hand_over(conn.as_raw_fd(), pattern(100))
                .await
                .unwrap();
            let err = seat.settle(&mut conn, LIMIT).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            // Settled: the seat takes the next response.
            seat.settle(&mut conn, LIMIT).await.unwrap();
        });
    }

    /// A connection dropped with bytes queued withdraws them: the
    /// descriptor is closed and may already be another socket's, which
    /// must not get them.
    #[test]
    fn a_dropped_seat_withdraws_its_bytes() {
        test_runtime().block_on(async {
            let (conn, first_client) = pair();
            let fd = conn.as_raw_fd();
            let mut seat = Seat::default();
            seat.hand_over(fd, pattern(100)).await.unwrap();
            drop(seat);
            drop(conn);
            // The lowest free descriptor is taken: usually `fd` again.
            let (reused, client) = UnixStream::pair().unwrap();
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            assert!(
                !has_bytes(&client),
                "bytes went to socket {}",
                reused.as_raw_fd()
            );
            assert!(!has_bytes(&first_client));
        });
    }

    /// A thread runs one runtime after another (as tests do): each gets a
    /// writer of its own, and a writer gone with its runtime is replaced.
    #[test]
    fn each_runtime_on_a_thread_gets_a_round_writer() {
        for _ in 0..3 {
            let (mut conn, mut client) = pair();
            test_runtime().block_on(async {
                let mut seat = Seat::default();
                seat.hand_over(conn.as_raw_fd(), pattern(10)).await.unwrap();
                seat.settle(&mut conn, LIMIT).await.unwrap();
            });
            let mut got = vec![0u8; 10];
            client.read_exact(&mut got).unwrap();
        }
    }

    /// A seat holds one response at a time; a second is given back.
    #[test]
    fn a_seat_holds_one_response_at_a_time() {
        let (conn, _client) = pair();
        test_runtime().block_on(async {
            let mut seat = Seat::default();
            seat.hand_over(conn.as_raw_fd(), pattern(10)).await.unwrap();
            let back = seat.hand_over(conn.as_raw_fd(), pattern(20)).await;
            assert_eq!(back.unwrap_err(), pattern(20));
        });
    }
}
