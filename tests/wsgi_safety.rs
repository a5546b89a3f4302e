//! rwsgi's own failures stay inside one request, and an app's file-like
//! object cannot make rwsgi send the wrong bytes. Each test starts the
//! real binary with `tests/apps/safety.py`.

mod common;

use common::{Server, ALL};

fn safety(threads: &str, extra: &[&str]) -> Server {
    let apps = common::apps();
    let mut args = vec![
        "--wsgi-file",
        apps.join("safety.py").to_str().unwrap(),
        "--threads",
        threads,
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

/// A panic in rwsgi while serving a request (caused on purpose through
/// the test-only `RWSGI_TEST_ONLY_PANIC_ON_PATH`) fails that request with
/// a 500, is logged at error naming the request and the cause, still
/// calls the body's `close()`, and leaves every Python thread serving:
/// more panics than threads, then requests.
#[test]
fn a_panic_serving_a_request_is_a_500_logged_with_its_cause_and_the_threads_serve_on() {
    for threads in ["2", "1"] {
        let server = safety(threads, &["--env", "RWSGI_TEST_ONLY_PANIC_ON_PATH=/panic"]);
        for proto in ALL {
            let r = server.get(proto, "/panic");
            assert_eq!(
                r.status,
                500,
                "{threads} threads, {proto:?}: {}",
                server.log()
            );
            assert_eq!(r.text(), "Internal Server Error\n");
        }
        assert!(
            server.wait_log("rwsgi panicked serving GET /panic: test-only panic", 5),
            "{threads} threads: no log line naming the request and the cause:\n{}",
            server.log()
        );
        assert!(
            server.wait_log("close() called for /panic", 5),
            "{threads} threads: the body's close() was not called"
        );
        assert!(
            server.wait_log("recycling worker 1: rwsgi panicked serving a request", 10),
            "{threads} threads: the worker was not replaced:\n{}",
            server.log()
        );
        let log = server.log();
        let line = log.lines().find(|l| l.contains("rwsgi panicked")).unwrap();
        assert!(line.contains("ERROR"), "logged at error: {line}");
        for proto in ALL {
            // A server that stopped answering gives nothing back once the
            // client's read times out (tests/common).
            assert_eq!(
                server.get(proto, "/hello").text(),
                "hello",
                "{threads} threads, {proto:?}: a panicked thread stopped serving:\n{}",
                server.log()
            );
        }
    }
}

/// A `fileno()` of -1 means "no descriptor": the wrapper is iterated.
#[test]
fn a_file_wrapper_whose_fileno_is_negative_is_sent_by_iteration() {
    let server = safety("2", &[]);
    for proto in ALL {
        let r = server.get(proto, "/fileno-negative");
        assert_eq!(r.status, 200, "{proto:?}: {}", server.log());
        assert_eq!(r.text(), "iterated, not sent ".repeat(500), "{proto:?}");
    }
}

/// The descriptor is asked for last and duplicated at once: when the
/// app's own `tell()` closes its file (and another file takes the freed
/// number), the response is a clean error, never the other file.
#[test]
fn a_file_closed_by_the_apps_own_methods_is_never_sent_as_another_file() {
    let server = safety("2", &[]);
    let path = server.dir.join("payload.bin");
    std::fs::write(&path, vec![b'P'; 100_000]).unwrap();
    std::fs::write(server.dir.join("payload.bin.decoy"), vec![b'D'; 100_000]).unwrap();
    for proto in ALL {
        let r = server.get(proto, &format!("/fileno-closed-by-tell?{}", path.display()));
        assert!(
            !r.body.contains(&b'D'),
            "{proto:?}: the decoy file was sent ({} {} bytes)",
            r.status,
            r.body.len()
        );
        assert!(
            r.status == 500 || (r.status == 200 && r.body == vec![b'P'; 100_000]),
            "{proto:?}: {} {} bytes",
            r.status,
            r.body.len()
        );
    }
}
