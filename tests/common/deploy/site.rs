//! The shipped `nginx/` files rendered for a test (see the table in
//! `mod.rs`) and run by a real nginx; a small HTTP/1.1 client for it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::nginx::nginx_binary;
use crate::common::{free_port, repo, temp_dir, Response};

/// Where nginx's stock parameter files live (the Debian package).
const NGINX_CONF_DIR: &str = "/etc/nginx";

/// Values that stand for the shipped ones in one test.
pub struct Rendering {
    /// The test's temp dir: `run/` holds the sockets, `static/` the
    /// static files.
    pub dir: PathBuf,
    /// `127.0.0.1:port` for rwsgi's HTTP socket.
    pub http: String,
    /// `127.0.0.1:port` for rwsgi's uwsgi TCP socket.
    pub uwsgi_tcp: String,
    /// `127.0.0.1:port` for rwsgi's SCGI socket.
    pub scgi: String,
}

impl Rendering {
    /// Fresh values under `dir` (which gets `run/` and `static/`).
    pub fn new(dir: &Path) -> Rendering {
        for sub in ["run", "static"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let port = || format!("127.0.0.1:{}", free_port());
        Rendering {
            dir: dir.to_path_buf(),
            http: port(),
            uwsgi_tcp: port(),
            scgi: port(),
        }
    }

    /// The socket directory (`/run/rwsgi` as shipped).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The static files directory (`/srv/myproject/static` as shipped).
    pub fn static_dir(&self) -> PathBuf {
        self.dir.join("static")
    }

    /// The (shipped, test) pairs, `listen` aside.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let d = self.dir.display();
        vec![
            ("/run/rwsgi/", format!("{d}/run/")),
            ("/srv/myproject/static/", format!("{d}/static/")),
            ("127.0.0.1:8000", self.http.clone()),
            ("127.0.0.1:3031", self.uwsgi_tcp.clone()),
            ("127.0.0.1:9000", self.scgi.clone()),
        ]
    }

    /// `text` (a shipped file) with every shipped value replaced and
    /// `listen 80;` made `listen <listen>;`. Panics if a shipped path or
    /// the port-80 listen survives: the test would not run what it says.
    pub fn render(&self, text: &str, listen: &str) -> String {
        assert_eq!(
            text.matches("listen 80;").count(),
            1,
            "a shipped nginx file has exactly one `listen 80;`"
        );
        let mut out = text.replace("listen 80;", &format!("listen {listen};"));
        for (shipped, test) in self.pairs() {
            out = out.replace(shipped, &test);
        }
        for left in ["/run/rwsgi", "/srv/myproject", "listen 80;"] {
            assert!(!out.contains(left), "{left} left in:\n{out}");
        }
        out
    }
}

/// A shipped file of `nginx/`.
pub fn nginx_file(name: &str) -> String {
    let path = repo().join("nginx").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A real nginx running one rendered `nginx/` file.
pub struct SiteNginx {
    child: Child,
    /// nginx's prefix: its config, pid, logs and temp files.
    pub dir: PathBuf,
    /// `127.0.0.1:port` it listens on.
    pub addr: String,
}

impl SiteNginx {
    /// Renders `nginx/<name>` with `rendering` and starts nginx on it;
    /// waits until it listens (fresh ports if one was taken meanwhile).
    pub fn start(name: &str, rendering: &Rendering) -> SiteNginx {
        let text = nginx_file(name);
        for _ in 0..3 {
            match SiteNginx::try_start(&text, rendering) {
                Ok(nginx) => return nginx,
                Err(logs) if logs.contains("Address already in use") => continue,
                Err(logs) => panic!("nginx did not start with nginx/{name}: {logs}"),
            }
        }
        panic!("nginx found no free loopback port in 3 tries");
    }

    fn try_start(text: &str, rendering: &Rendering) -> Result<SiteNginx, String> {
        let dir = temp_dir("site-nginx");
        let addr = format!("127.0.0.1:{}", free_port());
        for file in ["uwsgi_params", "scgi_params", "mime.types"] {
            let from = Path::new(NGINX_CONF_DIR).join(file);
            std::fs::copy(&from, dir.join(file)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: run scripts/test.sh (it installs nginx)",
                    from.display()
                )
            });
        }
        std::fs::write(dir.join("site.conf"), rendering.render(text, &addr)).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, wrapper(&dir)).unwrap();
        let out = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start nginx (run scripts/test.sh to install it)");
        let mut nginx = SiteNginx { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("it exited ({status})\n{}", nginx.logs()));
            }
            // The pid file is written once every port is bound.
            let pid = std::fs::read_to_string(nginx.dir.join("nginx.pid")).unwrap_or_default();
            if pid.trim() == nginx.child.id().to_string() && TcpStream::connect(&nginx.addr).is_ok()
            {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!("it did not listen in 10 s\n{}", nginx.logs()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's stderr and error log.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- nginx stderr ---\n{}--- nginx error.log ---\n{}",
            read("stderr.log"),
            read("error.log")
        )
    }

    /// One request through nginx (`Connection: close`).
    pub fn request(&self, method: &str, target: &str, body: &[u8]) -> Result<Response, String> {
        http_request(&self.addr, method, target, body)
    }

    /// A GET that must succeed at the transport level.
    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, b"")
            .unwrap_or_else(|e| panic!("GET {target}: {e}\n{}", self.logs()))
    }
}

impl Drop for SiteNginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `nginx.conf` around a rendered site: what a distribution's main
/// config provides, with every path in `dir`.
fn wrapper(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;

events {{
    worker_connections 512;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    fastcgi_temp_path {d}/fastcgi;

    include {d}/site.conf;
}}
"#
    )
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole
/// response; any transport error, an empty or a malformed reply is `Err`.
pub fn http_request(
    addr: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<Response, String> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&raw).map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !reply.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if reply.is_empty() {
        return Err("closed without a response".into());
    }
    std::panic::catch_unwind(|| Response::from_raw(&reply))
        .map_err(|_| format!("malformed reply {:?}", String::from_utf8_lossy(&reply)))
}
