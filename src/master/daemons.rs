//! The master's attached daemons (`--attach-daemon` and its family, read
//! by `config::daemon`): programs started beside the workers, after the
//! sockets are bound and privileges dropped, so they run as the server
//! does. As in uWSGI:
//!
//! - a daemon runs as `/bin/sh -c CMD` in a session of its own, with stdin
//!   on /dev/null, its output in the server's log;
//! - one that exits is started again, throttled when it keeps exiting
//!   (restarts within 3 s of each other wait a second more each time, up
//!   to `max_throttle` or 5 minutes, waited out in the master's loop, never
//!   in a call); a control daemon's exit stops the server instead;
//! - a smart daemon (with a pidfile) is watched through its pidfile each
//!   second and started again when the process it names is gone; it
//!   outlives reloads, where the others are stopped and started again;
//! - stopping sends the stop signal (SIGTERM) to the daemon's process
//!   group, and SIGKILL after 3 s.
//!
//! The master never runs the app, so forking here needs no care beyond
//! what `Command` takes (the signal mask is reset in the child).

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::DaemonSpec;
use crate::stats::DaemonStat;

/// How long a stopped daemon has before SIGKILL (uWSGI's default mercy).
const STOP_MERCY: Duration = Duration::from_secs(3);
/// Restarts closer together than this are throttled.
const QUICK_RESTART: Duration = Duration::from_secs(3);
/// The longest throttle when the daemon sets none.
const MAX_THROTTLE: u64 = 300;

/// What a reaped child meant to the daemons.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaped {
    /// Not a daemon's process.
    NotOurs,
    /// A daemon's; dealt with.
    Handled,
    /// A control daemon exited: the server should stop.
    ControlExited(String),
}

/// One daemon and its state.
#[derive(Debug)]
struct Daemon {
    spec: DaemonSpec,
    /// The process: the master's child, or for a smart daemon the one its
    /// pidfile names.
    pid: Option<libc::pid_t>,
    /// Starts after the first.
    respawns: u64,
    last_spawn: Option<Instant>,
    /// A smart daemon whose pidfile has named a live process since its
    /// last start.
    monitored: bool,
    /// Pidfile checks since the last start that found no live process.
    missed_checks: u32,
    /// When it was told to stop (SIGKILL after [`STOP_MERCY`]).
    stopping: Option<Instant>,
    /// A throttled restart waits until then (the master goes on meanwhile).
    due: Option<Instant>,
}

/// Every attached daemon of the server.
#[derive(Debug, Default)]
pub struct Daemons {
    list: Vec<Daemon>,
    /// Stopped for good (the server is stopping): none is started again.
    stopped: bool,
    last_check: Option<Instant>,
}

impl Daemons {
    /// The daemons `specs` describe, none started yet.
    pub fn new(specs: Vec<DaemonSpec>) -> Daemons {
        Daemons {
            list: specs
                .into_iter()
                .map(|spec| Daemon {
                    spec,
                    pid: None,
                    respawns: 0,
                    last_spawn: None,
                    monitored: false,
                    missed_checks: 0,
                    stopping: None,
                    due: None,
                })
                .collect(),
            stopped: false,
            last_check: None,
        }
    }

    /// Starts every daemon that is not running. A smart daemon whose
    /// pidfile names a live process (left from before a reload) is only
    /// watched.
    pub fn start_all(&mut self) {
        for d in &mut self.list {
            if d.pid.is_some() {
                continue;
            }
            d.due = None;
            if let Some(path) = &d.spec.pidfile {
                if let Some(pid) = live_pid_in(path) {
                    tracing::info!(
                        "daemon {:?}: found pid {pid} in {}; watching it",
                        d.spec.command,
                        path.display()
                    );
                    d.pid = Some(pid);
                    d.monitored = true;
                    continue;
                }
            }
            d.start();
        }
    }

    /// Takes note of a child the master reaped.
    pub fn reaped(&mut self, pid: libc::pid_t, how: &str) -> Reaped {
        let stopped = self.stopped;
        let Some(d) = self.list.iter_mut().find(|d| d.pid == Some(pid)) else {
            return Reaped::NotOurs;
        };
        if d.spec.pidfile.is_some() {
            // A smart daemon's first process exits once it has daemonized:
            // the pidfile says what runs now.
            d.pid = None;
            return Reaped::Handled;
        }
        d.pid = None;
        if d.stopping.take().is_some() || stopped {
            return Reaped::Handled;
        }
        if d.spec.control {
            return Reaped::ControlExited(format!(
                "control daemon {:?} (pid {pid}) {how}",
                d.spec.command
            ));
        }
        tracing::warn!(
            "daemon {:?} (pid {pid}) {how}; starting it again",
            d.spec.command
        );
        d.spawn();
        Reaped::Handled
    }

    /// Each tick: starts daemons whose throttle is over; once a second,
    /// smart daemons whose pidfile no longer names a live process.
    pub fn check(&mut self) {
        if self.stopped {
            return;
        }
        for d in &mut self.list {
            if d.due.is_some_and(|at| at <= Instant::now()) {
                d.due = None;
                d.start();
            }
        }
        if self
            .last_check
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_check = Some(Instant::now());
        for d in &mut self.list {
            let Some(path) = d.spec.pidfile.clone() else {
                continue;
            };
            if d.due.is_some() {
                continue;
            }
            match live_pid_in(&path) {
                None if d.monitored => {
                    tracing::warn!(
                        "daemon {:?}: {} names no live process; starting it again",
                        d.spec.command,
                        path.display()
                    );
                    d.spawn();
                }
                None => {
                    d.missed_checks += 1;
                    if d.missed_checks >= d.spec.freq.max(1) {
                        tracing::warn!(
                            "daemon {:?}: no live pid in {} after {} checks; starting it again",
                            d.spec.command,
                            path.display(),
                            d.missed_checks
                        );
                        d.spawn();
                    }
                }
                Some(pid) => {
                    d.pid = Some(pid);
                    d.monitored = true;
                }
            }
        }
    }

    /// Asks the daemons to stop: the plain ones, and smart ones that want
    /// to know (`notifypid`) — other smart ones outlive the server, as in
    /// uWSGI. With `for_good`, none is started again.
    pub fn stop(&mut self, reloading: bool, for_good: bool) {
        self.stopped |= for_good;
        for d in &mut self.list {
            let Some(pid) = d.pid else { continue };
            let signal = if reloading && d.spec.reload_signal > 0 {
                d.spec.reload_signal
            } else {
                d.spec.stop_signal
            };
            if d.spec.pidfile.is_some() {
                if d.spec.notify_pid {
                    let signal = if reloading && d.spec.reload_signal == 0 {
                        libc::SIGHUP
                    } else {
                        signal
                    };
                    // SAFETY: signalling a process group.
                    unsafe { libc::kill(-pid, signal) };
                }
                continue;
            }
            tracing::info!("stopping daemon {:?} (pid {pid})", d.spec.command);
            // SAFETY: signalling the daemon's own process group.
            unsafe { libc::kill(-pid, signal) };
            d.stopping = Some(Instant::now());
        }
    }

    /// Kills stopped daemons past their mercy; true when no stopped
    /// daemon is left.
    pub fn settle(&mut self) -> bool {
        let mut left = false;
        for d in &mut self.list {
            let (Some(pid), Some(since)) = (d.pid, d.stopping) else {
                continue;
            };
            left = true;
            if since.elapsed() > STOP_MERCY {
                tracing::warn!(
                    "daemon {:?} (pid {pid}) did not stop in time; killing it",
                    d.spec.command
                );
                // SAFETY: as in `stop`.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                d.stopping = Some(Instant::now());
            }
        }
        !left
    }

    /// Stops the plain daemons and waits for them (up to their mercy, then
    /// SIGKILL), reaping only their processes: for a reload that replaces
    /// the master's image, which would not know them after.
    pub fn stop_and_wait(&mut self) {
        self.stop(true, false);
        loop {
            for d in &mut self.list {
                if let (Some(pid), Some(_)) = (d.pid, d.stopping) {
                    let mut status = 0;
                    // SAFETY: waitpid on a child of this process.
                    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                        d.pid = None;
                        d.stopping = None;
                    }
                }
            }
            if self.settle() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the stats show of each daemon.
    pub fn view(&self) -> Vec<DaemonStat> {
        self.list
            .iter()
            .map(|d| DaemonStat {
                cmd: d.spec.command.clone(),
                pid: d.pid.unwrap_or(0),
                respawns: d.respawns,
            })
            .collect()
    }
}

impl Daemon {
    /// Starts the daemon again: now, or once its throttle is over (see
    /// [`Daemons::check`]).
    fn spawn(&mut self) {
        self.pid = None;
        let throttle = self.throttle();
        if throttle == 0 {
            return self.start();
        }
        tracing::info!(
            "daemon {:?}: throttling for {throttle} s",
            self.spec.command
        );
        self.due = Some(Instant::now() + Duration::from_secs(throttle));
    }

    /// Starts the daemon's process now.
    fn start(&mut self) {
        match self.command().spawn() {
            Ok(child) => {
                let pid = child.id() as libc::pid_t;
                tracing::info!(
                    "daemon {:?} {} (pid {pid})",
                    self.spec.command,
                    if self.last_spawn.is_some() {
                        "restarted"
                    } else {
                        "started"
                    }
                );
                if self.last_spawn.is_some() {
                    self.respawns += 1;
                }
                self.pid = Some(pid);
                self.last_spawn = Some(Instant::now());
                self.monitored = false;
                self.missed_checks = 0;
                // Reaped by the master's loop, not through `child`.
                drop(child);
            }
            Err(e) => tracing::error!(
                source = "rwsgi",
                "cannot start daemon {:?}: {e}",
                self.spec.command
            ),
        }
    }

    /// Seconds to wait before starting again: uWSGI's rule, one more for
    /// each start since the last quiet spell, counted down by the time
    /// since the last start.
    fn throttle(&self) -> u64 {
        let Some(last) = self.last_spawn else {
            return 0;
        };
        let since = last.elapsed();
        if since > QUICK_RESTART {
            return 0;
        }
        let cap = match self.spec.max_throttle {
            0 => MAX_THROTTLE,
            n => u64::from(n),
        };
        (self.respawns + 1)
            .saturating_sub(since.as_secs())
            .clamp(1, cap)
    }

    fn command(&self) -> Command {
        let spec = &self.spec;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&spec.command);
        if !spec.honour_stdin {
            cmd.stdin(Stdio::null());
        }
        if let Some(log) = log_file() {
            if let Ok(second) = log.try_clone() {
                cmd.stdout(log).stderr(second);
            }
        }
        if let Some(dir) = &spec.chdir {
            cmd.current_dir(dir);
        }
        if let Some(gid) = spec.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = spec.uid {
            cmd.uid(uid);
        }
        let pidfile = spec
            .pidfile
            .as_ref()
            .filter(|_| spec.daemonize)
            .and_then(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok());
        let dumb = spec.pidfile.is_none();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(path) = &pidfile {
                    daemonize_into(path)?;
                }
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if dumb {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                }
                Ok(())
            });
        }
        cmd
    }
}

/// In a daemon's child: forks once more (the first child exits, so the
/// program is nobody's child but init's) and writes the survivor's pid to
/// `path`. Async-signal-safe: no allocation.
fn daemonize_into(path: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: fork, _exit, open, write and close are async-signal-safe.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut digits = [0u8; 12];
        let text = decimal(libc::getpid() as u32, &mut digits);
        libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
    }
    Ok(())
}

/// `n` in decimal with a newline, written into `buf` (no allocation).
fn decimal(mut n: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut at = buf.len() - 1;
    buf[at] = b'\n';
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The pid a pidfile names, if that process is alive.
fn live_pid_in(path: &std::path::Path) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(path).ok()?;
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let pid: libc::pid_t = digits.parse().ok().filter(|&p| p > 0)?;
    // SAFETY: signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// A second descriptor of the `--logto` file, for a daemon's output (None
/// when the log goes to stderr, which the daemon inherits).
fn log_file() -> Option<File> {
    let (fd, _) = crate::logging::handover()?;
    // SAFETY: duplicating a descriptor the logger holds open.
    let copy: RawFd = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: a descriptor just made and owned by nothing else.
    (copy >= 0).then(|| unsafe { File::from_raw_fd(copy) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_a_pid_and_a_newline() {
        let mut buf = [0u8; 12];
        assert_eq!(decimal(0, &mut buf), b"0\n");
        assert_eq!(decimal(4_194_304, &mut buf), b"4194304\n");
        assert_eq!(decimal(u32::MAX, &mut buf), b"4294967295\n");
    }

    fn daemon(respawns: u64, last: Duration, max_throttle: u32) -> Daemon {
        let mut spec = DaemonSpec::plain("true").unwrap();
        spec.max_throttle = max_throttle;
        Daemon {
            spec,
            pid: None,
            respawns,
            last_spawn: Some(Instant::now() - last),
            monitored: false,
            missed_checks: 0,
            stopping: None,
            due: None,
        }
    }

    #[test]
    fn quick_restarts_are_throttled_more_each_time_up_to_the_cap() {
        assert_eq!(
            daemon(0, Duration::from_secs(10), 0).throttle(),
            0,
            "a quiet spell"
        );
        assert_eq!(daemon(0, Duration::from_millis(100), 0).throttle(), 1);
        assert_eq!(daemon(5, Duration::from_millis(100), 0).throttle(), 6);
        assert_eq!(daemon(5, Duration::from_millis(2500), 0).throttle(), 4);
        assert_eq!(daemon(50, Duration::from_millis(100), 7).throttle(), 7);
        assert_eq!(daemon(1000, Duration::from_millis(100), 0).throttle(), 300);
    }

    #[test]
    fn a_pidfile_counts_only_when_its_process_lives() {
        let dir = std::env::temp_dir().join(format!("rwsgi-daemon-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.pid");
        std::fs::write(&file, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(live_pid_in(&file), Some(std::process::id() as i32));
        std::fs::write(&file, "0\n").unwrap();
        assert_eq!(live_pid_in(&file), None);
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(live_pid_in(&file), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
