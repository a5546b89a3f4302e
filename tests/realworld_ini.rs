//! Real uwsgi.ini files from public projects (`../shared/realworld-ini/`,
//! each naming its source on its first line) run unchanged: for each one
//! a stand-in tree is built in a temp dir (the app module or file it
//! names, the directories it changes to, its virtualenv, the users it
//! runs as), only its paths and ports are rewritten (into the temp dir,
//! onto loopback), `rwsgi --check-config` must accept it, and rwsgi must
//! then serve a request on every socket the file names.
//!
//! The rules are general: no file is special-cased, so other real files
//! can be dropped in the folder to check them.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo, temp_dir, Response};

/// The shared folder of real files.
fn realworld_dir() -> PathBuf {
    repo()
        .parent()
        .expect("the repo has a parent")
        .join("shared")
        .join("realworld-ini")
}

fn realworld_files() -> Vec<PathBuf> {
    let dir = realworld_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no ini files in {}", dir.display());
    files
}

/// A socket the file names, after rewriting.
#[derive(Debug, Clone)]
enum Listener {
    Uwsgi(String),
    Http(String),
}

/// The stand-in for one file: its rewritten copy and what it needs.
struct StandIn {
    root: PathBuf,
    ini: PathBuf,
    env: Vec<(String, String)>,
    listeners: Vec<Listener>,
}

/// The `[uwsgi]` option lines of `text`: (index of the line, key, value).
fn option_lines(text: &str) -> Vec<(usize, String, String)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            in_section = line == "[uwsgi]";
            continue;
        }
        if in_section {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            out.push((i, k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// Options whose value is a listening address, and what they speak.
fn listener_kind(key: &str) -> Option<fn(String) -> Listener> {
    match key {
        "socket" | "uwsgi-socket" => Some(Listener::Uwsgi),
        "http-socket" | "http11-socket" | "http" => Some(Listener::Http),
        _ => None,
    }
}

impl StandIn {
    fn build(file: &Path) -> StandIn {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let root = temp_dir(&format!("realworld-{}", &name[..name.len().min(24)]));
        let text = std::fs::read_to_string(file).unwrap();
        let opts = option_lines(&text);
        let first = |key: &str| opts.iter().find(|(_, k, _)| k == key).map(|o| o.2.clone());
        let mut stand_in = StandIn {
            ini: root.join(file.file_name().unwrap()),
            root,
            env: Vec::new(),
            listeners: Vec::new(),
        };
        let callable = first("callable").unwrap_or_else(|| "application".into());
        let chdir = first("chdir").map(|d| stand_in.path(&d));
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for (index, key, value) in &opts {
            let new_value = stand_in.take(key, value, chdir.as_deref(), &callable);
            if new_value != *value {
                lines[*index] = lines[*index].replacen(value.as_str(), &new_value, 1);
            }
        }
        std::fs::write(&stand_in.ini, lines.join("\n") + "\n").unwrap();
        stand_in
    }

    /// `path` (absolute in the file) inside the temp dir.
    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Builds what line `key = value` needs; returns the rewritten value.
    fn take(&mut self, key: &str, value: &str, chdir: Option<&Path>, callable: &str) -> String {
        if let Some(kind) = listener_kind(key) {
            let addr = self.address(value);
            self.listeners.push(kind(addr.clone()));
            return addr;
        }
        match key {
            "uid" | "gid" => ensure_account(value, value),
            "chown-socket" => {
                let (user, group) = value.split_once(':').unwrap_or((value, value));
                ensure_account(user, group);
            }
            // A program the file runs from its directory (a hook's
            // `exec:./manage.py migrate`, an attached daemon): a stand-in
            // that succeeds.
            k if k.starts_with("hook-")
                || k.starts_with("exec-")
                || k.starts_with("attach-daemon") =>
            {
                let command = value.strip_prefix("exec:").unwrap_or(value);
                if let (Some(program), Some(dir)) = (command.strip_prefix("./"), chdir) {
                    let program = program.split_whitespace().next().unwrap_or_default();
                    std::fs::create_dir_all(dir).unwrap();
                    let stub = dir.join(program);
                    std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
            }
            "module" | "wsgi" => {
                let (module, call) = value.split_once(':').unwrap_or((value, callable));
                let base = chdir.map_or(self.root.clone(), Path::to_path_buf);
                let mut path = base;
                let parts: Vec<&str> = module.split('.').collect();
                for package in &parts[..parts.len() - 1] {
                    path.push(package);
                    std::fs::create_dir_all(&path).unwrap();
                    std::fs::write(path.join("__init__.py"), "").unwrap();
                }
                std::fs::create_dir_all(&path).unwrap();
                write_app(&path.join(format!("{}.py", parts[parts.len() - 1])), call);
            }
            _ => {}
        }
        let Some(rewritten) = self.rewrite_paths(value) else {
            return value.to_string();
        };
        let path = PathBuf::from(rewritten.rsplit('=').next().unwrap());
        match key {
            "chdir" | "chdir2" | "static-map" => std::fs::create_dir_all(&path).unwrap(),
            "home" | "virtualenv" | "venv" | "pyhome" => {
                // A real virtualenv of the test Python (files the ini
                // places inside it may be there already).
                let python = common::venv().join("bin").join("python");
                let made = Command::new(python)
                    .args(["-m", "venv", "--without-pip"])
                    .arg(&path)
                    .status();
                assert!(
                    made.is_ok_and(|s| s.success()),
                    "venv at {}",
                    path.display()
                );
            }
            "wsgi-file" | "file" => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                write_app(&path, callable);
            }
            "touch-reload" => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                if !path.exists() {
                    std::fs::write(&path, "").unwrap();
                }
            }
            _ => std::fs::create_dir_all(path.parent().unwrap()).unwrap(),
        }
        rewritten
    }

    /// An absolute path (or the absolute path after `=`, as in
    /// `static-map = /static=/app/static`) moved into the temp dir.
    fn rewrite_paths(&self, value: &str) -> Option<String> {
        let (head, path) = match value.rsplit_once('=') {
            Some((head, path)) => (format!("{head}="), path),
            None => (String::new(), value),
        };
        path.starts_with('/')
            .then(|| format!("{head}{}", self.path(path).display()))
    }

    /// A listening address on loopback or in the temp dir; a port given
    /// as `$(VAR)` gets a free port through the environment.
    fn address(&mut self, value: &str) -> String {
        if value.starts_with('/') {
            let path = self.path(value);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            return path.display().to_string();
        }
        let port = value.rsplit_once(':').map_or(value, |(_, p)| p);
        let free = free_port().to_string();
        match port.strip_prefix("$(").and_then(|p| p.strip_suffix(')')) {
            Some(var) => {
                self.env.push((var.to_string(), free));
                format!("127.0.0.1:{port}")
            }
            None => format!("127.0.0.1:{free}"),
        }
    }

    /// A listener's address with its `$(VAR)` port filled in.
    fn resolved(&self, addr: &str) -> String {
        self.env.iter().fold(addr.to_string(), |a, (k, v)| {
            a.replace(&format!("$({k})"), v)
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
        cmd.args(args)
            .current_dir(&self.root)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        // RWSGI_* variables are configuration to rwsgi (and a strict file
        // refuses one it does not know): only the file configures this run,
        // whatever the shell that runs the tests has set (RWSGI_FUZZ_SECONDS).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("RWSGI_") && !key.starts_with("RWSGI_TEST_") {
                cmd.env_remove(key.as_ref());
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// A WSGI app whose callable is `callable`.
fn write_app(path: &Path, callable: &str) {
    let code = format!(
        "def {callable}(environ, start_response):\n    \
         body = b'realworld ok'\n    \
         start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n    \
         return [body]\n"
    );
    std::fs::write(path, code).unwrap();
}

/// Makes sure user `user` and group `group` exist (as the deployment the
/// file comes from has them): system accounts without a home or a login.
fn ensure_account(user: &str, group: &str) {
    let known = |db: &str, name: &str| {
        Command::new("getent")
            .args([db, name])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !known("group", group) {
        let ok = Command::new("groupadd").args(["--system", group]).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "cannot add group {group} (root needed)"
        );
    }
    if !known("passwd", user) {
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .args(["--gid", group, user])
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "cannot add user {user} (root needed)"
        );
    }
}

/// Sends one request to `listener` and returns the response.
fn request(listener: &Listener, stand_in: &StandIn) -> Response {
    let exchange = |addr: &str, raw: &[u8]| {
        if addr.starts_with('/') {
            common::unix_exchange(Path::new(addr), raw)
        } else {
            common::tcp_exchange(addr, raw)
        }
    };
    match listener {
        Listener::Uwsgi(addr) => {
            let packet = common::uwsgi_packet(&common::cgi_vars("GET", "/", ""), b"");
            Response::from_raw(&exchange(&stand_in.resolved(addr), &packet))
        }
        Listener::Http(addr) => {
            let raw = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            Response::from_raw(&exchange(&stand_in.resolved(addr), raw))
        }
    }
}

/// Whether `listener` accepts connections.
fn accepts(listener: &Listener, stand_in: &StandIn) -> bool {
    let (Listener::Uwsgi(addr) | Listener::Http(addr)) = listener;
    let addr = stand_in.resolved(addr);
    if addr.starts_with('/') {
        std::os::unix::net::UnixStream::connect(&addr).is_ok()
    } else {
        std::net::TcpStream::connect(&addr).is_ok()
    }
}

/// Checks and serves one file; `Err` says why not.
fn check_and_serve(file: &Path) -> Result<(), String> {
    let stand_in = StandIn::build(file);
    let ini = stand_in.ini.display().to_string();
    let out = stand_in
        .command(&["--check-config", "--ini", &ini])
        .output()
        .map_err(|e| e.to_string())?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("--check-config refused it:\n{report}"));
    }
    if stand_in.listeners.is_empty() {
        return Err("the file names no listener the test knows".into());
    }
    let log = stand_in.root.join("rwsgi.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = stand_in
        .command(&["--ini", &ini])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .map_err(|e| e.to_string())?;
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !stand_in.listeners.iter().all(|l| accepts(l, &stand_in)) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("rwsgi exited ({status}):\n{}", read_log()));
            }
            if Instant::now() > deadline {
                return Err(format!("rwsgi did not listen:\n{}", read_log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for listener in &stand_in.listeners {
            let response = request(listener, &stand_in);
            if response.status != 200 || response.text() != "realworld ok" {
                return Err(format!(
                    "{listener:?} answered {} {:?}:\n{}",
                    response.status,
                    response.text(),
                    read_log()
                ));
            }
        }
        Ok(())
    })();
    // Stopped by its own pid: SIGTERM (graceful), then SIGKILL.
    common::signal(child.id(), common::libc_sig::SIGTERM);
    if common::exit_code_within(&mut child, 30).is_none() {
        let _ = child.wait();
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&stand_in.root);
    }
    result
}

#[test]
fn every_realworld_ini_passes_check_config_and_serves_on_its_sockets() {
    let mut failures = Vec::new();
    for file in realworld_files() {
        if let Err(why) = check_and_serve(&file) {
            failures.push(format!("{}: {why}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What uWSGI 2.0 does with each line of each file, as the label rwsgi's
/// report must give it (see `VERDICTS`).
fn verdicts() -> HashMap<&'static str, &'static [(usize, &'static str)]> {
    VERDICTS.iter().copied().collect()
}

/// Per file, per line number: the `--check-config` label. Why each line
/// gets its label, in uWSGI's terms:
/// - "applied": uWSGI does this and so does rwsgi (a number followed by a
///   `; comment` included: uWSGI's atoi reads the leading digits);
/// - "accepted, not needed": uWSGI needs the line to behave as rwsgi
///   always does (master, enable-threads, die-on-term, need-app...);
/// - "unsupported yet": a uWSGI feature other rwsgi work will bring
///   (cheaper, cron, hooks);
/// - "unsupported, safe to skip": uWSGI does it, rwsgi runs safely without;
/// - "unknown option, ignored": uWSGI has no such option either and,
///   without strict mode, ignores it too;
/// - "section", "condition", "skipped": config structure.
#[rustfmt::skip]
const VERDICTS: &[(&str, &[(usize, &str)])] = &[
    ("CERT-Polska__mwdb-core__docker_uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "applied"), // module = malwarecage.app
        (4, "applied"), // callable = app
        (5, "applied"), // uid = nobody
        (7, "applied"), // http11-socket = :8080
        (9, "accepted, not needed"), // master = true
        (10, "accepted, not needed"), // hook-master-start = unix_signal:15 gracefully_kill_them_all
        (11, "accepted, not needed"), // need-app = true
        (12, "accepted, not needed"), // die-on-term = true
    ]),
    ("GeoNode__geonode__uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "applied"), // uwsgi-socket = 0.0.0.0:8000
        (4, "applied"), // http-socket = 0.0.0.0:8001
        (5, "applied"), // pidfile = /tmp/geonode.pid
        (7, "applied"), // chdir = /usr/src/geonode/
        (8, "applied"), // module = geonode.wsgi:application
        (10, "applied"), // strict = false
        (11, "accepted, not needed"), // master = true
        (12, "accepted, not needed"), // enable-threads = true
        (13, "applied"), // vacuum = true                        ; Delete sockets during shutdown
        (14, "accepted, not needed"), // single-interpreter = true
        (15, "accepted, not needed"), // die-on-term = true                   ; Shutdown when receiving SIGTERM (default is respawn)
        (16, "accepted, not needed"), // need-app = true
        (20, "applied"), // logto = /var/log/geonode.log
        (22, "applied"), // touch-reload = /usr/src/geonode/geonode/wsgi.py
        (23, "applied with a different default"), // buffer-size = 32768
        (25, "applied"), // harakiri = 60                        ; forcefully kill workers after 60 seconds
        (26, "unknown option, ignored"), // py-callos-afterfork = true           ; allow workers to trap signals
        (28, "applied"), // max-requests = 1000                  ; Restart workers after this many requests
        (29, "applied"), // max-worker-lifetime = 3600           ; Restart workers after this many seconds
        (30, "applied"), // reload-on-rss = 2048                 ; Restart workers after this much resident memory
        (31, "applied with a different default"), // worker-reload-mercy = 60             ; How long to wait before forcefully killing workers
        (33, "unsupported yet"), // cheaper-algo = busyness
        (34, "applied"), // processes = 128                      ; Maximum number of workers allowed
        (35, "unsupported yet"), // cheaper = 8                          ; Minimum number of workers allowed
        (36, "unsupported yet"), // cheaper-initial = 16                 ; Workers created at startup
        (37, "unsupported yet"), // cheaper-overload = 1                 ; Length of a cycle in seconds
        (38, "unsupported yet"), // cheaper-step = 16                    ; How many workers to spawn at a time
        (40, "unsupported yet"), // cheaper-busyness-multiplier = 30     ; How many cycles to wait before killing workers
        (41, "unsupported yet"), // cheaper-busyness-min = 20            ; Below this threshold, kill workers (if stable for multiplier cycles)
        (42, "unsupported yet"), // cheaper-busyness-max = 70            ; Above this threshold, spawn new workers
        (43, "unsupported yet"), // cheaper-busyness-backlog-alert = 16  ; Spawn emergency workers if more than this many requests are waiting in the queue
        (44, "unsupported yet"), // cheaper-busyness-backlog-step = 2    ; How many emergency workers to create if there are too many requests in the queue
    ]),
    ("WeblateOrg__weblate__weblate_examples_weblate.uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "accepted, not needed"), // plugins       = python3
        (4, "accepted, not needed"), // master        = true
        (5, "applied"), // protocol      = uwsgi
        (6, "applied"), // socket        = 127.0.0.1:8080
        (7, "applied"), // wsgi-file     = /home/weblate/weblate-env/lib/python3.7/site-packages/weblate/wsgi.py
        (14, "applied"), // virtualenv = /home/weblate/weblate-env
        (17, "applied with a different default"), // buffer-size   = 8192
        (20, "applied"), // workers       = 8
        (23, "unsupported, safe to skip"), // ksm           = 100
        (26, "accepted, not needed"), // enable-threads = true
        (29, "accepted, not needed"), // close-on-exec = true
        (32, "applied"), // umask = 0022
        (35, "applied"), // uid = weblate
        (36, "applied"), // gid = weblate
        (47, "accepted, not needed"), // ignore-sigpipe = true
        (48, "accepted, not needed"), // ignore-write-errors = true
        (49, "accepted, not needed"), // disable-write-exception = true
    ]),
    ("ajnisbet__opentopodata__docker_uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "applied"), // strict = true
        (4, "accepted, not needed"), // need-app = true
        (6, "applied"), // socket = /tmp/uwsgi.sock
        (7, "applied"), // chown-socket = www-data:www-data
        (8, "applied"), // chmod-socket = 664
        (9, "applied"), // vacuum = true
        (10, "applied"), // uid = www-data
        (11, "applied"), // gid = www-data
        (13, "accepted, not needed"), // master = true
        (15, "applied"), // wsgi-file = /app/opentopodata/api.py
        (16, "applied"), // callable = app
        (17, "applied"), // manage-script-name = true
        (19, "accepted, not needed"), // die-on-term = true
        (21, "applied with a different default"), // buffer-size = 65535
        (23, "applied"), // max-requests = 10000
        (24, "applied"), // max-worker-lifetime = 3600
        (25, "applied with a different default"), // worker-reload-mercy = 20
        (26, "applied"), // reload-on-rss = 512
        (27, "applied"), // reload-on-as = 512
    ]),
    ("healthchecks__healthchecks__docker_uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "accepted, not needed"), // master
        (4, "accepted, not needed"), // die-on-term
        (5, "applied"), // http-socket = :8000
        (6, "applied"), // harakiri = 10
        (7, "applied with a different default"), // post-buffering = 4096
        (8, "applied"), // processes = 4
        (9, "accepted, not needed"), // enable-threads
        (10, "applied"), // threads = 1
        (11, "applied"), // chdir = /opt/healthchecks
        (12, "applied"), // module = hc.wsgi:application
        (13, "accepted, not needed"), // thunder-lock
        (14, "accepted, not needed"), // disable-write-exception
        (17, "applied"), // max-fd = 10000
        (19, "applied"), // hook-pre-app = exec:./manage.py migrate
        (20, "applied"), // attach-daemon = ./manage.py sendalerts
        (21, "applied"), // attach-daemon = ./manage.py sendreports --loop
        (23, "condition"), // if-env = SMTPD_PORT
        (24, "skipped"), // attach-daemon = ./manage.py smtpd --port %(_)
        (25, "condition"), // endif =
    ]),
    ("openstack__keystone__httpd_keystone-uwsgi-public.ini", &[
        (2, "section"), // [uwsgi]
        (3, "applied"), // wsgi-file = /usr/local/bin/keystone-wsgi-public
        (7, "applied"), // uwsgi-socket = 127.0.0.1:5001
        (10, "applied with a different default"), // buffer-size = 65535
        (13, "accepted, not needed"), // master = true
        (15, "accepted, not needed"), // enable-threads = true
        (18, "applied"), // processes = 4
        (21, "accepted, not needed"), // thunder-lock = true
        (23, "accepted, not needed"), // plugins = python
        (26, "applied"), // lazy-apps = true
    ]),
    ("saleor__saleor__saleor_wsgi_uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "accepted, not needed"), // die-on-term = true
        (4, "applied"), // http-socket = :$(PORT)
        (5, "accepted, not needed"), // master = true
        (6, "applied"), // memory-report = true
        (7, "applied"), // module = saleor.wsgi:application
        (8, "applied"), // processes = 4
        (9, "applied"), // static-map = /static=/app/static (the stand-in has the directory)
    ]),
    ("tiangolo__uwsgi-nginx-flask-docker__example-flask-index_app_uwsgi.ini", &[
        (2, "section"), // [uwsgi]
        (3, "applied"), // socket = /tmp/uwsgi.sock
        (4, "applied"), // chown-socket = nginx:nginx
        (5, "applied"), // chmod-socket = 664
        (7, "applied"), // module = main
        (8, "applied"), // callable = app
    ]),
];

#[test]
fn check_config_verdicts_match_what_uwsgi_does_with_each_line() {
    let table = verdicts();
    let mut failures = Vec::new();
    for file in realworld_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some(expected) = table.get(name.as_str()) else {
            failures.push(format!("{name}: no verdicts in VERDICTS"));
            continue;
        };
        let stand_in = StandIn::build(&file);
        let ini = stand_in.ini.display().to_string();
        let out = stand_in
            .command(&["--check-config", "--ini", &ini])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let got: HashMap<usize, String> = report
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(ini.as_str())?.strip_prefix(':')?;
                let (number, rest) = rest.split_once(' ')?;
                let label = rest.split_once("-> ")?.1;
                let label = label.split(": ").next().unwrap_or(label);
                Some((number.parse().ok()?, label.to_string()))
            })
            .collect();
        for (line, label) in expected.iter() {
            match got.get(line) {
                Some(g) if g == label => {}
                other => failures.push(format!("{name}:{line}: expected {label:?}, got {other:?}")),
            }
        }
        let extra: Vec<_> = got
            .keys()
            .filter(|l| !expected.iter().any(|(e, _)| e == *l))
            .collect();
        if !extra.is_empty() {
            failures.push(format!(
                "{name}: lines without a verdict: {extra:?}\n{report}"
            ));
        }
        let _ = std::fs::remove_dir_all(&stand_in.root);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
