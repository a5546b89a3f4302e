//! The deployment files as data: YAML read through the test virtualenv,
//! and the options and numbers the tests compare across files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::site::nginx_file;
use crate::common::{repo, venv};

/// A program of the test virtualenv (`scripts/test.sh` installs
/// `tests/requirements.txt` there). Panics if it is missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (it installs tests/requirements.txt)",
        path.display()
    );
    path
}

/// Every YAML document in `path`, as JSON, read by PyYAML from the test
/// virtualenv (it comes with kubernetes-validate); `<<` merge keys and
/// anchors are resolved as Compose and Kubernetes resolve them.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let python = venv_tool("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "reading {} with PyYAML failed (run scripts/test.sh): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A path as a command-line argument.
pub fn arg(path: impl AsRef<Path>) -> String {
    path.as_ref().display().to_string()
}

/// The `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

/// The manifests of `deploy/kubernetes/`.
pub fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// The one document of `deploy/docker-compose.yml`.
pub fn compose() -> Value {
    yaml_documents(&deploy_dir().join("docker-compose.yml")).remove(0)
}

/// A Compose/Kubernetes command: a list, or a string split on spaces.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        Value::Null => Vec::new(),
        other => panic!("not a command: {other}"),
    }
}

/// The value of `--name V` or `--name=V` in `args`.
pub fn option(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(String::from)
        }
    })
}

/// `--shutdown-timeout` in `args`, else its default from `rwsgi --help`.
pub fn shutdown_timeout(args: &[String]) -> u64 {
    if let Some(v) = option(args, "--shutdown-timeout") {
        return v.parse().unwrap();
    }
    let help = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let line = help
        .lines()
        .find(|l| l.contains("--shutdown-timeout"))
        .expect("--shutdown-timeout in --help");
    let default = line.split("[default: ").nth(1).expect("a default");
    default[..default.find(']').unwrap()].parse().unwrap()
}

/// A Compose duration (`40s`, `1m30s`) in seconds.
pub fn compose_seconds(v: &Value) -> u64 {
    let text = v.as_str().expect("a duration");
    let (mut total, mut number) = (0, String::new());
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total += number.parse::<u64>().unwrap() * unit;
                number.clear();
            }
            _ => panic!("unsupported duration {text}"),
        }
    }
    total
}

/// The `server unix:…` lines of nginx/upstream.conf.
pub fn upstream_sockets() -> Vec<String> {
    nginx_file("upstream.conf")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server unix:"))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Every document of every manifest, by kind.
pub fn kubernetes_objects() -> HashMap<String, Value> {
    let mut objects = HashMap::new();
    for file in manifests() {
        for doc in yaml_documents(&file) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            assert!(objects.insert(kind.clone(), doc).is_none(), "two {kind}s");
        }
    }
    objects
}

/// `sleep N` at the start of a preStop exec command: N.
pub fn pre_stop_sleep(container: &Value) -> u64 {
    let command = strings(&container["lifecycle"]["preStop"]["exec"]["command"]);
    // `["sleep", "10"]`, or a shell line `["/bin/sh", "-c", "sleep 5 && ..."]`.
    let line = match command.first().map(String::as_str) {
        Some("sleep") => command.join(" "),
        _ => command.last().expect("a preStop command").clone(),
    };
    let seconds = line
        .strip_prefix("sleep ")
        .expect("preStop starts with a sleep");
    seconds.split_whitespace().next().unwrap().parse().unwrap()
}
