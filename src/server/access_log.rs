//! The access log: one line per request (uWSGI-like text by default, or
//! JSON fields with `--log-format json`), through `tracing` under the target
//! `rwsgi::access`. `--disable-logging` turns it off except for the classes
//! `--log-4xx` / `--log-5xx` keep.

use std::time::Duration;

use crate::protocol::Protocol;

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
}

/// What one access-log line says.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The client (or `unix`).
    pub remote_addr: &'a str,
    /// The listener's protocol.
    pub protocol: Protocol,
    /// `GET`.
    pub method: &'a str,
    /// The request target as sent.
    pub uri: &'a str,
    /// `HTTP/1.1`.
    pub server_protocol: &'a str,
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
        tracing::info!(
            target: "rwsgi::access",
            remote_addr = entry.remote_addr,
            protocol = entry.protocol.name(),
            method = entry.method,
            path = entry.uri,
            status = entry.status,
            bytes = entry.bytes,
            duration_ms = millis,
            worker = self.worker,
            complete = entry.complete,
            "[worker {}] {} {} {} {} => generated {} bytes in {:.3} msecs ({} {}){}",
            self.worker,
            entry.remote_addr,
            entry.protocol.name(),
            entry.method,
            entry.uri,
            entry.bytes,
            millis,
            entry.server_protocol,
            entry.status,
            if entry.complete { "" } else { " aborted" },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_logging_keeps_the_error_classes_asked_for() {
        let log = AccessLog {
            all: false,
            client_errors: true,
            server_errors: false,
            worker: 1,
        };
        assert!(!log.wants(200));
        assert!(log.wants(404));
        assert!(!log.wants(502));
    }
}
