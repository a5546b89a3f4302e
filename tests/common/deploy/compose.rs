//! `deploy/docker-compose.yml`'s services run as plain processes, the way
//! its containers would run them: each service's own entrypoint, command,
//! environment and healthcheck, with what the image provides stood in for.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::files::{arg, compose, deploy_dir, strings, venv_tool};
use super::process::{run_bounded, Instance};
use super::site::Rendering;
use crate::common::venv;

/// The stack in one temp dir. What differs from Docker:
///
/// - the image's `/usr/local/bin` is `dir/bin`: symlinks to rwsgi, the two
///   scripts of `deploy/docker/` and the virtualenv's `django-admin`;
/// - shipped paths move into the dir as for the nginx files
///   (`/run/rwsgi` → `run/`, `/srv/myproject/static` → `static/`);
/// - SQLite instead of the `db` service (every `POSTGRES_*` is dropped),
///   the sample app imported from its source (`PYTHONPATH`) rather than
///   pip-installed, and rwsgi gets `--home` with the test virtualenv;
/// - each replica gets its own `RWSGI_ADDR_FILE`, as each container has its
///   own `/tmp`.
pub struct Stack {
    /// The compose file's one document.
    pub file: Value,
    /// Paths and ports of this run.
    pub rendering: Rendering,
    /// What stands for the image's `/usr/local/bin`.
    bin: PathBuf,
}

impl Stack {
    /// Reads the compose file and prepares `dir`.
    pub fn new(dir: &Path) -> Stack {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let docker = deploy_dir().join("docker");
        let links = [
            ("rwsgi", PathBuf::from(env!("CARGO_BIN_EXE_rwsgi"))),
            ("rwsgi-slot", docker.join("rwsgi-slot")),
            ("rwsgi-healthcheck", docker.join("rwsgi-healthcheck")),
            ("django-admin", venv_tool("django-admin")),
        ];
        for (name, target) in links {
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        Stack {
            file: compose(),
            rendering: Rendering::new(dir),
            bin,
        }
    }

    /// The service `name`.
    pub fn service(&self, name: &str) -> &Value {
        let service = &self.file["services"][name];
        assert!(service.is_object(), "no service {name}");
        service
    }

    /// The service's entrypoint followed by its command.
    pub fn command_line(&self, name: &str) -> Vec<String> {
        let service = self.service(name);
        [
            strings(&service["entrypoint"]),
            strings(&service["command"]),
        ]
        .concat()
    }

    /// A program found as the image's PATH would find it.
    pub fn program(&self, name: &str) -> PathBuf {
        match self.bin.join(name) {
            linked if !name.contains('/') && linked.exists() => linked,
            _ => PathBuf::from(name),
        }
    }

    /// The service's environment, as described on [`Stack`]; `replica`
    /// names the container for its own `/tmp`.
    pub fn env(&self, name: &str, replica: usize) -> Vec<(String, String)> {
        let r = &self.rendering;
        let (run, stat) = (arg(r.run_dir()), arg(r.static_dir()));
        let mut env: Vec<(String, String)> = self.service(name)["environment"]
            .as_object()
            .expect("environment as a map")
            .iter()
            .filter(|(k, _)| !k.starts_with("POSTGRES_"))
            .map(|(k, v)| {
                let v = v.as_str().expect("environment values are strings");
                let v = v
                    .replace("/run/rwsgi", &run)
                    .replace("/srv/myproject/static", &stat);
                (k.clone(), v)
            })
            .collect();
        // The image's PATH has one python3, rwsgi's; here that is the
        // python3 on the tests' PATH, through which the embedded
        // interpreter finds its standard library.
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap());
        env.extend([
            ("PATH".into(), path),
            ("HOME".into(), arg(&r.dir)),
            (
                "PYTHONPATH".into(),
                arg(deploy_dir().join("docker/example")),
            ),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("SQLITE_PATH".into(), arg(r.dir.join("db.sqlite3"))),
            ("DJANGO_STATIC_ROOT".into(), stat.clone()),
            (
                "RWSGI_ADDR_FILE".into(),
                arg(r.dir.join(format!("tmp-{name}-{replica}.addr"))),
            ),
        ]);
        env
    }

    /// Runs `line` to completion in container `replica` of `name`.
    pub fn run(&self, name: &str, replica: usize, line: &[String], secs: u64) -> (i32, String) {
        let mut cmd = Command::new(self.program(&line[0]));
        cmd.args(&line[1..])
            .env_clear()
            .envs(self.env(name, replica));
        run_bounded(&mut cmd, secs)
    }

    /// Starts container `replica` of `name` (its entrypoint and command,
    /// plus `--home` for rwsgi's services).
    pub fn start(&self, name: &str, replica: usize) -> Instance {
        let line = self.command_line(name);
        let mut args = line[1..].to_vec();
        args.extend(["--home".into(), arg(venv())]);
        let log = self.rendering.dir.join(format!("{name}-{replica}.log"));
        Instance::spawn(
            &self.program(&line[0]),
            &args,
            Some(&self.env(name, replica)),
            &log,
        )
    }
}
