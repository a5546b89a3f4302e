//! The hand-off between the I/O side (tokio, `server/`) and the Python side
//! (`wsgi/`). Neither side sees the other's types: a [`Job`] goes one way,
//! body pieces and response [`Event`]s travel over bounded channels, so a
//! slow client slows its own request only and memory stays bounded.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::protocol::response::Head;
use crate::protocol::Request;

/// One request handed to the Python thread pool.
#[derive(Debug)]
pub struct Job {
    /// The decoded request, with connection facts (`REMOTE_ADDR`,
    /// `SERVER_NAME`...) already filled in.
    pub request: Request,
    /// Where `wsgi.input` reads from.
    pub body: Body,
    /// Where the response goes.
    pub events: EventSink,
    /// `METHOD path`, for log lines that name the request.
    pub label: RequestLabel,
}

#[cfg(test)]
impl Job {
    /// A bodiless `GET /` whose response events are buffered, as inline
    /// calls take them.
    pub fn get_for_tests() -> Job {
        Job::get_for_tests_at(b"/")
    }

    /// A bodiless `GET path`, its events buffered.
    pub fn get_for_tests_at(path: &'static [u8]) -> Job {
        let request = Request {
            vars: vec![
                (
                    Bytes::from_static(b"REQUEST_METHOD"),
                    Bytes::from_static(b"GET"),
                ),
                (Bytes::from_static(b"PATH_INFO"), Bytes::from_static(path)),
            ],
            body: crate::protocol::BodyFraming::Length(0),
            keep_alive: true,
            expect_continue: false,
            http10: false,
            head: false,
        };
        let label = RequestLabel::of(&request);
        Job {
            request,
            body: Body::Buffered(Bytes::new()),
            events: EventSink::buffer().0,
            label,
        }
    }
}

/// `METHOD /path?query`, naming a request in log lines. Holds shared
/// slices of the request's bytes and becomes text only when a line that
/// names it is written: most requests are never named.
#[derive(Debug, Clone, Default)]
pub struct RequestLabel {
    method: Bytes,
    uri: Bytes,
}

impl RequestLabel {
    /// The label of `request`: its method and its target as sent
    /// (`REQUEST_URI`, else `PATH_INFO`).
    pub fn of(request: &Request) -> Self {
        let dash = || Bytes::from_static(b"-");
        RequestLabel {
            method: request.var(b"REQUEST_METHOD").cloned().unwrap_or_else(dash),
            uri: request
                .var(b"REQUEST_URI")
                .or_else(|| request.var(b"PATH_INFO"))
                .cloned()
                .unwrap_or_else(dash),
        }
    }
}

impl RequestLabel {
    /// The method, as sent.
    pub fn method(&self) -> &Bytes {
        &self.method
    }

    /// The request target, as sent.
    pub fn uri(&self) -> &Bytes {
        &self.uri
    }
}

impl std::fmt::Display for RequestLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(&self.method),
            String::from_utf8_lossy(&self.uri)
        )
    }
}

/// Where a response's events go.
#[derive(Debug, Clone)]
pub enum EventSink {
    /// To the connection task over a bounded channel (the app runs on a
    /// pool thread). Sends wait while the connection is behind, and fail
    /// once the client is gone, which tells the app's thread to stop
    /// iterating and call `close()`.
    Channel(mpsc::Sender<Event>),
    /// Into a buffer the connection drains between steps (the app runs
    /// inline on the I/O thread, a chunk at a time).
    Buffer(EventBuffer),
}

/// The events of an inline call, between the app and the connection.
pub type EventBuffer = Arc<Mutex<Vec<Event>>>;

impl EventSink {
    /// A new buffer sink and the handle the connection drains it with.
    pub fn buffer() -> (EventSink, EventBuffer) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        (EventSink::Buffer(buffer.clone()), buffer)
    }
}

/// The request body as the Python side sees it.
#[derive(Debug)]
pub enum Body {
    /// The whole body, read before dispatch (small bodies).
    Buffered(Bytes),
    /// A body still arriving; pieces come as the socket delivers them.
    Stream(mpsc::Receiver<BodyMsg>),
}

/// One message on a streamed body channel.
#[derive(Debug)]
pub enum BodyMsg {
    /// The next bytes of the body (de-chunked).
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body could not be read to its end: why.
    Failed(String),
}

/// One step of a response, from the app's thread to the connection.
#[derive(Debug)]
pub enum Event {
    /// Status and headers, sent with the first non-empty body piece (or at
    /// the end for an empty body).
    Head {
        /// The validated status and headers.
        head: Head,
        /// The body length when the app's iterable made it known (a list
        /// or tuple, or a file wrapper) and no Content-Length was given.
        known_length: Option<u64>,
    },
    /// Body bytes.
    Data(Bytes),
    /// `len` bytes of `file` from `offset`, sent with sendfile.
    File {
        /// A file of the app's (`wsgi.file_wrapper`), duplicated fd.
        file: std::fs::File,
        /// Where to start reading.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
    /// The response is complete.
    End,
    /// The app failed after the head was sent: close without completing
    /// the body so the client sees a truncated response.
    Abort,
}

/// Hands jobs to whatever runs the app (the Python thread pool).
pub trait Dispatch: Send + Sync + 'static {
    /// Queues `job`. Gives it back when the queue is full, so the caller
    /// can answer 503 instead of queueing without bound.
    fn dispatch(&self, job: Job) -> Result<(), Box<Job>>;
}

/// Told what the Python thread pool is doing (for stats and metrics).
pub trait PoolObserver: Send + Sync + 'static {
    /// Thread `thread` took a job.
    fn job_started(&self, thread: usize);
    /// Thread `thread` finished a job; `app_error` if the app raised.
    fn job_finished(&self, thread: usize, app_error: bool);
    /// Jobs now waiting for a thread.
    fn queue_depth(&self, depth: usize);
    /// Thread `thread` caught a panic of rwsgi's own (a bug) while serving
    /// a request, after `job_finished` for it. The thread serves on, but
    /// what it shares with the others may be half changed: the worker
    /// should be replaced. The default does nothing, for observers that
    /// only count.
    fn thread_panicked(&self, thread: usize) {
        let _ = thread;
    }
}

/// Runs the app on the calling (I/O) thread, a step at a time, when a
/// worker has a single Python thread: no thread hand-off per request.
pub trait InlineRunner: Send + Sync + 'static {
    /// Calls the app for `job` (whose events go to an
    /// [`EventSink::Buffer`]); the returned call sends the body.
    fn start(&self, job: Job) -> Option<Box<dyn InlineCall>>;
}

/// An app call in progress on the I/O thread.
pub trait InlineCall: Send {
    /// Produces the next piece of the response into the sink; true once the
    /// response is complete. After each piece it calls `sent`, which writes
    /// what is in the sink if it can without waiting: while it can, the
    /// next piece follows at once, without giving up the GIL in between.
    fn step(&mut self, sent: &mut dyn FnMut() -> bool) -> bool;
    /// The client went away: stop and call the iterable's `close()`.
    fn abandon(self: Box<Self>);
}

/// A running mean of how long the app takes per request (its service time,
/// without queueing), shared by the pool threads and the inline path, so a
/// single-threaded worker runs the app inline only while it is fast.
#[derive(Debug, Default)]
pub struct ServiceTime {
    /// Exponentially weighted mean, nanoseconds; 0 until measured.
    mean_nanos: std::sync::atomic::AtomicU64,
    /// Requests measured (saturating).
    samples: std::sync::atomic::AtomicU64,
}

impl ServiceTime {
    /// Folds in one request's service time (weight 1/16).
    pub fn record(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let sample = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        let old = self.mean_nanos.load(Relaxed);
        let new = if self.samples.fetch_add(1, Relaxed) == 0 {
            sample
        } else {
            old - old / 16 + sample / 16
        };
        self.mean_nanos.store(new, Relaxed);
    }

    /// The mean, once a few requests were measured.
    pub fn mean(&self) -> Option<std::time::Duration> {
        use std::sync::atomic::Ordering::Relaxed;
        (self.samples.load(Relaxed) >= 4)
            .then(|| std::time::Duration::from_nanos(self.mean_nanos.load(Relaxed)))
    }
}

/// How many of a worker's Python threads have a request (running or
/// queued for one), so that a worker whose threads are all taken can let
/// the other workers accept the next connection first.
#[derive(Debug)]
pub struct Occupancy {
    /// Requests handed to the pool and not finished.
    busy: std::sync::atomic::AtomicUsize,
    /// The pool's threads.
    threads: usize,
    /// Woken when `busy` drops below `threads`.
    freed: tokio::sync::Notify,
}

impl Occupancy {
    /// Counts for a pool of `threads` threads.
    pub fn new(threads: usize) -> Self {
        Occupancy {
            busy: std::sync::atomic::AtomicUsize::new(0),
            threads: threads.max(1),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// A request went to the pool.
    pub fn took(&self) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A request the pool had is finished.
    pub fn released(&self) {
        let before = self.busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        // Only the step from full to not full can end a wait.
        if before == self.threads {
            self.freed.notify_waiters();
        }
    }

    /// Requests the pool has, running or queued.
    pub fn load(&self) -> usize {
        self.busy.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether a new request would wait for a thread.
    pub fn full(&self) -> bool {
        self.load() >= self.threads
    }

    /// Returns once a thread is free, or after `at_most`.
    pub async fn wait_for_thread(&self, at_most: std::time::Duration) {
        let freed = self.freed.notified();
        // Registered before the check: a release between the two still
        // wakes this wait.
        if !self.full() {
            return;
        }
        let _ = tokio::time::timeout(at_most, freed).await;
    }
}
