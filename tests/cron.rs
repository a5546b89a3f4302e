//! The master's cron (uWSGI's `cron`, `unique-cron`, `cron2`) through the
//! real binary. When an entry is due is unit-tested against fixed times
//! (`config::cron`, `master::cron`); here an every-minute entry, which is
//! due as soon as the master starts, shows that entries run, where their
//! output goes, and that a run past its harakiri is killed.

mod common;

use std::time::Duration;

use common::Server;

fn app() -> String {
    common::apps().join("master_app.py").display().to_string()
}

#[test]
fn an_every_minute_entry_runs_once_with_its_output_in_the_log() {
    let dir = common::temp_dir("cron-runs");
    let marker = dir.join("ran");
    let entry = format!(
        "-1 -1 -1 -1 -1 echo cron-output; echo ran >> {}",
        marker.display()
    );
    let server = Server::start_in(&dir, &["--wsgi-file", &app(), "--cron", &entry]);
    assert!(
        common::wait_until(5, || std::fs::read_to_string(&marker)
            .is_ok_and(|s| !s.is_empty())),
        "{}",
        server.log()
    );
    assert!(
        server.wait_log("cron-output", 5),
        "its output is in the log"
    );
    assert!(server.wait_log("exited with code 0", 5), "{}", server.log());
    // Once a minute at most: not again in the next seconds.
    std::thread::sleep(Duration::from_millis(2500));
    let runs = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(runs.lines().count(), 1, "{runs}");
}

#[test]
fn a_run_past_its_harakiri_is_killed() {
    let dir = common::temp_dir("cron-harakiri");
    let server = Server::start_in(
        &dir,
        &[
            "--wsgi-file",
            &app(),
            "--cron2",
            "harakiri=1,unique=1 sleep 60",
        ],
    );
    assert!(
        server.wait_log("ran past its harakiri; killing it", 10),
        "{}",
        server.log()
    );
    assert!(
        server.wait_log("killed by signal", 5) || server.wait_log("SIGKILL", 5),
        "{}",
        server.log()
    );
}
