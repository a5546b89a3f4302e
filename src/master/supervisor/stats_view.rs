//! What the master shows on `--stats` and `--metrics`: binds those sockets,
//! answers them each tick, and reads the scoreboard into a [`Snapshot`].

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Supervisor, TICK};
use crate::config::Cli;
use crate::master::scoreboard::{Slot, CORES};
use crate::server::listener::{BoundSocket, ListenAddr, ListenSpec};
use crate::stats::{self, Endpoint, EndpointKind, Snapshot, Totals};

/// Binds `--stats` and `--metrics`, or takes the sockets a previous master
/// image handed over (`inherited`, by address) where the address is the
/// same. Handed-over sockets no longer asked for are closed.
pub(super) fn open_endpoints(
    cli: &Cli,
    mut inherited: Vec<(RawFd, String)>,
) -> Result<Vec<Endpoint>, String> {
    let mut open = |flag: &str, addr: &ListenAddr, kind: EndpointKind| {
        let name = addr.to_string();
        let handed = inherited.iter().position(|(_, a)| *a == name);
        match handed {
            Some(i) => Endpoint::adopt(inherited.swap_remove(i).0, addr, kind),
            None => Endpoint::bind(addr, kind),
        }
        .map_err(|e| format!("cannot bind {flag} {addr}: {e}"))
    };
    let mut endpoints = Vec::new();
    if let Some(addr) = &cli.stats {
        let kind = if cli.stats_http {
            EndpointKind::HttpStats
        } else {
            EndpointKind::RawStats
        };
        endpoints.push(open("--stats", addr, kind)?);
    }
    if let Some(addr) = &cli.metrics {
        endpoints.push(open("--metrics", addr, EndpointKind::Metrics)?);
    }
    for (fd, _) in inherited {
        // SAFETY: an fd handed to this image and not used.
        unsafe { libc::close(fd) };
    }
    for e in &endpoints {
        tracing::info!(
            "{} on {}",
            match e.kind {
                EndpointKind::Metrics => "metrics",
                _ => "stats",
            },
            e.addr
        );
    }
    Ok(endpoints)
}

impl Supervisor<'_> {
    /// Moves stats and metrics clients on, without waiting on any.
    pub(super) fn serve_stats(&mut self) {
        if self.endpoints.is_empty() {
            return;
        }
        // Out of self while they are polled: rendering reads self.
        let mut endpoints = std::mem::take(&mut self.endpoints);
        self.poll_endpoints(&mut endpoints);
        self.endpoints = endpoints;
    }

    /// How long the loop may wait for a signal: a tenth of the tick while
    /// a stats client is mid-exchange, so it is answered promptly.
    pub(super) fn tick(&self) -> Duration {
        if self.endpoints.iter().any(Endpoint::busy) {
            TICK / 10
        } else {
            TICK
        }
    }

    fn poll_endpoints(&self, endpoints: &mut [Endpoint]) {
        let mut snapshot: Option<Snapshot> = None;
        let mut render = |kind: EndpointKind| {
            let s = snapshot.get_or_insert_with(|| self.snapshot());
            match kind {
                EndpointKind::Metrics => stats::prometheus(s),
                _ => stats::uwsgi_json(s),
            }
        };
        for endpoint in endpoints {
            endpoint.poll(&mut render);
        }
    }

    /// Reads the scoreboard into a [`Snapshot`].
    fn snapshot(&self) -> Snapshot {
        let board = self.board();
        let mut totals = self.retired.clone();
        let mut workers = Vec::new();
        for p in &self.procs {
            let Some(index) = p.slot else { continue };
            let slot = board.slot(index);
            totals.add(&slot_totals(slot));
            let (rss, vsz) = memory_of(p.pid);
            let cores = (0..(self.cli.threads as usize).min(CORES))
                .map(|i| stats::CoreStat {
                    id: i as u32,
                    requests: slot.core_requests[i].load(Ordering::Relaxed),
                    in_request: slot.core_busy[i].load(Ordering::Relaxed) == 1,
                })
                .collect();
            workers.push(stats::WorkerStat {
                id: p.id,
                pid: p.pid as u32,
                requests: slot.requests.load(Ordering::Relaxed),
                exceptions: slot.exceptions.load(Ordering::Relaxed),
                busy: slot.busy.load(Ordering::Relaxed),
                queued: slot.queued.load(Ordering::Relaxed),
                connections: slot.connections.load(Ordering::Relaxed),
                tx: slot.tx.load(Ordering::Relaxed),
                running_time: slot.busy_micros.load(Ordering::Relaxed),
                rss,
                vsz,
                respawn_count: self.respawns.get(&p.id).copied().unwrap_or(0),
                harakiri_count: self.harakiris.get(&p.id).copied().unwrap_or(0),
                last_spawn: slot.last_spawn.load(Ordering::Relaxed),
                cores,
            });
        }
        workers.sort_by_key(|w| (w.id, w.pid));
        Snapshot {
            pid: std::process::id(),
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            threads: self.cli.threads,
            sockets: self
                .sockets
                .listeners
                .iter()
                .map(|(spec, socket)| socket_stat(spec, socket, self.cli.listen))
                .collect(),
            workers,
            totals,
            worker_restarts: self.respawns.values().sum(),
            daemons: self.daemons.view(),
        }
    }
}

/// A slot's counters as [`Totals`].
pub(super) fn slot_totals(slot: &Slot) -> Totals {
    let mut by_status = [[0u64; 5]; 3];
    for (row, counters) in by_status.iter_mut().zip(slot.by_status.iter()) {
        for (c, a) in row.iter_mut().zip(counters.iter()) {
            *c = a.load(Ordering::Relaxed);
        }
    }
    Totals {
        by_status,
        latency: slot
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        latency_sum_micros: slot.busy_micros.load(Ordering::Relaxed),
        exceptions: slot.exceptions.load(Ordering::Relaxed),
        tx: slot.tx.load(Ordering::Relaxed),
    }
}

/// Resident and virtual memory of `pid`, in bytes, from /proc.
fn memory_of(pid: libc::pid_t) -> (u64, u64) {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (vsz, rss) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    (rss * page, vsz * page)
}

/// A listener's stats entry; the queue comes from TCP_INFO on Linux (for a
/// listening socket, `tcpi_unacked` is the accept queue's length).
fn socket_stat(spec: &ListenSpec, socket: &BoundSocket, backlog: i32) -> stats::SocketStat {
    let queue = match socket {
        BoundSocket::Tcp(l) => {
            // SAFETY: tcp_info is plain data; getsockopt writes at most len.
            let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let rc = unsafe {
                libc::getsockopt(
                    l.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_INFO,
                    (&mut info as *mut libc::tcp_info).cast(),
                    &mut len,
                )
            };
            if rc == 0 {
                info.tcpi_unacked
            } else {
                0
            }
        }
        BoundSocket::Unix(..) => 0,
    };
    stats::SocketStat {
        name: spec.to_string(),
        proto: spec.protocol.name().to_string(),
        queue,
        max_queue: backlog.max(0) as u32,
    }
}
