//! Real, unchanged Flask, Django and Pyramid apps (tests/apps/) served by
//! rwsgi behind a real nginx, through each of nginx's three upstream
//! modules: `uwsgi_pass` (Unix socket), `scgi_pass` (TCP) and `proxy_pass`
//! (HTTP/1.1 over TCP).
//!
//! One test per framework and scenario. Each starts rwsgi (`--threads 4`)
//! and nginx once, then runs the scenario through every route; a failing
//! route does not hide the others: the test reports which routes failed.
//! The frameworks come from the virtualenv `scripts/test.sh` makes.

mod common;

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Stdio};

use common::nginx::{Nginx, Route, ROUTES};
use common::{Response, Server};
use serde_json::{json, Value};

/// A framework's test app.
struct Framework {
    /// Lower-case name, as the app says it in its replies.
    name: &'static str,
    /// The `--module` argument.
    module: &'static str,
    /// Whether its redirects carry an absolute URL built from the Host
    /// (WebOb does that) rather than the path as given.
    absolute_redirects: bool,
}

const FLASK: Framework = Framework {
    name: "flask",
    module: "flask_app:app",
    absolute_redirects: false,
};

const DJANGO: Framework = Framework {
    name: "django",
    module: "django_app:application",
    absolute_redirects: false,
};

const PYRAMID: Framework = Framework {
    name: "pyramid",
    module: "pyramid_app:application",
    absolute_redirects: true,
};

/// rwsgi serving one framework's app, with nginx in front.
struct Stack {
    /// Declared first so nginx stops before its upstream.
    nginx: Nginx,
    server: Server,
    framework: &'static Framework,
}

impl Stack {
    fn start(framework: &'static Framework) -> Stack {
        let apps = common::apps().display().to_string();
        let venv = common::venv().display().to_string();
        let server = Server::start(&[
            "--module",
            framework.module,
            "--chdir",
            &apps,
            "--home",
            &venv,
            "--threads",
            "4",
        ]);
        let nginx = Nginx::start(&server);
        Stack {
            nginx,
            server,
            framework,
        }
    }

    /// Names the framework and route in assertion messages.
    fn what(&self, route: Route) -> String {
        format!("{} via {route}", self.framework.name)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- rwsgi log ---\n{}\n{}",
                self.server.log(),
                self.nginx.logs()
            );
        }
    }
}

/// Starts `framework`'s stack and runs `scenario` through every route,
/// then fails naming each route whose run panicked.
fn via_each_route(framework: &'static Framework, scenario: impl Fn(&Stack, Route)) {
    let stack = Stack::start(framework);
    let failed: Vec<String> = ROUTES
        .into_iter()
        .filter(|&route| panic::catch_unwind(AssertUnwindSafe(|| scenario(&stack, route))).is_err())
        .map(|route| route.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed via {} (see the panics above)",
        framework.name,
        failed.join(", ")
    );
}

/// Asserts the status, showing the body when it is not the expected one.
fn expect_status(response: &Response, status: u16, what: &str) {
    assert_eq!(
        response.status,
        status,
        "{what}: unexpected status; headers {:?}, body {:?}",
        response.headers,
        response.text()
    );
}

/// Asserts a 200 JSON reply and parses it.
fn expect_json(response: &Response, what: &str) -> Value {
    expect_status(response, 200, what);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content-type {content_type:?}"
    );
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {:?}", response.text()))
}

/// Every value of header `name` (case-insensitive), in order.
fn all_headers<'r>(response: &'r Response, name: &str) -> Vec<&'r str> {
    response
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn hello(framework: &'static Framework) {
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);
        let response = stack.nginx.get(route, "/hello");
        expect_status(&response, 200, &what);
        assert_eq!(
            response.text(),
            format!("hello from {}", framework.name),
            "{what}"
        );
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain"),
            "{what}: content-type {content_type:?}"
        );
    });
}

fn form_urlencoded(framework: &'static Framework) {
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);
        let response = stack.nginx.request(
            route,
            "POST",
            "/form",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"name=J%C3%BCrgen+%26+Co&n=42&empty=",
        );
        let reply = expect_json(&response, &what);
        assert_eq!(reply["framework"], framework.name, "{what}");
        assert_eq!(
            reply["form"],
            json!({"name": "Jürgen & Co", "n": "42", "empty": ""}),
            "{what}"
        );
    });
}

fn json_body(framework: &'static Framework) {
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);
        let sent = json!({
            "numbers": [1, 2, 3, 40],
            "name": "Zoë",
            "nested": {"ok": true, "list": [null, "x"]},
        });
        let body = serde_json::to_vec(&sent).unwrap();
        let response = stack.nginx.request(
            route,
            "POST",
            "/json",
            &[("Content-Type", "application/json")],
            &body,
        );
        let reply = expect_json(&response, &what);
        assert_eq!(reply["framework"], framework.name, "{what}");
        assert_eq!(reply["received"], sent, "{what}");
        assert_eq!(reply["sum"], json!(46), "{what}");
        assert_eq!(reply["count"], json!(4), "{what}");
    });
}

const BOUNDARY: &str = "----rwsgi-boundary-5d1c7e";

/// 1 MiB of pseudo-random bytes, salted with the byte runs a multipart
/// parser must not trip on: CRLFs, `--`, and a boundary minus its last
/// byte.
fn upload_payload() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let near_miss = format!("\r\n--{}", &BOUNDARY[..BOUNDARY.len() - 1]);
    for (i, at) in (0..data.len() - 64).step_by(65_521).enumerate() {
        let salt: &[u8] = match i % 3 {
            0 => b"\r\n\r\n",
            1 => b"\r\n--",
            _ => near_miss.as_bytes(),
        };
        data[at..at + salt.len()].copy_from_slice(salt);
    }
    data
}

/// A multipart/form-data body with a text field `note` and a file field
/// `file`.
fn multipart_body(note: &str, filename: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{note}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The SHA-256 of `data` in hex, by the venv's Python (no hashing crate
/// needed, and it is the same hashlib the apps use).
fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new(common::venv().join("bin").join("python"))
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hashlib failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn multipart_upload_1mib(framework: &'static Framework) {
    let data = upload_payload();
    let digest = sha256_hex(&data);
    let body = multipart_body("für dich", "data.bin", &data);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);
        let response = stack.nginx.request(
            route,
            "POST",
            "/upload",
            &[("Content-Type", &content_type)],
            &body,
        );
        let reply = expect_json(&response, &what);
        assert_eq!(reply["framework"], framework.name, "{what}");
        assert_eq!(reply["filename"], "data.bin", "{what}");
        assert_eq!(reply["size"], json!(1 << 20), "{what}");
        assert_eq!(reply["sha256"], digest.as_str(), "{what}");
        assert_eq!(reply["note"], "für dich", "{what}");
    });
}

fn cookies_set_and_echoed(framework: &'static Framework) {
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);

        let response = stack.nginx.get(route, "/set-cookie");
        expect_status(&response, 200, &what);
        let set = all_headers(&response, "set-cookie");
        assert_eq!(set.len(), 2, "{what}: Set-Cookie headers {set:?}");
        assert!(set[0].starts_with("flavour=oatmeal;"), "{what}: {set:?}");
        assert!(set[1].starts_with("session=abc123;"), "{what}: {set:?}");
        assert!(
            set[1].to_ascii_lowercase().contains("httponly"),
            "{what}: {set:?}"
        );

        let response = stack.nginx.request(
            route,
            "GET",
            "/cookies",
            &[("Cookie", "flavour=oatmeal; session=abc123")],
            b"",
        );
        let reply = expect_json(&response, &what);
        assert_eq!(
            reply["cookies"],
            json!({"flavour": "oatmeal", "session": "abc123"}),
            "{what}"
        );

        // Two Cookie lines: nginx 1.22 forwards each (as a repeated
        // HTTP_COOKIE var over uwsgi/SCGI, as two header lines over HTTP);
        // the app must see both cookies, joined with "; ".
        let response = stack.nginx.request(
            route,
            "GET",
            "/cookies",
            &[("Cookie", "a=1"), ("Cookie", "b=two")],
            b"",
        );
        let reply = expect_json(&response, &what);
        assert_eq!(
            reply["cookies"],
            json!({"a": "1", "b": "two"}),
            "{what}: repeated Cookie headers"
        );
    });
}

fn redirect_302_to_hello(framework: &'static Framework) {
    via_each_route(framework, |stack, route| {
        let what = stack.what(route);
        let response = stack.nginx.get(route, "/redirect");
        expect_status(&response, 302, &what);
        let location = response
            .header("location")
            .unwrap_or_else(|| panic!("{what}: no Location"));
        if framework.absolute_redirects {
            // Built from HTTP_HOST: Debian's uwsgi_params / scgi_params set
            // it to $host, which has no port; proxy_pass sends $http_host.
            let addr = stack.nginx.addr(route);
            let with_port = format!("http://{addr}/hello");
            assert!(
                location == with_port || location == "http://127.0.0.1/hello",
                "{what}: Location {location:?}"
            );
        } else {
            assert_eq!(location, "/hello", "{what}");
        }
    });
}

#[test]
fn flask_hello_via_each_protocol() {
    hello(&FLASK);
}

#[test]
fn flask_form_urlencoded_via_each_protocol() {
    form_urlencoded(&FLASK);
}

#[test]
fn flask_json_body_via_each_protocol() {
    json_body(&FLASK);
}

#[test]
fn flask_multipart_upload_1mib_via_each_protocol() {
    multipart_upload_1mib(&FLASK);
}

#[test]
fn flask_cookies_set_and_echoed_via_each_protocol() {
    cookies_set_and_echoed(&FLASK);
}

#[test]
fn flask_redirect_302_to_hello_via_each_protocol() {
    redirect_302_to_hello(&FLASK);
}

#[test]
fn django_hello_via_each_protocol() {
    hello(&DJANGO);
}

#[test]
fn django_form_urlencoded_via_each_protocol() {
    form_urlencoded(&DJANGO);
}

#[test]
fn django_json_body_via_each_protocol() {
    json_body(&DJANGO);
}

#[test]
fn django_multipart_upload_1mib_via_each_protocol() {
    multipart_upload_1mib(&DJANGO);
}

#[test]
fn django_cookies_set_and_echoed_via_each_protocol() {
    cookies_set_and_echoed(&DJANGO);
}

#[test]
fn django_redirect_302_to_hello_via_each_protocol() {
    redirect_302_to_hello(&DJANGO);
}

#[test]
fn pyramid_hello_via_each_protocol() {
    hello(&PYRAMID);
}

#[test]
fn pyramid_form_urlencoded_via_each_protocol() {
    form_urlencoded(&PYRAMID);
}

#[test]
fn pyramid_json_body_via_each_protocol() {
    json_body(&PYRAMID);
}

#[test]
fn pyramid_multipart_upload_1mib_via_each_protocol() {
    multipart_upload_1mib(&PYRAMID);
}

#[test]
fn pyramid_cookies_set_and_echoed_via_each_protocol() {
    cookies_set_and_echoed(&PYRAMID);
}

#[test]
fn pyramid_redirect_302_to_hello_via_each_protocol() {
    redirect_302_to_hello(&PYRAMID);
}
