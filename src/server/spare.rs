//! Buffers between uses, one pool per I/O thread and kind. Each request
//! used to allocate its buffers and free them when done; reusing them
//! saves that malloc and free on every request (and for response heads,
//! glibc's slow path: a 1 KiB buffer is past its per-thread cache, so
//! every one went through the bins and a consolidation). Idle connections
//! still hold none.
//!
//! A pool is as deep as the requests one worker has in flight at once: a
//! round of held inline responses (see `handoff::run_inline`) has a read
//! and a write buffer out per connection. Sixteen deep, a round of 32
//! connections freed and allocated 16 of each kind per round, half of
//! them by malloc's slow path (4 KiB is past its per-thread cache).
//!
//! Inline calls' event lists are pooled the same way (see
//! [`event_buffer`]): each was a reference count, a lock and a list, two
//! allocations per request.

use bytes::BytesMut;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::thread::LocalKey;

use crate::exchange::EventBuffer;

/// Buffers kept per thread and kind; more are freed. At most 128 x 64 KiB
/// per kind, and about 128 x 5 KiB for small requests: memory the worker
/// used at its busiest.
const KEPT: usize = 128;
/// A buffer that grew past this (a large body read ahead, a long run of
/// small streamed pieces) is freed instead of kept.
const KEPT_CAPACITY: usize = 64 * 1024;

/// Room for the usual inline call's events: the head, one body piece and
/// the end.
const EVENTS: usize = 4;
/// An event buffer that grew past this (a stream the socket was slow to
/// take) is freed instead of kept.
const KEPT_EVENTS: usize = 16;

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITES: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static EVENT_BUFFERS: RefCell<Vec<EventBuffer>> = const { RefCell::new(Vec::new()) };
}

/// What a buffer is for.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A connection's request bytes.
    Read,
    /// A response's head and coalesced small body pieces.
    Write,
}

fn pool(kind: Kind) -> &'static LocalKey<RefCell<Vec<BytesMut>>> {
    match kind {
        Kind::Read => &READS,
        Kind::Write => &WRITES,
    }
}

/// A buffer from the pool, or an empty one (which allocates on its first
/// reserve).
pub fn take(kind: Kind) -> BytesMut {
    pool(kind)
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_default()
}

/// Returns a buffer whose contents are no longer needed. Its memory may
/// still be shared with a request's bytes; `reserve` then allocates
/// afresh instead of reusing it.
pub fn give(kind: Kind, mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > KEPT_CAPACITY {
        return;
    }
    buf.clear();
    pool(kind).with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < KEPT {
            spare.push(buf);
        }
    });
}

/// An empty buffer for an inline call's events: one from the pool, or a
/// new one (two allocations, the count and lock and the events' room).
pub fn event_buffer() -> EventBuffer {
    EVENT_BUFFERS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Arc::new(Mutex::new(Vec::with_capacity(EVENTS))))
}

/// Returns an event buffer whose call is over. Kept only if nothing else
/// holds it (the app's `start_response` lets go of it when its request
/// ends) and its lock was never poisoned; its events are dropped.
pub fn give_event_buffer(mut buffer: EventBuffer) {
    let Some(Ok(events)) = Arc::get_mut(&mut buffer).map(Mutex::get_mut) else {
        return;
    };
    if events.capacity() > KEPT_EVENTS {
        return;
    }
    events.clear();
    EVENT_BUFFERS.with_borrow_mut(|spare| {
        if spare.len() < KEPT {
            spare.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_with_its_memory() {
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(b"response head");
        let at = buf.as_ptr();
        give(Kind::Write, buf);
        let again = take(Kind::Write);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at);
        assert!(again.capacity() >= 1024);
        assert_eq!(take(Kind::Read).capacity(), 0, "kinds do not mix");
    }

    #[test]
    fn an_overgrown_buffer_is_freed() {
        for kind in [Kind::Read, Kind::Write] {
            give(kind, BytesMut::with_capacity(KEPT_CAPACITY + 1));
            assert_eq!(take(kind).capacity(), 0);
        }
    }

    #[test]
    fn an_event_buffer_is_reused_only_when_nothing_else_holds_it() {
        use crate::exchange::Event;
        let buffer = event_buffer();
        buffer.lock().unwrap().push(Event::End);
        let at = Arc::as_ptr(&buffer);
        let held = buffer.clone();
        give_event_buffer(buffer);
        assert_eq!(
            EVENT_BUFFERS.with_borrow(Vec::len),
            0,
            "still held: not kept"
        );
        give_event_buffer(held);
        let again = event_buffer();
        assert_eq!(Arc::as_ptr(&again), at, "kept once its call let go");
        let events = again.lock().unwrap();
        assert!(events.is_empty(), "its events were dropped");
        assert!(events.capacity() >= EVENTS);
    }

    #[test]
    fn an_overgrown_event_buffer_is_freed() {
        let buffer = event_buffer();
        buffer.lock().unwrap().reserve(KEPT_EVENTS + 1);
        give_event_buffer(buffer);
        assert_eq!(EVENT_BUFFERS.with_borrow(Vec::len), 0);
    }

    /// A round of held responses has a buffer of each kind out per
    /// connection: all of them come back to the pool, none is freed.
    #[test]
    fn a_round_of_64_connections_keeps_all_its_buffers() {
        for kind in [Kind::Read, Kind::Write] {
            let out: Vec<BytesMut> = (0..64).map(|_| BytesMut::with_capacity(4096)).collect();
            let at: Vec<*const u8> = out.iter().map(|b| b.as_ptr()).collect();
            for buf in out {
                give(kind, buf);
            }
            let mut again: Vec<*const u8> = (0..64).map(|_| take(kind).as_ptr()).collect();
            again.reverse();
            assert_eq!(again, at, "every buffer was kept");
        }
    }
}
