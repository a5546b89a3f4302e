//! Memory limits through the real binary: `--reload-on-rss` within one
//! request of the limit.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{Proto, Server};

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
