//! Log output: `tracing-subscriber` writing text or JSON lines to stderr or
//! to `--logto FILE`, which SIGUSR1 reopens (for logrotate). The filter is
//! `RWSGI_LOG` (an `EnvFilter` directive), `info` by default.
//!
//! A reload's re-exec hands the open log file to the new master image
//! ([`handover`]): after `--uid` that image may not be allowed to open the
//! path again, and must not lose its logs for it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The open log file, shared by the subscriber and `reopen`.
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// A log file that can be reopened in place.
#[derive(Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }
}

/// One write to the log file: holds the lock for the line.
struct LogWriter<'a>(std::sync::MutexGuard<'a, File>);

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.file.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The environment variable that carries `fd|path` of the open log file
/// across a reload's re-exec.
pub const REEXEC_LOG_FD: &str = "RWSGI_REEXEC_LOG_FD";

/// The open log file's descriptor and the [`REEXEC_LOG_FD`] value naming
/// it, for a re-exec to pass on (None when logging to stderr).
pub fn handover() -> Option<(RawFd, String)> {
    let log = LOG_FILE.get()?;
    let fd = log
        .file
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_raw_fd();
    Some((fd, format!("{fd}|{}", log.path.display())))
}

/// The log file a previous master image handed over, if it is the one
/// `path` names (a reload may have changed `--logto`). Takes the variable
/// out of the environment either way.
fn inherited(path: Option<&Path>) -> Option<File> {
    let value = std::env::var(REEXEC_LOG_FD).ok()?;
    std::env::remove_var(REEXEC_LOG_FD);
    let (fd, old_path) = value.split_once('|')?;
    let fd: RawFd = fd.parse().ok()?;
    // SAFETY: the previous image passed this fd open; it is ours now, and
    // goes back to close-on-exec (only a re-exec passes it on).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: as above; owned from here on (closed if not used).
    let file = unsafe { File::from_raw_fd(fd) };
    (path == Some(Path::new(old_path))).then_some(file)
}

/// Sets up logging. `json` selects JSON lines; `logto` a file instead of
/// stderr.
pub fn init(json: bool, logto: Option<&Path>) -> io::Result<()> {
    let handed_over = inherited(logto);
    let filter = || EnvFilter::try_from_env("RWSGI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = logto.is_none()
        && std::env::var_os("NO_COLOR").is_none()
        && io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(ansi);
    match logto {
        Some(path) => {
            let log = LogFile {
                path: path.to_path_buf(),
                file: Arc::new(Mutex::new(match handed_over {
                    Some(file) => file,
                    None => LogFile::open(path)?,
                })),
            };
            let _ = LOG_FILE.set(log.clone());
            if json {
                builder.json().flatten_event(true).with_writer(log).init();
            } else {
                builder.with_writer(log).init();
            }
        }
        None => {
            if json {
                builder
                    .json()
                    .flatten_event(true)
                    .with_writer(io::stderr)
                    .init();
            } else {
                builder.with_writer(io::stderr).init();
            }
        }
    }
    Ok(())
}

/// Reopens `--logto` (after logrotate moved it). Logs the outcome.
pub fn reopen() {
    let Some(log) = LOG_FILE.get() else {
        return;
    };
    match LogFile::open(&log.path) {
        Ok(file) => {
            *log.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
            tracing::info!("reopened log file {}", log.path.display());
        }
        Err(e) => tracing::error!(
            source = "rwsgi",
            "cannot reopen log file {}: {e}",
            log.path.display()
        ),
    }
}
