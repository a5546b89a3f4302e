//! One worker process, after fork: load the app (unless the master did),
//! start the Python threads and the tokio I/O loop on the inherited
//! sockets, and serve until told to stop or until it should be recycled.
//! Every exit path drains first: in-flight requests finish, up to
//! `--shutdown-timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::scoreboard::{Recycle, Scoreboard};
use super::{exit_code, SCOREBOARD};
use crate::config::{Cli, HookPhase};
use crate::exchange::{PoolObserver, RequestLabel, ServiceTime};
use crate::protocol::Protocol;
use crate::server::listener::{accept_loop, BoundSocket, ListenSpec};
use crate::server::{
    AcceptDeferral, AccessLog, Inline, Lifecycle, Observer, Shared, Siblings, Timeouts,
};
use crate::wsgi::{interpreter, InlineApp, LoadedApp, ThreadPool, WorkerFacts};

/// What a worker gets from the master.
pub struct WorkerSetup<'a> {
    /// The worker number, 1..=processes.
    pub id: u32,
    /// Its scoreboard slot.
    pub slot: usize,
    /// The options.
    pub cli: &'a Cli,
    /// The listening sockets (inherited).
    pub listeners: Vec<(ListenSpec, BoundSocket)>,
    /// The app, when the master imported it before forking.
    pub app: Option<Arc<LoadedApp>>,
}

/// Runs the worker; returns its exit code.
pub fn run(setup: WorkerSetup<'_>) -> i32 {
    let WorkerSetup {
        id,
        slot,
        cli,
        listeners,
        app,
    } = setup;
    super::heap::keep_body_memory(cli.post_buffering);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, "cannot start the I/O runtime: {e}");
            return exit_code::FAILED;
        }
    };
    // Handlers first, then the signals the master left blocked: sent
    // meanwhile, they are delivered now, and the threads started after
    // (Python's, and any process they start) block none.
    let signals = match Signals::install(&runtime) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!(worker = id, "cannot install signal handlers: {e}");
            return exit_code::FAILED;
        }
    };
    super::supervisor::unblock_signals();
    // A failing hook stops the server, as a failing lazy import does.
    let hooks = |phase| {
        super::hooks::run(&cli.hooks(phase), phase).map_err(|e| {
            tracing::error!(worker = id, "{e}");
            exit_code::APP_LOAD
        })
    };
    let app = match app {
        Some(app) => {
            if let Err(code) = hooks(HookPhase::PostFork) {
                return code;
            }
            app
        }
        None => {
            let spec = cli.app_spec();
            interpreter::start(spec.home.as_deref());
            if let Err(e) = interpreter::prepare(&spec) {
                tracing::error!(worker = id, "cannot load the app: {e}");
                return exit_code::APP_LOAD;
            }
            if let Err(code) = hooks(HookPhase::PostFork).and_then(|()| hooks(HookPhase::PreApp)) {
                return code;
            }
            let app = match interpreter::load(&spec) {
                Ok(app) => Arc::new(app),
                Err(e) => {
                    tracing::error!(worker = id, "cannot load the app: {e}");
                    return exit_code::APP_LOAD;
                }
            };
            if let Err(code) = hooks(HookPhase::PostApp) {
                return code;
            }
            app
        }
    };
    interpreter::enable_stack_dumps(libc::SIGUSR2);
    let facts = WorkerFacts {
        multithread: cli.threads > 1,
        multiprocess: cli.processes > 1,
    };
    let watch = Arc::new(WorkerWatch::new(id, slot, cli));
    let observer: Arc<dyn PoolObserver> = watch.clone();
    // One Python thread: run the app on the I/O thread itself (no thread
    // hand-off per request); the pool's thread then only takes requests
    // whose body streams in. Harakiri needs the I/O thread free to answer
    // 504 while the app is stuck, so it keeps every request on the pool.
    let service = Arc::new(ServiceTime::default());
    let inline = (cli.threads == 1 && cli.harakiri == 0).then(|| {
        let runner: Arc<dyn crate::exchange::InlineRunner> = Arc::new(InlineApp::new(
            app.clone(),
            facts,
            Some(observer.clone()),
            service.clone(),
        ));
        Inline::new(runner, cli.queue_size(), service.clone())
    });
    let pool = match ThreadPool::start(
        app,
        cli.threads as usize,
        cli.queue_size(),
        facts,
        Some(observer),
        service.clone(),
    ) {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(worker = id, "cannot start Python threads: {e}");
            return exit_code::FAILED;
        }
    };
    let lifecycle = Arc::new(Lifecycle::shown_in(&watch.slot().connections));
    let defer_accepts = (cli.processes > 1).then(|| {
        AcceptDeferral::new(
            pool.occupancy(),
            inline.as_ref().map(|_| service.clone()),
            lifecycle.clone(),
            watch.clone(),
        )
    });
    let shared = Arc::new(Shared {
        limits: cli.limits(),
        post_buffering: cli.post_buffering,
        body_budget: crate::server::spool::BodyBudget::new(cli.body_memory),
        // Lives as long as the worker: leaked once rather than counted.
        add_headers: Box::leak(cli.added_header_lines().into_boxed_slice()),
        dispatcher: Arc::new(pool),
        access_log: AccessLog {
            all: !cli.disable_logging,
            client_errors: cli.log_4xx,
            server_errors: cli.log_5xx,
            worker: id,
            memory_report: cli.memory_report,
        },
        retry_after: cli.retry_after,
        harakiri: (cli.harakiri > 0).then(|| Duration::from_secs(cli.harakiri)),
        observer: Some(watch.clone()),
        lifecycle,
        timeouts: Timeouts {
            header: Duration::from_secs(cli.header_timeout.max(1)),
            body: Duration::from_secs(cli.body_timeout.max(1)),
            keepalive: Duration::from_secs(cli.keepalive_timeout.max(1)),
            write: Duration::from_secs(cli.write_timeout.max(1)),
        },
        connection_slots: Arc::new(tokio::sync::Semaphore::new(cli.max_connections.max(1))),
        static_files: cli.static_files(),
        inline,
        defer_accepts,
    });
    runtime.block_on(serve(id, cli, listeners, shared, watch, signals))
}

/// The signals a worker acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install(runtime: &tokio::runtime::Runtime) -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let _context = runtime.enter();
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }
}

/// Serves until a stop signal or a recycle reason, then drains.
async fn serve(
    id: u32,
    cli: &Cli,
    listeners: Vec<(ListenSpec, BoundSocket)>,
    shared: Arc<Shared>,
    watch: Arc<WorkerWatch>,
    signals: Signals,
) -> i32 {
    let Signals {
        mut term,
        mut int,
        mut quit,
        mut usr1,
    } = signals;
    for (spec, socket) in listeners {
        let shared = shared.clone();
        tokio::spawn(async move {
            let name = spec.to_string();
            if let Err(e) = accept_loop(socket, spec, shared).await {
                tracing::error!(listener = %name, "listener failed: {e}");
            }
        });
    }
    let slot = watch.slot();
    slot.pid.store(std::process::id() as i32, Ordering::Release);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    slot.last_spawn
        .store(now.map(|d| d.as_secs()).unwrap_or(0), Ordering::Relaxed);
    slot.ready.store(1, Ordering::Release);
    tracing::info!(worker = id, pid = std::process::id(), "worker {id} ready");
    let lifetime = async {
        match cli.max_worker_lifetime {
            0 => std::future::pending().await,
            secs => tokio::time::sleep(Duration::from_secs(secs)).await,
        }
    };
    let mut grace = Duration::from_secs(cli.shutdown_timeout);
    tokio::pin!(lifetime);
    let rss = rss_watch(&watch);
    tokio::pin!(rss);
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(worker = id, "SIGTERM: finishing in-flight requests");
                break;
            }
            _ = int.recv() => return exit_code::OK,
            _ = quit.recv() => return exit_code::OK,
            _ = usr1.recv() => crate::logging::reopen(),
            _ = &mut lifetime => {
                watch.recycle(Recycle::Lifetime);
                break;
            }
            _ = watch.recycle_requested() => break,
            _ = &mut rss => break,
        }
    }
    let reason = watch.reason();
    if reason == Recycle::Harakiri {
        // The stuck thread will never finish: give the others a moment only.
        grace = grace.min(Duration::from_secs(3));
    }
    if reason != Recycle::No {
        tracing::info!(worker = id, "recycling worker {id}: {}", reason.describe());
    }
    shared.lifecycle.drain();
    if tokio::time::timeout(grace, shared.lifecycle.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = id,
            "{} connection(s) still open after {} s; exiting anyway",
            shared.lifecycle.active(),
            grace.as_secs()
        );
    }
    if reason == Recycle::Harakiri {
        exit_code::HARAKIRI
    } else {
        exit_code::OK
    }
}

/// Resolves when the worker's resident memory passes `--reload-on-rss`
/// (never when unset). Requests check it as they end; this catches memory
/// that grows while none ends (a long request, a thread of the app's).
async fn rss_watch(watch: &WorkerWatch) {
    if watch.rss_limit == 0 {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if watch.recycle_if_over_rss() {
            return;
        }
    }
}

/// Whether this process's resident memory is over `limit` bytes, asked at
/// the end of each request so a fast leak is caught within one request.
/// The kernel's high-water mark of the process's resident set (one
/// `getrusage`, no file to read) rules out nearly every request; only
/// when the peak is over the limit is the current size read.
fn resident_over(limit: u64) -> Option<u64> {
    // SAFETY: getrusage fills the struct it is given.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return None;
        }
        usage.ru_maxrss as u64
    };
    if peak_kib * 1024 <= limit {
        return None;
    }
    resident_bytes().filter(|&rss| rss > limit)
}

/// This process's resident set size, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

/// Counts requests for `--max-requests`, notes harakiri, and asks for
/// recycling through the scoreboard.
struct WorkerWatch {
    /// Worker number, for logs.
    id: u32,
    /// Scoreboard slot index.
    slot: usize,
    /// Requests after which to recycle (0: never), jitter included.
    max_requests: u64,
    /// `--reload-on-rss` in bytes (0: never).
    rss_limit: u64,
    /// Set once a recycle was asked for.
    recycling: AtomicBool,
    /// Wakes the serve loop when recycling is asked for.
    wake: Notify,
}

impl WorkerWatch {
    fn new(id: u32, slot: usize, cli: &Cli) -> Self {
        let jitter = match cli.max_requests_jitter {
            0 => 0,
            j => (std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64) % (j + 1),
        };
        WorkerWatch {
            id,
            slot,
            max_requests: if cli.max_requests == 0 {
                0
            } else {
                cli.max_requests + jitter
            },
            rss_limit: cli.reload_on_rss * 1024 * 1024,
            recycling: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn slot(&self) -> &'static super::scoreboard::Slot {
        scoreboard().slot(self.slot)
    }

    fn reason(&self) -> Recycle {
        self.slot().recycle_reason()
    }

    /// Asks to be replaced: the master starts a successor, this worker drains.
    fn recycle(&self, reason: Recycle) {
        if !self.recycling.swap(true, Ordering::AcqRel) {
            self.slot().recycle.store(reason as u32, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Asks to be replaced when resident memory is over `--reload-on-rss`.
    fn recycle_if_over_rss(&self) -> bool {
        let Some(rss) = resident_over(self.rss_limit) else {
            return false;
        };
        tracing::info!(
            worker = self.id,
            "resident memory {} MiB > reload-on-rss {} MiB",
            rss >> 20,
            self.rss_limit >> 20
        );
        self.recycle(Recycle::Rss);
        true
    }

    async fn recycle_requested(&self) {
        self.wake.notified().await;
    }
}

impl Observer for WorkerWatch {
    fn request_finished(
        &self,
        protocol: Protocol,
        status: u16,
        body_bytes: u64,
        elapsed: Duration,
    ) {
        let slot = self.slot();
        let index = match protocol {
            Protocol::Http => 0,
            Protocol::Uwsgi => 1,
            Protocol::Scgi => 2,
        };
        slot.record(index, status, body_bytes, elapsed);
        let served = slot.requests.load(Ordering::Relaxed);
        if self.max_requests != 0 && served >= self.max_requests {
            self.recycle(Recycle::MaxRequests);
        }
        if self.rss_limit != 0 && !self.recycling.load(Ordering::Relaxed) {
            self.recycle_if_over_rss();
        }
    }

    fn harakiri(&self, _label: &RequestLabel, _elapsed: Duration) {
        // Python's faulthandler prints every thread's stack to the log.
        // SAFETY: raising a signal this process handles.
        unsafe {
            libc::raise(libc::SIGUSR2);
        }
        self.recycle(Recycle::Harakiri);
    }
}

impl Siblings for WorkerWatch {
    fn least_load(&self) -> Option<usize> {
        scoreboard().least_requests_except(self.slot)
    }

    fn fewest_connections(&self) -> Option<usize> {
        scoreboard().fewest_connections_except(self.slot)
    }

    fn show_leaving(&self, leaving: bool) {
        let turns = &self.slot().leaving;
        if leaving {
            turns.fetch_add(1, Ordering::Relaxed);
        } else {
            turns.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PoolObserver for WorkerWatch {
    fn thread_panicked(&self, _thread: usize) {
        self.recycle(Recycle::Panic);
    }

    fn job_started(&self, thread: usize) {
        let slot = self.slot();
        slot.busy.fetch_add(1, Ordering::Relaxed);
        if let Some(core) = slot.core_busy.get(thread) {
            core.store(1, Ordering::Relaxed);
        }
    }

    fn job_finished(&self, thread: usize, app_error: bool) {
        let slot = self.slot();
        slot.busy.fetch_sub(1, Ordering::Relaxed);
        if let Some(core) = slot.core_busy.get(thread) {
            core.store(0, Ordering::Relaxed);
        }
        if let Some(count) = slot.core_requests.get(thread) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        if app_error {
            slot.exceptions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn queue_depth(&self, depth: usize) {
        self.slot().queued.store(depth as u32, Ordering::Relaxed);
    }
}

fn scoreboard() -> &'static Scoreboard {
    SCOREBOARD
        .get()
        .expect("scoreboard is set before workers start")
}
