//! The scoreboard: a small shared-memory table the master creates before
//! forking, with one slot per worker process. Workers write their state
//! (ready, requests served, why they want to be recycled); the master reads
//! it to sequence reloads and replace recycling workers, and the stats
//! server reads it too. Only atomics live here, so no locks cross processes.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Why a worker asked to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Recycle {
    /// Not recycling.
    No = 0,
    /// `--max-requests` reached.
    MaxRequests = 1,
    /// `--max-worker-lifetime` reached.
    Lifetime = 2,
    /// `--reload-on-rss` exceeded.
    Rss = 3,
    /// A request ran past `--harakiri`.
    Harakiri = 4,
    /// rwsgi panicked serving a request (a bug): what the worker shares
    /// between requests may be half changed.
    Panic = 5,
}

impl Recycle {
    fn from_u32(v: u32) -> Recycle {
        match v {
            1 => Recycle::MaxRequests,
            2 => Recycle::Lifetime,
            3 => Recycle::Rss,
            4 => Recycle::Harakiri,
            5 => Recycle::Panic,
            _ => Recycle::No,
        }
    }

    /// A phrase for logs.
    pub fn describe(self) -> &'static str {
        match self {
            Recycle::No => "not recycling",
            Recycle::MaxRequests => "max-requests reached",
            Recycle::Lifetime => "max-worker-lifetime reached",
            Recycle::Rss => "reload-on-rss exceeded",
            Recycle::Harakiri => "harakiri",
            Recycle::Panic => "rwsgi panicked serving a request",
        }
    }
}

/// One worker's slot.
#[repr(C)]
#[derive(Debug)]
pub struct Slot {
    /// The worker's pid, 0 when the slot is free.
    pub pid: AtomicI32,
    /// The worker number (1..=processes) shown in titles and logs.
    pub id: AtomicU32,
    /// Set once the worker's listeners are accepting.
    pub ready: AtomicU32,
    /// A [`Recycle`] reason once the worker is draining to be replaced.
    pub recycle: AtomicU32,
    /// Requests completed.
    pub requests: AtomicU64,
    /// Requests whose app raised.
    pub exceptions: AtomicU64,
    /// Python threads running a request now.
    pub busy: AtomicU32,
    /// Sum of request durations in microseconds (for the average).
    pub busy_micros: AtomicU64,
    /// Response body bytes written.
    pub tx: AtomicU64,
    /// When the worker started, in seconds since the epoch.
    pub last_spawn: AtomicU64,
    /// Requests waiting for a Python thread.
    pub queued: AtomicU32,
    /// The worker's accept loops now leaving new connections to the others
    /// because every thread it has is busy (one per listener at most).
    pub leaving: AtomicU32,
    /// Connections open now. The other workers read it to balance
    /// accepting (see `server::AcceptDeferral`).
    pub connections: AtomicU32,
    /// Per Python thread (the first [`CORES`]): requests served.
    pub core_requests: [AtomicU64; CORES],
    /// Per Python thread (the first [`CORES`]): 1 while in a request.
    pub core_busy: [AtomicU32; CORES],
    /// Requests by protocol (http, uwsgi, scgi) and status class (1xx..5xx).
    pub by_status: [[AtomicU64; 5]; 3],
    /// Request durations: counts per [`LATENCY_BUCKETS`] bound (the last is
    /// +Inf).
    pub latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// Python threads per worker whose activity the scoreboard tracks.
pub const CORES: usize = 64;

/// Upper bounds, in seconds, of the request latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Slot {
    /// The recycle reason the worker set.
    pub fn recycle_reason(&self) -> Recycle {
        Recycle::from_u32(self.recycle.load(Ordering::Acquire))
    }

    fn clear(&self) {
        self.pid.store(0, Ordering::Release);
        self.id.store(0, Ordering::Relaxed);
        self.ready.store(0, Ordering::Relaxed);
        self.recycle.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.exceptions.store(0, Ordering::Relaxed);
        self.busy.store(0, Ordering::Relaxed);
        self.busy_micros.store(0, Ordering::Relaxed);
        self.tx.store(0, Ordering::Relaxed);
        self.last_spawn.store(0, Ordering::Relaxed);
        self.queued.store(0, Ordering::Relaxed);
        self.leaving.store(0, Ordering::Relaxed);
        self.connections.store(0, Ordering::Relaxed);
        for c in self.core_requests.iter() {
            c.store(0, Ordering::Relaxed);
        }
        for c in self.core_busy.iter() {
            c.store(0, Ordering::Relaxed);
        }
        for c in self.by_status.iter().flatten() {
            c.store(0, Ordering::Relaxed);
        }
        for c in self.latency.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Counts one finished request.
    pub fn record(
        &self,
        protocol: usize,
        status: u16,
        body_bytes: u64,
        elapsed: std::time::Duration,
    ) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.tx.fetch_add(body_bytes, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(row) = self.by_status.get(protocol) {
            row[class].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared table. Created once by the master; inherited by every worker
/// through fork (the mapping is `MAP_SHARED`).
pub struct Scoreboard {
    /// The mapping's start.
    slots: *mut Slot,
    /// How many slots (twice the workers: during a reload old and new
    /// workers run side by side).
    len: usize,
}

// SAFETY: the mapping lives for the whole process and holds only atomics.
unsafe impl Send for Scoreboard {}
// SAFETY: as above; every access goes through atomics.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Maps a zeroed table of `len` slots shared with future children.
    pub fn new(len: usize) -> std::io::Result<Scoreboard> {
        let bytes = len.max(1) * std::mem::size_of::<Slot>();
        // SAFETY: an anonymous shared mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // Anonymous mappings are zero-filled, which is a valid empty Slot.
        Ok(Scoreboard {
            slots: ptr.cast(),
            len,
        })
    }

    /// Slot `index`.
    pub fn slot(&self, index: usize) -> &Slot {
        assert!(index < self.len, "slot {index} out of {}", self.len);
        // SAFETY: in bounds; the mapping outlives `self`.
        unsafe { &*self.slots.add(index) }
    }

    /// Every slot.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        (0..self.len).map(|i| self.slot(i))
    }

    /// Claims a free slot for a worker about to start, resetting it.
    pub fn claim(&self, id: u32) -> Option<usize> {
        (0..self.len).find(|&i| {
            let slot = self.slot(i);
            if slot.pid.load(Ordering::Acquire) == 0 && slot.id.load(Ordering::Acquire) == 0 {
                slot.clear();
                slot.id.store(id, Ordering::Release);
                true
            } else {
                false
            }
        })
    }

    /// The slots of the workers other than slot `except` that take
    /// connections: started, accepting, and not draining to be replaced.
    fn accepting_except(&self, except: usize) -> impl Iterator<Item = &Slot> {
        self.slots().enumerate().filter_map(move |(index, slot)| {
            let accepting = index != except
                && slot.pid.load(Ordering::Acquire) != 0
                && slot.ready.load(Ordering::Acquire) != 0
                && slot.recycle_reason() == Recycle::No;
            accepting.then_some(slot)
        })
    }

    /// The fewest requests (running or waiting for a thread) any worker
    /// but slot `except`'s has.
    pub fn least_requests_except(&self, except: usize) -> Option<usize> {
        self.accepting_except(except)
            .map(|slot| {
                (slot.busy.load(Ordering::Relaxed) + slot.queued.load(Ordering::Relaxed)) as usize
            })
            .min()
    }

    /// The fewest connections any worker but slot `except`'s has open,
    /// of those not leaving new connections to the others.
    pub fn fewest_connections_except(&self, except: usize) -> Option<usize> {
        self.accepting_except(except)
            .filter(|slot| slot.leaving.load(Ordering::Relaxed) == 0)
            .map(|slot| slot.connections.load(Ordering::Relaxed) as usize)
            .min()
    }

    /// Frees a slot after its worker exited.
    pub fn release(&self, index: usize) {
        self.slot(index).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `n` started, accepting workers.
    fn workers(n: usize) -> Scoreboard {
        let board = Scoreboard::new(n).unwrap();
        for i in 0..n {
            let slot = board.slot(board.claim(i as u32 + 1).unwrap());
            slot.pid.store(1000 + i as i32, Ordering::Release);
            slot.ready.store(1, Ordering::Release);
        }
        board
    }

    #[test]
    fn the_fewest_connections_are_the_other_accepting_workers() {
        let board = workers(4);
        for (i, open) in [(0, 1), (1, 9), (2, 5), (3, 2)] {
            board.slot(i).connections.store(open, Ordering::Relaxed);
        }
        assert_eq!(board.fewest_connections_except(0), Some(2));
        assert_eq!(board.fewest_connections_except(3), Some(1));
        // Draining to be replaced, or not ready yet: not a place to leave
        // connections.
        board
            .slot(3)
            .recycle
            .store(Recycle::MaxRequests as u32, Ordering::Release);
        board.slot(2).ready.store(0, Ordering::Release);
        assert_eq!(board.fewest_connections_except(0), Some(9));
    }

    #[test]
    fn a_worker_leaving_connections_to_the_others_is_not_left_any() {
        let board = workers(3);
        for (i, open) in [(0, 6), (1, 0), (2, 3)] {
            board.slot(i).connections.store(open, Ordering::Relaxed);
        }
        board.slot(1).leaving.store(1, Ordering::Relaxed);
        assert_eq!(board.fewest_connections_except(0), Some(3));
        board.slot(2).leaving.store(2, Ordering::Relaxed);
        assert_eq!(board.fewest_connections_except(0), None);
        // Its requests still count for the other rule.
        board.slot(1).busy.store(1, Ordering::Relaxed);
        board.slot(2).queued.store(4, Ordering::Relaxed);
        assert_eq!(board.least_requests_except(0), Some(1));
    }
}
