//! Hostile input and overload against the real binary: each test sends the
//! bad bytes (or the bad timing), checks the status and the log line that
//! names the cause and the peer, then checks that a normal request on a new
//! connection still succeeds.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Proto, Response, Server};

fn server(extra: &[&str]) -> Server {
    let app = common::apps().join("pep3333.py");
    let mut args = vec!["--wsgi-file", app.to_str().unwrap()];
    if !extra.contains(&"--threads") {
        args.extend_from_slice(&["--threads", "4"]);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn still_serves(server: &Server) {
    let r = server.get(Proto::Http, "/write");
    assert_eq!(r.status, 200, "the server stopped serving");
    assert_eq!(r.text(), "written then returned");
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let s = server(&[]);
    common::assert_rejected(&s, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "-> 400");
}

#[test]
fn two_different_content_lengths_are_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        400,
        "-> 400",
    );
}

#[test]
fn transfer_encoding_not_ending_in_chunked_is_rejected() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn invalid_chunk_size_is_400() {
    let s = server(&[]);
    common::assert_rejected(&s, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, "-> 400");
}

#[test]
fn chunk_size_overflow_is_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn bare_lf_in_the_head_is_400() {
    let s = server(&[]);
    common::assert_rejected(&s, b"GET / HTTP/1.1\nHost: x\n\n", 400, "-> 400");
}

#[test]
fn bare_cr_in_the_head_is_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn obs_fold_is_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn whitespace_before_the_colon_is_400() {
    let s = server(&[]);
    common::assert_rejected(&s, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "-> 400");
}

#[test]
fn invalid_bytes_in_a_header_name_are_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nX\x01Y: z\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn a_relative_request_target_is_400() {
    let s = server(&[]);
    common::assert_rejected(
        &s,
        b"GET foo/bar HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn asterisk_is_only_for_options() {
    let s = server(&[]);
    common::assert_rejected(&s, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "-> 400");
    let raw = common::tcp_exchange(
        &s.http,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(Response::from_raw(&raw).status, 200);
}

#[test]
fn pipelined_requests_after_a_rejected_one_are_never_served() {
    let s = server(&[]);
    let raw = b"GET /write HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\nHost: x\n\nGET /write?smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let reply = common::tcp_exchange(&s.http, raw);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(s.wait_log("-> 400", 5));
    assert!(!s.log().contains("smuggled"), "{}", s.log());
}

#[test]
fn a_slowloris_client_gets_408_and_never_blocks_others() {
    let s = server(&["--header-timeout", "2"]);
    let mut slow = connect(&s);
    let started = Instant::now();
    let trickle = thread::spawn(move || {
        let mut reply = Vec::new();
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
        let _ = slow.read_to_end(&mut reply);
        reply
    });
    // Other clients are served while the slow one trickles.
    for _ in 0..5 {
        still_serves(&s);
    }
    let reply = trickle.join().unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(
        elapsed < Duration::from_secs(12),
        "slow client held on for {elapsed:?}"
    );
    assert!(
        s.wait_log("request head incomplete after 2 s", 5),
        "{}",
        s.log()
    );
    still_serves(&s);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let s = server(&["--keepalive-timeout", "1"]);
    let mut c = connect(&s);
    c.write_all(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    // The whole chunked response, last chunk included: it may come in a
    // read of its own, after the body's last piece.
    while !got.ends_with(b"returned\r\n0\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response ended");
        got.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closed the idle connection");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Reads one whole `/write` response (chunked) off `c`.
fn read_write_response(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"returned\r\n0\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response ended");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_later_request_has_the_header_timeout_from_its_first_byte() {
    // Idle longer than the header timeout (the keep-alive timeout allows
    // it), then a whole head at once: served. Idle as long, then a
    // trickled head: 408 once the header timeout passes from its first byte.
    let s = server(&["--header-timeout", "1", "--keepalive-timeout", "30"]);
    let request = b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n";
    let (mut whole, mut trickled) = (connect(&s), connect(&s));
    for c in [&mut whole, &mut trickled] {
        c.write_all(request).unwrap();
        assert!(read_write_response(c).starts_with("HTTP/1.1 200"));
    }
    thread::sleep(Duration::from_millis(1500));
    whole.write_all(request).unwrap();
    assert!(read_write_response(&mut whole).starts_with("HTTP/1.1 200"));
    let mut reply = Vec::new();
    for b in request {
        if trickled.write_all(&[*b]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = trickled.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(
        s.wait_log("request head incomplete after 1 s", 5),
        "{}",
        s.log()
    );
}

#[test]
fn a_stalled_body_is_dropped_after_the_body_timeout() {
    // Bodies over --post-buffering stream into wsgi.input; the app sees
    // the failure as an OSError and the connection closes.
    let s = server(&["--body-timeout", "1", "--post-buffering", "0"]);
    let mut c = connect(&s);
    c.write_all(b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly some bytes")
        .unwrap();
    let mut reply = Vec::new();
    let _ = c.read_to_end(&mut reply);
    assert!(s.wait_log("read timed out after 1 s", 10), "{}", s.log());
    still_serves(&s);
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let s = server(&["--write-timeout", "1"]);
    let mut c = connect(&s);
    // 2000 x 64 KiB: far more than the socket buffers hold.
    c.write_all(b"GET /close-disconnect?stalled HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(s.wait_log("write timed out after 1 s", 20), "{}", s.log());
    let closed = common::Server::get(&s, Proto::Uwsgi, "/closes").text();
    assert!(
        closed.contains("stalled") || s.wait_log("close() called", 1),
        "close() after the drop: {closed}"
    );
    drop(c);
    still_serves(&s);
}

#[test]
fn max_connections_makes_extra_clients_wait_not_fail() {
    let s = server(&["--max-connections", "2", "--keepalive-timeout", "30"]);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).unwrap();
            c
        })
        .collect();
    let addr = s.http.clone();
    let third = thread::spawn(move || {
        let raw = common::tcp_exchange(
            &addr,
            b"GET /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (Instant::now(), Response::from_raw(&raw).status)
    });
    thread::sleep(Duration::from_millis(700));
    let released = Instant::now();
    held.pop();
    let (answered, status) = third.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        answered >= released,
        "the third client was served before a slot freed"
    );
    assert!(s.wait_log("max-connections reached", 5));
}

#[test]
fn overload_gets_a_quick_503_with_retry_after_and_recovers() {
    let s = server(&["--threads", "1", "--queue-size", "1", "--retry-after", "7"]);
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let addr = s.http.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let raw = common::tcp_exchange(
                    &addr,
                    b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                (Response::from_raw(&raw), started.elapsed())
            })
        })
        .collect();
    let results: Vec<(Response, Duration)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let rejected: Vec<&(Response, Duration)> =
        results.iter().filter(|(r, _)| r.status == 503).collect();
    let served = results.iter().filter(|(r, _)| r.status == 200).count();
    assert!(served >= 1, "some requests were served");
    assert!(rejected.len() >= 8, "only {} of 12 got 503", rejected.len());
    for (r, elapsed) in &rejected {
        assert_eq!(r.header("retry-after"), Some("7"));
        // Rejected at once, not after waiting for a thread.
        assert!(
            *elapsed < Duration::from_millis(900),
            "503 took {elapsed:?}"
        );
    }
    assert!(s.wait_log("server overloaded", 5));
    still_serves(&s);
}

#[test]
fn thousands_of_idle_keep_alive_connections_cost_little_memory() {
    let s = server(&["--keepalive-timeout", "60"]);
    still_serves(&s);
    let worker = common::children(s.pid())[0];
    let before = common::status_kib(worker, "VmRSS").unwrap();
    let n: u64 = std::env::var("RWSGI_IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    for mut c in conns.iter() {
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let after = common::status_kib(worker, "VmRSS").unwrap();
    let per_conn = (after.saturating_sub(before)) * 1024 / n;
    println!(
        "{n} idle keep-alive connections: {} KiB -> {} KiB, {per_conn} bytes each",
        before, after
    );
    assert!(per_conn < 16 * 1024, "{per_conn} bytes per idle connection");
    drop(conns);
    still_serves(&s);
}

#[test]
fn http_sent_to_the_uwsgi_socket_then_a_real_request_succeeds() {
    let s = server(&[]);
    let raw = common::unix_exchange(
        &s.uwsgi,
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    let r = Response::from_raw(&raw);
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .contains("this is a uwsgi socket, point nginx at it with uwsgi_pass"));
    assert!(s.wait_log("HTTP request on a uwsgi socket", 5));
    assert_eq!(s.get(Proto::Uwsgi, "/write").status, 200);
}

#[test]
fn every_http_head_limit_is_configurable() {
    let s = server(&[
        "--limit-request-line",
        "64",
        "--limit-request-fields",
        "3",
        "--limit-request-field-size",
        "40",
        "--limit-request-head",
        "200",
    ]);
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70));
    common::assert_rejected(
        &s,
        long_line.as_bytes(),
        414,
        "request line longer than 64 bytes -> 414",
    );
    common::assert_rejected(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        431,
        "more than 3 header fields -> 431",
    );
    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "b".repeat(40)
    );
    common::assert_rejected(
        &s,
        long_field.as_bytes(),
        431,
        "header field line longer than 40 bytes -> 431",
    );
    let s = server(&["--limit-request-head", "200"]);
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\nB: {}\r\nC: {}\r\n\r\n",
        "c".repeat(60),
        "d".repeat(60),
        "e".repeat(60)
    );
    common::assert_rejected(
        &s,
        big_head.as_bytes(),
        431,
        "request head larger than 200 bytes -> 431",
    );
}
