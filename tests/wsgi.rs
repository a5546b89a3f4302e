//! PEP 3333 through the real server: each test starts the real binary with
//! `tests/apps/pep3333.py` and checks one behaviour over the wire, on each
//! protocol where the protocol matters.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Proto, Response, Server, ALL};
use serde_json::Value;

fn pep3333(threads: &str) -> Server {
    let apps = common::apps();
    Server::start(&[
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--threads",
        threads,
    ])
}

fn json(r: &Response) -> Value {
    assert_eq!(r.status, 200, "body: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn environ_has_every_pep3333_key_with_the_right_type() {
    let server = pep3333("2");
    for proto in ALL {
        let v = json(&server.get(proto, "/environ?x=1"));
        let env = &v["environ"];
        let types = &v["types"];
        for key in [
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "SERVER_NAME",
            "SERVER_PORT",
            "SERVER_PROTOCOL",
            "wsgi.url_scheme",
        ] {
            assert_eq!(types[key], "str", "{proto:?} {key}: {v}");
        }
        assert_eq!(
            env["SCRIPT_NAME"], "",
            "{proto:?}: empty SCRIPT_NAME is present"
        );
        assert_eq!(env["QUERY_STRING"], "x=1", "{proto:?}");
        assert_eq!(env["PATH_INFO"], "/environ", "{proto:?}");
        assert_eq!(env["REQUEST_METHOD"], "GET", "{proto:?}");
        assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]), "{proto:?}");
        assert_eq!(types["wsgi.version"], "tuple");
        assert_eq!(env["wsgi.url_scheme"], "http", "{proto:?}");
        assert_eq!(env["wsgi.multithread"], true, "{proto:?}: 2 threads");
        assert_eq!(env["wsgi.multiprocess"], false, "{proto:?}: one process");
        assert_eq!(env["wsgi.run_once"], false);
        assert_eq!(env["wsgi.input_terminated"], true);
        assert_eq!(types["wsgi.errors"], "ErrorStream");
        assert_eq!(types["wsgi.file_wrapper"], "type");
        assert_eq!(v["input_type"], "Input");
        assert!(env.get("HTTP_HOST").is_some(), "{proto:?}");
        assert!(
            env["SERVER_PORT"].as_str().is_some_and(|p| !p.is_empty()),
            "{proto:?}"
        );
    }
}

#[test]
fn single_thread_says_not_multithread() {
    let server = pep3333("1");
    let v = json(&server.get(Proto::Uwsgi, "/environ"));
    assert_eq!(v["environ"]["wsgi.multithread"], false);
}

#[test]
fn http_environ_names_the_client_and_the_server() {
    let server = pep3333("1");
    let v = json(&server.get(Proto::Http, "/environ"));
    let env = &v["environ"];
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert_eq!(env["SERVER_NAME"], "localhost", "from the Host header");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
}

#[test]
fn utf8_path_arrives_as_latin1_decoded_str() {
    let server = pep3333("1");
    let v = json(&server.get(Proto::Http, "/caf%C3%A9"));
    assert_eq!(v["environ"]["PATH_INFO"], "/cafÃ©");
    // nginx sends PATH_INFO already decoded over uwsgi and SCGI.
    for proto in [Proto::Uwsgi, Proto::Scgi] {
        let v = json(&server.get(proto, "/café"));
        assert_eq!(v["environ"]["PATH_INFO"], "/cafÃ©", "{proto:?}");
    }
}

#[test]
fn https_from_the_proxy_sets_the_url_scheme() {
    let server = pep3333("1");
    let mut vars = common::cgi_vars("GET", "/environ", "");
    vars.push(("HTTPS", "on"));
    let raw = common::unix_exchange(&server.uwsgi, &common::uwsgi_packet(&vars, b""));
    let v = json(&Response::from_raw(&raw));
    assert_eq!(v["environ"]["wsgi.url_scheme"], "https");
}

#[test]
fn repeated_proxy_headers_are_combined_and_content_copies_dropped() {
    let server = pep3333("1");
    let mut vars = common::cgi_vars("POST", "/environ", "");
    vars.extend([
        ("HTTP_ACCEPT", "text/html"),
        ("HTTP_ACCEPT", "application/json"),
        ("HTTP_COOKIE", "a=1"),
        ("HTTP_COOKIE", "b=2"),
        ("CONTENT_TYPE", "text/plain"),
        ("HTTP_CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", "2"),
        ("HTTP_CONTENT_LENGTH", "2"),
    ]);
    let raw = common::unix_exchange(&server.uwsgi, &common::uwsgi_packet(&vars, b"hi"));
    let env = json(&Response::from_raw(&raw))["environ"].clone();
    assert_eq!(env["HTTP_ACCEPT"], "text/html, application/json");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert!(env.get("HTTP_CONTENT_TYPE").is_none());
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none());
    assert_eq!(env["CONTENT_TYPE"], "text/plain");
    assert_eq!(env["CONTENT_LENGTH"], "2");
    // The same over SCGI.
    let vars: Vec<(&str, &str)> = vars
        .into_iter()
        .filter(|(k, _)| *k != "CONTENT_LENGTH")
        .collect();
    let raw = common::tcp_exchange(&server.scgi, &common::scgi_request(&vars, b"hi"));
    let env = json(&Response::from_raw(&raw))["environ"].clone();
    assert_eq!(env["HTTP_ACCEPT"], "text/html, application/json");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert!(env.get("HTTP_CONTENT_TYPE").is_none());
}

const LINES: &[u8] = b"first line\nsecond line\nthird\nlast without newline";

#[test]
fn input_read_reads_everything() {
    let server = pep3333("1");
    for proto in ALL {
        let v = json(&server.request(proto, "POST", "/input?read", &[], LINES));
        assert_eq!(v["data"].as_str().unwrap().as_bytes(), LINES, "{proto:?}");
    }
}

#[test]
fn input_read_n_returns_at_most_n_bytes() {
    let server = pep3333("1");
    for proto in ALL {
        let v = json(&server.request(proto, "POST", "/input?read-n", &[], b"abcdefgh"));
        assert_eq!(
            v["parts"],
            serde_json::json!(["abc", "def", "gh"]),
            "{proto:?}"
        );
    }
}

#[test]
fn input_readline_honours_its_size() {
    let server = pep3333("1");
    for proto in ALL {
        let v = json(&server.request(proto, "POST", "/input?readline", &[], LINES));
        assert_eq!(
            v["lines"],
            serde_json::json!(["first line\n", "seco", "nd line\n", "third\n"]),
            "{proto:?}"
        );
    }
}

#[test]
fn input_readlines_and_iteration_split_lines() {
    let server = pep3333("1");
    let expected = serde_json::json!([
        "first line\n",
        "second line\n",
        "third\n",
        "last without newline"
    ]);
    for proto in ALL {
        let v = json(&server.request(proto, "POST", "/input?readlines", &[], LINES));
        assert_eq!(v["lines"], expected, "{proto:?} readlines");
        let v = json(&server.request(proto, "POST", "/input?iter", &[], LINES));
        assert_eq!(v["lines"], expected, "{proto:?} iteration");
    }
}

#[test]
fn input_readlines_stops_after_the_hint() {
    let server = pep3333("1");
    let v = json(&server.request(Proto::Uwsgi, "POST", "/input?readlines-hint", &[], LINES));
    assert_eq!(v["lines"], serde_json::json!(["first line\n"]));
    assert_eq!(v["rest"], "second line\nthird\nlast without newline");
}

#[test]
fn chunked_request_body_arrives_dechunked() {
    let server = pep3333("1");
    let raw = b"POST /input?read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let v = json(&Response::from_raw(&common::tcp_exchange(
        &server.http,
        raw,
    )));
    assert_eq!(v["data"], "hello, world");
    assert_eq!(
        v["content_length"], "12",
        "a fully buffered chunked body gets its length"
    );
}

#[test]
fn a_100_mib_upload_streams_without_sitting_in_memory() {
    let server = pep3333("1");
    let size: usize = 100 * 1024 * 1024;
    let block: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut expected = sha256::Sha256::new();
    for _ in 0..size / block.len() {
        expected.update(&block);
    }
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /digest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    for _ in 0..size / block.len() {
        s.write_all(&block).unwrap();
    }
    let v = json(&Response::from_raw(&common::read_to_close(&mut s)));
    assert_eq!(v["size"], size);
    assert_eq!(v["sha256"], expected.hex());
    let workers = common::children(server.pid());
    assert_eq!(workers.len(), 1);
    let peak = common::status_kib(workers[0], "VmHWM").unwrap();
    assert!(
        peak < 60 * 1024,
        "worker peak RSS {peak} KiB: the body was buffered"
    );
}

/// A small SHA-256 for checking uploads (tests only; no extra crate).
mod sha256 {
    pub struct Sha256 {
        state: [u32; 8],
        buf: Vec<u8>,
        len: u64,
    }
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    impl Sha256 {
        pub fn new() -> Self {
            Sha256 {
                state: [
                    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
                    0x1f83d9ab, 0x5be0cd19,
                ],
                buf: Vec::new(),
                len: 0,
            }
        }
        pub fn update(&mut self, data: &[u8]) {
            self.len += data.len() as u64;
            self.buf.extend_from_slice(data);
            let whole = self.buf.len() / 64 * 64;
            let blocks: Vec<u8> = self.buf.drain(..whole).collect();
            for block in blocks.chunks(64) {
                self.compress(block);
            }
        }
        fn compress(&mut self, block: &[u8]) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut h = self.state;
            for i in 0..64 {
                let s1 = h[4].rotate_right(6) ^ h[4].rotate_right(11) ^ h[4].rotate_right(25);
                let ch = (h[4] & h[5]) ^ (!h[4] & h[6]);
                let t1 = h[7]
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = h[0].rotate_right(2) ^ h[0].rotate_right(13) ^ h[0].rotate_right(22);
                let maj = (h[0] & h[1]) ^ (h[0] & h[2]) ^ (h[1] & h[2]);
                let t2 = s0.wrapping_add(maj);
                h = [
                    t1.wrapping_add(t2),
                    h[0],
                    h[1],
                    h[2],
                    h[3].wrapping_add(t1),
                    h[4],
                    h[5],
                    h[6],
                ];
            }
            for (s, v) in self.state.iter_mut().zip(h) {
                *s = s.wrapping_add(v);
            }
        }
        pub fn hex(mut self) -> String {
            let bits = self.len * 8;
            let mut pad = vec![0x80u8];
            while (self.buf.len() + pad.len()) % 64 != 56 {
                pad.push(0);
            }
            pad.extend_from_slice(&bits.to_be_bytes());
            let len = self.len;
            self.update(&pad);
            self.len = len;
            self.state.iter().map(|s| format!("{s:08x}")).collect()
        }
    }
}

#[test]
fn header_with_crlf_becomes_a_500_not_a_split_response() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/bad-header");
        assert_eq!(r.status, 500, "{proto:?}");
        assert!(
            r.header("Set-Cookie").is_none(),
            "{proto:?}: header injected"
        );
        assert!(!r.text().contains("should never be sent"));
    }
    assert!(server.wait_log("control character", 5), "{}", server.log());
}

#[test]
fn header_values_go_out_as_latin1_bytes_without_surrounding_spaces() {
    use std::io::{Read, Write};
    let server = pep3333("1");
    let mut conn = std::net::TcpStream::connect(&server.http).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /latin1-headers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"\r\nX-Latin: caf\xe9\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        has(b"\r\nX-Padded: v\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        has(b"\r\nX-After: ok\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        raw.ends_with(b"headers"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn non_latin1_header_value_or_bad_header_name_becomes_a_500() {
    let server = pep3333("1");
    for target in ["/non-latin1-header", "/bad-header-name"] {
        let r = server.get(Proto::Http, target);
        assert_eq!(r.status, 500, "{target}");
        assert!(!r.text().contains("should never be sent"), "{target}");
    }
    assert!(server.wait_log("is not latin-1", 5), "{}", server.log());
    assert!(
        server.wait_log("invalid header name", 5),
        "{}",
        server.log()
    );
}

#[test]
fn an_app_changing_its_environ_does_not_change_the_next_one() {
    let server = pep3333("1");
    for _ in 0..3 {
        let v = json(&server.get(Proto::Http, "/mutate-environ"));
        assert_eq!(v["scheme"], "http");
        assert_eq!(v["leaked"], false);
        assert_eq!(v["version"], serde_json::json!([1, 0]));
    }
    let v = json(&server.get(Proto::Http, "/environ"));
    assert_eq!(v["environ"]["wsgi.run_once"], false);
}

/// Known variables' strs are reused while their value repeats
/// (src/wsgi/environ.rs): a change must always show, on every protocol.
#[test]
fn environ_values_follow_each_request_when_they_repeat_and_change() {
    let server = pep3333("1");
    for proto in ALL {
        for i in 0..6 {
            let method = ["GET", "POST"][i % 2];
            let path = format!("/env-{}", i % 3);
            let ip = ["10.0.0.1", "10.0.0.22", "caf\u{e9}"][i % 3];
            let target = format!("{path}?q={}", i % 2);
            let r = server.request(proto, method, &target, &[("X-Real-IP", ip)], b"");
            let env = &json(&r)["environ"];
            let what = format!("{proto:?} request {i}");
            assert_eq!(env["REQUEST_METHOD"], method, "{what}");
            assert_eq!(env["PATH_INFO"], path, "{what}");
            assert_eq!(env["QUERY_STRING"], format!("q={}", i % 2), "{what}");
            // Header bytes arrive as latin-1: UTF-8 "é" is two characters.
            let latin1: String = ip.bytes().map(char::from).collect();
            assert_eq!(env["HTTP_X_REAL_IP"], latin1, "{what}");
        }
    }
}

/// A thread builds environs from snapshots of the last request shapes it
/// saw (src/wsgi/shapes.rs): whichever shapes came before, a request sees
/// exactly its own variables.
#[test]
fn each_environ_has_exactly_its_requests_headers_as_shapes_alternate() {
    let server = pep3333("1");
    let shapes: [&[(&str, &str)]; 3] = [
        &[("X-A", "a")],
        &[("X-A", "a"), ("X-B", "b")],
        &[("X-C", "c"), ("X-A", "a")],
    ];
    for i in 0..12 {
        // The values change every other request of a shape.
        let values: Vec<(String, String)> = shapes[i % 3]
            .iter()
            .map(|(k, v)| (k.to_string(), format!("{v}{}", i / 6)))
            .collect();
        let headers: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = server.request(Proto::Http, "GET", &format!("/environ?{i}"), &headers, b"");
        let env = &json(&r)["environ"];
        assert_eq!(env["QUERY_STRING"], i.to_string());
        for name in ["X-A", "X-B", "X-C"] {
            let var = format!("HTTP_{}", name.replace('-', "_"));
            let want = headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            assert_eq!(
                env.get(&var).and_then(|v| v.as_str()),
                want,
                "request {i}: {var}"
            );
        }
    }
}

#[test]
fn credentials_are_each_requests_own_in_a_repeated_shape() {
    let server = pep3333("1");
    for i in 0..4 {
        let cookie = format!("session={i}");
        let auth = format!("Bearer token-{i}");
        let headers = [
            ("Cookie", cookie.as_str()),
            ("Authorization", auth.as_str()),
        ];
        let env = &json(&server.request(Proto::Http, "GET", "/environ", &headers, b""))["environ"];
        assert_eq!(env["HTTP_COOKIE"], cookie);
        assert_eq!(env["HTTP_AUTHORIZATION"], auth);
    }
    let env = &json(&server.get(Proto::Http, "/environ"))["environ"];
    assert!(env.get("HTTP_COOKIE").is_none() && env.get("HTTP_AUTHORIZATION").is_none());
}

#[test]
fn a_name_a_proxy_sends_twice_takes_its_last_value_every_time() {
    let server = pep3333("1");
    for (first, last) in [("1", "2"), ("3", "2"), ("1", "4"), ("1", "4")] {
        let mut vars = common::cgi_vars("GET", "/environ", "");
        vars.extend([("X_TWICE", first), ("X_TWICE", last)]);
        let raw = common::unix_exchange(&server.uwsgi, &common::uwsgi_packet(&vars, b""));
        let env = &json(&Response::from_raw(&raw))["environ"];
        assert_eq!(env["X_TWICE"], last, "sent {first} then {last}");
    }
}

#[test]
fn malformed_status_becomes_a_500() {
    let server = pep3333("1");
    let r = server.get(Proto::Uwsgi, "/bad-status");
    assert_eq!(r.status, 500);
    assert!(server.wait_log("status must look like", 5));
}

#[test]
fn exc_info_replaces_the_status_before_anything_is_sent() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/exc-info-before");
        assert_eq!(r.status, 503, "{proto:?}");
        assert_eq!(r.header("X-Replaced"), Some("yes"));
        assert_eq!(r.text(), "replaced");
    }
}

#[test]
fn exc_info_after_headers_were_sent_aborts_the_response() {
    let server = pep3333("1");
    let raw = common::tcp_exchange(
        &server.http,
        b"GET /exc-info-after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("partial"));
    assert!(!text.contains("never"));
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the chunked body must not look complete: {text:?}"
    );
    assert!(server.wait_log("too late", 5));
}

#[test]
fn write_callable_sends_before_the_iterable() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/write");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "written then returned", "{proto:?}");
    }
}

#[test]
fn start_response_without_headers_is_a_500() {
    let server = pep3333("1");
    let r = server.get(Proto::Http, "/one-arg");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("never"));
    assert!(server.wait_log("needs status and response_headers", 5));
}

#[test]
fn start_response_may_be_called_lazily_in_a_generator() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/lazy");
        assert_eq!(r.status, 201, "{proto:?}");
        assert_eq!(r.header("X-Lazy"), Some("1"));
        assert_eq!(r.text(), "lazy body");
    }
}

fn closed(server: &Server) -> Vec<String> {
    let v = json(&server.get(Proto::Uwsgi, "/closes"));
    v["closed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn wait_closed(server: &Server, tag: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if closed(server).iter().any(|t| t == tag) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn close_is_called_after_success() {
    let server = pep3333("2");
    let r = server.get(Proto::Http, "/close-ok?ok-tag");
    assert_eq!(r.text(), "ab");
    assert!(wait_closed(&server, "ok-tag"));
}

#[test]
fn close_is_called_after_an_exception() {
    let server = pep3333("2");
    let r = server.get(Proto::Uwsgi, "/close-error?error-tag");
    assert_eq!(r.status, 500);
    assert!(wait_closed(&server, "error-tag"));
    assert!(server.wait_log("boom in iteration error-tag", 5));
}

#[test]
fn close_is_called_when_the_client_disconnects() {
    let server = pep3333("2");
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.write_all(b"GET /close-disconnect?gone-tag HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut first).unwrap();
    assert!(n > 0);
    drop(s);
    assert!(
        wait_closed(&server, "gone-tag"),
        "close() not called after disconnect"
    );
}

/// Reads from `s` until what arrived contains `needle`; `what` says what
/// a failed read means.
fn read_until(s: &mut TcpStream, needle: &[u8], what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut buf).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(n > 0, "{what}: closed early");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Reads one response with a `size`-byte body from `s`.
fn read_sized_response(s: &mut TcpStream, size: usize) -> Response {
    let mut got = read_until(s, b"\r\n\r\n", "no response head");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < head_end + size {
        let n = s.read(&mut buf).expect("the body");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    Response::from_raw(&got)
}

#[test]
fn each_generated_chunk_reaches_the_client_as_it_is_produced() {
    let server = pep3333("1");
    // Fast requests first: the single-threaded worker then runs the app
    // inline on its I/O thread, where each piece is written as it is made
    // (src/server/handoff.rs). The slow stream then moves it to the pool
    // thread: the second round checks that path.
    for _ in 0..30 {
        assert_eq!(server.get(Proto::Http, "/write").status, 200);
    }
    for round in ["inline", "pool thread"] {
        let flag = server.dir.join(format!("stream-flag-{}", round.len()));
        let mut s = TcpStream::connect(&server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /stream?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            flag.display()
        )
        .unwrap();
        // The app holds its last chunk back until the flag exists: the
        // two before it must already be here, though the second went out
        // as a gathered (Nagle) write.
        let mut got = read_until(
            &mut s,
            b"then another;",
            &format!("{round}: the first chunks did not arrive on their own"),
        );
        assert!(!String::from_utf8_lossy(&got).contains("second"), "{round}");
        std::fs::write(&flag, b"go").unwrap();
        got.extend_from_slice(&common::read_to_close(&mut s));
        let r = Response::from_raw(&got);
        assert_eq!(r.text(), "first chunk;then another;second chunk", "{round}");
        assert_eq!(r.header("Transfer-Encoding"), Some("chunked"), "{round}");
    }
}

/// With one Python thread, a response whose bytes are all known waits for
/// its call to end (and for the other ready connections' apps) before it
/// is written, so that one round's responses leave together. An app that
/// works on in `close()` after its last byte would have its response held
/// by that work: once it has shown it does (three times, so that a cold
/// first call does not count), responses go out at once again.
#[test]
fn post_response_work_in_close_stops_holding_responses_back() {
    let server = pep3333("1");
    for _ in 0..30 {
        assert_eq!(server.get(Proto::Http, "/write").status, 200);
    }
    // 3 ms of work in close(), three times: over the limit each time (one
    // slow close is forgiven as a cold start), still a fast app (inline).
    for _ in 0..3 {
        let r = server.get(Proto::Http, "/tail?ms=3");
        assert_eq!(r.text(), "tailed body");
    }
    assert!(
        server.wait_log("final bytes are written at once", 5),
        "{}",
        server.log()
    );
    // This close() waits until the client has the body: it must arrive
    // while close() still runs, not after its 10 s wait.
    let flag = server.dir.join("tail-flag");
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /tail?flag={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        flag.display()
    )
    .unwrap();
    read_until(&mut s, b"tailed body", "the body waited for close()");
    std::fs::write(&flag, b"go").unwrap();
    common::read_to_close(&mut s);
    let seen = flag.with_extension("seen");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "signalled");
}

/// A worker reuses each request's start_response, wsgi.input and
/// wsgi.errors when the app kept none of them (src/wsgi/recycle.rs). One
/// the app kept stays its request's: writing to it later raises a
/// RuntimeError and reaches no other response, on the inline path and on
/// the pool thread alike.
#[test]
fn start_response_kept_past_its_request_never_writes_into_another() {
    for threads in ["1", "4"] {
        let server = pep3333(threads);
        for _ in 0..30 {
            assert_eq!(server.get(Proto::Http, "/write").status, 200);
        }
        assert_eq!(server.get(Proto::Http, "/keep").text(), "kept");
        for _ in 0..10 {
            let r = server.get(Proto::Http, "/late-write");
            assert_eq!(r.status, 200, "{threads} threads");
            let text = r.text();
            assert_eq!(text, "clean:RuntimeError", "{threads} threads");
            for proto in [Proto::Http, Proto::Uwsgi, Proto::Scgi] {
                let other = server.get(proto, "/write");
                assert!(!other.text().contains("LEAKED"), "{}", other.text());
            }
        }
    }
}

/// Page faults a process has taken (`minflt` of `/proc/<pid>/stat`).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    // Field 10; `after_name` starts at field 3.
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

/// Rounds of eight 64 KiB POSTs in flight at once reuse the heap memory
/// of the rounds before: glibc's default trim threshold gave it back to
/// the kernel after each round, and the next one faulted ~120 zeroed
/// pages back in (src/master/heap.rs).
#[test]
fn request_bodies_reuse_the_heap_instead_of_faulting_it_back_in() {
    let server = pep3333("1");
    assert_eq!(server.get(Proto::Http, "/write").status, 200);
    let worker = common::children(server.pid())[0];
    let size = 64 * 1024;
    let mut request =
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    request.resize(request.len() + size, b'b');
    let mut conns: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&server.http).unwrap())
        .collect();
    let round = |conns: &mut [TcpStream]| {
        for s in conns.iter_mut() {
            s.write_all(&request).unwrap();
        }
        for s in conns.iter_mut() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(read_sized_response(s, size).body.len(), size);
        }
    };
    for _ in 0..5 {
        round(&mut conns);
    }
    let before = minor_faults(worker);
    let rounds = 20;
    for _ in 0..rounds {
        round(&mut conns);
    }
    let per_round = (minor_faults(worker) - before) / rounds;
    assert!(
        per_round < 30,
        "{per_round} page faults per round of eight 64 KiB bodies"
    );
}

#[test]
fn file_wrapper_sends_a_real_file_with_sendfile() {
    let server = pep3333("1");
    let path = server.dir.join("payload.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    for proto in ALL {
        let r = server.get(proto, &format!("/file?{}", path.display()));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body.len(),
            data.len() - 10,
            "{proto:?}: from the file position on"
        );
        assert!(r.body == data[10..], "{proto:?}");
        assert_eq!(r.header("Content-Length"), Some("299990"), "{proto:?}");
    }
    assert!(server.wait_log("sendfile", 5), "{}", server.log());
}

#[test]
fn file_wrapper_iterates_objects_without_fileno() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/filelike");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "from a BytesIO ".repeat(1000), "{proto:?}");
    }
}

#[test]
fn wsgi_errors_writes_to_the_server_log() {
    let server = pep3333("1");
    let r = server.get(Proto::Uwsgi, "/errors");
    assert_eq!(r.text(), "logged");
    assert!(server.wait_log("a line for the server log", 5));
    assert!(server.wait_log("second line", 5));
}

#[test]
fn an_app_exception_is_a_500_and_the_server_keeps_serving() {
    let server = pep3333("1");
    for proto in ALL {
        let r = server.get(proto, "/raise");
        assert_eq!(r.status, 500, "{proto:?}");
        let r = server.get(proto, "/generator");
        assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;", "{proto:?}");
    }
    assert!(server.wait_log("the app failed on purpose", 5));
    assert!(server.wait_log("Traceback", 5));
}

#[test]
fn the_app_runs_under_wsgiref_validator_without_warnings() {
    let apps = common::apps();
    let server = Server::start(&["--wsgi-file", apps.join("validated.py").to_str().unwrap()]);
    for proto in ALL {
        let r = server.request(
            proto,
            "POST",
            "/",
            &[("Content-Type", "text/plain")],
            b"12345",
        );
        assert_eq!(r.status, 200, "{proto:?}: {}\n{}", r.text(), server.log());
        assert_eq!(r.text(), "ok 5");
        let r = server.get(proto, "/?q=1");
        assert_eq!(r.status, 200, "{proto:?}: {}\n{}", r.text(), server.log());
    }
    assert!(!server.log().contains("WSGIWarning"), "{}", server.log());
}

#[test]
fn eight_threads_serve_forty_sleeping_requests_in_parallel() {
    let server = pep3333("8");
    let started = Instant::now();
    let handles: Vec<_> = (0..40)
        .map(|_| {
            let addr = server.http.clone();
            std::thread::spawn(move || {
                let raw = common::tcp_exchange(
                    &addr,
                    b"GET /sleep?0.2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                Response::from_raw(&raw)
            })
        })
        .collect();
    let mut threads = std::collections::HashSet::new();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        threads.insert(r.text());
    }
    let elapsed = started.elapsed();
    // One thread would need 40 x 0.2 s = 8 s; eight need about 1 s.
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert_eq!(
        threads.len(),
        8,
        "all eight Python threads served: {threads:?}"
    );
}

#[test]
fn an_app_that_cannot_be_imported_stops_startup_with_the_traceback() {
    let apps = common::apps();
    let (code, out) = common::run_to_exit(&[
        "--chdir",
        apps.to_str().unwrap(),
        "--module",
        "broken_import:application",
        "--http-socket",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("Traceback"), "{out}");
    assert!(out.contains("this_module_does_not_exist"), "{out}");
    assert!(
        out.contains("cannot import module \"broken_import\""),
        "{out}"
    );
}

#[test]
fn a_missing_callable_stops_startup_naming_it() {
    let apps = common::apps();
    let (code, out) = common::run_to_exit(&[
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--callable",
        "nope",
        "--http-socket",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("no callable named \"nope\""), "{out}");
}
