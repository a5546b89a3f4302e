//! Log output: `tracing-subscriber` writing text or JSON lines to stderr or
//! to `--logto FILE`, which SIGUSR1 reopens (for logrotate). The filter is
//! `RWSGI_LOG` (an `EnvFilter` directive), `info` by default.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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

/// Sets up logging. `json` selects JSON lines; `logto` a file instead of
/// stderr.
pub fn init(json: bool, logto: Option<&Path>) -> io::Result<()> {
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
                file: Arc::new(Mutex::new(LogFile::open(path)?)),
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
