//! `RWSGI_*` environment variables: `RWSGI_PROCESSES=4` is `--processes 4`,
//! `RWSGI_LAZY_APPS=true` is `--lazy-apps` (and `false` turns off what a
//! file turned on), `RWSGI_HTTP_SOCKET=:8000,:8001` gives a repeatable
//! option two values. An empty variable counts as unset.
//!
//! Also the `--env KEY=VALUE` check, since setting the app's environment
//! is this module's other half.

use super::options::{Kind, OptionTable};
use super::record::{Collector, Notes, Outcome, Record};
use super::uwsgi;

/// The prefix of every option variable.
pub(crate) const PREFIX: &str = "RWSGI_";

/// `RWSGI_` variables that are not options: the log filter, and what a
/// reload hands to the re-executed master.
fn is_reserved(name: &str) -> bool {
    name == "RWSGI_LOG" || name.starts_with("RWSGI_REEXEC_") || name.starts_with("RWSGI_TEST_")
}

/// Checks a `KEY=VALUE` assignment (the value of `--env`).
pub fn parse_assignment(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.contains('\0') && !s.contains('\0') => {
            Ok(s.to_string())
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The config files the environment names (`RWSGI_INI`, `RWSGI_CONFIG`,
/// comma-separated), for when the command line names none.
#[derive(Debug, Default)]
pub(crate) struct EnvFiles {
    pub ini: Vec<String>,
    pub config: Vec<String>,
}

/// Reads the `RWSGI_*` variables among `vars` (sorted by name) into
/// records and settings.
pub(crate) fn read(
    table: &OptionTable,
    vars: &[(String, String)],
    out: &mut Collector,
) -> EnvFiles {
    let mut files = EnvFiles::default();
    let mut vars: Vec<&(String, String)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && !is_reserved(k))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let key = name[PREFIX.len()..].to_ascii_lowercase().replace('_', "-");
        let text = format!("{name}={value}");
        let value = value.trim();
        if value.is_empty() {
            let detail = "empty: counts as unset".to_string();
            let outcome = Outcome::Info {
                label: "skipped",
                detail,
            };
            out.push(Record::new(name.as_str(), text, outcome));
            continue;
        }
        let list = || {
            value
                .split(',')
                .map(|v| v.trim().to_string())
                .collect::<Vec<_>>()
        };
        if key == "ini" || key == "config" {
            let detail = format!("reads {value} (when the command line names no --{key})");
            let outcome = Outcome::Info {
                label: "files",
                detail,
            };
            out.push(Record::new(name.as_str(), text, outcome));
            if key == "ini" {
                files.ini = list();
            } else {
                files.config = list();
            }
            continue;
        }
        match table.lookup(&key) {
            Some(spec) => {
                let values = if spec.kind == Kind::Multi {
                    list()
                } else {
                    vec![value.to_string()]
                };
                out.apply(table, (name, &text), spec, &values, Notes::default());
            }
            None => {
                let hint = uwsgi::uwsgi_only_hint(&key)
                    .unwrap_or_else(|| uwsgi::unknown_hint(&key, table));
                out.push(Record::new(name.as_str(), text, Outcome::Unknown(hint)));
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::record::Val;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn assignments() {
        assert!(parse_assignment("A=1").is_ok());
        assert!(parse_assignment("A=").is_ok());
        assert!(parse_assignment("A=b=c").is_ok());
        assert!(parse_assignment("A").is_err());
        assert!(parse_assignment("=1").is_err());
    }

    #[test]
    fn variables_become_options() {
        let table = OptionTable::new();
        let mut out = Collector::default();
        let files = read(
            &table,
            &vars(&[
                ("RWSGI_PROCESSES", "3"),
                ("RWSGI_LAZY_APPS", "false"),
                ("RWSGI_PYTHONPATH", "/a,/b"),
                ("RWSGI_LOG", "debug"),
                ("RWSGI_REEXEC_FDS", "3,4"),
                ("RWSGI_INI", "x.ini"),
                ("RWSGI_FROB", "1"),
                ("HOME", "/root"),
            ]),
            &mut out,
        );
        assert_eq!(files.ini, ["x.ini"]);
        let set: Vec<(String, Val)> = out
            .settings
            .iter()
            .map(|s| (s.spec.long.clone(), s.val.clone()))
            .collect();
        assert_eq!(
            set,
            [
                ("lazy-apps".to_string(), Val::Off),
                ("processes".to_string(), Val::Text("3".into())),
                ("pythonpath".to_string(), Val::Text("/a".into())),
                ("pythonpath".to_string(), Val::Text("/b".into())),
            ]
        );
        assert!(out
            .records
            .iter()
            .any(|r| r.place == "RWSGI_FROB" && matches!(r.outcome, Outcome::Unknown(_))));
        assert!(!out.records.iter().any(|r| r.place == "RWSGI_LOG"));
    }
}
