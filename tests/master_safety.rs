//! The master lets no one in and loses nothing, through the real binary:
//! dropped privileges stay dropped (and survive a reload), and the files
//! the master writes or binds (pidfile, stats socket) are never followed
//! through a symlink nor replaced when they are something else.
//!
//! The privilege tests need root (CI runs as root) and the `nobody` user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{libc_sig, Proto};
use serde_json::Value;

/// A temp dir everyone can read, holding a copy of `master_app.py`.
fn app_dir(name: &str) -> PathBuf {
    let dir = common::master_app_dir(name, "1");
    set_mode(&dir, 0o755);
    set_mode(&dir.join("master_app.py"), 0o644);
    set_mode(&dir.join("version.txt"), 0o644);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "this test needs root (CI runs as root)"
    );
}

/// `id` of the `nobody` user: (uid, primary gid).
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        assert!(out.status.success(), "no user nobody on this machine");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// The stats JSON on a Unix socket, or None if nothing answers.
fn try_stats(path: &Path) -> Option<Value> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    serde_json::from_str(&out).ok()
}

fn stats_workers(v: &Value) -> Vec<u64> {
    v["workers"]
        .as_array()
        .map(|ws| ws.iter().filter_map(|w| w["pid"].as_u64()).collect())
        .unwrap_or_default()
}

/// A `/proc/<pid>/status` line's fields, after its `name:`.
fn status_fields(pid: u32, name: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect()
}

#[test]
fn a_reload_after_dropping_root_keeps_the_root_only_log_file_and_stats_sockets() {
    require_root();
    let metrics = format!("127.0.0.1:{}", privileged_port());
    let dir = app_dir("reload-dropped");
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    set_mode(&private, 0o700);
    let logto = private.join("rwsgi.log");
    let stats = private.join("stats.sock");
    let mut server = common::start_master_app(
        &dir,
        &[
            "--processes",
            "2",
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--logto",
            logto.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
            "--metrics",
            &metrics,
        ],
    );
    let log = || std::fs::read_to_string(&logto).unwrap_or_default();
    assert_eq!(server.get(Proto::Http, "/").status, 200);
    let before = stats_workers(&try_stats(&stats).expect("stats answer"));
    assert_eq!(before.len(), 2, "{}", log());
    common::signal(server.pid(), libc_sig::SIGHUP);
    let replaced = common::wait_until(30, || {
        let now = try_stats(&stats)
            .map(|v| stats_workers(&v))
            .unwrap_or_default();
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    });
    assert!(server.alive(), "the master died on reload:\n{}", log());
    assert!(replaced, "the workers were not replaced:\n{}", log());
    assert_eq!(server.get(Proto::Http, "/").status, 200);
    let text = log();
    let reload = text.find("SIGHUP: graceful reload").expect("reload logged");
    assert!(
        text[reload..].contains("reloaded, master pid"),
        "the re-executed master logs nothing to --logto:\n{text}"
    );
    let body = http_get(&metrics, "/metrics").expect("metrics answer after the reload");
    assert!(body.contains("rwsgi_"), "{body}");
}

/// A loopback port below 1024 (only root may bind it) that is free now.
fn privileged_port() -> u16 {
    (900..1024)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

#[test]
fn uid_alone_takes_the_users_primary_group_and_none_of_roots() {
    require_root();
    let (uid, gid) = nobody();
    let dir = app_dir("uid-alone");
    let server = common::start_master_app(&dir, &["--processes", "1", "--uid", "nobody"]);
    assert_eq!(server.get(Proto::Http, "/").status, 200);
    let workers = common::children(server.pid());
    assert_eq!(workers.len(), 1);
    for pid in [server.pid(), workers[0]] {
        assert_eq!(status_fields(pid, "Uid"), [uid; 4], "pid {pid}");
        assert_eq!(status_fields(pid, "Gid"), [gid; 4], "pid {pid}");
        let groups = status_fields(pid, "Groups");
        assert!(!groups.contains(&0), "pid {pid} keeps group 0: {groups:?}");
    }
}

#[test]
fn a_pidfile_that_is_a_symlink_is_refused_and_its_target_left_alone() {
    let dir = app_dir("pidfile-symlink");
    let target = dir.join("precious.txt");
    std::fs::write(&target, "precious\n").unwrap();
    let pidfile = dir.join("rwsgi.pid");
    std::os::unix::fs::symlink(&target, &pidfile).unwrap();
    let app = dir.join("master_app.py");
    let http = format!("127.0.0.1:{}", common::free_port());
    let (code, out) = common::run_to_exit(&[
        "--wsgi-file",
        app.to_str().unwrap(),
        "--http-socket",
        &http,
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(pidfile.to_str().unwrap()), "{out}");
    assert!(out.contains("symbolic link"), "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stats_path_that_is_a_regular_file_is_refused_and_left_in_place() {
    let dir = app_dir("stats-regular-file");
    let file = dir.join("stats.sock");
    std::fs::write(&file, "not a socket\n").unwrap();
    let app = dir.join("master_app.py");
    let http = format!("127.0.0.1:{}", common::free_port());
    let (code, out) = common::run_to_exit(&[
        "--wsgi-file",
        app.to_str().unwrap(),
        "--http-socket",
        &http,
        "--stats",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(file.to_str().unwrap()), "{out}");
    assert!(out.contains("not a socket"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An app whose answer is the open fds of a program it runs with
/// `close_fds=False` (as `os.system` or a careless `subprocess` would).
const FDS_APP: &str = r#"
import subprocess

def application(environ, start_response):
    body = subprocess.run(["ls", "-l", "/proc/self/fd"], close_fds=False,
                          capture_output=True, check=True).stdout
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"#;

#[test]
fn sockets_passed_by_systemd_do_not_leak_into_programs_the_app_runs() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fd = listener.as_raw_fd();
    let inode = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    let inode = inode.to_str().unwrap().to_string();
    assert!(inode.starts_with("socket:["), "{inode}");
    let dir = common::temp_dir("activation-cloexec");
    std::fs::write(dir.join("fds_app.py"), FDS_APP).unwrap();
    let log = dir.join("rwsgi.log");
    let app = dir.join("fds_app.py");
    let mut child =
        common::spawn_socket_activated(&listener, &["--wsgi-file", app.to_str().unwrap()], &log);
    drop(listener);
    let mut answer = None;
    common::wait_until(20, || {
        answer = http_get(&addr, "/");
        answer.is_some()
    });
    common::signal(child.id(), libc_sig::SIGINT);
    let _ = common::exit_code_within(&mut child, 10);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let fds = answer.unwrap_or_else(|| panic!("no answer on the inherited socket:\n{text}"));
    assert!(fds.contains("/proc/self/fd") || fds.contains("->"), "{fds}");
    assert!(
        !fds.contains(&inode),
        "the listening socket {inode} leaked into a program the app ran:\n{fds}"
    );
}

/// A GET's body if the answer is a 200.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let raw = common::read_to_close(&mut s);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
