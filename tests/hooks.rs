//! uWSGI's hooks (`hook-*`, `exec-*`) through the real binary: each phase
//! runs, in uWSGI's order, and a failing hook stops the server.

mod common;

use common::Server;

/// Every phase appends its name to `order`, through several actions.
fn hook_args(dir: &std::path::Path, order: &std::path::Path) -> Vec<String> {
    let o = order.display();
    let d = dir.display();
    [
        ("--hook-asap", format!("appendn:{o} asap")),
        ("--hook-as-root", format!("appendn:{o} as-root")),
        ("--exec-as-user", format!("echo as-user >> {o}")),
        ("--hook-pre-app", "pycall:hookmod.pre_app".to_string()),
        ("--hook-post-app", format!("exec:echo post-app >> {o}")),
        ("--hook-post-fork", format!("appendn:{o} post-fork")),
        ("--hook-master-start", format!("appendn:{o} master-start")),
        ("--hook-asap", format!("mkdir:{d}/made-asap")),
        ("--hook-asap", "print:hello from a hook".to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

fn start(lazy: bool) -> (Server, std::path::PathBuf) {
    let dir = common::temp_dir(if lazy { "hooks-lazy" } else { "hooks" });
    let order = dir.join("order");
    std::fs::write(
        dir.join("hookmod.py"),
        format!(
            "def pre_app():\n    with open({:?}, 'a') as f:\n        f.write('pre-app\\n')\n",
            order.display().to_string()
        ),
    )
    .unwrap();
    let app = common::apps().join("master_app.py");
    let mut args: Vec<String> = vec![
        "--wsgi-file".into(),
        app.display().to_string(),
        "--pythonpath".into(),
        dir.display().to_string(),
        "--processes".into(),
        "2".into(),
    ];
    if lazy {
        args.push("--lazy-apps".into());
    }
    args.extend(hook_args(&dir, &order));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Server::start_in(&dir, &args), order)
}

fn phases(order: &std::path::Path, want: usize) -> Vec<String> {
    common::wait_until(10, || {
        std::fs::read_to_string(order).is_ok_and(|s| s.lines().count() >= want)
    });
    std::fs::read_to_string(order)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn hooks_run_at_their_phase_in_uwsgis_order() {
    let (server, order) = start(false);
    let seen = phases(&order, 8);
    assert_eq!(
        seen[..6],
        [
            "asap",
            "as-root",
            "as-user",
            "pre-app",
            "post-app",
            "master-start"
        ],
        "{seen:?}"
    );
    assert_eq!(
        seen[6..],
        ["post-fork", "post-fork"],
        "one per worker: {seen:?}"
    );
    assert!(server.dir.join("made-asap").is_dir());
    assert!(
        server.log().contains("hello from a hook"),
        "{}",
        server.log()
    );
    assert!(server.log().contains("running \"exec:"), "{}", server.log());
}

/// With --lazy-apps the app, and so pre-app and post-app, are each
/// worker's, after its post-fork.
#[test]
fn with_lazy_apps_the_app_hooks_run_in_each_worker_after_its_fork() {
    let (_server, order) = start(true);
    let seen = phases(&order, 10);
    assert_eq!(
        seen[..4],
        ["asap", "as-root", "as-user", "master-start"],
        "{seen:?}"
    );
    let workers: Vec<&str> = seen[4..].iter().map(String::as_str).collect();
    assert_eq!(
        workers.iter().filter(|p| **p == "post-fork").count(),
        2,
        "{seen:?}"
    );
    assert_eq!(
        workers.iter().filter(|p| **p == "pre-app").count(),
        2,
        "{seen:?}"
    );
    assert_eq!(
        workers.iter().filter(|p| **p == "post-app").count(),
        2,
        "{seen:?}"
    );
}

#[test]
fn a_failing_hook_stops_the_server_and_says_which() {
    let app = common::apps().join("master_app.py");
    let (code, out) = common::run_to_exit(&[
        "--wsgi-file",
        app.to_str().unwrap(),
        "--http-socket",
        "127.0.0.1:0",
        "--hook-pre-app",
        "exec:exit 3",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("hook exec:exit 3 (pre app) failed"), "{out}");
}

/// A fatal start error is said once on stderr (it was logged and printed
/// again), and also on stderr when the log goes to a file.
#[test]
fn a_fatal_start_error_is_printed_once() {
    let app = common::apps().join("master_app.py");
    let args = [
        "--wsgi-file",
        app.to_str().unwrap(),
        "--http-socket",
        "127.0.0.1:0",
        "--hook-asap",
        "exec:exit 4",
    ];
    let (code, out) = common::run_to_exit(&args);
    assert_ne!(code, 0);
    assert_eq!(
        out.matches("hook exec:exit 4 (asap) failed").count(),
        1,
        "{out}"
    );
    let dir = common::temp_dir("fatal-logto");
    let logto = dir.join("rwsgi.log");
    let mut with_file = args.to_vec();
    with_file.extend(["--logto", logto.to_str().unwrap()]);
    let (code, out) = common::run_to_exit(&with_file);
    assert_ne!(code, 0);
    assert!(
        out.contains("rwsgi: hook exec:exit 4 (asap) failed"),
        "{out}"
    );
    let logged = std::fs::read_to_string(&logto).unwrap_or_default();
    assert!(
        logged.contains("hook exec:exit 4 (asap) failed"),
        "{logged}"
    );
}
