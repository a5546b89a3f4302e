//! README.md's shell commands are run. Every command of its ```` ```sh ````
//! blocks is listed in [`COMMANDS`], either as run by a test of this file
//! or as run elsewhere, with the file that runs it; a README command that
//! is not listed (or a listed one the README no longer has) fails
//! [`every_readme_command_is_run_by_a_test`].
//!
//! The tests here take each command from the README's text (and `hello.py`
//! from its ```` ```python ```` block) and change only what a test cannot
//! run as written:
//!
//! - `cargo run --release --` and `rwsgi` are the binary `cargo test`
//!   built: the same source (a release build takes minutes);
//! - a command that names no socket gets `--http-socket` on a free
//!   loopback port instead of the default 127.0.0.1:8000, which another
//!   program may hold; `/run/rwsgi/` (root's) is a temp dir, as
//!   `tests/deploy.rs` renders it for the nginx files.
//!
//! Each process is stopped by its own pid.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::deploy::{http_request, Rendering, SiteNginx};

/// Who runs a README command.
#[derive(Debug, Clone, Copy)]
enum RunBy {
    /// The test of this file with this name.
    Here(&'static str),
    /// The file (a script, or a test file) that runs it, and the text by
    /// which that file runs it.
    Elsewhere(&'static str, &'static str),
}

/// Every command in README.md's ```` ```sh ```` blocks (continuation lines
/// joined, comments dropped, spaces collapsed) and who runs it.
const COMMANDS: &[(&str, RunBy)] = &[
    (
        "cargo run --release",
        RunBy::Here("cargo_run_release_serves_the_demo_app"),
    ),
    (
        "cargo run --release -- --wsgi-file hello.py",
        RunBy::Here("quick_start_serves_hello_py"),
    ),
    (
        "rwsgi --uwsgi-socket /run/rwsgi/app.sock --chmod-socket 666 --wsgi-file hello.py",
        RunBy::Here("unix_socket_command_serves_hello_py_through_nginx_uwsgi_unix_conf"),
    ),
    // CI's entry point runs exactly this.
    (
        "scripts/test.sh",
        RunBy::Elsewhere(".ci/run", "scripts/test.sh"),
    ),
];

/// How long a started process may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// README.md's text.
fn readme() -> String {
    std::fs::read_to_string(common::repo().join("README.md")).unwrap()
}

/// The bodies of the fenced blocks of `text` whose info string is `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end();
        match current.as_mut() {
            None if line.strip_prefix("```") == Some(lang) => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => out.extend(current.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a ```{lang} block is never closed");
    out
}

/// The commands of a shell block: continuation lines joined, comments
/// (whole lines, or from ` #` on) dropped, runs of spaces collapsed.
fn commands(block: &str) -> Vec<String> {
    block
        .replace("\\\n", " ")
        .lines()
        .map(|line| line.split(" #").next().unwrap())
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// Every command in `text`'s ```` ```sh ```` blocks.
fn sh_commands(text: &str) -> Vec<String> {
    blocks(text, "sh")
        .iter()
        .flat_map(|b| commands(b))
        .collect()
}

/// What is wrong with `text`'s commands against [`COMMANDS`]: commands
/// nobody runs, and listed commands the text does not have.
fn uncovered(text: &str) -> Vec<String> {
    let found = sh_commands(text);
    let listed: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
    let mut problems: Vec<String> = found
        .iter()
        .filter(|c| !listed.contains(&c.as_str()))
        .map(|c| format!("run by no test (add a test, or list who runs it): {c}"))
        .collect();
    problems.extend(
        listed
            .iter()
            .filter(|c| !found.iter().any(|f| f == *c))
            .map(|c| format!("listed but not in the README any more: {c}")),
    );
    problems
}

/// The README command that the test `name` runs.
fn command_of(name: &str) -> Vec<String> {
    let (command, _) = COMMANDS
        .iter()
        .find(|(_, by)| matches!(by, RunBy::Here(n) if *n == name))
        .unwrap_or_else(|| panic!("no README command is run by {name}"));
    assert!(
        sh_commands(&readme()).iter().any(|c| c == command),
        "README.md no longer has: {command}"
    );
    command.split(' ').map(str::to_string).collect()
}

/// `hello.py` as the README gives it: its one ```` ```python ```` block.
fn hello_py() -> String {
    let text = readme();
    let python = blocks(&text, "python");
    assert_eq!(python.len(), 1, "the README has one Python block, hello.py");
    assert!(
        text.contains("`hello.py`"),
        "the README names the file hello.py"
    );
    python[0].clone()
}

/// The arguments a README command gives rwsgi: the words after
/// `cargo run --release --`, `cargo run --release` or `rwsgi`.
fn rwsgi_args(words: &[String]) -> Vec<String> {
    let prefixes: [&[&str]; 3] = [
        &["cargo", "run", "--release", "--"],
        &["cargo", "run", "--release"],
        &["rwsgi"],
    ];
    for prefix in prefixes {
        if words.len() >= prefix.len() && words[..prefix.len()] == *prefix {
            return words[prefix.len()..].to_vec();
        }
    }
    panic!("not an rwsgi command: {}", words.join(" "));
}

/// An rwsgi started by a test, stopped by its pid (SIGINT, then SIGKILL).
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    /// Starts the binary with `args` in `dir`, output to `dir/rwsgi.log`.
    fn start(args: &[String], dir: &Path) -> Running {
        let log = dir.join("rwsgi.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start rwsgi");
        Running { child, log }
    }

    /// Its output so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds; panics with the log if rwsgi exits or
    /// does not get there in time.
    fn wait(&mut self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !ready() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rwsgi exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        common::signal(self.child.id(), common::libc_sig::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the README command `words` (which names no socket) in `dir`
/// on a free loopback port, instead of the default 127.0.0.1:8000;
/// returns it with that address once it accepts.
fn start_on_free_port(words: &[String], dir: &Path) -> (Running, String) {
    let mut args = rwsgi_args(words);
    assert!(
        !args.iter().any(|a| a.ends_with("-socket")),
        "the command names its own socket: {}",
        words.join(" ")
    );
    let addr = format!("127.0.0.1:{}", common::free_port());
    args.extend(["--http-socket".to_string(), addr.clone()]);
    let mut rwsgi = Running::start(&args, dir);
    rwsgi.wait("listener", || std::net::TcpStream::connect(&addr).is_ok());
    (rwsgi, addr)
}

#[test]
fn every_readme_command_is_run_by_a_test() {
    let problems = uncovered(&readme());
    assert!(problems.is_empty(), "README.md:\n{}", problems.join("\n"));
    let this_file = include_str!("readme.rs");
    for (command, by) in COMMANDS {
        match by {
            RunBy::Here(name) => assert!(
                this_file.contains(&format!("fn {name}()")),
                "{command}: no test {name} in tests/readme.rs"
            ),
            RunBy::Elsewhere(file, text) => {
                let path = common::repo().join(file);
                let body = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{command}: {}: {e}", path.display()));
                assert!(body.contains(text), "{command}: {file} does not run it");
            }
        }
    }
}

#[test]
fn a_command_added_to_the_readme_fails_the_check() {
    let added = format!(
        "{}\n```sh\nrwsgi --frobnicate \\\n    --now  # new\n```\n",
        readme()
    );
    assert_eq!(
        uncovered(&added),
        ["run by no test (add a test, or list who runs it): rwsgi --frobnicate --now"]
    );
    let removed = readme().replace("scripts/test.sh\n```", "```");
    assert_eq!(
        uncovered(&removed),
        ["listed but not in the README any more: scripts/test.sh"]
    );
}

#[test]
fn commands_are_joined_across_continuations_without_comments() {
    let block = "# a comment\na --b \\\n    c  # why\n\nd\n";
    assert_eq!(commands(block), ["a --b c", "d"]);
}

#[test]
fn cargo_run_release_serves_the_demo_app() {
    let dir = common::temp_dir("readme-run");
    let (rwsgi, addr) =
        start_on_free_port(&command_of("cargo_run_release_serves_the_demo_app"), &dir);
    let r = http_request(&addr, "GET", "/", b"").unwrap();
    assert_eq!(r.status, 200, "{}", rwsgi.log());
    assert!(r.text().contains("Hello from rwsgi"), "{}", r.text());
    drop(rwsgi);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quick_start_serves_hello_py() {
    let dir = common::temp_dir("readme-quick-start");
    std::fs::write(dir.join("hello.py"), hello_py()).unwrap();
    let (rwsgi, addr) = start_on_free_port(&command_of("quick_start_serves_hello_py"), &dir);
    let r = http_request(&addr, "GET", "/", b"").unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, world!\n"),
        "{}",
        rwsgi.log()
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    drop(rwsgi);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_socket_command_serves_hello_py_through_nginx_uwsgi_unix_conf() {
    let dir = common::temp_dir("readme-nginx");
    let r = Rendering::new(&dir);
    std::fs::write(dir.join("hello.py"), hello_py()).unwrap();
    let run_dir = format!("{}/", r.run_dir().display());
    let args: Vec<String> = rwsgi_args(&command_of(
        "unix_socket_command_serves_hello_py_through_nginx_uwsgi_unix_conf",
    ))
    .iter()
    .map(|a| a.replace("/run/rwsgi/", &run_dir))
    .collect();
    let socket = r.run_dir().join("app.sock");
    let mut rwsgi = Running::start(&args, &dir);
    rwsgi.wait("socket", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });

    // What lets nginx's own user connect, whatever rwsgi's umask.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "{:o}", mode);

    // nginx/uwsgi-unix.conf, the file the README says to install.
    let nginx = SiteNginx::start("uwsgi-unix.conf", &r);
    let reply = nginx
        .request("GET", "/", b"")
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.logs()));
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "Hello, world!\n"),
        "{}\n--- rwsgi ---\n{}",
        nginx.logs(),
        rwsgi.log()
    );
    drop(nginx);
    drop(rwsgi);
    let _ = std::fs::remove_dir_all(&dir);
}
