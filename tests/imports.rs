//! Python-side loading options of uWSGI: `import` (`pyimport`,
//! `python-import`), modules imported before the app, from the command
//! line or an ini file; and the fork hooks `py-call-osafterfork` asks for.

mod common;

use common::{Proto, Server};

#[test]
fn imported_modules_load_before_the_app_and_a_failing_one_is_logged_not_fatal() {
    for lazy in [false, true] {
        check_imports(lazy);
    }
}

/// A tree with the modules, the app and the ini file; the app is loaded
/// in the master, or (`lazy`) in each worker.
fn check_imports(lazy: bool) {
    let dir = common::temp_dir("imports");
    std::fs::write(
        dir.join("sidecar.py"),
        "import sys\nsys.rwsgi_test_order = ['sidecar']\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("by_path.py"),
        "import sys\nsys.rwsgi_test_order.append('by_path')\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        r#"
import sys
ORDER = getattr(sys, "rwsgi_test_order", []) + ["app"]

def application(environ, start_response):
    body = ",".join(ORDER).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"#,
    )
    .unwrap();
    let ini = dir.join("uwsgi.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nchdir = {d}\nimport = sidecar\npyimport = no_such_module_rwsgi\npython-import = {d}/by_path.py\nwsgi-file = {d}/app.py\n",
            d = dir.display(),
            port = common::free_port()
        ),
    )
    .unwrap();
    let (code, report) = common::run_to_exit(&["--ini", ini.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report.matches("applied: --import").count(), 3, "{report}");
    let mut args = vec!["--ini", ini.to_str().unwrap()];
    if lazy {
        args.push("--lazy-apps");
    }
    let server = Server::start_in(&dir, &args);
    let r = server.get(Proto::Http, "/");
    assert_eq!(r.text(), "sidecar,by_path,app", "lazy={lazy}");
    assert!(
        server.wait_log("cannot import no_such_module_rwsgi (--import)", 5),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("ModuleNotFoundError"),
        "{}",
        server.log()
    );
}

/// uWSGI's `py-call-osafterfork` is "not needed": a worker forked from a
/// master that loaded the app runs CPython's fork hooks
/// (`os.register_at_fork(after_in_child=...)`), which is what that option
/// turns on in uWSGI.
#[test]
fn fork_hooks_of_an_app_loaded_in_the_master_run_in_each_worker() {
    let dir = common::temp_dir("fork-hooks");
    std::fs::write(
        dir.join("app.py"),
        r#"
import os
MASTER = os.getpid()
SEEN = []
os.register_at_fork(after_in_child=lambda: SEEN.append(os.getpid()))

def application(environ, start_response):
    body = ("hooked" if SEEN == [os.getpid()] and MASTER != os.getpid() else "not hooked").encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"#,
    )
    .unwrap();
    let app = dir.join("app.py");
    let server = Server::start_in(
        &dir,
        &["--wsgi-file", app.to_str().unwrap(), "--processes", "2"],
    );
    for _ in 0..4 {
        assert_eq!(server.get(Proto::Http, "/").text(), "hooked");
    }
}
