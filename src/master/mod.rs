//! The master process: binds every socket, starts `--processes` workers and
//! supervises them. It never runs app code for requests.
//!
//! - A worker that dies is replaced at once; one that keeps dying right
//!   after start is respawned with a growing back-off.
//! - SIGHUP (or `--touch-reload`): graceful reload. New workers start with
//!   freshly imported code, one by one; each old worker is told to drain
//!   only once its successor accepts. The sockets stay open in the master
//!   throughout, so no connection is refused.
//! - SIGTERM: graceful stop (in-flight requests finish, up to
//!   `--shutdown-timeout`), exit 0. SIGINT / SIGQUIT: fast stop.
//! - Workers ask to be recycled through the [`scoreboard`] (max-requests,
//!   lifetime, RSS, harakiri); the master starts their successor.
//!
//! Loading the app: with `--lazy-apps` each worker imports the app after
//! fork. Without it the master imports it once, freezes it out of the
//! garbage collector and forks workers that share those pages. Forking is
//! only safe while the master has a single thread: it never starts one (no
//! tokio runtime, no Python threads; signals are taken synchronously with
//! `sigtimedwait`). A reload re-executes the master so the app is imported
//! afresh, keeping its pid, its sockets and its running workers.
//!
//! # Layout
//!
//! - `scoreboard`: shared-memory worker slots.
//! - `worker`: a worker process's life after fork.
//! - `supervisor`: the master's loop (spawn, reap, reload, stop).
//! - `sockets`: binding, systemd socket activation, socket mode/owner.
//! - `privileges`: `--uid` / `--gid`.
//! - `pidfile`: `--pidfile`, never written through a symlink.
//! - `daemons`: `--attach-daemon` and its family, run beside the workers.
//! - `cron`: `--cron`, `--unique-cron`, `--cron2`.
//! - `hooks`: `--hook-*` and `--exec-*`, run at their phase of the start.
//! - `heap`: malloc thresholds that keep request-body memory mapped.
//! - `title`: process titles.

mod cron;
mod daemons;
mod heap;
mod hooks;
mod pidfile;
mod privileges;
pub mod scoreboard;
mod sockets;
mod supervisor;
pub mod title;
mod worker;

use std::sync::OnceLock;

use scoreboard::Scoreboard;

pub use supervisor::run;
pub use worker::resident_bytes;

/// The scoreboard, mapped by the master before the first fork.
pub(crate) static SCOREBOARD: OnceLock<Scoreboard> = OnceLock::new();

/// Worker exit codes the master understands.
pub mod exit_code {
    /// A clean exit (stop, reload or recycle).
    pub const OK: i32 = 0;
    /// The worker could not start (threads, runtime, signals).
    pub const FAILED: i32 = 1;
    /// The worker could not import the app.
    pub const APP_LOAD: i32 = 22;
    /// The worker exited after a harakiri.
    pub const HARAKIRI: i32 = 23;
}
