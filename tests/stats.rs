//! The stats server and Prometheus metrics through the real binary, read by
//! the real consumers: `uwsgitop` in a pseudo-terminal (tmux) and
//! `prometheus_client`'s text parser.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Proto, Server};
use serde_json::Value;

fn start(extra: &[&str]) -> Server {
    let app = common::apps().join("pep3333.py");
    let mut args = vec![
        "--wsgi-file",
        app.to_str().unwrap(),
        "--processes",
        "2",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn read_unix(path: &Path) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn http_get(addr: &str, path: &str) -> common::Response {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    common::Response::from_raw(&common::read_to_close(&mut s))
}

#[test]
fn stats_socket_serves_uwsgi_layout_json() {
    let dir = common::temp_dir("stats");
    let stats = dir.join("stats.sock");
    let server = start(&["--stats", stats.to_str().unwrap()]);
    for _ in 0..6 {
        assert_eq!(server.get(Proto::Http, "/write").status, 200);
    }
    assert_eq!(server.get(Proto::Http, "/raise").status, 500);
    let v: Value = serde_json::from_str(&read_unix(&stats)).unwrap();
    assert_eq!(v["pid"], server.pid());
    assert!(v["version"].as_str().unwrap().starts_with("rwsgi-"));
    for key in [
        "listen_queue",
        "load",
        "sockets",
        "workers",
        "uid",
        "gid",
        "cwd",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["sockets"].as_array().unwrap().len(), 3);
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let mut pids: Vec<u64> = workers.iter().map(|w| w["pid"].as_u64().unwrap()).collect();
    pids.sort();
    let mut children: Vec<u64> = common::children(server.pid())
        .into_iter()
        .map(u64::from)
        .collect();
    children.sort();
    assert_eq!(pids, children);
    let requests: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    let exceptions: u64 = workers
        .iter()
        .map(|w| w["exceptions"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 7);
    assert_eq!(exceptions, 1);
    for w in workers {
        assert!(w["rss"].as_u64().unwrap() > 1_000_000, "{w}");
        assert_eq!(w["cores"].as_array().unwrap().len(), 2);
        for key in [
            "status",
            "avg_rt",
            "tx",
            "respawn_count",
            "harakiri_count",
            "running_time",
            "last_spawn",
        ] {
            assert!(w.get(key).is_some(), "missing {key}");
        }
    }
}

#[test]
fn stats_show_each_workers_open_connections() {
    let dir = common::temp_dir("stats-conns");
    let stats = dir.join("stats.sock");
    let server = start(&["--stats", stats.to_str().unwrap()]);
    let open = |v: &Value| -> Vec<u64> {
        v["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["connections"].as_u64().unwrap())
            .collect()
    };
    // Six kept-alive connections, each having answered one request.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = std::net::TcpStream::connect(&server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        held.push(s);
    }
    let v: Value = serde_json::from_str(&read_unix(&stats)).unwrap();
    assert_eq!(open(&v).iter().sum::<u64>(), 6, "{v}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v: Value = serde_json::from_str(&read_unix(&stats)).unwrap();
        if open(&v).iter().sum::<u64>() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed connections still counted: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stats_http_answers_over_http() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = start(&["--stats", &addr, "--stats-http"]);
    server.get(Proto::Uwsgi, "/write");
    let r = http_get(&addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["workers"].as_array().unwrap().len(), 2);
}

#[test]
fn uwsgitop_reads_our_stats_socket() {
    let venv = common::venv();
    let uwsgitop = venv.join("bin").join("uwsgitop");
    assert!(
        uwsgitop.exists(),
        "no uwsgitop in the test venv: run scripts/test.sh"
    );
    let dir = common::temp_dir("uwsgitop");
    let stats = dir.join("stats.sock");
    let server = start(&["--stats", stats.to_str().unwrap()]);
    for _ in 0..5 {
        server.get(Proto::Http, "/write");
    }
    let session = format!("rwsgi-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux (run scripts/test.sh)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "30",
        &format!("{} {}", uwsgitop.display(), stats.display()),
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout)
            .into_owned();
        if screen.contains("WID") && screen.contains("req: 5") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(screen.contains("uwsgi-rwsgi-"), "{screen}");
    assert!(screen.contains("req: 5"), "{screen}");
    assert!(
        screen.contains(&format!("masterpid: {}", server.pid())),
        "{screen}"
    );
    for pid in common::children(server.pid()) {
        assert!(
            screen.contains(&pid.to_string()),
            "worker {pid} not shown:\n{screen}"
        );
    }
}

#[test]
fn metrics_parse_with_the_prometheus_client_parser() {
    let venv = common::venv();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = start(&["--metrics", &addr]);
    for _ in 0..3 {
        server.get(Proto::Http, "/write");
        server.get(Proto::Uwsgi, "/write");
    }
    server.get(Proto::Scgi, "/raise");
    let r = http_get(&addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        key = s.name + "".join("|%s=%s" % kv for kv in sorted(s.labels.items()))
        out[key] = s.value
    out["type:" + family.name] = family.type
print(json.dumps(out))
"#;
    let mut child = Command::new(venv.join("bin").join("python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused our text: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["rwsgi_requests_total|protocol=http|status=2xx"], 3.0,
        "{m}"
    );
    assert_eq!(m["rwsgi_requests_total|protocol=uwsgi|status=2xx"], 3.0);
    assert_eq!(m["rwsgi_requests_total|protocol=scgi|status=5xx"], 1.0);
    assert_eq!(m["rwsgi_request_duration_seconds_count"], 7.0);
    assert_eq!(m["type:rwsgi_request_duration_seconds"], "histogram");
    assert_eq!(m["rwsgi_app_exceptions_total"], 1.0);
    assert_eq!(m["rwsgi_workers"], 2.0);
    assert_eq!(m["rwsgi_threads"], 4.0);
    assert!(m.get("rwsgi_busy_threads").is_some() && m.get("rwsgi_queue_depth").is_some());
    assert_eq!(m["rwsgi_worker_restarts_total"], 0.0);
}

#[test]
fn metrics_stay_monotonic_across_worker_recycling() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = start(&["--metrics", &addr, "--max-requests", "3"]);
    for _ in 0..10 {
        assert_eq!(server.get(Proto::Http, "/write").status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = http_get(&addr, "/metrics").text();
        if !text.contains("rwsgi_worker_restarts_total 0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        text.contains("rwsgi_requests_total{protocol=\"http\",status=\"2xx\"} 10\n"),
        "{text}"
    );
    assert!(
        !text.contains("rwsgi_worker_restarts_total 0\n"),
        "{text}\nserver log:\n{}",
        server.log()
    );
}

/// The status of a GET, or None if no answer came within 5 s.
fn status_of_get(addr: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let raw = common::read_to_close(&mut s);
    let line = String::from_utf8_lossy(&raw).lines().next()?.to_string();
    line.split(' ').nth(1)?.parse().ok()
}

/// Opens a connection to `addr` and sends one byte of a request head that
/// never ends every 100 ms, until `stop` (or 20 s).
fn trickle(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            return;
        };
        let head = b"GET /metrics HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain([b'a'; 200].iter());
        let deadline = Instant::now() + Duration::from_secs(20);
        for byte in head.cycle() {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return;
            }
            if s.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// While a client trickles its request to `addr`, a killed worker is
/// replaced within seconds and another client on `addr` is answered.
fn trickling_client_does_not_stall_the_master(addr: &str, extra: &[&str]) {
    let server = start(extra);
    assert_eq!(server.get(Proto::Http, "/write").status, 200);
    let mut before = common::children(server.pid());
    for _ in 0..100 {
        if before.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        before = common::children(server.pid());
    }
    assert_eq!(before.len(), 2, "{}", server.log());
    let stop = Arc::new(AtomicBool::new(false));
    let slow = trickle(addr.to_string(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    common::signal(before[0], common::libc_sig::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(3);
    let respawned = loop {
        let now = common::children(server.pid());
        if now.len() == 2 && !now.contains(&before[0]) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let answered = status_of_get(addr, "/metrics");
    stop.store(true, Ordering::Relaxed);
    slow.join().unwrap();
    assert!(respawned, "no worker respawned:\n{}", server.log());
    assert_eq!(answered, Some(200), "a second client was not answered");
}

#[test]
fn a_client_trickling_its_request_to_stats_http_does_not_stall_the_master() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    trickling_client_does_not_stall_the_master(&addr, &["--stats", &addr, "--stats-http"]);
}

#[test]
fn a_client_trickling_its_request_to_metrics_does_not_stall_the_master() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    trickling_client_does_not_stall_the_master(&addr, &["--metrics", &addr]);
}
