//! Configuration files, `RWSGI_*` variables and `--check-config`, against
//! the real binary and real-looking uWSGI ini files (tests/configs/).
//!
//! The fixtures take what changes per test (a port, a run directory, the
//! virtualenv) from `$(PORT)`, `$(RUN_DIR)` and `$(VENV)`, as deployments
//! take theirs from the environment.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{children, free_port, repo, signal, temp_dir, Response};

fn configs() -> PathBuf {
    repo().join("tests").join("configs")
}

fn fixture(name: &str) -> String {
    configs().join(name).display().to_string()
}

fn rwsgi(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(args)
        .current_dir(repo())
        .env("RWSGI_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs rwsgi to its exit (killed after 30 s): (status, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = temp_dir("config-run");
    let (out_path, err_path) = (dir.join("out"), dir.join("err"));
    let mut child = rwsgi(args, env)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start rwsgi");
    let code = common::exit_code_within(&mut child, 30).unwrap_or(-2);
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (code, out, err)
}

/// `--check-config` output as (line number, key, outcome label) per line.
fn classify(report: &str, file: &str) -> Vec<(usize, String, String)> {
    report
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(file)?.strip_prefix(':')?;
            let (number, rest) = rest.split_once(' ')?;
            let (text, outcome) = rest.split_once("  -> ")?;
            let key = text.trim().split('=').next()?.trim().to_string();
            let label = outcome.split(':').next()?.trim().to_string();
            Some((number.parse().ok()?, key, label))
        })
        .collect()
}

/// The labels by key (keys appear once in the fixtures checked this way).
fn labels(report: &str, file: &str) -> HashMap<String, String> {
    classify(report, file)
        .into_iter()
        .map(|(_, key, label)| (key, label))
        .collect()
}

fn assert_labels(report: &str, file: &str, expected: &[(&str, &str)]) {
    let got = labels(report, file);
    for (key, label) in expected {
        assert_eq!(
            got.get(*key).map(String::as_str),
            Some(*label),
            "line `{key}`:\n{report}"
        );
    }
    // Every option line of the file is in the report.
    let text = std::fs::read_to_string(file).unwrap();
    let option_lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .count();
    assert_eq!(classify(report, file).len(), option_lines, "{report}");
}

/// A pending option maps once rwsgi has it: either label is right.
fn applied_or_pending(got: &HashMap<String, String>, key: &str, report: &str) {
    let label = got.get(key).map(String::as_str);
    assert!(
        matches!(label, Some("applied") | Some("unsupported yet")),
        "line `{key}`: {label:?}\n{report}"
    );
}

#[test]
fn check_config_classifies_every_line_of_a_django_ini() {
    let file = fixture("django.ini");
    let (code, out, _) = run(
        &["--check-config", "--ini", &file],
        &[("RUN_DIR", "/run/mysite")],
    );
    assert_eq!(code, 0, "{out}");
    assert_labels(
        &out,
        &file,
        &[
            ("[uwsgi]", "section"),
            ("project", "placeholder"),
            ("base", "placeholder"),
            ("chdir", "applied"),
            ("module", "applied"),
            ("env", "applied"),
            ("master", "accepted, not needed"),
            ("processes", "applied"),
            ("enable-threads", "accepted, not needed"),
            ("socket", "applied"),
            ("chmod-socket", "applied"),
            ("vacuum", "applied"),
            ("die-on-term", "accepted, not needed"),
            ("harakiri", "applied"),
            ("max-requests", "applied"),
            ("buffer-size", "applied with a different default"),
            ("single-interpreter", "accepted, not needed"),
            ("need-app", "accepted, not needed"),
            ("thunder-lock", "accepted, not needed"),
            ("pidfile", "applied"),
            ("daemonize", "unsupported"),
        ],
    );
    // What each line became, placeholders expanded.
    for expected in [
        format!("-> applied: --chdir {}/", configs().display()),
        "-> applied: --module mysite.wsgi:application".into(),
        "-> applied: --uwsgi-socket /run/mysite/mysite.sock".into(),
        "-> applied: --env DJANGO_SETTINGS_MODULE=mysite.settings".into(),
        "uWSGI's default is 4096, rwsgi's 65535".into(),
        "-> applied: --pidfile /run/mysite/django.pid".into(),
        "run it under systemd".into(),
        "result: OK".into(),
    ] {
        assert!(out.contains(&expected), "no {expected:?} in:\n{out}");
    }
}

#[test]
fn check_config_classifies_every_line_of_an_http_ini() {
    let file = fixture("http.ini");
    let (code, out, _) = run(
        &["--check-config", "--ini", &file],
        &[("RUN_DIR", "/tmp"), ("PORT", "8000")],
    );
    assert_eq!(code, 0, "{out}");
    assert_labels(
        &out,
        &file,
        &[
            ("http-socket", "applied"),
            ("wsgi-file", "applied"),
            ("callable", "applied"),
            ("master", "accepted, not needed"),
            ("workers", "applied"),
            ("threads", "applied"),
            ("listen", "applied with a different default"),
            ("post-buffering", "applied with a different default"),
            ("limit-post", "applied"),
            ("socket-timeout", "applied with a different default"),
            ("http-keepalive", "accepted, not needed"),
            ("touch-reload", "applied"),
            ("plugins", "accepted, not needed"),
            ("py-autoreload", "unsupported, safe to skip"),
            ("vacum", "unknown option, ignored"),
        ],
    );
    assert!(out.contains("-> applied: --processes 1"), "{out}");
    assert!(
        out.contains("-> applied with a different default: --write-timeout 30"),
        "{out}"
    );
    assert!(
        out.contains("uWSGI's default is 100, rwsgi's 1024"),
        "{out}"
    );
    assert!(out.contains("reload with --touch-reload FILE"), "{out}");
    assert!(out.contains("did you mean `vacuum`?"), "{out}");
}

#[test]
fn check_config_classifies_every_line_of_a_flask_ini() {
    let file = fixture("flask.ini");
    let (code, out, _) = run(
        &["--check-config", "--ini", &file],
        &[("VENV", "/srv/venv"), ("PORT", "9000")],
    );
    assert_eq!(code, 0, "{out}");
    assert_labels(
        &out,
        &file,
        &[
            ("module", "applied"),
            ("pythonpath", "applied"),
            ("home", "applied"),
            ("scgi-socket", "applied"),
            ("lazy-apps", "applied"),
            ("max-worker-lifetime", "applied"),
            ("reload-on-rss", "applied"),
            ("hook-master-start", "accepted, not needed"),
        ],
    );
    applied_or_pending(&labels(&out, &file), "memory-report", &out);
    assert!(out.contains("-> applied: --home /srv/venv"), "{out}");
}

#[test]
fn check_config_does_not_start_the_server() {
    let port = free_port().to_string();
    let started = Instant::now();
    let (code, out, _) = run(
        &["--check-config", "--ini", &fixture("placeholders.ini")],
        &[("PORT", &port)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
}

#[test]
fn check_config_fails_on_a_bad_value_and_names_file_line_and_key() {
    let dir = temp_dir("config-bad");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, "[uwsgi]\nmodule = app\nprocesses = many\n").unwrap();
    let ini = ini.display().to_string();
    let (code, out, _) = run(&["--check-config", "--ini", &ini], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{ini}:3  processes = many  -> error: invalid value 'many'"
        )),
        "{out}"
    );
    assert!(out.contains("rwsgi would refuse to start"), "{out}");
    // Without --check-config: the same message, and no start.
    let (code, _, err) = run(&["--ini", &ini], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{ini}:3: `processes = many`")),
        "{err}"
    );
}

#[test]
fn errors_name_the_missing_file_or_section() {
    let (code, _, err) = run(&["--ini", "/nonexistent/uwsgi.ini"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read ini file /nonexistent/uwsgi.ini"),
        "{err}"
    );
    let file = fixture("django.ini");
    let (code, _, err) = run(&["--ini", &format!("{file}:production")], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("ini file {file} has no [production] section")),
        "{err}"
    );
    let dir = temp_dir("config-toml-bad");
    let toml = dir.join("rwsgi.toml");
    std::fs::write(&toml, "processes = \n").unwrap();
    let (code, _, err) = run(&["--config", toml.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn strict_refuses_unknown_and_unsupported_options() {
    let file = fixture("http.ini");
    let env = [("RUN_DIR", "/tmp"), ("PORT", "8000")];
    let (code, _, err) = run(&["--ini", &file, "--strict"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`vacum = true`: error (--strict): unknown option"),
        "{err}"
    );
    // A development convenience rwsgi runs safely without is no reason
    // to refuse.
    assert!(!err.contains("py-autoreload"), "{err}");
    // uWSGI's own `strict = true` in the file does the same.
    let (code, out, _) = run(
        &["--check-config", "--ini", &fixture("strict.ini")],
        &[("PORT", "8000")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("frobnicate = 3  -> error (--strict): unknown option"),
        "{out}"
    );
    // RWSGI_STRICT too.
    let (code, _, _) = run(
        &["--check-config", "--ini", &file],
        &[("RWSGI_STRICT", "1"), env[0], env[1]],
    );
    assert_eq!(code, 1);
}

#[test]
fn precedence_is_command_line_then_environment_then_file() {
    let file = fixture("placeholders.ini");
    let (code, out, _) = run(
        &["--check-config", "--ini", &file, "--processes", "3"],
        &[
            ("PORT", "8000"),
            ("RWSGI_PROCESSES", "2"),
            ("RWSGI_THREADS", "5"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("processes = 1  -> applied: --processes 1 (overridden by RWSGI_PROCESSES)"),
        "{out}"
    );
    assert!(
        out.contains(
            "RWSGI_PROCESSES=2  -> applied: --processes 2 (overridden by the command line)"
        ),
        "{out}"
    );
    assert!(
        out.contains("RWSGI_THREADS=5  -> applied: --threads 5\n"),
        "{out}"
    );
    // The variable's --processes gives way to the command line's.
    assert!(out.contains("--threads=5 --processes 3\n"), "{out}");
    assert!(!out.contains("--processes=2"), "{out}");
}

/// A running rwsgi started with environment variables; stopped on drop.
struct Running {
    child: Child,
    log: PathBuf,
    dir: PathBuf,
}

impl Running {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)], ready: impl Fn() -> bool) -> Running {
        let log = dir.join("rwsgi.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = rwsgi(args, env)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start rwsgi");
        let mut running = Running {
            child,
            log,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("rwsgi exited during startup ({status}):\n{}", running.log());
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi did not start:\n{}",
                running.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        running
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    fn stop(&mut self) -> i32 {
        signal(self.child.id(), common::libc_sig::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the master has `n` workers.
    fn wait_workers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while children(self.pid()).len() != n {
            assert!(
                Instant::now() < deadline,
                "{} workers, not {n}:\n{}",
                children(self.pid()).len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        signal(self.child.id(), common::libc_sig::SIGINT);
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

fn http_get(addr: &str, target: &str) -> Response {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    Response::from_raw(&common::tcp_exchange(addr, raw.as_bytes()))
}

fn json(response: &Response) -> serde_json::Value {
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.text()))
}

fn tcp_up(addr: String) -> impl Fn() -> bool {
    move || TcpStream::connect(&addr).is_ok()
}

#[test]
fn django_ini_serves_on_its_uwsgi_socket() {
    let dir = temp_dir("config-django");
    let run_dir = dir.display().to_string();
    let sock = dir.join("mysite.sock");
    let pidfile = dir.join("django.pid");
    let probe = sock.clone();
    let mut server = Running::start(
        &dir,
        &["--ini", &fixture("django.ini")],
        &[("RUN_DIR", &run_dir)],
        move || UnixStream::connect(&probe).is_ok(),
    );
    let packet = common::uwsgi_packet(&common::cgi_vars("GET", "/", ""), b"");
    let body = json(&Response::from_raw(&common::unix_exchange(&sock, &packet)));
    let env = &body["env"];
    assert_eq!(env["DJANGO_SETTINGS_MODULE"], "mysite.settings", "{body}");
    assert_eq!(env["APP_ROLE"], "web");
    assert_eq!(env["APP_HOME"], std::env::var("HOME").unwrap_or_default());
    assert_eq!(body["cwd"], configs().display().to_string());
    assert_eq!(body["multithread"], false);
    // chmod-socket, pidfile, processes.
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o664, "socket mode {mode:o}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), server.pid().to_string());
    server.wait_workers(2);
    // The unsupported `daemonize` line is a warning in the log.
    assert!(
        server
            .log()
            .contains("`daemonize = $(RUN_DIR)/%n.log`: unsupported"),
        "{}",
        server.log()
    );
    // vacuum: the socket and the pidfile go with the server.
    assert_eq!(server.stop(), 0, "{}", server.log());
    assert!(!sock.exists(), "vacuum left the socket");
    assert!(!pidfile.exists(), "vacuum left the pidfile");
}

#[test]
fn http_ini_serves_a_wsgi_file_on_threads_and_warns_about_unknown_lines() {
    let dir = temp_dir("config-http");
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let run_dir = dir.display().to_string();
    let server = Running::start(
        &dir,
        &["--ini", &fixture("http.ini")],
        &[("PORT", &port), ("RUN_DIR", &run_dir)],
        tcp_up(addr.clone()),
    );
    let body = json(&http_get(&addr, "/environ"));
    assert_eq!(body["environ"]["wsgi.multithread"], true, "{body}");
    let log = server.log();
    assert!(log.contains("WARN"), "{log}");
    assert!(
        log.contains("`vacum = true`: unknown option, ignored: did you mean `vacuum`?"),
        "{log}"
    );
    assert!(log.contains("`py-autoreload = 1`: unsupported"), "{log}");
}

#[test]
fn flask_ini_serves_flask_over_scgi_from_the_virtualenv() {
    let dir = temp_dir("config-flask");
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let venv = common::venv().display().to_string();
    let _server = Running::start(
        &dir,
        &["--ini", &fixture("flask.ini")],
        &[("PORT", &port), ("VENV", &venv)],
        tcp_up(addr.clone()),
    );
    let request = common::scgi_request(&common::cgi_vars("GET", "/hello", ""), b"");
    let response = Response::from_raw(&common::tcp_exchange(&addr, &request));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "hello from flask");
}

#[test]
fn placeholders_expand_as_uwsgi_expands_them() {
    let dir = temp_dir("config-placeholders");
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let file = fixture("placeholders.ini");
    let spec = format!("{file}:dev");
    let _server = Running::start(
        &dir,
        &["--ini", &spec],
        &[("PORT", &port)],
        tcp_up(addr.clone()),
    );
    let body = json(&http_get(&addr, "/"));
    let env = &body["env"];
    assert_eq!(env["APP_CONFIG"], file, "{body}"); // %p
    assert_eq!(env["APP_NAME"], "placeholders"); // %n
    assert_eq!(env["APP_DIR_NAME"], "configs"); // %c
                                                // %x: the section named after a colon, here the one [dev] includes
                                                // (uWSGI 2.0.31 gives `base` for this file too).
    assert_eq!(env["APP_SECTION"], "base");
    assert_eq!(
        env["APP_USER_HOME"],
        std::env::var("HOME").unwrap_or_default()
    ); // $(HOME)
    assert_eq!(env["APP_PERCENT"], "100%"); // %%
    assert_eq!(env["APP_LOG_FORMAT"], "%(addr) %(status)"); // not defined: kept
    assert_eq!(body["cwd"], configs().display().to_string()); // %(app_dir) = %d
    assert_eq!(body["multithread"], true); // [dev] threads = 2
}

#[test]
fn toml_config_serves_like_the_ini() {
    let dir = temp_dir("config-toml");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = Running::start(
        &dir,
        &["--config", "tests/configs/rwsgi.toml"],
        &[("RWSGI_HTTP_SOCKET", &addr)],
        tcp_up(addr.clone()),
    );
    let body = json(&http_get(&addr, "/"));
    assert_eq!(body["env"]["APP_ROLE"], "toml", "{body}");
    assert_eq!(
        body["env"]["DJANGO_SETTINGS_MODULE"],
        "mysite.settings_toml"
    );
    assert_eq!(body["cwd"], configs().display().to_string());
    assert_eq!(body["multithread"], true);
}

#[test]
fn rwsgi_environment_variables_configure_the_server() {
    let dir = temp_dir("config-env");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Running::start(
        &dir,
        &[],
        &[
            ("RWSGI_HTTP_SOCKET", &addr),
            ("RWSGI_MODULE", "mysite.wsgi:application"),
            ("RWSGI_CHDIR", "tests/configs"),
            ("RWSGI_PROCESSES", "2"),
            ("RWSGI_THREADS", "2"),
            ("RWSGI_NO_SUCH_OPTION", "1"),
        ],
        tcp_up(addr.clone()),
    );
    let body = json(&http_get(&addr, "/"));
    assert_eq!(body["multithread"], true, "{body}");
    server.wait_workers(2);
    assert!(
        server
            .log()
            .contains("RWSGI_NO_SUCH_OPTION: `RWSGI_NO_SUCH_OPTION=1`: unknown option"),
        "{}",
        server.log()
    );
}

#[test]
fn environment_overrides_the_file_and_the_command_line_overrides_both() {
    // placeholders.ini [uwsgi] says processes = 1.
    let file = fixture("placeholders.ini");
    for (cli, expected) in [(None, 2), (Some("3"), 3)] {
        let dir = temp_dir("config-precedence");
        let port = free_port().to_string();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["--ini", file.as_str()];
        if let Some(n) = cli {
            args.extend(["--processes", n]);
        }
        let server = Running::start(
            &dir,
            &args,
            &[("PORT", &port), ("RWSGI_PROCESSES", "2")],
            tcp_up(addr.clone()),
        );
        server.wait_workers(expected);
        assert_eq!(json(&http_get(&addr, "/"))["multithread"], false);
    }
}

#[test]
fn log_and_stats_lines_map_onto_rwsgi_options() {
    let dir = temp_dir("config-logs");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        "[uwsgi]\nmodule = app\nsocket = :3031\nlogto = /var/log/app/%n.log\nlog-4xx = true\nlog-5xx = true\n\
         disable-logging = true\nstats = 127.0.0.1:9191\nstats-http = true\n\
         log-format = %(addr) - %(user) [%(ltime)] \"%(method) %(uri)\" %(status)\n",
    )
    .unwrap();
    let file = ini.display().to_string();
    let (code, out, _) = run(&["--check-config", "--ini", &file], &[]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "-> applied: --logto /var/log/app/app.log",
        "-> applied: --log-4xx",
        "-> applied: --log-5xx",
        "-> applied: --disable-logging",
        "-> applied: --stats 127.0.0.1:9191",
        "-> applied: --stats-http",
        "-> unsupported yet: rwsgi's access log has one layout",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
}

#[test]
fn umask_max_fd_and_process_names_from_the_ini_are_applied() {
    let dir = temp_dir("config-process");
    let sock = dir.join("app.sock");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\numask = 0077\nmax-fd = 4096   ; enough\n\
             processes = 1\nprocname-prefix-spaced = shop\nprocname = web\n\
             procname-master = boss\n",
            sock.display(),
            repo().join("tests/apps/pep3333.py").display()
        ),
    )
    .unwrap();
    let probe = sock.clone();
    let server = Running::start(
        &dir,
        &["--ini", &ini.display().to_string()],
        &[],
        move || UnixStream::connect(&probe).is_ok(),
    );
    server.wait_workers(1);
    // umask 0077 before binding: the socket file is the owner's only.
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(open_files.contains("4096"), "{open_files}");
    let cmdline = |pid: u32| {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        String::from_utf8_lossy(&raw)
            .trim_end_matches('\0')
            .to_string()
    };
    assert_eq!(cmdline(server.pid()), "shop boss");
    // The worker names itself right after the fork.
    let worker = children(server.pid())[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmdline(worker) != "shop web" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(cmdline(worker), "shop web");
}
