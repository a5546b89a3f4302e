//! Shared test harness: starts the real `rwsgi` binary on loopback / Unix
//! sockets in a temp dir, talks raw bytes to it, and stops it by its pid.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod deploy;
pub mod nginx;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test apps folder.
pub fn apps() -> PathBuf {
    repo().join("tests").join("apps")
}

/// A fresh, empty temp dir for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rwsgi-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        name
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A temp dir holding a copy of `master_app.py` (so a test may change its
/// version or make it crash) and a `version.txt` saying `version`.
pub fn master_app_dir(name: &str, version: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::copy(apps().join("master_app.py"), dir.join("master_app.py")).unwrap();
    std::fs::write(dir.join("version.txt"), version).unwrap();
    dir
}

/// Starts rwsgi on the `master_app.py` in `dir`, plus `extra`.
pub fn start_master_app(dir: &Path, extra: &[&str]) -> Server {
    let app = dir.join("master_app.py");
    let mut args = vec!["--wsgi-file", app.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args)
}

/// Starts the rwsgi binary with `args` as systemd's socket activation
/// would: `listener` becomes fd 3 (without close-on-exec) and
/// LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES=http say so. Output to `log`.
pub fn spawn_socket_activated(listener: &TcpListener, args: &[&str], log: &Path) -> Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // SAFETY: dup2 between fork and exec, as systemd does: the listening
    // socket becomes fd 3 (and loses close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, 3) >= 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Polls `done` every 50 ms for up to `secs`; whether it came true.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    // A port from the kernel's ephemeral range (what binding port 0 gives)
    // can be taken by any test's outgoing connection before the server
    // binds it, so ports come from below that range instead, handed out in
    // turn; each test binary starts at its own offset.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const LOW: usize = 10_000;
    let high = ephemeral_low().max(LOW + 1_000);
    let span = high - LOW;
    let start = std::process::id() as usize * 97;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {high}");
}

/// The first port of the kernel's ephemeral range (32768 if unknown).
fn ephemeral_low() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The test virtualenv (made by `scripts/test.sh`) with Flask, Django...
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("RWSGI_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        venv.join("bin").join("python").exists(),
        "no test virtualenv at {}: run scripts/test.sh (it creates it)",
        venv.display()
    );
    venv
}

/// A running rwsgi with an HTTP (TCP), a uwsgi (Unix) and an SCGI (TCP)
/// listener.
pub struct Server {
    child: Child,
    /// Where the server's stderr goes.
    pub log_path: PathBuf,
    /// The test's temp dir.
    pub dir: PathBuf,
    /// `127.0.0.1:port` of the HTTP listener.
    pub http: String,
    /// The uwsgi Unix socket.
    pub uwsgi: PathBuf,
    /// `127.0.0.1:port` of the SCGI listener.
    pub scgi: String,
}

impl Server {
    /// Starts rwsgi with `extra` arguments (the app options) plus one
    /// listener of each protocol, and waits until all three accept.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_in(&temp_dir("server"), extra)
    }

    /// Like [`Server::start`], in a given temp dir.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let http = format!("127.0.0.1:{}", free_port());
        let scgi = format!("127.0.0.1:{}", free_port());
        let uwsgi = dir.join("uwsgi.sock");
        let log_path = dir.join("rwsgi.log");
        let mut args: Vec<String> = vec![
            "--http-socket".into(),
            http.clone(),
            "--uwsgi-socket".into(),
            uwsgi.display().to_string(),
            "--scgi-socket".into(),
            scgi.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn(&args, &log_path);
        let mut server = Server {
            child,
            log_path,
            dir: dir.to_path_buf(),
            http,
            uwsgi,
            scgi,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rwsgi exited during startup ({status}):\n{}", self.log());
            }
            let up = TcpStream::connect(&self.http).is_ok()
                && TcpStream::connect(&self.scgi).is_ok()
                && UnixStream::connect(&self.uwsgi).is_ok();
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits up to `secs` for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A fast stop (SIGINT) lets the master stop its workers; SIGKILL if
        // it does not exit in time.
        signal(self.child.id(), libc_sig::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signal numbers the tests send (Linux).
pub mod libc_sig {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGQUIT: i32 = 3;
    pub const SIGKILL: i32 = 9;
    pub const SIGUSR1: i32 = 10;
    pub const SIGTERM: i32 = 15;
    pub const SIGCONT: i32 = 18;
    pub const SIGSTOP: i32 = 19;
}

/// Sends `sig` to `pid` (with the `kill` command: no libc in the tests).
pub fn signal(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The direct children of `pid` (a master's workers).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A field of `/proc/<pid>/status` in kB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts the rwsgi binary with `args`, stderr and stdout to `log`.
pub fn spawn(args: &[String], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .args(args)
        .env("RWSGI_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start rwsgi")
}

/// Waits up to `secs` for `child` to exit and returns its exit code (-1
/// for a signal); kills it (by its pid) and returns `None` past that.
pub fn exit_code_within(child: &mut Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the rwsgi binary to completion (for startup failures); kills it
/// (by its pid) if it has not exited within 30 s.
pub fn run_to_exit(args: &[&str]) -> (i32, String) {
    let dir = temp_dir("run");
    let log = dir.join("out.log");
    let mut child = spawn(
        &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &log,
    );
    let code = exit_code_within(&mut child, 30).unwrap_or(-2);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (code, text)
}

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends `raw` over TCP and reads until the server closes.
pub fn tcp_exchange(addr: &str, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(raw).unwrap();
    read_to_close(&mut s)
}

/// Sends `raw` over a Unix socket and reads until the server closes.
pub fn unix_exchange(path: &Path, raw: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(raw).unwrap();
    read_to_close(&mut s)
}

/// Reads until EOF (or a reset, or the timeout).
pub fn read_to_close(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// A uwsgi packet for `vars`, followed by `body`.
pub fn uwsgi_packet(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

/// An SCGI request for `vars` (CONTENT_LENGTH and SCGI added first), then
/// `body`.
pub fn scgi_request(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = vec![("CONTENT_LENGTH", &len), ("SCGI", "1")];
    all.extend_from_slice(vars);
    for (k, v) in all {
        block.extend_from_slice(k.as_bytes());
        block.push(0);
        block.extend_from_slice(v.as_bytes());
        block.push(0);
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out.extend_from_slice(body);
    out
}

/// The CGI variables nginx would send for a simple request.
pub fn cgi_vars<'a>(method: &'a str, path: &'a str, query: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REQUEST_METHOD", method),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
        ("REQUEST_URI", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "5555"),
        ("HTTP_HOST", "localhost"),
    ]
}

/// A parsed response (HTTP status line or CGI `Status:`), chunked bodies
/// decoded.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header pairs as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses one complete response from the front of `raw`; returns it and
    /// the bytes after it. Panics with the raw text if malformed.
    pub fn parse(raw: &[u8]) -> (Response, &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {text:?}"));
        let head = std::str::from_utf8(&raw[..end]).expect("head is utf-8");
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap();
        let status = if let Some(rest) = first.strip_prefix("Status: ") {
            rest[..3].parse().unwrap()
        } else {
            first.split(' ').nth(1).unwrap().parse().unwrap()
        };
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        let mut rest = &raw[end + 4..];
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("chunk size line");
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
                        .unwrap();
                rest = &rest[line_end + 2..];
                if size == 0 {
                    assert_eq!(&rest[..2], b"\r\n", "trailer section");
                    rest = &rest[2..];
                    break;
                }
                response.body.extend_from_slice(&rest[..size]);
                assert_eq!(&rest[size..size + 2], b"\r\n");
                rest = &rest[size + 2..];
            }
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().unwrap();
            response.body = rest[..len.min(rest.len())].to_vec();
            rest = &rest[len.min(rest.len())..];
        } else {
            response.body = rest.to_vec();
            rest = &[];
        }
        (response, rest)
    }

    /// Parses a single response that ends the stream.
    pub fn from_raw(raw: &[u8]) -> Response {
        Response::parse(raw).0
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Which protocol a test request goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http,
    Uwsgi,
    Scgi,
}

/// All three protocols, for tests that must hold on each.
pub const ALL: [Proto; 3] = [Proto::Http, Proto::Uwsgi, Proto::Scgi];

impl Server {
    /// Sends one request over `proto` with `headers` (name, value) and
    /// `body`, reads the whole response (the connection is closed after it).
    pub fn request(
        &self,
        proto: Proto,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match proto {
            Proto::Http => {
                let mut raw = format!(
                    "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                );
                for (k, v) in headers {
                    raw.push_str(&format!("{k}: {v}\r\n"));
                }
                if !body.is_empty() || method == "POST" || method == "PUT" {
                    raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                raw.push_str("\r\n");
                let mut raw = raw.into_bytes();
                raw.extend_from_slice(body);
                Response::from_raw(&tcp_exchange(&self.http, &raw))
            }
            Proto::Uwsgi | Proto::Scgi => {
                let len = body.len().to_string();
                let mut owned: Vec<(String, String)> = cgi_vars(method, path, query)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                owned.retain(|(k, _)| k != "REQUEST_URI");
                owned.push(("REQUEST_URI".into(), target.into()));
                for (k, v) in headers {
                    let key = k.to_ascii_uppercase().replace('-', "_");
                    let key = match key.as_str() {
                        "CONTENT_TYPE" => key,
                        _ => format!("HTTP_{key}"),
                    };
                    owned.push((key, v.to_string()));
                }
                let vars: Vec<(&str, &str)> = owned
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if proto == Proto::Uwsgi {
                    let mut vars = vars;
                    vars.push(("CONTENT_LENGTH", &len));
                    Response::from_raw(&unix_exchange(&self.uwsgi, &uwsgi_packet(&vars, body)))
                } else {
                    Response::from_raw(&tcp_exchange(&self.scgi, &scgi_request(&vars, body)))
                }
            }
        }
    }

    /// A GET over `proto`.
    pub fn get(&self, proto: Proto, target: &str) -> Response {
        self.request(proto, "GET", target, &[], b"")
    }
}

/// Sends `raw` over HTTP and expects a rejection: one `status` response
/// that closes the connection, a log line containing `cause` that names the
/// peer, and a server that still answers `/write` (tests/apps/pep3333.py)
/// right after.
pub fn assert_rejected(server: &Server, raw: &[u8], status: u16, cause: &str) {
    let reply = tcp_exchange(&server.http, raw);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let r = Response::from_raw(&reply);
    assert_eq!(r.status, status, "{text}");
    assert_eq!(r.header("connection"), Some("close"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "only one response: {text}"
    );
    assert!(
        server.wait_log(cause, 5),
        "no log line with {cause:?}:\n{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(cause))
        .unwrap_or_default();
    assert!(line.contains("peer=127.0.0.1"), "{line}");
    let after = server.get(Proto::Http, "/write");
    assert_eq!(after.status, 200, "the server stopped serving");
}

/// Reads exactly one response with a Content-Length body (or a 304) from a
/// kept-alive connection.
pub fn read_one(s: &mut impl Read) -> Response {
    let (response, extra) = try_read_one(s).unwrap_or_else(|e| panic!("{e}"));
    assert!(extra.is_empty(), "extra bytes after the response");
    response
}

/// [`read_one`] for a connection that may end: `Err` when it closes or is
/// reset before the response is whole. Bytes read past the response come
/// back with it.
pub fn try_read_one(s: &mut impl Read) -> Result<(Response, Vec<u8>), String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let bodyless = head.starts_with("http/1.1 304");
            let want = end + 4 + if bodyless { 0 } else { len };
            if raw.len() >= want {
                let extra = raw.split_off(want);
                return Ok((Response::from_raw(&raw), extra));
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {} bytes", raw.len())),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{e} after {} bytes", raw.len())),
        }
    }
}
