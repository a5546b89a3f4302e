//! The access log: one line per request (uWSGI-like text by default, or
//! JSON fields with `--log-format json`), through `tracing` under the target
//! `rwsgi::access`. `--disable-logging` turns it off except for the classes
//! `--log-4xx` / `--log-5xx` keep.

use std::time::Duration;

use bytes::Bytes;

use crate::exchange::RequestLabel;
use crate::protocol::{Protocol, Request};

/// Which requests get an access-log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLog {
    /// Every request (false with `--disable-logging`).
    pub all: bool,
    /// 4xx responses even when `all` is off (`--log-4xx`).
    pub client_errors: bool,
    /// 5xx responses even when `all` is off (`--log-5xx`).
    pub server_errors: bool,
    /// This worker's number, shown on each line.
    pub worker: u32,
    /// Each line starts with the worker's memory, as uWSGI's
    /// `memory-report` does (read from /proc at each logged request).
    pub memory_report: bool,
}

/// What the access log says about a request, taken before the request
/// goes to the app: shared slices of its variables, turned into text only
/// when a line is written.
#[derive(Debug)]
pub struct RequestInfo {
    /// The client: the socket peer for HTTP, nginx's REMOTE_ADDR behind it.
    remote_addr: Bytes,
    /// The method and the target as sent.
    label: RequestLabel,
    /// `HTTP/1.1`.
    server_protocol: Bytes,
}

impl RequestInfo {
    /// The access-log facts of `request`, whose label is `label`.
    pub fn of(request: &Request, label: &RequestLabel) -> Self {
        let var = |key: &[u8], default: &'static [u8]| {
            request
                .var(key)
                .cloned()
                .unwrap_or_else(|| Bytes::from_static(default))
        };
        RequestInfo {
            remote_addr: var(b"REMOTE_ADDR", b"-"),
            label: label.clone(),
            server_protocol: var(b"SERVER_PROTOCOL", b"HTTP/1.1"),
        }
    }
}

/// What one access-log line says.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The request.
    pub request: &'a RequestInfo,
    /// The listener's protocol.
    pub protocol: Protocol,
    /// The response status (0 if none was sent).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request head to the end of the response.
    pub duration: Duration,
    /// False when the response was cut short (client gone, app failure).
    pub complete: bool,
}

impl AccessLog {
    /// Whether any response can get a line; when none can, the request's
    /// facts need not be kept.
    pub fn enabled(&self) -> bool {
        self.all || self.client_errors || self.server_errors
    }

    /// Whether a response with `status` is logged.
    pub fn wants(&self, status: u16) -> bool {
        self.all
            || (self.client_errors && (400..500).contains(&status))
            || (self.server_errors && status >= 500)
    }

    /// Writes the line for `entry` if its status is wanted.
    pub fn record(&self, entry: &Entry<'_>) {
        if !self.wants(entry.status) {
            return;
        }
        let millis = entry.duration.as_secs_f64() * 1000.0;
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let request = entry.request;
        let (remote_addr, method, uri, server_protocol) = (
            text(&request.remote_addr),
            text(request.label.method()),
            text(request.label.uri()),
            text(&request.server_protocol),
        );
        let memory = if self.memory_report {
            memory_prefix()
        } else {
            String::new()
        };
        tracing::info!(
            target: "rwsgi::access",
            remote_addr = remote_addr,
            protocol = entry.protocol.name(),
            method = method,
            path = uri,
            status = entry.status,
            bytes = entry.bytes,
            duration_ms = millis,
            worker = self.worker,
            complete = entry.complete,
            "{}[worker {}] {} {} {} {} => generated {} bytes in {:.3} msecs ({} {}){}",
            memory,
            self.worker,
            remote_addr,
            entry.protocol.name(),
            method,
            uri,
            entry.bytes,
            millis,
            server_protocol,
            entry.status,
            if entry.complete { "" } else { " aborted" },
        );
    }
}

/// uWSGI's memory-report prefix: `{address space usage: N bytes/NMB}
/// {rss usage: N bytes/NMB} `, from this process's /proc/self/statm.
fn memory_prefix() -> String {
    let Some((vsz, rss)) = statm() else {
        return String::new();
    };
    format!(
        "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
        vsz >> 20,
        rss >> 20
    )
}

/// (address space, resident set) in bytes.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut pages = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (vsz, rss) = (pages.next()??, pages.next()??);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some((vsz * page, rss * page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_prefix_reads_like_uwsgis() {
        let prefix = memory_prefix();
        assert!(prefix.starts_with("{address space usage: "), "{prefix}");
        assert!(prefix.contains("MB} {rss usage: "), "{prefix}");
        assert!(prefix.ends_with("MB} "), "{prefix}");
    }

    #[test]
    fn disable_logging_keeps_the_error_classes_asked_for() {
        let log = AccessLog {
            all: false,
            client_errors: true,
            server_errors: false,
            worker: 1,
            memory_report: false,
        };
        assert!(!log.wants(200));
        assert!(log.wants(404));
        assert!(!log.wants(502));
    }
}
