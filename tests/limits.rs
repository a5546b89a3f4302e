//! Memory and size limits through the real binary: `--reload-on-rss`
//! within one request of the limit, and the cap on an app's response head.

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
