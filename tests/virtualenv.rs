//! `--home` through the real binary: the app runs inside its virtualenv as
//! that virtualenv's own python would run it (prefix, sys.path, `.pth`
//! files), in the master that imports the app and in lazy workers alike.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Proto, Server};

/// The app: what the interpreter it runs in looks like, as JSON.
const REPORT_APP: &str = r#"
import json, os, sys
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "executable": sys.executable,
        "path": sys.path,
        "pth_runs": os.environ.get("RWSGI_TEST_PTH_RUNS"),
    }).encode()]
"#;

/// A `.pth` file's import line runs once per interpreter start; it counts.
const COUNTING_PTH: &str = "import os; os.environ['RWSGI_TEST_PTH_RUNS'] = \
     str(int(os.environ.get('RWSGI_TEST_PTH_RUNS', '0')) + 1)\n";

/// A fresh virtualenv (no pip: fast) made by the test venv's Python, with a
/// counting `.pth` in its site-packages.
fn make_venv(dir: &Path, system_site_packages: bool) -> PathBuf {
    let venv = dir.join("venv");
    let mut cmd = Command::new(common::venv().join("bin").join("python"));
    cmd.args(["-m", "venv", "--without-pip"]);
    if system_site_packages {
        cmd.arg("--system-site-packages");
    }
    let status = cmd.arg(&venv).status().expect("python -m venv");
    assert!(status.success(), "python -m venv failed");
    std::fs::write(
        site_packages_of(&venv).join("rwsgi_count.pth"),
        COUNTING_PTH,
    )
    .unwrap();
    venv
}

/// `python -c CODE` with the virtualenv's own interpreter, trimmed.
fn ask_python(python: &Path, code: &str) -> String {
    let out = Command::new(python).args(["-c", code]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn site_packages_of(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    let entry = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("lib/python3.X");
    entry.path().join("site-packages")
}

/// The base installation's site-packages (what the virtualenv hides).
fn base_site_packages(venv: &Path) -> String {
    ask_python(
        &venv.join("bin").join("python"),
        "import sys, sysconfig; print(sysconfig.get_path('purelib', vars={'base': sys.base_prefix}))",
    )
}

fn report(venv: &Path, extra: &[&str]) -> serde_json::Value {
    let dir = venv.parent().unwrap();
    let app = dir.join("report.py");
    std::fs::write(&app, REPORT_APP).unwrap();
    let mut args = vec![
        "--wsgi-file",
        app.to_str().unwrap(),
        "--home",
        venv.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // The server's own dir: it is removed with the server.
    let server_dir = dir.join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = Server::start_in(&server_dir, &args);
    let reply = server.get(Proto::Http, "/");
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), server.log());
    serde_json::from_str(&reply.text()).unwrap()
}

fn canonical(path: &str) -> PathBuf {
    Path::new(path)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(path))
}

fn path_entries(report: &serde_json::Value) -> Vec<PathBuf> {
    report["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| canonical(p.as_str().unwrap()))
        .collect()
}

fn assert_runs_as_the_venvs_python(venv: &Path, extra: &[&str]) {
    let seen = report(venv, extra);
    let python = venv.join("bin").join("python");
    assert_eq!(
        canonical(seen["prefix"].as_str().unwrap()),
        canonical(venv.to_str().unwrap())
    );
    let base_prefix = ask_python(&python, "import sys; print(sys.base_prefix)");
    assert_eq!(seen["base_prefix"].as_str().unwrap(), base_prefix);
    assert_eq!(
        seen["executable"].as_str().unwrap(),
        python.to_str().unwrap()
    );
    let path = path_entries(&seen);
    assert!(
        path.contains(&canonical(site_packages_of(venv).to_str().unwrap())),
        "{path:?}"
    );
    assert!(
        !path.contains(&canonical(&base_site_packages(venv))),
        "the base installation's site-packages leaked in: {path:?}"
    );
    assert_pth_ran_as_in_the_venvs_python(&seen, venv);
}

/// The counting `.pth` ran as often as it does when the virtualenv's own
/// python starts (twice where `lib64` links to `lib`: CPython walks both),
/// so rwsgi's own site-packages handling added no extra run.
fn assert_pth_ran_as_in_the_venvs_python(seen: &serde_json::Value, venv: &Path) {
    let own = ask_python(
        &venv.join("bin").join("python"),
        "import os; print(os.environ['RWSGI_TEST_PTH_RUNS'])",
    );
    assert_eq!(
        seen["pth_runs"].as_str(),
        Some(own.as_str()),
        "runs of the venv's .pth"
    );
}

#[test]
fn the_app_runs_inside_its_virtualenv_without_the_base_site_packages() {
    let dir = common::temp_dir("venv-isolated");
    let venv = make_venv(&dir, false);
    assert_runs_as_the_venvs_python(&venv, &[]);
}

#[test]
fn lazy_workers_run_inside_the_virtualenv_too() {
    let dir = common::temp_dir("venv-lazy");
    let venv = make_venv(&dir, false);
    assert_runs_as_the_venvs_python(&venv, &["--lazy-apps", "--processes", "2"]);
}

#[test]
fn a_virtualenv_with_system_site_packages_sees_the_base_ones() {
    let dir = common::temp_dir("venv-system");
    let venv = make_venv(&dir, true);
    let seen = report(&venv, &[]);
    let path = path_entries(&seen);
    assert!(
        path.contains(&canonical(&base_site_packages(&venv))),
        "{path:?}"
    );
    assert!(path.contains(&canonical(site_packages_of(&venv).to_str().unwrap())));
    assert_pth_ran_as_in_the_venvs_python(&seen, &venv);
}

/// A home with no `pyvenv.cfg` (an old-style virtualenv, or a prefix laid
/// out by hand) still gets its site-packages, and their `.pth` files, on
/// sys.path.
#[test]
fn a_home_without_pyvenv_cfg_still_gets_its_site_packages() {
    let dir = common::temp_dir("venv-plain");
    let venv = make_venv(&dir, false);
    std::fs::remove_file(venv.join("pyvenv.cfg")).unwrap();
    let seen = report(&venv, &[]);
    let path = path_entries(&seen);
    assert!(
        path.contains(&canonical(site_packages_of(&venv).to_str().unwrap())),
        "{path:?}"
    );
    assert_eq!(seen["pth_runs"], "1", "added by rwsgi: once");
}
