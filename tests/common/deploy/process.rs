//! rwsgi instances started and stopped (or killed) by their pids, steady
//! load through nginx, and bounded runs of helper programs.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::site::http_request;
use crate::common::{children, libc_sig, signal, temp_dir};

/// One rwsgi master started by a test (directly or through a script that
/// execs it), stopped by its pid.
pub struct Instance {
    child: Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Instance {
    /// Starts `program` with `args`, output to `log`. `env`, when given,
    /// replaces the whole environment.
    pub fn spawn(
        program: &Path,
        args: &[String],
        env: Option<&[(String, String)]>,
        log: &Path,
    ) -> Instance {
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args);
        if let Some(env) = env {
            cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        let child = cmd
            .env("RWSGI_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Instance {
            child,
            log: log.to_path_buf(),
        }
    }

    /// rwsgi itself with `args`.
    pub fn rwsgi(args: &[String], log: &Path) -> Instance {
        Instance::spawn(Path::new(env!("CARGO_BIN_EXE_rwsgi")), args, None, log)
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `socket` accepts; panics with the log if the process
    /// exits or 20 s pass.
    pub fn wait_unix(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(socket).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rwsgi exited during startup ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi did not start:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the TCP `addr` accepts.
    pub fn wait_tcp(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rwsgi exited during startup ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi did not start:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL for the master and each of its workers (by their pids, as
    /// the OOM killer or a lost host would): nothing gets to clean up.
    /// Returns the pids killed.
    pub fn kill_hard(&mut self) -> Vec<u32> {
        let master = self.pid();
        let mut pids = children(master);
        pids.push(master);
        for &pid in &pids {
            signal(pid, libc_sig::SIGKILL);
        }
        let _ = self.child.wait();
        pids
    }

    /// Sends `sig` to the master and waits up to `secs` for it to exit;
    /// its exit code, or None if it is still running.
    pub fn stop(&mut self, sig: i32, secs: u64) -> Option<i32> {
        signal(self.pid(), sig);
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.stop(libc_sig::SIGINT, 5).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one load thread saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests answered 200, by response body.
    pub ok: Vec<String>,
    /// Failed requests: transport errors or non-200 statuses, with the
    /// time since the load started.
    pub failed: Vec<(Duration, String)>,
}

/// Steady load through nginx: `clients` threads, each sending `method /`
/// back to back until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    sent: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<Tally>>,
}

impl Load {
    /// Starts `clients` threads sending `method` requests to `addr`.
    pub fn start(addr: &str, method: &'static str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let threads = (0..clients)
            .map(|_| {
                let (addr, stop, sent) = (addr.to_string(), stop.clone(), sent.clone());
                thread::spawn(move || {
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        sent.fetch_add(1, Ordering::Relaxed);
                        match http_request(&addr, method, "/", b"") {
                            Ok(r) if r.status == 200 => tally.ok.push(r.text()),
                            Ok(r) => tally
                                .failed
                                .push((started.elapsed(), format!("status {}", r.status))),
                            Err(e) => tally.failed.push((started.elapsed(), e)),
                        }
                    }
                    tally
                })
            })
            .collect();
        Load {
            stop,
            started,
            sent,
            threads,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every thread and adds up what they saw.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            let tally = t.join().unwrap();
            all.ok.extend(tally.ok);
            all.failed.extend(tally.failed);
        }
        all
    }
}

/// Polls `done` every 50 ms for up to `secs`.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Runs a program to completion within `secs`; its exit code (-1 if it
/// was killed at the deadline or by a signal) and its stdout + stderr.
pub fn run_bounded(cmd: &mut Command, secs: u64) -> (i32, String) {
    let dir = temp_dir("run-bounded");
    let log = dir.join("out.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let code = crate::common::exit_code_within(&mut child, secs).unwrap_or(-1);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (code, text)
}
