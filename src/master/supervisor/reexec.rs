//! A reload with the app imported in the master: the master re-executes
//! itself (same pid) so the app is imported afresh, handing its listening
//! sockets and running workers to the new image through the environment.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

use super::{Proc, Supervisor};
use crate::master::sockets::{self, Sockets};
use crate::server::listener::{BoundSocket, ListenSpec};

/// Environment variables that carry state across a reload's re-exec.
pub(super) const REEXEC_FDS: &str = "RWSGI_REEXEC_FDS";
const REEXEC_WORKERS: &str = "RWSGI_REEXEC_WORKERS";
const REEXEC_CREATED: &str = "RWSGI_REEXEC_CREATED";

impl Supervisor<'_> {
    /// Replaces the master's image with a fresh one (same pid), handing
    /// over the sockets and the running workers. Returns only on failure.
    pub(super) fn reexec(&mut self) {
        let mut fds = String::new();
        for (spec, socket) in &self.sockets.listeners {
            let fd = match socket {
                BoundSocket::Tcp(l) => l.as_raw_fd(),
                BoundSocket::Unix(l, _) => l.as_raw_fd(),
            };
            // SAFETY: clearing FD_CLOEXEC on our own listening fd.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            fds.push_str(&format!("{fd}|{}|{}\n", spec.protocol.name(), spec.addr));
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
        std::env::set_var(REEXEC_WORKERS, workers.join(","));
        std::env::set_var(REEXEC_CREATED, created.join("\n"));
        let err = exec_self(&self.argv);
        tracing::error!(
            source = "rwsgi",
            "reload: cannot re-execute the master ({err}); new workers get the already loaded app"
        );
        for var in [REEXEC_FDS, REEXEC_WORKERS, REEXEC_CREATED] {
            std::env::remove_var(var);
        }
    }
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
