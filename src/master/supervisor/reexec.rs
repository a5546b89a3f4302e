//! A reload with the app imported in the master: the master re-executes
//! itself (same pid) so the app is imported afresh, handing its listening
//! sockets, its `--stats` / `--metrics` sockets, its open `--logto` file
//! and its running workers to the new image through the environment
//! (after `--uid` the new image could not bind or open them again).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use super::{Proc, Supervisor};
use crate::logging;
use crate::master::sockets::{self, Sockets};
use crate::server::listener::{BoundSocket, ListenSpec};

/// Environment variables that carry state across a reload's re-exec.
pub(super) const REEXEC_FDS: &str = "RWSGI_REEXEC_FDS";
const REEXEC_WORKERS: &str = "RWSGI_REEXEC_WORKERS";
const REEXEC_CREATED: &str = "RWSGI_REEXEC_CREATED";
const REEXEC_ENDPOINTS: &str = "RWSGI_REEXEC_ENDPOINTS";

impl Supervisor<'_> {
    /// Replaces the master's image with a fresh one (same pid), handing
    /// over the sockets and the running workers. Returns only on failure.
    pub(super) fn reexec(&mut self) {
        // Every fd passed on loses close-on-exec just for the exec.
        let mut passed: Vec<RawFd> = Vec::new();
        let mut fds = String::new();
        for (spec, socket) in &self.sockets.listeners {
            let fd = socket.as_raw_fd();
            passed.push(fd);
            fds.push_str(&format!("{fd}|{}|{}\n", spec.protocol.name(), spec.addr));
        }
        // After --uid the new image may be unable to bind the stats sockets
        // or open --logto again: it gets the open ones.
        let mut endpoints = String::new();
        for e in &self.endpoints {
            passed.push(e.as_raw_fd());
            endpoints.push_str(&format!("{}|{}\n", e.as_raw_fd(), e.addr));
        }
        if let Some((fd, value)) = logging::handover() {
            passed.push(fd);
            std::env::set_var(logging::REEXEC_LOG_FD, value);
        }
        let workers: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("{}:{}", p.pid, p.id))
            .collect();
        let created: Vec<String> = self
            .sockets
            .created_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        std::env::set_var(REEXEC_FDS, fds);
        std::env::set_var(REEXEC_ENDPOINTS, endpoints);
        std::env::set_var(REEXEC_WORKERS, workers.join(","));
        std::env::set_var(REEXEC_CREATED, created.join("\n"));
        set_close_on_exec(&passed, false);
        let err = exec_self(&self.argv);
        tracing::error!(
            source = "rwsgi",
            "reload: cannot re-execute the master ({err}); new workers get the already loaded app"
        );
        set_close_on_exec(&passed, true);
        for var in [REEXEC_FDS, REEXEC_WORKERS, REEXEC_CREATED] {
            std::env::remove_var(var);
        }
        std::env::remove_var(REEXEC_ENDPOINTS);
        std::env::remove_var(logging::REEXEC_LOG_FD);
    }
}

/// Sets or clears FD_CLOEXEC on `fds` (all ours).
fn set_close_on_exec(fds: &[RawFd], on: bool) {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    for &fd in fds {
        // SAFETY: fcntl on an fd this process owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flag) };
    }
}

/// The `--stats` / `--metrics` sockets handed over by the previous master
/// image, as (fd, address) pairs; empty on a first start.
pub(super) fn inherited_endpoints() -> Vec<(RawFd, String)> {
    let value = std::env::var(REEXEC_ENDPOINTS).unwrap_or_default();
    std::env::remove_var(REEXEC_ENDPOINTS);
    value
        .lines()
        .filter_map(|line| {
            let (fd, addr) = line.split_once('|')?;
            Some((fd.parse().ok()?, addr.to_string()))
        })
        .collect()
}

/// Listeners and workers handed over by the previous master image.
pub(super) fn adopt_after_reexec(fds: &str) -> Result<(Sockets, Vec<Proc>), String> {
    let mut listeners: Vec<(ListenSpec, BoundSocket)> = Vec::new();
    for line in fds.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, '|');
        let (Some(fd), Some(proto)) = (parts.next(), parts.next()) else {
            return Err(format!("bad {REEXEC_FDS} entry {line:?}"));
        };
        let fd: i32 = fd.parse().map_err(|_| format!("bad fd in {line:?}"))?;
        listeners.push(sockets::adopt_named(fd, proto)?);
    }
    let workers = std::env::var(REEXEC_WORKERS).unwrap_or_default();
    let adopted = workers
        .split(',')
        .filter_map(|w| {
            let (pid, id) = w.split_once(':')?;
            Some(Proc {
                pid: pid.parse().ok()?,
                id: id.parse().ok()?,
                slot: None,
                generation: 0,
                started: Instant::now(),
                retiring: None,
            })
        })
        .collect();
    let created_files = std::env::var(REEXEC_CREATED)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    for var in [REEXEC_FDS, REEXEC_WORKERS, REEXEC_CREATED] {
        std::env::remove_var(var);
    }
    Ok((
        Sockets {
            listeners,
            created_files,
        },
        adopted,
    ))
}

/// Re-executes this binary with `argv`, in the directory rwsgi was started
/// in (the app's `--chdir` must not change what relative paths mean).
fn exec_self(argv: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let Some((_, args)) = argv.split_first() else {
        return std::io::Error::other("no argv saved");
    };
    let mut command = std::process::Command::new("/proc/self/exe");
    command.arg0("rwsgi").args(args);
    if let Some(dir) = START_DIR.get() {
        command.current_dir(dir);
    }
    command.exec()
}

/// The working directory rwsgi was started in.
pub(super) static START_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
