//! Logs through the real binary: the access-log line, JSON lines,
//! `--disable-logging` with `--log-4xx` / `--log-5xx`, `--logto` reopened on
//! SIGUSR1, and error lines that say whose fault a failure was.

mod common;

use std::time::{Duration, Instant};

use common::{libc_sig, Proto, Server};
use serde_json::Value;

fn start(extra: &[&str]) -> Server {
    let app = common::apps().join("pep3333.py");
    let mut args = vec!["--wsgi-file", app.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn wait_for(path: &std::path::Path, needle: &str) -> String {
    wait_for_n(path, needle, 1)
}

/// Waits up to 5 s for `times` lines with `needle` in the file at `path`.
fn wait_for_n(path: &std::path::Path, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches(needle).count() >= times || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_access_line_names_worker_client_protocol_request_size_time_and_status() {
    let server = start(&[]);
    server.get(Proto::Http, "/write?line");
    assert!(server.wait_log("GET /write?line =>", 5));
    let line = server
        .log()
        .lines()
        .find(|l| l.contains("GET /write?line"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("[worker 1] 127.0.0.1 http GET /write?line => generated 21 bytes in "),
        "{line}"
    );
    assert!(line.contains("msecs (HTTP/1.1 200)"), "{line}");
}

#[test]
fn json_log_format_writes_one_object_per_line_with_the_request_fields() {
    let server = start(&["--log-format", "json"]);
    server.get(Proto::Uwsgi, "/write?json");
    assert!(server.wait_log("/write?json", 5));
    let line = server
        .log()
        .lines()
        .find(|l| l.contains("/write?json"))
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/write?json");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 21);
    assert_eq!(v["worker"], 1);
    assert_eq!(v["protocol"], "uwsgi");
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert!(v["duration_ms"].as_f64().is_some());
    assert!(v["timestamp"].as_str().is_some());
    // Every other line is JSON too.
    for line in server.log().lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn disable_logging_with_log_4xx_and_log_5xx_keeps_only_errors() {
    let server = start(&["--disable-logging", "--log-4xx", "--log-5xx"]);
    server.get(Proto::Http, "/write?quiet");
    server.get(Proto::Http, "/status?418");
    server.get(Proto::Http, "/status?503");
    assert!(server.wait_log("GET /status?418 =>", 5), "{}", server.log());
    assert!(server.wait_log("GET /status?503 =>", 5), "{}", server.log());
    assert!(!server.log().contains("/write?quiet"));
    let only_5xx = start(&["--disable-logging", "--log-5xx"]);
    only_5xx.get(Proto::Http, "/status?404");
    only_5xx.get(Proto::Http, "/status?500");
    assert!(only_5xx.wait_log("GET /status?500 =>", 5));
    assert!(
        !only_5xx.log().contains("/status?404"),
        "{}",
        only_5xx.log()
    );
}

#[test]
fn logto_writes_to_a_file_that_sigusr1_reopens() {
    let dir = common::temp_dir("logto");
    let log = dir.join("rwsgi.log.live");
    let server = start(&["--logto", log.to_str().unwrap(), "--processes", "2"]);
    server.get(Proto::Http, "/write?before-rotate");
    let text = wait_for(&log, "/write?before-rotate");
    assert!(text.contains("/write?before-rotate"), "{text}");
    assert!(!server.log().contains("before-rotate"), "stderr got it too");
    let rotated = dir.join("rwsgi.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    common::signal(server.pid(), libc_sig::SIGUSR1);
    // Every process reopens on its own: the master and both workers.
    let text = wait_for_n(&log, "reopened log file", 3);
    assert_eq!(text.matches("reopened log file").count(), 3, "{text}");
    for _ in 0..4 {
        server.get(Proto::Http, "/write?after-rotate");
    }
    let text = wait_for(&log, "/write?after-rotate");
    assert!(text.contains("/write?after-rotate"), "{text}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("before-rotate") && !old.contains("after-rotate"),
        "{old}"
    );
}

#[test]
fn sigusr1_while_a_worker_starts_does_not_kill_it() {
    let dir = common::temp_dir("logto-respawn");
    let log = dir.join("rwsgi.log");
    let server = start(&["--logto", log.to_str().unwrap(), "--processes", "2"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::children(server.pid()).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let worker = common::children(server.pid())[0];
    // The master passes SIGUSR1 on to its workers. One forked a moment ago
    // has not yet installed its handler, and SIGUSR1's default action
    // ends the process: it now keeps the signal pending until then.
    common::signal(worker, libc_sig::SIGKILL);
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        common::signal(server.pid(), libc_sig::SIGUSR1);
    }
    assert_eq!(server.get(Proto::Http, "/write?after").status, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&format!("(pid {worker}) died")), "{text}");
    assert!(!text.contains("killed by signal 10"), "{text}");
    assert!(!text.contains("SIGUSR1"), "{text}");
}

#[test]
fn error_lines_say_whose_fault_it_was() {
    let server = start(&[]);
    server.get(Proto::Http, "/raise");
    let _ = common::tcp_exchange(&server.http, b"GET / HTTP/1.1\nHost: x\n\n");
    assert!(server.wait_log("the app raised", 5));
    assert!(server.wait_log("client error", 5));
    let log = server.log();
    let app = log.lines().find(|l| l.contains("the app raised")).unwrap();
    assert!(
        app.contains("ERROR the app raised (GET /raise): Traceback"),
        "{app}"
    );
    assert!(log.contains("source=\"app\" request=GET /raise"), "{log}");
    let client = log.lines().find(|l| l.contains("client error")).unwrap();
    assert!(
        client.contains("peer=127.0.0.1") && client.contains("-> 400"),
        "{client}"
    );
}

/// uWSGI's memory-report: each access line starts with the worker's
/// address space and resident memory.
#[test]
fn memory_report_puts_the_workers_memory_on_each_access_line() {
    let server = start(&["--memory-report"]);
    assert_eq!(server.get(Proto::Http, "/environ").status, 200);
    assert!(server.wait_log("GET /environ", 5), "{}", server.log());
    let log = server.log();
    let line = log.lines().find(|l| l.contains("GET /environ")).unwrap();
    let rss_mb: u64 = line
        .split("{rss usage: ")
        .nth(1)
        .and_then(|rest| rest.split('/').nth(1))
        .and_then(|mb| {
            mb.trim_end_matches(|c: char| !c.is_ascii_digit())
                .split("MB")
                .next()
        })
        .and_then(|mb| mb.parse().ok())
        .unwrap_or_else(|| panic!("no rss in {line}"));
    assert!((5..2048).contains(&rss_mb), "{line}");
    assert!(line.contains("{address space usage: "), "{line}");
}
