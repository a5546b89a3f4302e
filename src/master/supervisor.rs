//! The master's loop: spawn workers, reap them, replace the dead, sequence
//! reloads and stops. Single-threaded by design (see the module doc of
//! `master`): signals are blocked and taken with `sigtimedwait`, which also
//! paces the loop.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::scoreboard::{Recycle, Scoreboard};
use super::sockets::{self, Sockets};
use super::worker::{self, WorkerSetup};
use super::{exit_code, privileges, title, SCOREBOARD};
use crate::config::Cli;
use crate::server::listener::{BoundSocket, ListenSpec};
use crate::stats::{self, Endpoint, EndpointKind, Snapshot, Totals};
use crate::wsgi::{interpreter, LoadedApp};

/// Environment variables that carry state across a reload's re-exec.
const REEXEC_FDS: &str = "RWSGI_REEXEC_FDS";
const REEXEC_WORKERS: &str = "RWSGI_REEXEC_WORKERS";
const REEXEC_CREATED: &str = "RWSGI_REEXEC_CREATED";

/// How often the loop runs when no signal arrives.
const TICK: Duration = Duration::from_millis(100);
/// A worker dying sooner than this after start counts as a failed start.
const QUICK_DEATH: Duration = Duration::from_secs(2);
/// Longest back-off between respawns of a worker that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One worker process the master knows.
#[derive(Debug)]
struct Proc {
    pid: libc::pid_t,
    /// Worker number, 1..=processes.
    id: u32,
    /// Scoreboard slot (None for workers adopted across a re-exec).
    slot: Option<usize>,
    /// The reload generation it was started in.
    generation: u64,
    started: Instant,
    /// When it was told to stop (or started recycling).
    retiring: Option<Instant>,
}

/// The master's state.
struct Supervisor<'a> {
    cli: &'a Cli,
    argv: Vec<OsString>,
    sockets: Sockets,
    app: Option<Arc<LoadedApp>>,
    procs: Vec<Proc>,
    /// Bumped by each reload; older workers are replaced.
    generation: u64,
    /// Per worker id: not before this instant (back-off).
    respawn_at: HashMap<u32, Instant>,
    /// Per worker id: consecutive quick deaths.
    failures: HashMap<u32, u32>,
    /// Some worker has been ready once (a failing app import after that is
    /// not fatal to the master).
    ever_ready: bool,
    /// Told systemd we are ready.
    notified_ready: bool,
    /// Set when stopping: the deadline after which workers are killed.
    stopping: Option<Instant>,
    /// The exit code once every worker is gone.
    exit_code: i32,
    /// Last seen modification times of `--touch-reload` files.
    touched: Vec<Option<SystemTime>>,
    last_touch_check: Instant,
    /// `--stats` and `--metrics` sockets.
    endpoints: Vec<Endpoint>,
    /// Per worker id: starts after the first, and harakiris.
    respawns: HashMap<u32, u64>,
    harakiris: HashMap<u32, u64>,
    /// Counters of workers that have exited (metrics stay monotonic).
    retired: Totals,
}

/// Runs the master until it stops; returns the process exit code.
pub fn run(cli: Cli, argv: Vec<OsString>) -> i32 {
    if let Ok(dir) = std::env::current_dir() {
        let _ = START_DIR.set(dir);
    }
    match start(&cli, argv) {
        Ok(mut supervisor) => supervisor.serve(),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("rwsgi: {e}");
            1
        }
    }
}

fn start(cli: &Cli, argv: Vec<OsString>) -> Result<Supervisor<'_>, String> {
    let reexec = std::env::var(REEXEC_FDS).ok();
    let (sockets, adopted) = match &reexec {
        Some(fds) => adopt_after_reexec(fds)?,
        None => (sockets::open(cli)?, Vec::new()),
    };
    let endpoints = open_endpoints(cli)?;
    if reexec.is_none() {
        if let Some(pidfile) = &cli.pidfile {
            std::fs::write(pidfile, format!("{}\n", std::process::id()))
                .map_err(|e| format!("cannot write pidfile {}: {e}", pidfile.display()))?;
        }
        privileges::drop_to(cli.uid.as_deref(), cli.gid.as_deref())?;
    }
    block_signals();
    title::set("rwsgi master");
    let spec = cli.app_spec();
    let app = if cli.lazy_apps {
        None
    } else {
        interpreter::start();
        match interpreter::load(&spec) {
            Ok(app) => {
                interpreter::freeze_for_fork();
                Some(Arc::new(app))
            }
            Err(e) if !adopted.is_empty() => {
                tracing::error!(
                    "reload: {e}\nthe old workers keep serving; fix the app and send SIGHUP again"
                );
                None
            }
            Err(e) => return Err(format!("cannot load the app ({}): {e}", spec.describe())),
        }
    };
    let slots = cli.processes as usize * 2 + 2;
    let board = Scoreboard::new(slots).map_err(|e| format!("cannot map the scoreboard: {e}"))?;
    if SCOREBOARD.set(board).is_err() {
        return Err("the scoreboard was mapped twice".into());
    }
    log_banner(cli, &spec.describe(), &sockets, reexec.is_some());
    let generation = u64::from(!adopted.is_empty());
    Ok(Supervisor {
        cli,
        argv,
        touched: cli.touch_reload.iter().map(|f| mtime(f)).collect(),
        sockets,
        app,
        procs: adopted,
        generation,
        respawn_at: HashMap::new(),
        failures: HashMap::new(),
        ever_ready: reexec.is_some(),
        notified_ready: false,
        stopping: None,
        exit_code: 0,
        last_touch_check: Instant::now(),
        endpoints,
        respawns: HashMap::new(),
        harakiris: HashMap::new(),
        retired: Totals::default(),
    })
}

/// Binds `--stats` and `--metrics`.
fn open_endpoints(cli: &Cli) -> Result<Vec<Endpoint>, String> {
    let mut endpoints = Vec::new();
    if let Some(addr) = &cli.stats {
        let kind = if cli.stats_http {
            EndpointKind::HttpStats
        } else {
            EndpointKind::RawStats
        };
        endpoints.push(
            Endpoint::bind(addr, kind).map_err(|e| format!("cannot bind --stats {addr}: {e}"))?,
        );
    }
    if let Some(addr) = &cli.metrics {
        endpoints.push(
            Endpoint::bind(addr, EndpointKind::Metrics)
                .map_err(|e| format!("cannot bind --metrics {addr}: {e}"))?,
        );
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

fn log_banner(cli: &Cli, app: &str, sockets: &Sockets, reloaded: bool) {
    tracing::info!(
        "rwsgi {} {} master pid {}: {} with {} worker(s) x {} Python thread(s){}",
        env!("CARGO_PKG_VERSION"),
        if reloaded { "reloaded," } else { "started," },
        std::process::id(),
        app,
        cli.processes,
        cli.threads,
        if cli.lazy_apps { ", lazy-apps" } else { "" }
    );
    for (spec, _) in &sockets.listeners {
        tracing::info!("listening on {spec}");
    }
}

impl Supervisor<'_> {
    fn serve(&mut self) -> i32 {
        loop {
            match wait_signal(TICK) {
                Some(libc::SIGHUP) => self.reload("SIGHUP"),
                Some(libc::SIGTERM) => self.stop(true, "SIGTERM"),
                Some(libc::SIGINT) => self.stop(false, "SIGINT"),
                Some(libc::SIGQUIT) => self.stop(false, "SIGQUIT"),
                Some(libc::SIGUSR1) => self.reopen_logs(),
                _ => {}
            }
            self.reap();
            if self.stopping.is_some() {
                if self.procs.is_empty() {
                    self.vacuum();
                    tracing::info!("master exiting with code {}", self.exit_code);
                    return self.exit_code;
                }
            } else {
                self.note_recycling();
                self.reconcile();
                self.notify_ready();
                self.check_touch_reload();
            }
            self.enforce_deadlines();
            self.serve_stats();
        }
    }

    /// Answers stats and metrics clients waiting on their sockets.
    fn serve_stats(&self) {
        if self.endpoints.is_empty() {
            return;
        }
        let mut snapshot: Option<Snapshot> = None;
        let mut render = |kind: EndpointKind| {
            let s = snapshot.get_or_insert_with(|| self.snapshot());
            match kind {
                EndpointKind::Metrics => stats::prometheus(s),
                _ => stats::uwsgi_json(s),
            }
        };
        for endpoint in &self.endpoints {
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
            let cores = (0..(self.cli.threads as usize).min(super::scoreboard::CORES))
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
        }
    }

    fn board(&self) -> &'static Scoreboard {
        SCOREBOARD.get().expect("scoreboard mapped at start")
    }

    fn is_ready(&self, p: &Proc) -> bool {
        match p.slot {
            Some(slot) => self.board().slot(slot).ready.load(Ordering::Acquire) == 1,
            None => true,
        }
    }

    /// Starts successors for missing workers and retires replaced ones.
    fn reconcile(&mut self) {
        let now = Instant::now();
        for id in 1..=self.cli.processes {
            let current = self
                .procs
                .iter()
                .find(|p| p.id == id && p.generation == self.generation && p.retiring.is_none());
            match current {
                None => {
                    if self.respawn_at.get(&id).is_some_and(|at| *at > now) {
                        continue;
                    }
                    let replacing = self
                        .procs
                        .iter()
                        .any(|p| p.id == id && p.retiring.is_none());
                    if replacing && self.reload_starting() {
                        // Reloads replace one worker at a time.
                        continue;
                    }
                    self.spawn(id);
                }
                Some(p) if self.is_ready(p) => {
                    let old: Vec<usize> = (0..self.procs.len())
                        .filter(|&i| {
                            let o = &self.procs[i];
                            o.id == id && o.generation < self.generation && o.retiring.is_none()
                        })
                        .collect();
                    for i in old {
                        let o = &mut self.procs[i];
                        tracing::info!("reload: retiring worker {} (pid {})", o.id, o.pid);
                        signal(o.pid, libc::SIGTERM);
                        o.retiring = Some(now);
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Whether a current-generation worker is still starting.
    fn reload_starting(&self) -> bool {
        self.procs
            .iter()
            .any(|p| p.generation == self.generation && p.retiring.is_none() && !self.is_ready(p))
    }

    /// Workers that asked to be recycled are retiring: their successor is
    /// started by `reconcile` while they drain.
    fn note_recycling(&mut self) {
        let board = self.board();
        for p in &mut self.procs {
            if p.retiring.is_some() {
                continue;
            }
            if let Some(slot) = p.slot {
                let reason = board.slot(slot).recycle_reason();
                if reason != Recycle::No {
                    tracing::info!(
                        "worker {} (pid {}) is recycling: {}",
                        p.id,
                        p.pid,
                        reason.describe()
                    );
                    p.retiring = Some(Instant::now());
                }
            }
        }
    }

    fn spawn(&mut self, id: u32) {
        let Some(slot) = self.board().claim(id) else {
            tracing::error!(source = "rwsgi", "no free scoreboard slot for worker {id}");
            return;
        };
        let master = std::process::id() as libc::pid_t;
        let pid = if self.app.is_some() {
            interpreter::fork_with_python()
        } else {
            // SAFETY: the master is single-threaded, so the child may run
            // anything.
            unsafe { libc::fork() }
        };
        if pid < 0 {
            tracing::error!(
                source = "rwsgi",
                "cannot fork worker {id}: {}",
                std::io::Error::last_os_error()
            );
            self.board().release(slot);
            self.respawn_at
                .insert(id, Instant::now() + Duration::from_secs(1));
            return;
        }
        if pid == 0 {
            self.become_worker(id, slot, master);
        }
        self.board().slot(slot).pid.store(pid, Ordering::Release);
        if self.ever_ready || self.procs.iter().any(|p| p.id == id) {
            *self.respawns.entry(id).or_insert(0) += 1;
        }
        tracing::info!("spawned worker {id} (pid {pid})");
        self.procs.push(Proc {
            pid,
            id,
            slot: Some(slot),
            generation: self.generation,
            started: Instant::now(),
            retiring: None,
        });
    }

    /// The child side of `spawn`: never returns.
    fn become_worker(&mut self, id: u32, slot: usize, master: libc::pid_t) -> ! {
        unblock_signals();
        // SAFETY: plain prctl/getppid calls.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != master {
                libc::_exit(exit_code::FAILED);
            }
        }
        title::set(&format!("rwsgi worker {id}"));
        let listeners = std::mem::take(&mut self.sockets.listeners);
        let code = worker::run(WorkerSetup {
            id,
            slot,
            cli: self.cli,
            listeners,
            app: self.app.clone(),
        });
        use std::io::Write;
        let _ = std::io::stderr().flush();
        // SAFETY: leaving without running the master's destructors or
        // Python finalization (threads may still be stuck in the app).
        unsafe { libc::_exit(code) }
    }

    /// Collects exited workers and decides what follows.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(index) = self.procs.iter().position(|p| p.pid == pid) else {
                continue;
            };
            let p = self.procs.remove(index);
            let recycled = p
                .slot
                .map(|s| self.board().slot(s).recycle_reason())
                .unwrap_or(Recycle::No);
            if let Some(slot) = p.slot {
                self.retired.add(&slot_totals(self.board().slot(slot)));
                self.board().release(slot);
            }
            self.after_exit(p, status, recycled);
        }
    }

    fn after_exit(&mut self, p: Proc, status: i32, recycled: Recycle) {
        let how = describe_status(status);
        let expected = self.stopping.is_some()
            || p.retiring.is_some()
            || p.generation < self.generation
            || recycled != Recycle::No;
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        if code == Some(exit_code::HARAKIRI) {
            *self.harakiris.entry(p.id).or_insert(0) += 1;
            tracing::warn!(
                "worker {} (pid {}) exited after a harakiri; replacing it",
                p.id,
                p.pid
            );
            return;
        }
        if expected {
            tracing::info!("worker {} (pid {}) {how}", p.id, p.pid);
            if p.generation == self.generation {
                self.failures.remove(&p.id);
            }
            return;
        }
        tracing::error!(
            source = "rwsgi",
            "worker {} (pid {}) died: {how}",
            p.id,
            p.pid
        );
        if code == Some(exit_code::APP_LOAD) && !self.ever_ready {
            tracing::error!("the app cannot be loaded; stopping");
            self.exit_code = 1;
            self.stop(false, "app load failure");
            return;
        }
        if p.started.elapsed() < QUICK_DEATH {
            let fails = self.failures.entry(p.id).or_insert(0);
            *fails += 1;
            let delay =
                (Duration::from_millis(100) * 2u32.pow((*fails - 1).min(10))).min(MAX_BACKOFF);
            tracing::warn!(
                "worker {} died {} time(s) right after start; respawning in {} ms",
                p.id,
                fails,
                delay.as_millis()
            );
            self.respawn_at.insert(p.id, Instant::now() + delay);
        } else {
            self.failures.remove(&p.id);
        }
    }

    fn notify_ready(&mut self) {
        let ready = self
            .procs
            .iter()
            .filter(|p| p.generation == self.generation && p.retiring.is_none() && self.is_ready(p))
            .count();
        if ready > 0 {
            self.ever_ready = true;
            self.respawn_failures_reset();
        }
        if !self.notified_ready && ready >= self.cli.processes as usize {
            self.notified_ready = true;
            tracing::info!("all {} worker(s) ready", self.cli.processes);
            sd_notify("READY=1");
        }
    }

    fn respawn_failures_reset(&mut self) {
        let board = self.board();
        for p in &self.procs {
            if let Some(slot) = p.slot {
                if board.slot(slot).ready.load(Ordering::Acquire) == 1
                    && p.started.elapsed() > QUICK_DEATH
                {
                    self.failures.remove(&p.id);
                }
            }
        }
    }

    /// SIGUSR1: reopen `--logto` here and in every worker.
    fn reopen_logs(&self) {
        crate::logging::reopen();
        for p in &self.procs {
            signal(p.pid, libc::SIGUSR1);
        }
    }

    fn reload(&mut self, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        tracing::info!("{why}: graceful reload");
        sd_notify("RELOADING=1");
        self.respawn_at.clear();
        if self.app.is_some() {
            // The app lives in the master: only a fresh master image can
            // import it afresh.
            self.reexec();
        }
        self.generation += 1;
        self.notified_ready = false;
    }

    /// Replaces the master's image with a fresh one (same pid), handing
    /// over the sockets and the running workers. Returns only on failure.
    fn reexec(&mut self) {
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

    fn stop(&mut self, graceful: bool, why: &str) {
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
    fn enforce_deadlines(&mut self) {
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

    fn check_touch_reload(&mut self) {
        if self.cli.touch_reload.is_empty()
            || self.last_touch_check.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last_touch_check = Instant::now();
        let now: Vec<Option<SystemTime>> = self.cli.touch_reload.iter().map(|f| mtime(f)).collect();
        if let Some(i) = (0..now.len()).find(|&i| now[i] != self.touched[i]) {
            let file = self.cli.touch_reload[i].display().to_string();
            self.touched = now;
            self.reload(&format!("{file} was touched"));
        }
    }

    fn vacuum(&self) {
        if !self.cli.vacuum {
            return;
        }
        for path in self
            .sockets
            .created_files
            .iter()
            .chain(self.endpoints.iter().filter_map(Endpoint::path))
        {
            let _ = std::fs::remove_file(path);
        }
        if let Some(pidfile) = &self.cli.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
    }
}

/// Listeners and workers handed over by the previous master image.
fn adopt_after_reexec(fds: &str) -> Result<(Sockets, Vec<Proc>), String> {
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
static START_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The signals the master takes synchronously.
fn master_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGCHLD,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGUSR1,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

fn block_signals() {
    let set = master_signals();
    // SAFETY: blocking signals in a single-threaded process.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn unblock_signals() {
    // SAFETY: an empty mask; the worker installs its own handlers.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Waits up to `timeout` for one of the master's signals.
fn wait_signal(timeout: Duration) -> Option<i32> {
    let set = master_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; the info pointer may be null.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

fn signal(pid: libc::pid_t, sig: i32) {
    // SAFETY: signalling one of our own children by pid.
    unsafe { libc::kill(pid, sig) };
}

/// "exited with code N" / "was killed by signal SIGKILL".
fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = match sig {
            libc::SIGKILL => "SIGKILL (out of memory, or killed)".to_string(),
            libc::SIGSEGV => "SIGSEGV (a crash in native code)".to_string(),
            libc::SIGABRT => "SIGABRT".to_string(),
            libc::SIGBUS => "SIGBUS".to_string(),
            libc::SIGTERM => "SIGTERM".to_string(),
            other => format!("signal {other}"),
        };
        format!("was killed by {name}")
    } else {
        format!("ended with status {status}")
    }
}

/// Tells systemd about state changes when it asked (`NOTIFY_SOCKET`).
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let result = if bytes.first() == Some(&b'@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), PathBuf::from(path))
    };
    if let Err(e) = result {
        tracing::debug!("sd_notify {state}: {e}");
    }
}

/// A slot's counters as [`Totals`].
fn slot_totals(slot: &super::scoreboard::Slot) -> Totals {
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
