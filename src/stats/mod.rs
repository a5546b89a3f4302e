//! Stats and metrics, served by the master: `--stats ADDR` answers with
//! JSON in the layout of uWSGI's stats server (what `uwsgitop` and the uWSGI
//! exporters read), raw or over HTTP (`--stats-http`); `--metrics ADDR`
//! answers with the Prometheus text format. The master builds a
//! [`Snapshot`] from its scoreboard; this module only renders and serves it.
//!
//! The master is single-threaded (it forks workers, which is only safe
//! with one thread), so the stats cannot have a thread of their own. The
//! listeners and clients are non-blocking instead: each master tick
//! accepts and moves every held client on as far as its socket allows,
//! and never waits on one. A client that trickles its request or reads
//! slowly is closed at its deadline, and the clients held at once are
//! capped, so no client, slow or many, can stall the master.
//!
//! # Layout
//!
//! - `render`: the JSON and Prometheus renderings.
//! - `endpoint`: the listening sockets and the clients they hold.
//! - `client`: one client's request/answer exchange, step by step.

mod client;
mod endpoint;
mod render;

pub use endpoint::{Endpoint, EndpointKind};
pub use render::{prometheus, uwsgi_json};

/// Everything the stats and metrics show, read at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// The master's pid.
    pub pid: u32,
    /// The master's uid and gid.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// The working directory.
    pub cwd: String,
    /// Python threads per worker.
    pub threads: u32,
    /// The listening sockets.
    pub sockets: Vec<SocketStat>,
    /// The live workers, by id.
    pub workers: Vec<WorkerStat>,
    /// Counters since the master started, including workers that exited.
    pub totals: Totals,
    /// Worker processes started after the first ones (respawns, reloads,
    /// recycling).
    pub worker_restarts: u64,
    /// The attached daemons (`--attach-daemon` and its family).
    pub daemons: Vec<DaemonStat>,
}

/// One attached daemon, as uWSGI's stats show it.
#[derive(Debug, Default, Clone)]
pub struct DaemonStat {
    /// The command line.
    pub cmd: String,
    /// Its process (0 when none runs).
    pub pid: i32,
    /// Starts after the first (uWSGI's stats always say 0 here, a known
    /// slip in its stats code; this is the real count).
    pub respawns: u64,
}

/// One listening socket.
#[derive(Debug, Default, Clone)]
pub struct SocketStat {
    /// `http://127.0.0.1:8000`.
    pub name: String,
    /// `http`, `uwsgi` or `scgi`.
    pub proto: String,
    /// Connections waiting to be accepted (TCP only; 0 for Unix sockets).
    pub queue: u32,
    /// The backlog.
    pub max_queue: u32,
}

/// One worker process.
#[derive(Debug, Default, Clone)]
pub struct WorkerStat {
    /// Worker number, 1..=processes.
    pub id: u32,
    /// Its pid.
    pub pid: u32,
    /// Requests served.
    pub requests: u64,
    /// Requests whose app raised.
    pub exceptions: u64,
    /// Python threads in a request now.
    pub busy: u32,
    /// Requests waiting for a thread.
    pub queued: u32,
    /// Connections open now.
    pub connections: u32,
    /// Body bytes sent.
    pub tx: u64,
    /// Sum of request durations, microseconds.
    pub running_time: u64,
    /// Resident and virtual memory, bytes.
    pub rss: u64,
    /// See `rss`.
    pub vsz: u64,
    /// Times a worker with this id was started again.
    pub respawn_count: u64,
    /// Harakiris of workers with this id.
    pub harakiri_count: u64,
    /// Start time, seconds since the epoch.
    pub last_spawn: u64,
    /// Per Python thread (the first 64).
    pub cores: Vec<CoreStat>,
}

impl WorkerStat {
    /// Mean request duration in microseconds.
    pub fn avg_rt(&self) -> u64 {
        self.running_time.checked_div(self.requests).unwrap_or(0)
    }
}

/// One Python thread of a worker.
#[derive(Debug, Default, Clone)]
pub struct CoreStat {
    /// Thread index.
    pub id: u32,
    /// Requests it served.
    pub requests: u64,
    /// Whether it is in a request now.
    pub in_request: bool,
}

/// Monotonic counters for Prometheus.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Requests by protocol (http, uwsgi, scgi) and status class 1xx..5xx.
    pub by_status: [[u64; 5]; 3],
    /// Latency histogram counts per bucket (last: +Inf), not cumulative.
    pub latency: Vec<u64>,
    /// Sum of request durations, microseconds.
    pub latency_sum_micros: u64,
    /// Requests whose app raised.
    pub exceptions: u64,
    /// Body bytes sent.
    pub tx: u64,
}

impl Totals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Totals) {
        for (row, o) in self.by_status.iter_mut().zip(other.by_status.iter()) {
            for (c, v) in row.iter_mut().zip(o) {
                *c += v;
            }
        }
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (c, v) in self.latency.iter_mut().zip(&other.latency) {
            *c += v;
        }
        self.latency_sum_micros += other.latency_sum_micros;
        self.exceptions += other.exceptions;
        self.tx += other.tx;
    }
}
