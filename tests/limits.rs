//! Memory and size limits through the real binary: `--reload-on-rss`
//! within one request of the limit, the cap on an app's response head,
//! large bodies spooled so a slow upload holds no Python thread, and the
//! per-worker budget for bodies held in memory.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Proto, Response, Server};

/// An app that keeps `?MB` more of memory per request, and says which
/// process it runs in and its resident size after the allocation.
fn leaking_app() -> PathBuf {
    let dir = common::temp_dir("memory-leak");
    let app = dir.join("leak.py");
    std::fs::write(
        &app,
        r#"
import os

KEPT = []

def application(environ, start_response):
    mb = int(environ.get("QUERY_STRING") or "0")
    KEPT.append(b"x" * (mb << 20))
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    body = "pid={} rss={}".format(os.getpid(), rss).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"#,
    )
    .unwrap();
    app
}

#[test]
fn reload_on_rss_recycles_a_leaking_worker_within_one_request() {
    let app = leaking_app();
    let limit_mb = 120u64;
    let server = Server::start(&[
        "--wsgi-file",
        app.to_str().unwrap(),
        "--reload-on-rss",
        &limit_mb.to_string(),
    ]);
    // (pid, rss after its allocation) of each request, in order.
    let mut served = Vec::new();
    for _ in 0..24 {
        let r = server.get(Proto::Http, "/?16");
        assert_eq!(r.status, 200, "{}", r.text());
        let f: HashMap<String, String> = r
            .text()
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        served.push((f["pid"].clone(), f["rss"].parse::<u64>().unwrap()));
    }
    let limit = limit_mb << 20;
    let workers: Vec<&String> = served.iter().map(|(pid, _)| pid).collect();
    for (i, (pid, rss)) in served.iter().enumerate() {
        if *rss <= limit {
            continue;
        }
        // The request that took the worker over the limit is the last but
        // one it serves at most (a connection may be accepted as the
        // recycle starts).
        let later = served[i + 1..].iter().filter(|(p, _)| p == pid).count();
        assert!(
            later <= 1,
            "worker {pid} went on serving {later} requests after {} MiB (limit {limit_mb}): {served:?}\n{}",
            rss >> 20,
            server.log()
        );
    }
    let distinct: std::collections::HashSet<_> = workers.into_iter().collect();
    assert!(
        distinct.len() >= 3,
        "24 requests of 16 MiB each with a {limit_mb} MiB limit ran in {} worker(s)",
        distinct.len()
    );
    assert!(server.wait_log("reload-on-rss", 5), "{}", server.log());
}

/// An app whose headers run away (one huge value, or a header per item)
/// gets a 500 and a log line that says why; the server goes on serving.
#[test]
fn an_app_response_head_over_64_kib_is_a_500_naming_the_app() {
    let dir = common::temp_dir("limits-head");
    let app = dir.join("heads.py");
    std::fs::write(
        &app,
        r#"
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/huge":
        headers = [("X-Huge", "a" * (16 << 20))]
    elif path == "/many":
        headers = [("X-N%d" % i, "1") for i in range(100000)]
    else:
        headers = [("X-Fine", "b" * 60000)]
    start_response("200 OK", headers + [("Content-Length", "2")])
    return [b"ok"]
"#,
    )
    .unwrap();
    let server = Server::start(&["--wsgi-file", app.to_str().unwrap()]);
    for proto in [Proto::Http, Proto::Uwsgi, Proto::Scgi] {
        for path in ["/huge", "/many"] {
            let r = server.get(proto, path);
            assert_eq!(r.status, 500, "{proto:?} {path}");
            assert!(
                r.body.len() < 1024,
                "{proto:?} {path}: the headers went out"
            );
        }
        let fine = server.get(proto, "/fine");
        assert_eq!(fine.status, 200, "{proto:?}: a 60 KB header is allowed");
        assert_eq!(fine.header("x-fine").map(str::len), Some(60000));
    }
    assert!(
        server.wait_log("response headers larger than 65536 bytes", 5),
        "{}",
        server.log()
    );
}

fn pep3333(extra: &[&str]) -> Server {
    let app = common::apps().join("pep3333.py");
    let mut args = vec!["--wsgi-file", app.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Two uploads larger than `--post-buffering` trickle in while both of the
/// worker's Python threads would be waiting on them if the bodies went to
/// the app as they arrived: other requests are answered meanwhile, and the
/// uploads arrive whole once sent.
#[test]
fn a_trickled_large_body_holds_no_python_thread() {
    let server = pep3333(&["--threads", "2", "--post-buffering", "65536"]);
    let size = 256 * 1024;
    let stop = Arc::new(AtomicBool::new(false));
    let uploads: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.http.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                write!(
                    s,
                    "POST /digest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
                )
                .unwrap();
                // 1 KiB each 100 ms until told to send the rest.
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(&[b'a'; 1024]).unwrap();
                    sent += 1024;
                    thread::sleep(Duration::from_millis(100));
                }
                s.write_all(&vec![b'a'; size - sent]).unwrap();
                let mut reply = Vec::new();
                s.read_to_end(&mut reply).unwrap();
                Response::from_raw(&reply)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let asked = Instant::now();
        let r = server.get(Proto::Http, "/environ");
        assert_eq!(r.status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "a request waited {:?} behind two slow uploads",
            asked.elapsed()
        );
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for upload in uploads {
        let r = upload.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text().contains(&format!("\"size\": {size}")),
            "{}",
            r.text()
        );
    }
}

/// 1,000 connections each declaring a 1 MiB body (within
/// `--post-buffering`) and sending a quarter of it: the worker holds at
/// most `--body-memory` of them in memory; the rest wait in spool files.
#[test]
fn bodies_held_in_memory_stay_within_the_workers_budget() {
    let server = pep3333(&[
        "--post-buffering",
        "1048576",
        "--body-memory",
        "16777216",
        "--max-connections",
        "2000",
    ]);
    // A request first, so the worker is up and has warmed up.
    assert_eq!(server.get(Proto::Http, "/environ").status, 200);
    let worker = common::children(server.pid())[0];
    let before = common::status_kib(worker, "VmRSS").unwrap();
    let quarter = vec![b'a'; 256 * 1024];
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(&server.http).unwrap();
        s.write_all(b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
            .unwrap();
        s.write_all(&quarter).unwrap();
        conns.push(s);
    }
    // Let the worker read what was sent.
    thread::sleep(Duration::from_secs(2));
    let peak = common::status_kib(worker, "VmHWM").unwrap();
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16 + 48,
        "the worker grew by {grown_mib} MiB holding 1,000 quarter-sent bodies (budget 16 MiB)"
    );
    // Every body still arrives whole once sent.
    for s in conns.iter_mut().take(20) {
        s.write_all(&vec![b'a'; 768 * 1024]).unwrap();
        let r = common::read_one(s);
        assert_eq!(r.status, 200);
        assert!(r.text().contains("\"size\": 1048576"), "{}", r.text());
    }
}
