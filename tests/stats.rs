//! The stats server and Prometheus metrics through the real binary, read by
//! the real consumers: `uwsgitop` in a pseudo-terminal (tmux) and
//! `prometheus_client`'s text parser.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
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
