//! The attached daemons of uWSGI's `attach-daemon` family: programs the
//! master starts beside the workers (Celery workers and beat, a queue
//! consumer), read from their option values into one [`DaemonSpec`].
//!
//! - `attach-daemon CMD`: a program that stays in the foreground; restarted
//!   when it exits, stopped (and started again) with the server's reloads.
//! - `attach-control-daemon CMD`: the same, but its exit stops the server.
//! - `smart-attach-daemon PIDFILE[,FREQ] CMD`: a program that daemonizes
//!   itself and writes PIDFILE; watched through it, restarted when the
//!   process it names is gone, left running across reloads.
//! - `smart-attach-daemon2 PIDFILE[,FREQ] CMD`: the same for a program that
//!   stays in the foreground: rwsgi daemonizes it and writes PIDFILE.
//! - `attach-daemon2 key=value,...`: any of these, spelled as keys
//!   (`cmd`, `pidfile`, `daemonize`, `freq`, `control`, `stopsignal`,
//!   `reloadsignal`, `stdin`, `uid`, `gid`, `chdir`, `max_throttle`,
//!   `notifypid`).

use std::path::PathBuf;

/// One attached daemon as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The command line, run by `/bin/sh -c` as uWSGI does.
    pub command: String,
    /// Watched through this pidfile (a smart daemon): it survives reloads.
    pub pidfile: Option<PathBuf>,
    /// rwsgi daemonizes the program and writes `pidfile` itself.
    pub daemonize: bool,
    /// Pidfile checks (one a second) a just-started smart daemon gets to
    /// write its pidfile before it counts as gone.
    pub freq: u32,
    /// Its exit stops the server.
    pub control: bool,
    /// The signal that stops it (to its process group).
    pub stop_signal: i32,
    /// The signal sent instead on a reload (0: it is stopped and started).
    pub reload_signal: i32,
    /// It keeps the server's stdin (else /dev/null).
    pub honour_stdin: bool,
    /// Runs as this uid / gid (else the server's).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Starts in this directory.
    pub chdir: Option<PathBuf>,
    /// Longest throttle between quick restarts, in seconds (0: 300).
    pub max_throttle: u32,
    /// A smart daemon is signalled when the server stops or reloads.
    pub notify_pid: bool,
}

impl DaemonSpec {
    fn new(command: &str) -> DaemonSpec {
        DaemonSpec {
            command: command.to_string(),
            pidfile: None,
            daemonize: false,
            freq: 10,
            control: false,
            stop_signal: libc::SIGTERM,
            reload_signal: 0,
            honour_stdin: false,
            uid: None,
            gid: None,
            chdir: None,
            max_throttle: 0,
            notify_pid: false,
        }
    }

    /// `attach-daemon` / `--attach-daemon CMD`.
    pub fn plain(value: &str) -> Result<DaemonSpec, String> {
        non_empty(value).map(DaemonSpec::new)
    }

    /// `attach-control-daemon CMD`.
    pub fn control(value: &str) -> Result<DaemonSpec, String> {
        let mut spec = DaemonSpec::plain(value)?;
        spec.control = true;
        Ok(spec)
    }

    /// `smart-attach-daemon PIDFILE[,FREQ] CMD`.
    pub fn smart(value: &str) -> Result<DaemonSpec, String> {
        let (pidfile, command) = value.trim().split_once(' ').ok_or_else(|| {
            format!("expected 'PIDFILE[,FREQ] COMMAND', got {value:?} (no command)")
        })?;
        let mut spec = DaemonSpec::plain(command)?;
        let (path, freq) = match pidfile.split_once(',') {
            Some((path, freq)) => (path, Some(leading_number(freq))),
            None => (pidfile, None),
        };
        spec.pidfile = Some(PathBuf::from(path));
        if let Some(freq) = freq {
            spec.freq = freq;
        }
        Ok(spec)
    }

    /// `smart-attach-daemon2 PIDFILE[,FREQ] CMD`.
    pub fn smart_daemonized(value: &str) -> Result<DaemonSpec, String> {
        let mut spec = DaemonSpec::smart(value)?;
        spec.daemonize = true;
        Ok(spec)
    }

    /// `attach-daemon2 key=value,...` (uWSGI's keyval form).
    pub fn keyval(value: &str) -> Result<DaemonSpec, String> {
        let mut spec = DaemonSpec::new("");
        for item in value.split(',').filter(|i| !i.trim().is_empty()) {
            let (key, val) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {item:?}"))?;
            let val = val.trim();
            let id = || {
                val.parse::<u32>()
                    .map_err(|_| format!("{key}: {val:?} is not a number"))
            };
            match key.trim() {
                "command" | "cmd" | "exec" => spec.command = val.to_string(),
                "pidfile" => spec.pidfile = Some(PathBuf::from(val)),
                "daemonize" | "daemon" => spec.daemonize = true,
                "freq" => spec.freq = leading_number(val),
                "control" => spec.control = true,
                "stopsignal" | "stop_signal" => spec.stop_signal = leading_number(val) as i32,
                "reloadsignal" | "reload_signal" => spec.reload_signal = leading_number(val) as i32,
                "stdin" => spec.honour_stdin = true,
                "uid" => spec.uid = Some(id()?),
                "gid" => spec.gid = Some(id()?),
                "chdir" => spec.chdir = Some(PathBuf::from(val)),
                "max_throttle" => spec.max_throttle = leading_number(val),
                "notifypid" => spec.notify_pid = true,
                other @ ("touch" | "legion" | "ns_pid") => {
                    return Err(format!("the {other} key is not supported by rwsgi"))
                }
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        if spec.command.trim().is_empty() {
            return Err("a 'cmd' key is needed".into());
        }
        if spec.daemonize && spec.pidfile.is_none() {
            return Err("daemonize needs a pidfile key".into());
        }
        Ok(spec)
    }
}

fn non_empty(command: &str) -> Result<&str, String> {
    let command = command.trim();
    if command.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(command)
}

/// The leading digits of `s`, as uWSGI's `atoi` reads them (0 if none).
fn leading_number(s: &str) -> u32 {
    let s = s.trim_start();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..digits].parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_daemon_is_its_command() {
        let spec = DaemonSpec::plain(" celery -A proj worker ").unwrap();
        assert_eq!(spec.command, "celery -A proj worker");
        assert!(spec.pidfile.is_none() && !spec.control);
        assert_eq!(spec.stop_signal, libc::SIGTERM);
        assert!(DaemonSpec::plain("  ").is_err());
    }

    #[test]
    fn a_smart_daemon_names_its_pidfile_and_check_count_first() {
        let spec =
            DaemonSpec::smart("/run/beat.pid,5 celery beat --pidfile=/run/beat.pid").unwrap();
        assert_eq!(spec.pidfile, Some(PathBuf::from("/run/beat.pid")));
        assert_eq!(spec.freq, 5);
        assert_eq!(spec.command, "celery beat --pidfile=/run/beat.pid");
        assert!(!spec.daemonize);
        assert!(
            DaemonSpec::smart_daemonized("/run/x.pid sleep 9")
                .unwrap()
                .daemonize
        );
        assert!(DaemonSpec::smart("/run/x.pid").is_err());
    }

    #[test]
    fn the_keyval_form_takes_uwsgis_keys() {
        let spec = DaemonSpec::keyval(
            "cmd=python worker.py,pidfile=/tmp/w.pid,daemonize=1,stopsignal=2,uid=1000,chdir=/srv,max_throttle=7,control=1",
        )
        .unwrap();
        assert_eq!(spec.command, "python worker.py");
        assert!(spec.daemonize && spec.control);
        assert_eq!(spec.stop_signal, 2);
        assert_eq!(spec.uid, Some(1000));
        assert_eq!(spec.chdir, Some(PathBuf::from("/srv")));
        assert_eq!(spec.max_throttle, 7);
        assert!(DaemonSpec::keyval("pidfile=/x").is_err(), "no command");
        assert!(DaemonSpec::keyval("cmd=x,bogus=1").is_err());
        assert!(DaemonSpec::keyval("cmd=x,touch=/a").is_err());
        assert!(
            DaemonSpec::keyval("cmd=x,daemonize=1").is_err(),
            "no pidfile"
        );
    }
}
