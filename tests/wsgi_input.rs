//! `wsgi.input` over a streamed body (larger than `--post-buffering`, so
//! it reaches the app in pieces as the socket delivers them): every read
//! method returns the body whole and in order, cut where its contract
//! says, however the pieces fell. Runs `tests/apps/streamed_input.py`.

mod common;

use common::{Proto, Response, Server};

/// Bigger than the 1 MiB `--post-buffering` default, so it streams.
const BODY_LINES: usize = 40_000;

/// Lines of varied length (0 to 199 bytes before the newline), no
/// newline at the very end.
fn body() -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..BODY_LINES {
        body.extend_from_slice(format!("{i}:").as_bytes());
        body.extend(std::iter::repeat_n(b'x', i % 200));
        body.push(b'\n');
    }
    body.extend_from_slice(b"no newline at the end");
    body
}

fn server() -> Server {
    let apps = common::apps();
    Server::start(&[
        "--wsgi-file",
        apps.join("streamed_input.py").to_str().unwrap(),
        "--threads",
        "2",
    ])
}

fn post(server: &Server, proto: Proto, route: &str, body: &[u8]) -> Response {
    let r = server.request(proto, "POST", route, &[], body);
    assert_eq!(r.status, 200, "{proto:?} {route}: {}", server.log());
    assert_eq!(
        r.header("X-Bad"),
        Some("0"),
        "{proto:?} {route}: a read cut wrong"
    );
    assert!(
        r.body == body,
        "{proto:?} {route}: the body came back changed"
    );
    r
}

fn reads(r: &Response) -> usize {
    r.header("X-Reads").unwrap().parse().unwrap()
}

#[test]
fn the_test_body_is_larger_than_post_buffering() {
    assert!(body().len() > 1024 * 1024);
}

#[test]
fn read_returns_a_streamed_body_whole() {
    let server = server();
    let body = body();
    for proto in [Proto::Http, Proto::Uwsgi] {
        let r = post(&server, proto, "/read", &body);
        assert_eq!(reads(&r), 1, "{proto:?}");
    }
}

#[test]
fn read_n_returns_n_bytes_until_the_end_of_a_streamed_body() {
    let server = server();
    let body = body();
    let r = post(&server, Proto::Http, "/read-n", &body);
    assert_eq!(reads(&r), body.len().div_ceil(1000));
}

#[test]
fn readline_with_a_size_cuts_long_lines_of_a_streamed_body() {
    let server = server();
    let body = body();
    let r = post(&server, Proto::Http, "/readline-7", &body);
    let mut expected = 0;
    for line in body.split_inclusive(|&b| b == b'\n') {
        expected += line.len().div_ceil(7);
    }
    assert_eq!(reads(&r), expected);
}

#[test]
fn iteration_and_readlines_return_each_line_of_a_streamed_body() {
    let server = server();
    let body = body();
    for route in ["/iter", "/readlines"] {
        for proto in [Proto::Http, Proto::Uwsgi] {
            let r = post(&server, proto, route, &body);
            assert_eq!(reads(&r), BODY_LINES + 1, "{proto:?} {route}");
        }
    }
}
