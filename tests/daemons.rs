//! Attached daemons through the real binary (`--attach-daemon` and its
//! family, as uWSGI ini files use them for Celery workers and beat): the
//! master starts them, restarts them when they die, shows them in the
//! stats, stops them with the server, and treats them on reloads as uWSGI
//! does.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{libc_sig, Server};

/// A stand-in for a Celery worker: notes its pid in `pids` when it starts
/// and `stopped PID` when SIGTERM stops it, says it is ready on stdout,
/// and otherwise sleeps.
fn standin(dir: &Path) -> PathBuf {
    let script = dir.join("standin.py");
    std::fs::write(
        &script,
        r#"
import os, signal, sys, time
pids = sys.argv[1]
def stop(*_):
    with open(pids, "a") as f:
        f.write("stopped %d\n" % os.getpid())
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(pids, "a") as f:
    f.write("%d\n" % os.getpid())
print("standin %d ready" % os.getpid(), flush=True)
while True:
    time.sleep(0.1)
"#,
    )
    .unwrap();
    script
}

fn app() -> String {
    common::apps()
        .join("master_app.py")
        .to_str()
        .unwrap()
        .to_string()
}

/// The pids a stand-in noted, in order (not the `stopped` lines).
fn started(pids: &Path) -> Vec<i32> {
    std::fs::read_to_string(pids)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive: its /proc status says Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// The process group of `pid`: the daemon's `/bin/sh -c` leads it (the
/// shell's pid is what the master knows, as in uWSGI).
fn group_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(2).unwrap().parse().unwrap()
}

fn stats(addr: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn a_daemon_killed_is_started_again_shown_in_stats_and_stopped_with_the_server() {
    let dir = common::temp_dir("daemons-plain");
    let script = standin(&dir);
    let pids = dir.join("pids");
    let stats_addr = format!("127.0.0.1:{}", common::free_port());
    let command = format!("python3 {} {}", script.display(), pids.display());
    let mut server = Server::start_in(
        &dir,
        &[
            "--wsgi-file",
            &app(),
            "--attach-daemon",
            &command,
            "--stats",
            &stats_addr,
        ],
    );
    assert!(
        common::wait_until(10, || started(&pids).len() == 1),
        "{}",
        server.log()
    );
    let first = started(&pids)[0];
    assert!(
        server.wait_log(&format!("standin {first} ready"), 5),
        "its output is in the log"
    );
    let shown = stats(&stats_addr);
    let daemons = shown["daemons"].as_array().expect("daemons in the stats");
    assert_eq!(daemons[0]["cmd"], command.as_str());
    assert_eq!(daemons[0]["pid"].as_i64(), Some(i64::from(group_of(first))));

    common::signal(first as u32, libc_sig::SIGKILL);
    assert!(
        common::wait_until(10, || started(&pids).len() == 2),
        "not started again after kill -9:\n{}",
        server.log()
    );
    let second = started(&pids)[1];
    assert_ne!(second, first);
    let shown = stats(&stats_addr);
    assert_eq!(
        shown["daemons"][0]["pid"].as_i64(),
        Some(i64::from(group_of(second)))
    );
    assert_eq!(shown["daemons"][0]["respawns"], 1);

    common::signal(server.pid(), libc_sig::SIGTERM);
    assert!(
        common::wait_until(15, || !server.alive()),
        "{}",
        server.log()
    );
    let noted = std::fs::read_to_string(&pids).unwrap();
    assert!(
        noted.contains(&format!("stopped {second}")),
        "SIGTERM reached it: {noted}"
    );
    assert!(!alive(second), "the daemon outlived the server");
}

/// A reload stops and starts a plain daemon; a smart one (pidfile) runs on.
#[test]
fn a_reload_restarts_plain_daemons_and_leaves_smart_ones_running() {
    let dir = common::temp_dir("daemons-reload");
    let script = standin(&dir);
    let plain_pids = dir.join("plain-pids");
    let smart_pids = dir.join("smart-pids");
    let pidfile = dir.join("smart.pid");
    let plain = format!("python3 {} {}", script.display(), plain_pids.display());
    let smart = format!(
        "{} python3 {} {}",
        pidfile.display(),
        script.display(),
        smart_pids.display()
    );
    let server = Server::start_in(
        &dir,
        &[
            "--wsgi-file",
            &app(),
            "--attach-daemon",
            &plain,
            "--smart-attach-daemon2",
            &smart,
        ],
    );
    assert!(common::wait_until(10, || started(&plain_pids).len() == 1
        && started(&smart_pids).len() == 1));
    let smart_pid = started(&smart_pids)[0];
    let leader = group_of(smart_pid).to_string();
    assert!(common::wait_until(5, || std::fs::read_to_string(&pidfile)
        .is_ok_and(|p| p.trim() == leader)));
    common::signal(server.pid(), libc_sig::SIGHUP);
    assert!(
        common::wait_until(15, || started(&plain_pids).len() == 2),
        "the plain daemon was not started again:\n{}",
        server.log()
    );
    let noted = std::fs::read_to_string(&plain_pids).unwrap();
    assert!(
        noted.contains(&format!("stopped {}", started(&plain_pids)[0])),
        "{noted}"
    );
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        started(&smart_pids),
        vec![smart_pid],
        "the smart daemon was restarted"
    );
    assert!(alive(smart_pid));
    // Killed, the smart daemon is found gone through its pidfile.
    common::signal(smart_pid as u32, libc_sig::SIGKILL);
    assert!(
        common::wait_until(10, || started(&smart_pids).len() == 2),
        "{}",
        server.log()
    );
    let again = started(&smart_pids)[1];
    drop(server);
    // Smart daemons outlive the server, as in uWSGI; this test stops it.
    common::signal(again as u32, libc_sig::SIGKILL);
}

#[test]
fn a_control_daemon_that_exits_stops_the_server() {
    let dir = common::temp_dir("daemons-control");
    let mut server = Server::start_in(
        &dir,
        &["--wsgi-file", &app(), "--attach-control-daemon", "sleep 1"],
    );
    assert!(
        common::wait_until(15, || !server.alive()),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("control daemon \"sleep 1\""), "{log}");
    assert!(log.contains("master exiting with code 0"), "{log}");
}

/// The ini lines real projects use start the daemon as uWSGI would.
#[test]
fn attach_daemon_lines_in_an_ini_file_start_their_daemons() {
    let dir = common::temp_dir("daemons-ini");
    let script = standin(&dir);
    let pids = dir.join("pids");
    let ini = dir.join("uwsgi.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{}\nwsgi-file = {}\nattach-daemon2 = cmd=python3 {} {},stopsignal=15\n",
            common::free_port(),
            app(),
            script.display(),
            pids.display()
        ),
    )
    .unwrap();
    let (code, report) = common::run_to_exit(&["--ini", ini.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("applied: --attach-daemon2"), "{report}");
    let server = Server::start_in(&dir, &["--ini", ini.to_str().unwrap()]);
    assert!(
        common::wait_until(10, || started(&pids).len() == 1),
        "{}",
        server.log()
    );
}

/// A daemon that fails at once is restarted ever more slowly, and the
/// master waits out that throttle in its loop: it goes on replacing
/// workers and the server goes on answering.
#[test]
fn a_daemon_that_keeps_failing_is_throttled_without_holding_up_the_master() {
    let dir = common::temp_dir("daemons-throttle");
    let mut server = Server::start_in(&dir, &["--wsgi-file", &app(), "--attach-daemon", "exit 3"]);
    assert!(
        server.wait_log("throttling for 3 s", 15),
        "{}",
        server.log()
    );
    let worker = common::children(server.pid())
        .into_iter()
        .find(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("worker"))
        })
        .expect("a worker");
    common::signal(worker, libc_sig::SIGKILL);
    let killed = Instant::now();
    assert!(
        server.wait_log(&format!("(pid {worker})"), 5) && server.wait_log("spawned worker 1", 5),
        "{}",
        server.log()
    );
    assert!(
        common::wait_until(3, || server.get(common::Proto::Http, "/").status == 200),
        "not serving while the daemon is throttled"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "the master waited for the daemon's throttle"
    );
    assert!(server.alive());
}
