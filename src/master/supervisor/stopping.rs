//! Reloads, stops and the deadlines of workers told to go: what changes
//! the master's set of workers other than deaths and recycling.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::signals::{sd_notify, signal};
use super::Supervisor;

impl Supervisor<'_> {
    pub(super) fn reload(&mut self, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        tracing::info!("{why}: graceful reload");
        sd_notify("RELOADING=1");
        self.respawn_at.clear();
        // As in uWSGI, a reload stops and starts the attached daemons (smart
        // ones, watched through their pidfile, run on).
        self.daemons.stop_and_wait();
        if self.app.is_some() {
            // The app lives in the master: only a fresh master image can
            // import it afresh.
            self.reexec();
        }
        self.daemons.start_all();
        self.generation += 1;
        self.notified_ready = false;
    }

    pub(super) fn stop(&mut self, graceful: bool, why: &str) {
        let grace = if graceful {
            Duration::from_secs(self.cli.shutdown_timeout)
        } else {
            Duration::from_secs(2)
        };
        let deadline = Instant::now() + grace;
        if self.stopping.is_some_and(|d| d <= deadline) {
            return;
        }
        tracing::info!(
            "{why}: {} stop of {} worker(s)",
            if graceful { "graceful" } else { "fast" },
            self.procs.len()
        );
        sd_notify("STOPPING=1");
        self.stopping = Some(deadline);
        // Stop listening before any worker hears of the stop. shutdown()
        // acts on the socket every worker shares, so a client connecting
        // from now on is refused at once and can go elsewhere; closed one
        // process at a time, the socket would queue connections until the
        // last copy closed, then reset them, requests and all (a kept-alive
        // client told to close by a draining worker reconnects at once).
        for (_, socket) in &self.sockets.listeners {
            // SAFETY: shutdown(2) on a listening socket this process owns.
            unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RD) };
        }
        self.sockets.listeners.clear();
        self.daemons.stop(false, true);
        let sig = if graceful {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        for p in &self.procs {
            signal(p.pid, sig);
        }
    }

    /// Kills workers that overstay a stop or a retirement.
    pub(super) fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let grace = Duration::from_secs(self.cli.shutdown_timeout) + Duration::from_secs(2);
        for p in &self.procs {
            let overdue = match (self.stopping, p.retiring) {
                (Some(deadline), _) => now > deadline,
                (None, Some(since)) => now.duration_since(since) > grace,
                _ => false,
            };
            if overdue {
                tracing::warn!(
                    "worker {} (pid {}) did not stop in time; killing it",
                    p.id,
                    p.pid
                );
                signal(p.pid, libc::SIGKILL);
            }
        }
    }
}
