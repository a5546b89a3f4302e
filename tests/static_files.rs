//! `--static-map` against the real binary: files served without the app
//! over HTTP, uwsgi and SCGI; validators and 304s; ranges; traversal
//! attempts (each must be refused, never leak the file, and log why);
//! directories, missing files, other methods; keep-alive after static
//! responses.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Proto, Response, Server, ALL};

const HELLO: &str = "hello static\n";
const SECRET: &str = "TOP SECRET outside the static dir\n";
/// Bigger than the inline limit, so it goes out with sendfile, and not a
/// multiple of any buffer size.
const BIG: usize = 3 * 1024 * 1024 + 7;

/// A temp dir with `public/` (mapped at /static), `images/` (mapped at
/// /static/img), and files outside both that symlinks point to.
struct Site {
    dir: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = common::temp_dir("static");
        let public = dir.join("public");
        let images = dir.join("images");
        let outside = dir.join("outside");
        for d in [
            &public,
            &images,
            &outside,
            &public.join("sub"),
            &public.join("img"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let write = |path: &Path, data: &[u8]| std::fs::write(path, data).unwrap();
        write(&public.join("hello.txt"), HELLO.as_bytes());
        write(&public.join("style.css"), b"body { color: red }\n");
        write(&public.join("app.js"), b"console.log(1);\n");
        write(&public.join("data.json"), b"{\"a\": 1}\n");
        write(&public.join("pixel.png"), b"\x89PNG\r\n\x1a\nnot really");
        write(&public.join("README"), b"no extension\n");
        write(&public.join("empty.txt"), b"");
        write(&public.join("sub").join("inner.html"), b"<p>inner</p>\n");
        write(&public.join("img").join("logo.png"), b"shadowed logo");
        write(&images.join("logo.png"), b"the images logo");
        write(&public.join("big.bin"), &big_bytes());
        write(&dir.join("secret.txt"), SECRET.as_bytes());
        write(&outside.join("allowed.txt"), b"allowed by --static-safe\n");
        symlink("/etc/passwd", public.join("passwd")).unwrap();
        symlink("../secret.txt", public.join("secret-link.txt")).unwrap();
        symlink(outside.join("allowed.txt"), public.join("allowed-link.txt")).unwrap();
        symlink("hello.txt", public.join("hello-link.txt")).unwrap();
        symlink("..", public.join("up")).unwrap();
        Site { dir }
    }

    /// Starts rwsgi with the pep3333 app and the two maps, plus `extra`.
    fn start(&self, extra: &[&str]) -> Server {
        let app = common::apps().join("pep3333.py");
        let public = format!("/static={}", self.dir.join("public").display());
        let images = format!("/static/img={}", self.dir.join("images").display());
        let mut args = vec![
            "--wsgi-file",
            app.to_str().unwrap(),
            "--static-map",
            &public,
            "--static-map",
            &images,
        ];
        args.extend_from_slice(extra);
        // The server removes the dir when dropped.
        Server::start_in(&self.dir, &args)
    }
}

fn site() -> (Site, Server) {
    let site = Site::new();
    let server = site.start(&[]);
    (site, server)
}

fn big_bytes() -> Vec<u8> {
    let mut x: u32 = 2_463_534_242;
    (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends a raw HTTP request (the target as is) and reads the response.
fn http_raw(server: &Server, raw: &str) -> (Response, String) {
    let reply = common::tcp_exchange(&server.http, raw.as_bytes());
    let text = String::from_utf8_lossy(&reply).into_owned();
    (Response::from_raw(&reply), text)
}

fn http_get(server: &Server, target: &str) -> (Response, String) {
    http_raw(
        server,
        &format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

/// Waits for a log line that contains every one of `parts`; returns it.
fn log_line(server: &Server, parts: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log();
        // Lines keep their newline, so a part may end with "\n" to match
        // a field at the end of the line exactly.
        if let Some(line) = log
            .split_inclusive('\n')
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with {parts:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A refused request: the status, no secret in the reply, a log line with
/// the peer and `cause`.
fn refused(server: &Server, target: &str, status: u16, cause: &str) {
    let (r, text) = http_get(server, target);
    assert_eq!(r.status, status, "{target}: {text}");
    assert_no_leak(&text, target);
    let line = log_line(server, &[cause, &format!("request=GET {target}\n")]);
    assert!(line.contains("peer=127.0.0.1"), "{line}");
    assert!(line.contains(&format!("-> {status}")), "{line}");
}

fn assert_no_leak(text: &str, what: &str) {
    assert!(
        !text.contains("TOP SECRET"),
        "{what} leaked the secret: {text}"
    );
    assert!(!text.contains("root:"), "{what} leaked /etc/passwd: {text}");
}

#[test]
fn files_are_served_over_every_protocol() {
    let (_site, server) = site();
    for proto in ALL {
        let r = server.get(proto, "/static/hello.txt");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.text(), HELLO, "{proto:?}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("content-length"), Some("13"), "{proto:?}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(
            r.header("etag").is_some_and(|t| t.starts_with('"')),
            "{r:?}"
        );
        assert!(r
            .header("last-modified")
            .is_some_and(|d| d.ends_with(" GMT")));
    }
    // The same access-log line as an app response.
    for proto in ["http", "uwsgi", "scgi"] {
        log_line(
            &server,
            &[
                &format!("127.0.0.1 {proto} GET /static/hello.txt => generated 13 bytes"),
                "(HTTP/1.1 200)",
            ],
        );
    }
}

#[test]
fn content_type_follows_the_extension() {
    let (_site, server) = site();
    for (path, want) in [
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/data.json", "application/json"),
        ("/static/pixel.png", "image/png"),
        ("/static/sub/inner.html", "text/html; charset=utf-8"),
        ("/static/README", "application/octet-stream"),
        ("/static/big.bin", "application/octet-stream"),
    ] {
        let r = server.request(Proto::Http, "HEAD", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(want), "{path}");
    }
}

#[test]
fn a_large_file_arrives_intact_over_every_protocol() {
    let (_site, server) = site();
    let want = big_bytes();
    for proto in ALL {
        let r = server.get(proto, "/static/big.bin");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
        assert_eq!(r.body.len(), BIG, "{proto:?}");
        assert!(r.body == want, "{proto:?}: the bytes differ");
    }
}

#[test]
fn an_empty_file_is_200_with_no_body() {
    let (_site, server) = site();
    let r = server.get(Proto::Http, "/static/empty.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
}

#[test]
fn head_sends_the_headers_without_the_body() {
    let (_site, server) = site();
    for proto in ALL {
        let r = server.request(proto, "HEAD", "/static/big.bin", &[], b"");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
        assert!(r.body.is_empty(), "{proto:?}: HEAD carried a body");
    }
    let (_, text) = http_raw(
        &server,
        "HEAD /static/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[test]
fn a_matching_etag_is_304_over_every_protocol() {
    let (_site, server) = site();
    let etag = server
        .get(Proto::Http, "/static/hello.txt")
        .header("etag")
        .unwrap()
        .to_string();
    for proto in ALL {
        for value in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let r = server.request(
                proto,
                "GET",
                "/static/hello.txt",
                &[("If-None-Match", &value)],
                b"",
            );
            assert_eq!(r.status, 304, "{proto:?} {value}");
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag"), Some(etag.as_str()));
            assert!(r.header("last-modified").is_some());
            assert!(r.header("content-length").is_none(), "{r:?}");
        }
    }
    let r = server.request(
        Proto::Http,
        "GET",
        "/static/hello.txt",
        &[("If-None-Match", "\"stale\"")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO);
}

#[test]
fn an_unchanged_last_modified_is_304() {
    let (_site, server) = site();
    let first = server.get(Proto::Http, "/static/hello.txt");
    let date = first.header("last-modified").unwrap();
    for proto in ALL {
        let r = server.request(
            proto,
            "GET",
            "/static/hello.txt",
            &[("If-Modified-Since", date)],
            b"",
        );
        assert_eq!(r.status, 304, "{proto:?}");
        assert!(r.body.is_empty());
    }
    let r = server.request(
        Proto::Http,
        "GET",
        "/static/hello.txt",
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO);
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    let (_site, server) = site();
    let date = server
        .get(Proto::Http, "/static/hello.txt")
        .header("last-modified")
        .unwrap()
        .to_string();
    let r = server.request(
        Proto::Http,
        "GET",
        "/static/hello.txt",
        &[("If-None-Match", "\"stale\""), ("If-Modified-Since", &date)],
        b"",
    );
    assert_eq!(r.status, 200);
}

fn get_range(server: &Server, proto: Proto, path: &str, range: &str) -> Response {
    server.request(proto, "GET", path, &[("Range", range)], b"")
}

#[test]
fn a_single_range_is_206_over_every_protocol() {
    let (_site, server) = site();
    for proto in ALL {
        for (range, body, content_range) in [
            ("bytes=0-4", "hello", "bytes 0-4/13"),
            ("bytes=6-", "static\n", "bytes 6-12/13"),
            ("bytes=-7", "static\n", "bytes 6-12/13"),
            ("bytes=6-100", "static\n", "bytes 6-12/13"),
        ] {
            let r = get_range(&server, proto, "/static/hello.txt", range);
            assert_eq!(r.status, 206, "{proto:?} {range}");
            assert_eq!(r.text(), body, "{proto:?} {range}");
            assert_eq!(r.header("content-range"), Some(content_range));
            assert_eq!(
                r.header("content-length"),
                Some(body.len().to_string().as_str())
            );
        }
    }
}

#[test]
fn a_range_of_a_large_file_is_sent_with_sendfile() {
    let (_site, server) = site();
    let want = big_bytes();
    let r = get_range(
        &server,
        Proto::Http,
        "/static/big.bin",
        "bytes=100000-1299999",
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100000-1299999/{BIG}").as_str())
    );
    assert!(r.body == want[100_000..1_300_000], "wrong bytes");
    let r = get_range(&server, Proto::Uwsgi, "/static/big.bin", "bytes=-70000");
    assert_eq!(r.status, 206);
    assert!(r.body == want[BIG - 70_000..], "wrong suffix bytes");
}

#[test]
fn an_unsatisfiable_range_is_416() {
    let (_site, server) = site();
    for proto in ALL {
        for range in ["bytes=13-", "bytes=100-200", "bytes=-0"] {
            let r = get_range(&server, proto, "/static/hello.txt", range);
            assert_eq!(r.status, 416, "{proto:?} {range}");
            assert_eq!(r.header("content-range"), Some("bytes */13"));
            assert!(!r.text().contains("hello static"));
        }
    }
    log_line(
        &server,
        &["request=GET /static/hello.txt", "not satisfiable", "-> 416"],
    );
}

#[test]
fn multiple_or_malformed_ranges_get_the_whole_file() {
    let (_site, server) = site();
    for range in ["bytes=0-1,4-5", "bytes=5-1", "lines=1-2", "bytes=x-"] {
        let r = get_range(&server, Proto::Http, "/static/hello.txt", range);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.text(), HELLO);
    }
}

#[test]
fn if_range_with_a_stale_validator_gets_the_whole_file() {
    let (_site, server) = site();
    let first = server.get(Proto::Http, "/static/hello.txt");
    let etag = first.header("etag").unwrap();
    let date = first.header("last-modified").unwrap();
    for (if_range, status) in [
        (etag.to_string(), 206),
        (date.to_string(), 206),
        ("\"stale\"".to_string(), 200),
        (format!("W/{etag}"), 200),
        ("Thu, 01 Jan 1970 00:00:00 GMT".to_string(), 200),
    ] {
        let r = server.request(
            Proto::Http,
            "GET",
            "/static/hello.txt",
            &[("Range", "bytes=0-4"), ("If-Range", &if_range)],
            b"",
        );
        assert_eq!(r.status, status, "{if_range}");
    }
}

#[test]
fn dot_dot_segments_are_refused_however_encoded() {
    let (_site, server) = site();
    for target in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/img/../../secret.txt",
        "/static/..",
    ] {
        refused(&server, target, 403, "static: path traversal refused");
    }
}

#[test]
fn dot_dot_segments_are_refused_over_uwsgi_and_scgi() {
    let (_site, server) = site();
    for proto in [Proto::Uwsgi, Proto::Scgi] {
        for target in ["/static/../secret.txt", "/static/sub/../../secret.txt"] {
            let r = server.get(proto, target);
            assert_eq!(r.status, 403, "{proto:?} {target}");
            assert_no_leak(&r.text(), target);
        }
    }
    log_line(
        &server,
        &[
            "request=GET /static/../secret.txt",
            "path traversal refused",
        ],
    );
}

#[test]
fn backslashes_are_ordinary_bytes() {
    let (_site, server) = site();
    for target in ["/static/..%5csecret.txt", "/static/..\\..\\secret.txt"] {
        let (r, text) = http_get(&server, target);
        assert_eq!(r.status, 404, "{target}: {text}");
        assert_no_leak(&text, target);
    }
}

#[test]
fn symlinks_out_of_the_directory_are_refused() {
    let (_site, server) = site();
    for target in [
        "/static/passwd",
        "/static/secret-link.txt",
        "/static/allowed-link.txt",
        "/static/up/secret.txt",
    ] {
        refused(&server, target, 403, "static: symlink out of");
    }
    // A symlink that stays inside is fine.
    let r = server.get(Proto::Http, "/static/hello-link.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), HELLO);
}

#[test]
fn static_safe_allows_symlinks_into_its_path_only() {
    let site = Site::new();
    let outside = site.dir.join("outside");
    let server = site.start(&["--static-safe", outside.to_str().unwrap()]);
    let r = server.get(Proto::Http, "/static/allowed-link.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "allowed by --static-safe\n");
    refused(
        &server,
        "/static/secret-link.txt",
        403,
        "static: symlink out of",
    );
    refused(&server, "/static/passwd", 403, "static: symlink out of");
}

#[test]
fn a_symlinked_directory_is_followed_when_it_is_swapped() {
    let site = Site::new();
    for (release, text) in [("release1", "one\n"), ("release2", "two\n")] {
        std::fs::create_dir(site.dir.join(release)).unwrap();
        std::fs::write(site.dir.join(release).join("v.txt"), text).unwrap();
    }
    let current = site.dir.join("current");
    symlink("release1", &current).unwrap();
    let map = format!("/r={}", current.display());
    let server = site.start(&["--static-map", &map]);
    assert_eq!(server.get(Proto::Http, "/r/v.txt").text(), "one\n");
    // A deploy: a new symlink renamed over the old one.
    symlink("release2", site.dir.join("next")).unwrap();
    std::fs::rename(site.dir.join("next"), &current).unwrap();
    assert_eq!(server.get(Proto::Http, "/r/v.txt").text(), "two\n");
}

#[test]
fn absolute_path_tricks_stay_inside_the_directory() {
    let (_site, server) = site();
    for target in [
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/%2F%2Fetc/passwd",
        "/static/~root/.profile",
    ] {
        refused(&server, target, 404, "static: no such file");
    }
    let (r, text) = http_raw(
        &server,
        "GET http://localhost/static/../secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403, "{text}");
    assert_no_leak(&text, "absolute-form");
}

#[test]
fn nul_bytes_are_refused() {
    let (_site, server) = site();
    refused(
        &server,
        "/static/hello.txt%00.png",
        400,
        "static: NUL byte in path refused",
    );
    let vars = common::cgi_vars("GET", "/static/hello.txt\0.png", "");
    let reply = common::unix_exchange(&server.uwsgi, &common::uwsgi_packet(&vars, b""));
    let r = Response::from_raw(&reply);
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("hello static"));
}

#[test]
fn directories_are_403() {
    let (_site, server) = site();
    for target in [
        "/static/sub",
        "/static/sub/",
        "/static",
        "/static/",
        "/static/img",
    ] {
        refused(&server, target, 403, "static: directory refused");
    }
}

#[test]
fn missing_files_are_404_not_the_app() {
    let (_site, server) = site();
    for target in [
        "/static/nope.txt",
        "/static/sub/nope/deeper.txt",
        "/static/hello.txt/",
        "/static/hello.txt/x",
    ] {
        let (r, text) = http_get(&server, target);
        assert_eq!(r.status, 404, "{target}: {text}");
        assert_eq!(r.text(), "404 Not Found\n", "{target}: the app answered");
    }
    log_line(
        &server,
        &[
            "request=GET /static/nope.txt",
            "static: no such file -> 404",
        ],
    );
    for proto in [Proto::Uwsgi, Proto::Scgi] {
        assert_eq!(server.get(proto, "/static/nope.txt").status, 404);
    }
}

#[test]
fn other_methods_are_405_with_allow() {
    let (_site, server) = site();
    for proto in ALL {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let body: &[u8] = if method == "POST" { b"a=1" } else { b"" };
            let r = server.request(proto, method, "/static/hello.txt", &[], body);
            assert_eq!(r.status, 405, "{proto:?} {method}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    log_line(
        &server,
        &[
            "request=POST /static/hello.txt",
            "static: method not allowed",
            "-> 405",
        ],
    );
}

#[test]
fn the_longest_prefix_wins() {
    let (_site, server) = site();
    for proto in ALL {
        let r = server.get(proto, "/static/img/logo.png");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.text(), "the images logo", "{proto:?}");
    }
}

#[test]
fn paths_outside_every_map_go_to_the_app() {
    let (_site, server) = site();
    for target in ["/staticfoo", "/static.txt", "/other/static/hello.txt"] {
        let r = server.get(Proto::Http, target);
        assert_eq!(r.status, 200, "{target}");
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("the app's JSON");
        assert_eq!(json["environ"]["PATH_INFO"], target);
    }
    let r = server.get(Proto::Uwsgi, "/staticfoo");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn keep_alive_serves_static_requests_on_one_connection() {
    let (_site, server) = site();
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let want = big_bytes();
    let send = |s: &mut TcpStream, target: &str, extra: &str| {
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
    };
    send(&mut s, "/static/hello.txt", "");
    let r = common::read_one(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, HELLO));
    assert!(r.header("connection").is_none());
    send(&mut s, "/static/big.bin", "");
    let r = common::read_one(&mut s);
    assert_eq!(r.status, 200);
    assert!(r.body == want);
    let etag = r.header("etag").unwrap().to_string();
    send(
        &mut s,
        "/static/big.bin",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(common::read_one(&mut s).status, 304);
    send(&mut s, "/static/nope.txt", "");
    assert_eq!(common::read_one(&mut s).status, 404);
    send(&mut s, "/static/big.bin", "Range: bytes=1-2\r\n");
    let r = common::read_one(&mut s);
    assert_eq!((r.status, &r.body[..]), (206, &want[1..3]));
    // Then the app, on the same connection.
    send(&mut s, "/write", "Connection: close\r\n");
    let r = Response::from_raw(&common::read_to_close(&mut s));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "written then returned")
    );
}

#[test]
fn pipelined_static_requests_are_answered_in_order() {
    let (_site, server) = site();
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    // Both responses may arrive in one read: read until the second body
    // has arrived, then parse both off one buffer.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !raw.ends_with(b"body { color: red }\n") {
        let n = s.read(&mut buf).expect("responses");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    let (first, rest) = Response::parse(&raw);
    let (second, rest) = Response::parse(rest);
    assert_eq!(first.text(), HELLO);
    assert_eq!(second.text(), "body { color: red }\n");
    assert!(rest.is_empty());
}

#[test]
fn a_small_request_body_is_discarded_and_the_connection_kept() {
    let (_site, server) = site();
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=1")
        .unwrap();
    let r = common::read_one(&mut s);
    assert_eq!(r.status, 405);
    assert!(r.header("connection").is_none());
    s.write_all(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(common::read_one(&mut s).text(), HELLO);
    s.write_all(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(common::read_one(&mut s).text(), "body { color: red }\n");
}

#[test]
fn a_large_request_body_closes_the_connection() {
    let (_site, server) = site();
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let r = common::read_one(&mut s);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn expect_continue_gets_the_final_status_and_a_close() {
    let (_site, server) = site();
    let (r, text) = http_raw(
        &server,
        "PUT /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(r.status, 405, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(r.header("connection"), Some("close"));
}

/// A mapped directory that does not exist yet does not stop the server
/// (uWSGI starts too): it is warned of, its prefix is a 404, and it is
/// served once a deploy creates it. A bad map still refuses to start.
#[test]
fn a_missing_static_directory_is_served_once_it_appears() {
    let dir = common::temp_dir("static-later");
    let later = dir.join("later");
    let map = format!("/assets={}", later.display());
    let app = common::apps().join("pep3333.py");
    let ini = dir.join("uwsgi.ini");
    std::fs::write(
        &ini,
        format!("[uwsgi]\nhttp-socket = 127.0.0.1:1\nstatic-map = {map}\n"),
    )
    .unwrap();
    let (code, report) = common::run_to_exit(&["--ini", ini.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("does not exist yet"), "{report}");
    let server = Server::start_in(
        &dir,
        &["--wsgi-file", app.to_str().unwrap(), "--static-map", &map],
    );
    assert!(server.wait_log("does not exist yet", 5), "{}", server.log());
    assert_eq!(server.get(Proto::Http, "/assets/site.css").status, 404);
    std::fs::create_dir_all(&later).unwrap();
    std::fs::write(later.join("site.css"), "body{}").unwrap();
    let r = server.get(Proto::Http, "/assets/site.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body{}");
    let (code, out) = common::run_to_exit(&["--static-map", "static=/tmp"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("must start with '/'"), "{out}");
    let (code, out) = common::run_to_exit(&["--static-map", "/x=/etc/hostname"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not a directory"), "{out}");
}

/// `--add-header` (uWSGI's add-header) goes on every response the app or a
/// static map sends, over every protocol; a value that could split a
/// response is refused at start.
#[test]
fn added_headers_go_on_app_and_static_responses() {
    let site = Site::new();
    let server = site.start(&[
        "--add-header",
        "X-Frame-Options: DENY",
        "--add-header",
        "Strict-Transport-Security:max-age=63072000",
    ]);
    for proto in [Proto::Http, Proto::Uwsgi, Proto::Scgi] {
        for path in ["/static/hello.txt", "/environ"] {
            let r = server.get(proto, path);
            assert_eq!(r.status, 200, "{proto:?} {path}");
            assert_eq!(
                r.header("x-frame-options"),
                Some("DENY"),
                "{proto:?} {path}"
            );
            assert_eq!(
                r.header("strict-transport-security"),
                Some("max-age=63072000"),
                "{proto:?} {path}"
            );
        }
    }
    let (code, out) = common::run_to_exit(&["--add-header", "X-Bad: a\rSet-Cookie: x=1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("control character"), "{out}");
    let (code, out) = common::run_to_exit(&["--add-header", "no colon here"]);
    assert_eq!(code, 2, "{out}");
}

/// uWSGI's static-gzip and static-expires: a client that accepts gzip
/// gets the pre-compressed sibling (with Content-Encoding, Vary and the
/// original Content-Type); any client gets the Expires the first
/// matching rule gives; a file without a sibling is sent as it is.
#[test]
fn precompressed_siblings_and_expires_follow_uwsgis_static_options() {
    let site = Site::new();
    let public = site.dir.join("public");
    std::fs::write(public.join("style.css.gz"), b"pretend-gzip-bytes").unwrap();
    let server = site.start(&[
        "--static-gzip-ext",
        ".css",
        "--static-expires",
        r"\.css$ 3600",
        "--static-expires-type",
        "text/javascript 60",
    ]);
    let gzip = [("Accept-Encoding", "gzip, deflate")];
    for proto in [Proto::Http, Proto::Uwsgi, Proto::Scgi] {
        let r = server.request(proto, "GET", "/static/style.css", &gzip, b"");
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.body, b"pretend-gzip-bytes", "{proto:?}");
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert!(r.header("content-type").unwrap().starts_with("text/css"));
        let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
        let ahead = expires
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .as_secs();
        assert!((3590..=3601).contains(&ahead), "Expires {ahead} s ahead");
        let plain = server.request(proto, "GET", "/static/style.css", &[], b"");
        assert_eq!(plain.body, b"body { color: red }\n");
        assert_eq!(plain.header("content-encoding"), None);
        let js = server.request(proto, "GET", "/static/app.js", &gzip, b"");
        assert_eq!(js.body, b"console.log(1);\n", "no sibling: as it is");
        assert!(js.header("expires").is_some(), "the type rule");
        let txt = server.get(proto, "/static/hello.txt");
        assert_eq!(txt.header("expires"), None, "no rule matches");
    }
}
