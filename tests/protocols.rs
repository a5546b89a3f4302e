//! Wire behaviour of each protocol against the real binary, spoken in raw
//! bytes: keep-alive, pipelining, 100-continue, HEAD, HTTP/1.0, response
//! framing, listener kinds, and the status and log line for bad input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Proto, Response, Server};

fn server() -> Server {
    let apps = common::apps();
    Server::start(&[
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--threads",
        "2",
    ])
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `n` complete responses have arrived on a kept-alive stream.
fn read_responses(s: &mut impl Read, n: usize) -> Vec<Response> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(parsed) = try_parse_all(&raw, n) {
            return parsed;
        }
        let got = s.read(&mut buf).expect("response did not arrive");
        assert!(
            got > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..got]);
    }
}

fn try_parse_all(raw: &[u8], n: usize) -> Option<Vec<Response>> {
    let result = std::panic::catch_unwind(|| {
        let mut rest = raw;
        let mut out = Vec::new();
        for _ in 0..n {
            let (r, after) = Response::parse(rest);
            let framed =
                r.header("content-length").is_some() || r.header("transfer-encoding").is_some();
            assert!(framed, "a kept-alive response must be framed");
            if let Some(len) = r.header("content-length") {
                assert!(r.body.len() == len.parse::<usize>().unwrap());
            }
            out.push(r);
            rest = after;
        }
        out
    });
    result.ok()
}

#[test]
fn http11_keeps_the_connection_alive() {
    let server = server();
    let mut s = connect(&server);
    for i in 0..3 {
        write!(s, "GET /generator?{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_responses(&mut s, 1).remove(0);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
        assert!(r.header("connection").is_none());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = server();
    let mut s = connect(&server);
    let mut raw = Vec::new();
    for body in ["one", "two", "three"] {
        raw.extend_from_slice(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"GET /generator HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(&raw).unwrap();
    let rs = read_responses(&mut s, 4);
    let texts: Vec<String> = rs.iter().map(Response::text).collect();
    assert_eq!(
        texts,
        ["one", "two", "three", "chunk0;chunk1;chunk2;chunk3;chunk4;"]
    );
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let server = server();
    let mut s = connect(&server);
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let r = read_responses(&mut s, 1).remove(0);
    assert_eq!(r.text(), "hello");
}

#[test]
fn head_gets_headers_and_no_body() {
    let server = server();
    let mut s = connect(&server);
    s.write_all(
        b"HEAD /generator HTTP/1.1\r\nHost: x\r\n\r\nGET /write HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains("returned") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head_response, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(head_response.starts_with("HTTP/1.1 200 OK"));
    assert!(
        !head_response.contains("Transfer-Encoding"),
        "{head_response}"
    );
    assert!(
        rest.starts_with("HTTP/1.1 200 OK"),
        "no body after HEAD: {rest:?}"
    );
}

#[test]
fn http10_without_keep_alive_closes_after_the_response() {
    let server = server();
    let raw = common::tcp_exchange(&server.http, b"GET /generator HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(!text.contains("chunked"), "no chunked encoding for 1.0");
    assert!(text.ends_with("chunk0;chunk1;chunk2;chunk3;chunk4;"));
}

#[test]
fn http10_keep_alive_is_honoured_when_the_length_is_known() {
    let server = server();
    let mut s = connect(&server);
    // A list body has a known length: Content-Length, connection kept.
    for body in ["ok", "again"] {
        write!(
            s,
            "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let r = read_responses(&mut s, 1).remove(0);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(r.text(), body);
    }
    // write() leaves the length unknown: HTTP/1.0 can only end it by closing.
    s.write_all(b"GET /write HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = Response::from_raw(&common::read_to_close(&mut s));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "written then returned");
}

#[test]
fn responses_carry_date_and_server() {
    let server = server();
    let r = server.get(Proto::Http, "/write");
    assert_eq!(r.header("server"), Some("rwsgi"));
    let date = r.header("date").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
}

#[test]
fn known_length_bodies_get_content_length_and_generators_are_chunked() {
    let server = server();
    let r = server.request(Proto::Http, "POST", "/echo", &[], b"12345");
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(r.header("transfer-encoding").is_none());
    let r = server.get(Proto::Http, "/generator");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let r = server.get(Proto::Http, "/empty");
    assert_eq!(r.status, 204);
    assert!(r.header("transfer-encoding").is_none() && r.body.is_empty());
}

#[test]
fn uwsgi_and_scgi_close_after_each_response() {
    let server = server();
    for proto in [Proto::Uwsgi, Proto::Scgi] {
        // Request() reads to EOF: it returns only because the server closed.
        let r = server.get(proto, "/generator");
        assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;", "{proto:?}");
    }
    let raw = common::unix_exchange(
        &server.uwsgi,
        &common::uwsgi_packet(&common::cgi_vars("GET", "/write", ""), b""),
    );
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200 OK\r\n"));
    let raw = common::tcp_exchange(
        &server.scgi,
        &common::scgi_request(&common::cgi_vars("GET", "/write", ""), b""),
    );
    assert!(String::from_utf8_lossy(&raw).starts_with("Status: 200 OK\r\n"));
}

#[test]
fn uwsgi_vars_block_may_be_65535_bytes() {
    let server = server();
    let mut vars = common::cgi_vars("GET", "/environ", "");
    let used: usize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    let big = "b".repeat(65535 - used - 4 - "HTTP_X_BIG".len());
    vars.push(("HTTP_X_BIG", &big));
    let packet = common::uwsgi_packet(&vars, b"");
    assert_eq!(u16::from_le_bytes([packet[1], packet[2]]), 65535);
    let r = Response::from_raw(&common::unix_exchange(&server.uwsgi, &packet));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["environ"]["HTTP_X_BIG"].as_str().unwrap().len(),
        big.len()
    );
}

#[test]
fn scgi_without_the_scgi_header_is_served() {
    let server = server();
    let vars = common::cgi_vars("GET", "/write", "");
    let mut block = b"CONTENT_LENGTH\x000\x00".to_vec();
    for (k, v) in vars {
        block.extend_from_slice(format!("{k}\0{v}\0").as_bytes());
    }
    let mut raw = format!("{}:", block.len()).into_bytes();
    raw.extend_from_slice(&block);
    raw.push(b',');
    let r = Response::from_raw(&common::tcp_exchange(&server.scgi, &raw));
    assert_eq!(r.text(), "written then returned");
}

#[test]
fn http_on_a_unix_socket_and_on_ipv6_loopback() {
    let dir = common::temp_dir("listeners");
    let unix = dir.join("http.sock");
    let port = common::free_port();
    let v6 = format!("[::1]:{port}");
    let mut server = Server::start_in(
        &dir,
        &[
            "--http-socket",
            unix.to_str().unwrap(),
            "--http-socket",
            &v6,
        ],
    );
    let raw = common::unix_exchange(
        &unix,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(Response::from_raw(&raw).status, 200);
    if TcpStream::connect(&v6).is_ok() {
        let raw = common::tcp_exchange(
            &v6,
            b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(Response::from_raw(&raw).status, 200);
    } else {
        // A machine without IPv6 on loopback: the server must have said why.
        assert!(server.log().contains("::1"), "{}", server.log());
    }
    assert!(server.alive());
}

#[test]
fn the_banner_names_each_listener_the_app_and_the_threads() {
    let server = server();
    assert!(server.wait_log(&format!("listening on scgi://{}", server.scgi), 5));
    let log = server.log();
    assert!(
        log.contains(&format!("listening on http://{}", server.http)),
        "{log}"
    );
    assert!(
        log.contains(&format!("listening on uwsgi://{}", server.uwsgi.display())),
        "{log}"
    );
    assert!(
        log.contains(&format!("listening on scgi://{}", server.scgi)),
        "{log}"
    );
    assert!(
        log.contains("pep3333.py with 1 worker(s) x 2 Python thread(s)"),
        "{log}"
    );
}

#[test]
fn every_request_gets_an_access_log_line() {
    let server = server();
    server.get(Proto::Uwsgi, "/write?logged-uwsgi");
    server.get(Proto::Http, "/write?logged-http");
    assert!(
        server.wait_log("uwsgi GET /write?logged-uwsgi => generated 21 bytes in", 5),
        "{}",
        server.log()
    );
    assert!(
        server.wait_log("http GET /write?logged-http => generated 21 bytes in", 5),
        "{}",
        server.log()
    );
}

#[test]
fn disable_logging_turns_the_access_log_off() {
    let apps = common::apps();
    let server = Server::start(&[
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--disable-logging",
    ]);
    server.get(Proto::Http, "/write?quiet");
    server.get(Proto::Http, "/raise");
    assert!(
        server.wait_log("the app failed on purpose", 5),
        "errors are still logged"
    );
    assert!(!server.log().contains("/write?quiet"), "{}", server.log());
}

#[test]
fn the_demo_app_is_served_when_no_app_is_given() {
    let server = Server::start(&[]);
    let r = server.get(Proto::Http, "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Hello from rwsgi"));
    assert!(r.text().contains("wsgi.input"));
}

#[test]
fn module_is_found_through_pythonpath() {
    let apps = common::apps();
    let server = Server::start(&[
        "--pythonpath",
        apps.to_str().unwrap(),
        "--module",
        "pep3333:application",
    ]);
    assert_eq!(
        server.get(Proto::Http, "/write").text(),
        "written then returned"
    );
}

#[test]
fn malformed_request_line_is_400() {
    let server = server();
    common::assert_rejected(&server, b"GET\r\n\r\n", 400, "-> 400");
}

#[test]
fn smuggling_content_length_with_transfer_encoding_is_400() {
    let server = server();
    common::assert_rejected(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "-> 400",
    );
}

#[test]
fn a_long_request_line_is_414() {
    let server = server();
    let raw = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    common::assert_rejected(&server, raw.as_bytes(), 414, "-> 414");
}

#[test]
fn too_many_headers_is_431() {
    let server = server();
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        raw.push_str(&format!("X-H{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    common::assert_rejected(&server, raw.as_bytes(), 431, "-> 431");
}

#[test]
fn a_body_over_limit_post_is_413() {
    let apps = common::apps();
    let server = Server::start(&[
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--limit-post",
        "100",
    ]);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n{}",
        "x".repeat(101)
    );
    common::assert_rejected(&server, raw.as_bytes(), 413, "limit-post 100");
}

#[test]
fn http_on_the_uwsgi_socket_gets_a_plain_http_400_that_says_so() {
    let server = server();
    let raw = common::unix_exchange(&server.uwsgi, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = Response::from_raw(&raw);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("uwsgi_pass"), "{}", r.text());
    assert!(server.wait_log("this is a uwsgi socket", 5));
    let mut s = UnixStream::connect(&server.uwsgi).unwrap();
    s.write_all(&common::uwsgi_packet(
        &common::cgi_vars("GET", "/write", ""),
        b"",
    ))
    .unwrap();
    assert_eq!(
        Response::from_raw(&common::read_to_close(&mut s)).status,
        200
    );
}

#[test]
fn http_on_the_scgi_socket_gets_a_plain_http_400_that_says_so() {
    let server = server();
    let raw = common::tcp_exchange(&server.scgi, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = Response::from_raw(&raw);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("scgi_pass"), "{}", r.text());
    assert!(server.wait_log("this is an SCGI socket", 5));
}

#[test]
fn a_head_longer_than_one_read_is_served_and_the_connection_kept() {
    let server = server();
    // A 6 KiB Cookie: more than one read's room (2 KiB); the second
    // request on the connection reuses the grown buffer.
    let cookie = "c".repeat(6000);
    let raw = format!(
        "GET /environ HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\nGET /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let reply = common::tcp_exchange(&server.http, raw.as_bytes());
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(
        text.contains(&cookie),
        "the environ carries the whole cookie"
    );
    assert!(text.contains("written"), "{text}");
}

/// One Python thread: fast requests run inline on the I/O thread, and a
/// whole response is handed to the round's writer (`server::round`).
fn inline_server(dir: &std::path::Path, extra: &[&str]) -> Server {
    let apps = common::apps();
    let mut args = vec![
        "--wsgi-file",
        apps.join("pep3333.py").to_str().unwrap(),
        "--threads",
        "1",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_in(dir, &args)
}

/// Many kept-alive connections whose responses are written together at
/// the end of each round: every connection gets its own responses, whole
/// and in order.
#[test]
fn each_kept_alive_connection_gets_its_own_responses_when_rounds_are_written_together() {
    let server = inline_server(&common::temp_dir("rounds"), &[]);
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let mut s = connect(&server);
            std::thread::spawn(move || {
                for r in 0..60 {
                    write!(s, "GET /environ?c{c}r{r} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let response = read_responses(&mut s, 1).remove(0);
                    assert_eq!(response.status, 200);
                    let text = response.text();
                    assert!(
                        text.contains(&format!("\"QUERY_STRING\": \"c{c}r{r}\"")),
                        "connection {c}, request {r} got {text}"
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

/// A client that sends request after request and reads nothing for a
/// while fills its socket: responses the round's writer cannot send whole
/// are finished by their connection, and every byte arrives, in order.
#[test]
fn responses_a_full_socket_did_not_take_arrive_whole_and_in_order() {
    let dir = common::temp_dir("rounds-full");
    let path = dir.join("http.sock");
    let server = inline_server(&dir, &["--http-socket", path.to_str().unwrap()]);
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = s.try_clone().unwrap();
    // About 7 KiB each way: a Unix socket holds a few dozen.
    let pad = "p".repeat(7_000);
    const N: usize = 200;
    let sender = std::thread::spawn(move || {
        for r in 0..N {
            write!(
                writer,
                "GET /environ?r{r} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n"
            )
            .unwrap();
            // One request at a time reaches the server (not pipelined).
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let responses = read_responses(&mut s, N);
    for (r, response) in responses.iter().enumerate() {
        let text = response.text();
        let query = text.find("QUERY_STRING").map(|at| &text[at..at + 24]);
        assert!(
            text.contains(&format!("\"QUERY_STRING\": \"r{r}\"")),
            "response {r} has {query:?}"
        );
    }
    sender.join().unwrap();
    drop(server);
}

/// RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0
/// needs none).
#[test]
fn an_http11_request_without_host_gets_400() {
    let s = server();
    common::assert_rejected(
        &s,
        b"GET /environ HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
        400,
        "Host field missing (required in HTTP/1.1) -> 400",
    );
    let reply = common::tcp_exchange(&s.http, b"GET /environ HTTP/1.0\r\n\r\n");
    assert!(
        reply.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// Every door sets `SERVER_SOFTWARE` (apps such as httpbin gate features
/// on it); one a proxy sends over uwsgi or SCGI is kept.
#[test]
fn server_software_names_rwsgi_unless_the_proxy_sent_one() {
    let s = server();
    let want = format!("rwsgi/{}", env!("CARGO_PKG_VERSION"));
    for proto in [Proto::Http, Proto::Uwsgi, Proto::Scgi] {
        let r = s.get(proto, "/environ");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["environ"]["SERVER_SOFTWARE"], want.as_str(), "{proto:?}");
    }
    let mut vars = common::cgi_vars("GET", "/environ", "");
    vars.push(("SERVER_SOFTWARE", "nginx/1.22.1"));
    let reply = common::unix_exchange(&s.uwsgi, &common::uwsgi_packet(&vars, b""));
    let r = Response::from_raw(&reply);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["environ"]["SERVER_SOFTWARE"], "nginx/1.22.1");
}
