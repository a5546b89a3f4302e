//! The master's loop: spawn workers, reap them, replace the dead, sequence
//! reloads and stops. Single-threaded by design (see the module doc of
//! `master`): signals are blocked and taken with `sigtimedwait`, which also
//! paces the loop.
//!
//! - `signals`: the signals the master takes, `waitpid` statuses, sd_notify.
//! - `reexec`: the reload that re-executes the master (app imported in it).
//! - `stats_view`: `--stats` / `--metrics`, read from the scoreboard.
//! - `stopping`: reloads, stops and the deadlines of retiring workers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod reexec;
mod signals;
mod stats_view;
mod stopping;

use reexec::{adopt_after_reexec, inherited_endpoints, REEXEC_FDS, START_DIR};
pub(in crate::master) use signals::unblock_signals;
use signals::{block_signals, describe_status, sd_notify, signal, wait_signal};
use stats_view::{open_endpoints, slot_totals};

use crate::config::{Cli, HookPhase};
use crate::master::cron::Crons;
use crate::master::daemons::{Daemons, Reaped};
use crate::master::hooks;
use crate::master::scoreboard::{Recycle, Scoreboard};
use crate::master::sockets::{self, Sockets};
use crate::master::worker::{self, WorkerSetup};
use crate::master::{exit_code, pidfile, privileges, title, SCOREBOARD};
use crate::stats::{Endpoint, Totals};
use crate::wsgi::{interpreter, LoadedApp};

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
    /// Per worker id (from its first start): starts after the first, and
    /// harakiris.
    respawns: HashMap<u32, u64>,
    harakiris: HashMap<u32, u64>,
    /// Counters of workers that have exited (metrics stay monotonic).
    retired: Totals,
    /// `--attach-daemon` and its family.
    daemons: Daemons,
    /// `--cron` and its family.
    crons: Crons,
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
            // The log is on stderr already unless it goes to a file: say
            // it once where the operator looks.
            if cli.logto.is_some() {
                eprintln!("rwsgi: {e}");
            }
            1
        }
    }
}

fn start(cli: &Cli, argv: Vec<OsString>) -> Result<Supervisor<'_>, String> {
    let hooks = |phase| hooks::run(&cli.hooks(phase), phase);
    hooks(HookPhase::Asap)?;
    let reexec = std::env::var(REEXEC_FDS).ok();
    let (sockets, adopted) = match &reexec {
        Some(fds) => adopt_after_reexec(fds)?,
        None => (sockets::open(cli)?, Vec::new()),
    };
    let endpoints = open_endpoints(cli, inherited_endpoints())?;
    if reexec.is_none() {
        if let Some(path) = &cli.pidfile {
            pidfile::write(path)?;
        }
        hooks(HookPhase::AsRoot)?;
        privileges::drop_to(cli.uid.as_deref(), cli.gid.as_deref())?;
        hooks(HookPhase::AsUser)?;
    }
    block_signals();
    title::set("rwsgi master");
    let spec = cli.app_spec();
    let app = if cli.lazy_apps {
        None
    } else {
        interpreter::start(spec.home.as_deref());
        interpreter::prepare(&spec)
            .map_err(|e| format!("cannot load the app ({}): {e}", spec.describe()))?;
        hooks(HookPhase::PreApp)?;
        match interpreter::load(&spec) {
            Ok(app) => {
                hooks(HookPhase::PostApp)?;
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
        daemons: Daemons::new(cli.daemons()),
        crons: Crons::new(cli.crons(), cli.cron_harakiri),
    })
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
    for warning in cli.static_files().missing() {
        tracing::warn!("--static-map: {warning}");
    }
}

impl Supervisor<'_> {
    fn serve(&mut self) -> i32 {
        if let Err(e) = hooks::run(
            &self.cli.hooks(HookPhase::MasterStart),
            HookPhase::MasterStart,
        ) {
            tracing::error!("{e}");
            return 1;
        }
        self.daemons.start_all();
        loop {
            match wait_signal(self.tick()) {
                Some(libc::SIGHUP) => self.reload("SIGHUP"),
                Some(libc::SIGTERM) => self.stop(true, "SIGTERM"),
                Some(libc::SIGINT) => self.stop(false, "SIGINT"),
                Some(libc::SIGQUIT) => self.stop(false, "SIGQUIT"),
                Some(libc::SIGUSR1) => self.reopen_logs(),
                _ => {}
            }
            self.reap();
            if self.stopping.is_some() {
                if self.procs.is_empty() && self.daemons.settle() {
                    self.vacuum();
                    tracing::info!("master exiting with code {}", self.exit_code);
                    return self.exit_code;
                }
            } else {
                self.note_recycling();
                self.reconcile();
                self.notify_ready();
                self.check_touch_reload();
                self.daemons.check();
                self.crons.tick();
            }
            self.enforce_deadlines();
            self.serve_stats();
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
        // A start of an id started before is a restart, even one that
        // happens before every worker reported ready (a worker recycled
        // within its first requests). After a reload's re-exec, the first
        // start of each id is a restart too.
        let first = if self.ever_ready { 1 } else { 0 };
        self.respawns
            .entry(id)
            .and_modify(|n| *n += 1)
            .or_insert(first);
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
        // The master's signals stay blocked (pending) until the worker has
        // its handlers (`worker::run`): SIGUSR1 passed on by the master a
        // moment after the fork would otherwise end it (its default action).
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
        // A stats client held open here would never see its end.
        self.endpoints.clear();
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
                let how = describe_status(status);
                if self.crons.reaped(pid, &how) {
                    continue;
                }
                if let Reaped::ControlExited(why) = self.daemons.reaped(pid, &how) {
                    self.stop(true, &why);
                }
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

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
