//! A real nginx in front of a test [`Server`]: one nginx `server` block per
//! upstream protocol (`uwsgi_pass` to the Unix socket, `scgi_pass` and
//! `proxy_pass` over loopback TCP), each on its own loopback port so paths
//! reach the app untouched. nginx runs in the foreground as one process
//! (`master_process off`) with every path in its own temp dir, and is
//! stopped by its pid on drop.
//!
//! Also a minimal HTTP/1.1 client (one request per connection,
//! `Connection: close`) to send requests through it.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir, Response, Server};

/// How long a request through nginx may take before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The nginx-shipped parameter files, from the Debian package.
const PARAMS_DIR: &str = "/etc/nginx";

/// Which nginx upstream module a request goes through to rwsgi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `uwsgi_pass unix:…` with the stock `uwsgi_params`.
    Uwsgi,
    /// `scgi_pass 127.0.0.1:…` with the stock `scgi_params`.
    Scgi,
    /// `proxy_pass http://127.0.0.1:…` (HTTP/1.1 upstream).
    Http,
}

/// Every route, for tests that must hold on each.
pub const ROUTES: [Route; 3] = [Route::Uwsgi, Route::Scgi, Route::Http];

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Uwsgi => "uwsgi_pass (unix)",
            Route::Scgi => "scgi_pass (tcp)",
            Route::Http => "proxy_pass (http)",
        })
    }
}

/// A running nginx proxying to one [`Server`].
pub struct Nginx {
    child: Child,
    /// nginx's prefix: config, pid, logs and temp files.
    pub dir: PathBuf,
    /// `127.0.0.1:port` of the block that does `uwsgi_pass`.
    pub uwsgi: String,
    /// `127.0.0.1:port` of the block that does `scgi_pass`.
    pub scgi: String,
    /// `127.0.0.1:port` of the block that does `proxy_pass`.
    pub http: String,
}

/// The nginx binary: `$RWSGI_TEST_NGINX` (set by `scripts/test.sh`), else
/// `nginx` on PATH, else `/usr/sbin/nginx`. Panics if there is none: the
/// framework tests never skip silently.
pub fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RWSGI_TEST_NGINX").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .expect("nginx is not installed: run scripts/test.sh (it installs nginx)")
}

impl Nginx {
    /// Writes an nginx.conf for `server`, starts nginx and waits until its
    /// three ports accept.
    pub fn start(server: &Server) -> Nginx {
        // A port that was free can be taken before nginx binds it (tests
        // run in parallel): then try again with fresh ports.
        for _ in 0..3 {
            match Nginx::try_start(server) {
                Ok(nginx) => return nginx,
                Err(logs) if logs.contains("Address already in use") => continue,
                Err(logs) => panic!("nginx did not start: {logs}"),
            }
        }
        panic!("nginx found no free loopback ports in 3 tries");
    }

    /// One attempt; the error carries nginx's logs.
    fn try_start(server: &Server) -> Result<Nginx, String> {
        let dir = temp_dir("nginx");
        let (uwsgi, scgi, http) = (loopback(), loopback(), loopback());
        let conf = config(&dir, server, [&uwsgi, &scgi, &http]);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start nginx (run scripts/test.sh to install it)");
        let mut nginx = Nginx {
            child,
            dir,
            uwsgi,
            scgi,
            http,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status})\n{}", self.logs()));
            }
            // nginx writes its pid file only once it has bound every
            // port: a port that accepts may be someone else's.
            let pid = std::fs::read_to_string(self.dir.join("nginx.pid")).unwrap_or_default();
            if pid.trim() == self.child.id().to_string()
                && [&self.uwsgi, &self.scgi, &self.http]
                    .iter()
                    .all(|a| TcpStream::connect(a).is_ok())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("its ports did not accept in 10 s\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's stderr and error log so far.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- nginx stderr ---\n{}--- nginx error.log ---\n{}",
            read("stderr.log"),
            read("error.log")
        )
    }

    /// `127.0.0.1:port` of the block for `route`.
    pub fn addr(&self, route: Route) -> &str {
        match route {
            Route::Uwsgi => &self.uwsgi,
            Route::Scgi => &self.scgi,
            Route::Http => &self.http,
        }
    }

    /// Sends one request through `route` and reads the whole response.
    /// `Host: <addr>` is sent unless `headers` has a Host; Content-Length is
    /// sent for a body or a POST/PUT.
    pub fn request(
        &self,
        route: Route,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let addr = self.addr(route);
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        head.push_str("Connection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        let reply =
            exchange(addr, &raw).unwrap_or_else(|e| panic!("{method} {target} via {route}: {e}"));
        assert!(
            !reply.is_empty(),
            "{method} {target} via {route}: nginx closed without a response"
        );
        Response::from_raw(&reply)
    }

    /// A GET through `route`.
    pub fn get(&self, route: Route, target: &str) -> Response {
        self.request(route, "GET", target, &[], b"")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback `127.0.0.1:port` that was free a moment ago.
fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Writes `raw` to `addr` and reads until nginx closes, failing on a
/// timeout rather than returning half a response.
fn exchange(addr: &str, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(raw)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // nginx may reset after a complete response; what came is kept.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !out.is_empty() => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// The stock parameter file `name` (`uwsgi_params`, `scgi_params`).
fn params(name: &str) -> PathBuf {
    let path = Path::new(PARAMS_DIR).join(name);
    assert!(
        path.is_file(),
        "no {}: run scripts/test.sh (it installs nginx)",
        path.display()
    );
    path
}

/// The nginx.conf: three server blocks, `[uwsgi, scgi, http]` listen
/// addresses, all state under `dir`.
fn config(dir: &Path, server: &Server, [uwsgi, scgi, http]: [&String; 3]) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    fastcgi_temp_path {d}/fastcgi;
    client_max_body_size 20m;

    server {{
        listen {uwsgi};
        location / {{
            include {uwsgi_params};
            uwsgi_pass unix:{uwsgi_socket};
            uwsgi_read_timeout 30s;
        }}
    }}

    server {{
        listen {scgi};
        location / {{
            include {scgi_params};
            scgi_pass {scgi_upstream};
            scgi_read_timeout 30s;
        }}
    }}

    server {{
        listen {http};
        location / {{
            proxy_pass http://{http_upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 30s;
        }}
    }}
}}
"#,
        uwsgi_params = params("uwsgi_params").display(),
        scgi_params = params("scgi_params").display(),
        uwsgi_socket = server.uwsgi.display(),
        scgi_upstream = server.scgi,
        http_upstream = server.http,
    )
}
