//! The master's cron (`--cron`, `--unique-cron`, `--cron2`, read by
//! `config::cron`): each second the master matches every entry against
//! the local time and runs the due ones as `/bin/sh -c COMMAND`, as the
//! server's user, output in the server's log, at most once a minute per
//! entry (uWSGI's rule). A unique entry is skipped while its last run
//! lives; a run past its harakiri is killed with its process group.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{CronSpec, CronTime};

/// One entry and its last run.
#[derive(Debug)]
struct Entry {
    spec: CronSpec,
    /// The running command, if any.
    pid: Option<libc::pid_t>,
    /// When it last ran (seconds since the epoch).
    last_job: Option<u64>,
    started: Option<Instant>,
    /// Killed if still running then.
    deadline: Option<Instant>,
}

/// The cron table of the server.
#[derive(Debug, Default)]
pub struct Crons {
    entries: Vec<Entry>,
    /// `--cron-harakiri` (0: none).
    harakiri: u64,
    last_check: Option<u64>,
}

impl Crons {
    /// The table of `specs`, with `harakiri` seconds for entries that set
    /// none.
    pub fn new(specs: Vec<CronSpec>, harakiri: u64) -> Crons {
        Crons {
            entries: specs
                .into_iter()
                .map(|spec| Entry {
                    spec,
                    pid: None,
                    last_job: None,
                    started: None,
                    deadline: None,
                })
                .collect(),
            harakiri,
            last_check: None,
        }
    }

    /// Runs what is due, once per second of the wall clock, and kills
    /// runs past their harakiri.
    pub fn tick(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        self.kill_overdue();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_check == Some(now) {
            return;
        }
        self.last_check = Some(now);
        if let Some(time) = local_time(now) {
            self.run_due(now, time);
        }
    }

    /// Starts every entry due at `time` (`now` in epoch seconds).
    fn run_due(&mut self, now: u64, time: CronTime) {
        let default_harakiri = self.harakiri;
        for e in &mut self.entries {
            if e.spec.unique && e.pid.is_some() {
                continue;
            }
            if !e.spec.due(time) || e.last_job.is_some_and(|last| now < last + 60) {
                continue;
            }
            e.last_job = Some(now);
            e.run(default_harakiri);
        }
    }

    fn kill_overdue(&mut self) {
        for e in &mut self.entries {
            if let (Some(pid), Some(deadline)) = (e.pid, e.deadline) {
                if Instant::now() >= deadline {
                    tracing::warn!(
                        "cron {:?} (pid {pid}) ran past its harakiri; killing it",
                        e.spec.command
                    );
                    // SAFETY: signalling the run's own process group.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    e.deadline = None;
                }
            }
        }
    }

    /// Takes note of a reaped child; false if it was not a cron run.
    pub fn reaped(&mut self, pid: libc::pid_t, how: &str) -> bool {
        let Some(e) = self.entries.iter_mut().find(|e| e.pid == Some(pid)) else {
            return false;
        };
        let took = e.started.map_or(0, |s| s.elapsed().as_secs());
        tracing::info!("cron {:?} (pid {pid}) {how} after {took} s", e.spec.command);
        e.pid = None;
        e.deadline = None;
        true
    }
}

impl Entry {
    fn run(&mut self, default_harakiri: u64) {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&self.spec.command);
        cmd.stdin(std::process::Stdio::null());
        // A process group of its own, so a harakiri kills all of it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id() as libc::pid_t;
                tracing::info!("cron: running {:?} (pid {pid})", self.spec.command);
                self.pid = Some(pid);
                self.started = Some(Instant::now());
                let harakiri = self.spec.harakiri.unwrap_or(default_harakiri);
                self.deadline =
                    (harakiri > 0).then(|| Instant::now() + Duration::from_secs(harakiri));
            }
            Err(e) => tracing::error!(
                source = "rwsgi",
                "cron: cannot run {:?}: {e}",
                self.spec.command
            ),
        }
    }
}

/// `now` (epoch seconds) in the local time zone, as the cron fields read it.
fn local_time(now: u64) -> Option<CronTime> {
    let t = now as libc::time_t;
    // SAFETY: localtime_r fills the struct it is given; all-zero is a
    // valid tm to start from.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(CronTime {
        minute: tm.tm_min,
        hour: tm.tm_hour,
        day: tm.tm_mday,
        month: tm.tm_mon + 1,
        week: tm.tm_wday,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_minute(unique: bool) -> Crons {
        let mut spec = CronSpec::classic("-1 -1 -1 -1 -1 sleep 5").unwrap();
        spec.unique = unique;
        Crons::new(vec![spec], 0)
    }

    fn noon(minute: i32) -> CronTime {
        CronTime {
            minute,
            hour: 12,
            day: 1,
            month: 1,
            week: 1,
        }
    }

    fn stop(crons: &mut Crons) {
        for e in &mut crons.entries {
            if let Some(pid) = e.pid.take() {
                // SAFETY: the test's own child, then reaped.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    #[test]
    fn an_entry_runs_once_a_minute_and_a_unique_one_never_twice_at_once() {
        let mut plain = every_minute(false);
        plain.run_due(1_000_000, noon(0));
        let first = plain.entries[0].pid.expect("ran");
        plain.run_due(1_000_030, noon(0));
        assert_eq!(plain.entries[0].pid, Some(first), "twice in one minute");
        plain.run_due(1_000_060, noon(1));
        assert_ne!(
            plain.entries[0].pid,
            Some(first),
            "a plain entry runs again"
        );
        // The first run is no longer tracked: reap it here.
        // SAFETY: the test's own child.
        unsafe {
            libc::kill(-first, libc::SIGKILL);
            libc::waitpid(first, std::ptr::null_mut(), 0);
        }
        stop(&mut plain);

        let mut unique = every_minute(true);
        unique.run_due(1_000_000, noon(0));
        let first = unique.entries[0].pid.expect("ran");
        unique.run_due(1_000_060, noon(1));
        assert_eq!(unique.entries[0].pid, Some(first), "skipped while running");
        stop(&mut unique);
        unique.run_due(1_000_120, noon(2));
        assert!(unique.entries[0].pid.is_some(), "runs again once done");
        stop(&mut unique);
    }
}
