//! The I/O side of a worker: listeners, one task per connection, request
//! bodies, response writing, and the hand-off to the app's thread pool.
//! Parsing lives in `protocol/`, Python in `wsgi/`; nothing here touches
//! either directly.
//!
//! # Layout
//!
//! - `listener`: socket addresses, binding, the accept loop.
//! - `balance`: which worker process accepts the next connection.
//! - `connection`: one connection's request/response loop.
//! - `body`: request bodies (pre-buffered, spooled or streamed).
//! - `spool`: the per-worker body memory budget and spool files.
//! - `handoff`: the request to the app (pool or inline), the response back.
//! - `respond`: response framing and writing.
//! - `static_files`: `--static-map`, files served without the app.
//! - `stream`: the socket trait shared by TCP and Unix streams, sendfile.
//! - `date`: the cached `Date` header.
//! - `access_log`: one line per request.

pub mod access_log;
mod balance;
mod body;
mod connection;
mod date;
mod handoff;
pub mod listener;
mod respond;
mod round;
mod spare;
pub mod spool;
mod static_files;
mod stream;

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

pub use access_log::AccessLog;
pub use balance::{AcceptDeferral, Siblings};
pub use static_files::extras::{self as static_extras, StaticOptions};
pub use static_files::{parse_safe_path, StaticFiles, StaticMap};

use crate::exchange::{Dispatch, RequestLabel};
use crate::protocol::{Limits, Protocol, Request};

/// Settings and services every connection of a worker shares.
pub struct Shared {
    /// Codec size limits.
    pub limits: Limits,
    /// Bodies up to this many bytes are read into memory before the app is
    /// called (uWSGI's `post-buffering`); larger ones are spooled to a
    /// file first, or with 0, streamed to the app as they arrive.
    pub post_buffering: usize,
    /// The bytes of bodies the worker holds in memory at once.
    pub body_budget: spool::BodyBudget,
    /// `--add-header` lines, added to every response the app or a static
    /// map makes (made once for the worker's life).
    pub add_headers: &'static [u8],
    /// Where requests go (the Python thread pool).
    pub dispatcher: Arc<dyn Dispatch>,
    /// Which requests get an access-log line.
    pub access_log: AccessLog,
    /// Seconds in the `Retry-After` of an overload 503.
    pub retry_after: u64,
    /// A request running longer than this gets a 504 and the observer's
    /// `harakiri` call (`--harakiri`).
    pub harakiri: Option<Duration>,
    /// Told about finished requests and harakiri (the worker process).
    pub observer: Option<Arc<dyn Observer>>,
    /// Draining and connection counting, for graceful stops.
    pub lifecycle: Arc<Lifecycle>,
    /// How long peers may take.
    pub timeouts: Timeouts,
    /// Caps open connections (`--max-connections`): accepting waits for a
    /// permit, so excess clients wait in the kernel's listen backlog.
    pub connection_slots: Arc<tokio::sync::Semaphore>,
    /// `--static-map` directories served without the app (empty: none).
    pub static_files: StaticFiles,
    /// Set when the app runs on this (I/O) thread: one Python thread.
    pub inline: Option<Inline>,
    /// Set when other worker processes accept on the same sockets.
    pub defer_accepts: Option<AcceptDeferral>,
}

/// Inline execution: the app runs on the I/O thread, one request at a
/// time (a worker with one Python thread serves one request at a time on
/// any server). Requests wait for their turn on an async semaphore; past
/// `queue_limit` waiting, they get a 503.
pub struct Inline {
    /// Calls the app.
    pub runner: Arc<dyn crate::exchange::InlineRunner>,
    /// The one Python turn.
    turn: tokio::sync::Semaphore,
    /// Requests waiting for the turn.
    waiting: AtomicUsize,
    /// Most requests that may wait.
    queue_limit: usize,
    /// How long the app takes: inline only while it is fast.
    service: Arc<crate::exchange::ServiceTime>,
    /// Calls that went on working for long after their response's last
    /// byte (in the iterable or `close()`); from [`SLOW_TAILS_TO_STOP`]
    /// on, final bytes are written at once instead of waiting for the
    /// call to end.
    slow_tails: AtomicUsize,
}

/// An app whose mean service time is below this runs inline; a slower one
/// on the pool thread, so the I/O thread stays free to answer (503s,
/// timeouts) while it works.
const INLINE_BELOW: Duration = Duration::from_millis(1);

/// A call that goes on for longer than this after its response's last
/// byte is known has a slow tail.
const TAIL_BELOW: Duration = Duration::from_millis(1);

/// Slow tails after which final bytes stop waiting for calls to end: an
/// app's first calls can be slow once (Django's first `close()` takes a
/// few ms), an app that works after its responses keeps being slow.
const SLOW_TAILS_TO_STOP: usize = 3;

impl Inline {
    /// Inline execution through `runner`, at most `queue_limit` waiting;
    /// `service` is the app's measured service time.
    pub fn new(
        runner: Arc<dyn crate::exchange::InlineRunner>,
        queue_limit: usize,
        service: Arc<crate::exchange::ServiceTime>,
    ) -> Self {
        Inline {
            runner,
            turn: tokio::sync::Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            queue_limit,
            service,
            slow_tails: AtomicUsize::new(0),
        }
    }

    /// Whether a response's final bytes may wait for the end of its call
    /// (and for the other connections ready now), to leave with theirs.
    pub fn holds_final_bytes(&self) -> bool {
        self.slow_tails.load(Ordering::Relaxed) < SLOW_TAILS_TO_STOP
    }

    /// Notes how long a call went on after its last byte was known.
    pub fn saw_tail(&self, tail: Duration) {
        if tail >= TAIL_BELOW
            && self.slow_tails.fetch_add(1, Ordering::Relaxed) + 1 == SLOW_TAILS_TO_STOP
        {
            tracing::info!(
                "the app went on for {:.1} ms after a response's last byte, the \
                 {SLOW_TAILS_TO_STOP}rd time; final bytes are written at once from now on",
                tail.as_secs_f64() * 1e3
            );
        }
    }

    /// Whether the next request should run inline: once the app has shown
    /// itself fast (until then, and while it is slow, the pool thread runs
    /// it).
    pub fn preferred(&self) -> bool {
        self.service.mean().is_some_and(|m| m < INLINE_BELOW)
    }

    /// Waits for the Python turn; `None` when too many already wait.
    pub async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(permit) = self.turn.try_acquire() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = self.turn.acquire().await.ok();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit
    }
}

/// How long a peer may take at each stage of a request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To send a whole request head (408 past it).
    pub header: Duration,
    /// Between two reads of a request body.
    pub body: Duration,
    /// Idle between two requests on a keep-alive connection.
    pub keepalive: Duration,
    /// For a write to make progress (a client that stopped reading).
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(60),
            keepalive: Duration::from_secs(5),
            write: Duration::from_secs(60),
        }
    }
}

/// What the process around the server wants to hear about.
pub trait Observer: Send + Sync + 'static {
    /// A request on a `protocol` connection completed (or was aborted)
    /// with `status` after `elapsed`, having sent `body_bytes`.
    fn request_finished(&self, protocol: Protocol, status: u16, body_bytes: u64, elapsed: Duration);
    /// A request ran past the harakiri limit and was answered 504.
    fn harakiri(&self, label: &RequestLabel, elapsed: Duration);
}

/// Graceful stop support: once draining, listeners stop accepting, idle
/// keep-alive connections close, and busy ones close after their response.
pub struct Lifecycle {
    /// Flips to true when the server should drain.
    draining: watch::Sender<bool>,
    /// Open connections.
    active: AtomicUsize,
    /// Woken when `active` drops to zero.
    idle: Notify,
    /// Where the other worker processes see `active` (the scoreboard), if
    /// any.
    shown: Option<&'static AtomicU32>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            draining: watch::channel(false).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            shown: None,
        }
    }
}

impl Lifecycle {
    /// Counts connections into `shown` as well, for other processes to read.
    pub fn shown_in(shown: &'static AtomicU32) -> Self {
        Lifecycle {
            shown: Some(shown),
            ..Lifecycle::default()
        }
    }

    /// Starts draining.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has started.
    pub async fn drained(&self) {
        let mut rx = self.draining.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Open connections now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Resolves when no connection is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts a connection until the guard drops.
    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        if let Some(shown) = self.shown {
            shown.fetch_add(1, Ordering::Relaxed);
        }
        ConnectionGuard(self.clone())
    }
}

/// Decrements the open-connection count when a connection ends.
struct ConnectionGuard(Arc<Lifecycle>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(shown) = self.0.shown {
            shown.fetch_sub(1, Ordering::Relaxed);
        }
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a connection knows about the listener that accepted it.
pub struct ListenerContext {
    /// The listener's protocol.
    pub protocol: Protocol,
    /// `http://127.0.0.1:8000` or `uwsgi:/run/app.sock`, for logs.
    pub name: String,
    /// The listener's host, the default `SERVER_NAME`.
    pub server_name: Bytes,
    /// The listener's port, the default `SERVER_PORT`.
    pub server_port: Bytes,
    /// Worker-wide settings.
    pub shared: Arc<Shared>,
}

/// The variables [`ListenerContext::add_connection_vars`] fills in when
/// the protocol did not carry them: the first four from the connection, the
/// rest with these defaults.
const DEFAULTED: [(&[u8], &[u8]); 10] = [
    (b"SERVER_NAME", b""),
    (b"SERVER_PORT", b""),
    (b"REMOTE_ADDR", b""),
    (b"REMOTE_PORT", b""),
    (b"SCRIPT_NAME", b""),
    (b"PATH_INFO", b""),
    (b"QUERY_STRING", b""),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"SERVER_SOFTWARE", SERVER_SOFTWARE),
];

/// The CGI `SERVER_SOFTWARE` (some apps gate features on it), unless the
/// proxy sent its own over uwsgi or SCGI.
const SERVER_SOFTWARE: &[u8] = concat!("rwsgi/", env!("CARGO_PKG_VERSION")).as_bytes();

/// Where `key` is in [`DEFAULTED`]. Literal patterns let the compiler
/// compare a name by its length and a word or two, where a search through
/// the table called `memcmp` for every candidate of the same length.
fn defaulted_index(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"SERVER_NAME" => 0,
        b"SERVER_PORT" => 1,
        b"REMOTE_ADDR" => 2,
        b"REMOTE_PORT" => 3,
        b"SCRIPT_NAME" => 4,
        b"PATH_INFO" => 5,
        b"QUERY_STRING" => 6,
        b"SERVER_PROTOCOL" => 7,
        b"REQUEST_METHOD" => 8,
        b"SERVER_SOFTWARE" => 9,
        _ => return None,
    })
}

/// The remote end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// IP address, empty for Unix sockets.
    pub addr: Bytes,
    /// Port, empty for Unix sockets.
    pub port: Bytes,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.is_empty() {
            f.write_str("unix")
        } else {
            write!(f, "{}", String::from_utf8_lossy(&self.addr))
        }
    }
}

impl ListenerContext {
    /// Fills in the CGI variables PEP 3333 requires that the protocol did
    /// not carry: HTTP knows nothing of the connection; nginx sends most of
    /// them over uwsgi and SCGI already.
    pub fn add_connection_vars(&self, request: &mut Request, peer: &Peer) {
        if self.protocol == Protocol::Http {
            self.add_http_connection_vars(request, peer);
            return;
        }
        // One pass notes which of these the request has (a search per name
        // was a tenth of the server's own time per request).
        let mut present = [false; DEFAULTED.len()];
        for (key, _) in &request.vars {
            if let Some(i) = defaulted_index(key) {
                present[i] = true;
            }
        }
        let mut from_connection = [
            Some(self.server_name.clone()),
            Some(self.server_port.clone()),
            Some(peer.addr.clone()),
            None,
        ];
        request
            .vars
            .reserve(present.iter().filter(|p| !**p).count());
        for (i, (key, default)) in DEFAULTED.iter().enumerate() {
            if present[i] {
                continue;
            }
            let value = match from_connection.get_mut(i) {
                Some(value) => value.take(),
                None => Some(Bytes::from_static(default)),
            };
            if let Some(value) = value {
                request.vars.push((Bytes::from_static(key), value));
            }
        }
    }

    /// [`Self::add_connection_vars`] for HTTP, whose codec always makes the
    /// request line's variables (`REQUEST_METHOD`, `PATH_INFO`,
    /// `QUERY_STRING`, `SERVER_PROTOCOL`) and, every field becoming an
    /// `HTTP_*` variable, never the connection's: no name needs looking up
    /// but the Host field's (scanning for the others was 2 % of a hello
    /// request's instructions).
    fn add_http_connection_vars(&self, request: &mut Request, peer: &Peer) {
        let host = request
            .vars
            .iter()
            .find(|(key, _)| key.as_ref() == b"HTTP_HOST")
            .map(|(_, value)| value);
        let (name, port) = match host {
            Some(host) => split_host(host, &self.server_port),
            None => (self.server_name.clone(), self.server_port.clone()),
        };
        let vars = &mut request.vars;
        vars.reserve(6);
        vars.push((Bytes::from_static(b"SERVER_NAME"), name));
        vars.push((Bytes::from_static(b"SERVER_PORT"), port));
        vars.push((Bytes::from_static(b"REMOTE_ADDR"), peer.addr.clone()));
        vars.push((Bytes::from_static(b"REMOTE_PORT"), peer.port.clone()));
        vars.push((Bytes::from_static(b"SCRIPT_NAME"), Bytes::new()));
        vars.push((
            Bytes::from_static(b"SERVER_SOFTWARE"),
            Bytes::from_static(SERVER_SOFTWARE),
        ));
    }
}

/// Splits a Host header into name and port (`[::1]:8080`, `example.com`).
fn split_host(host: &Bytes, default_port: &Bytes) -> (Bytes, Bytes) {
    let colon = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .and_then(|end| (host.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        host.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(i) if i + 1 < host.len() => (host.slice(..i), host.slice(i + 1..)),
        Some(i) => (host.slice(..i), default_port.clone()),
        None => (host.clone(), default_port.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_splits_into_name_and_port() {
        let default = Bytes::from_static(b"80");
        let cases: [(&[u8], &[u8], &[u8]); 4] = [
            (b"example.com:8080", b"example.com", b"8080"),
            (b"example.com", b"example.com", b"80"),
            (b"[::1]:9000", b"[::1]", b"9000"),
            (b"[::1]", b"[::1]", b"80"),
        ];
        for (host, name, port) in cases {
            let (n, p) = split_host(&Bytes::copy_from_slice(host), &default);
            assert_eq!((n.as_ref(), p.as_ref()), (name, port));
        }
    }

    #[test]
    fn defaulted_index_finds_each_defaulted_name_and_nothing_else() {
        for (i, (name, _)) in DEFAULTED.iter().enumerate() {
            assert_eq!(
                defaulted_index(name),
                Some(i),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        for other in [
            &b"HTTP_HOST"[..],
            b"SERVER_NAMES",
            b"server_name",
            b"",
            b"PATH_INF",
        ] {
            assert_eq!(defaulted_index(other), None);
        }
    }
}
