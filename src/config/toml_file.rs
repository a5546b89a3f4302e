//! rwsgi's own config file, in TOML: the keys are the long option names
//! (`processes = 4`, `http-socket = [":8000", "/run/app.sock"]`,
//! `lazy-apps = true`; `_` may stand for `-`), plus an `[env]` table for
//! the app's environment.

use toml::de::{DeTable, DeValue};

use super::options::{Kind, OptionTable, LOADER_OPTIONS};
use super::record::{Collector, Notes, Outcome, Record};
use super::uwsgi;

/// Reads `path` into records and settings. A file that cannot be read or
/// is not TOML is an error.
pub(crate) fn read(path: &str, table: &OptionTable, out: &mut Collector) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {path}: {e}"))?;
    let doc = DeTable::parse(&text).map_err(|e| format!("{path}: not valid TOML: {e}"))?;
    let mut entries: Vec<_> = doc.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let line = line_of(&text, key.span().start);
        let place = format!("{path}:{line}");
        let source = text.lines().nth(line - 1).unwrap_or_default().trim();
        let name = key.get_ref().to_ascii_lowercase().replace('_', "-");
        let at = (place.as_str(), source);
        if name == "env" {
            env_entries(table, at, value.get_ref(), out);
            continue;
        }
        let Some(spec) = table.lookup(&name) else {
            let hint =
                uwsgi::uwsgi_only_hint(&name).unwrap_or_else(|| uwsgi::unknown_hint(&name, table));
            out.push(Record::new(at.0, at.1, Outcome::Unknown(hint)));
            continue;
        };
        if LOADER_OPTIONS.contains(&spec.long.as_str()) {
            let why = format!(
                "--{} is read from the command line or RWSGI_* only",
                spec.long
            );
            out.push(Record::new(at.0, at.1, Outcome::Unsupported(why)));
            continue;
        }
        match values(value.get_ref(), spec.kind, &spec.long) {
            Ok(values) => out.apply(table, at, spec, &values, Notes::default()),
            Err(why) => {
                out.push(Record::new(at.0, at.1, Outcome::Invalid(why)));
            }
        }
    }
    Ok(())
}

/// `env = { KEY = "value" }` or `env = ["KEY=value"]`.
fn env_entries(table: &OptionTable, at: (&str, &str), value: &DeValue<'_>, out: &mut Collector) {
    let Some(spec) = table.lookup("env") else {
        return;
    };
    let assignments: Result<Vec<String>, String> = match value {
        DeValue::Table(t) => t
            .iter()
            .map(|(k, v)| scalar(v.get_ref(), "env").map(|v| format!("{}={v}", k.get_ref())))
            .collect(),
        DeValue::Array(items) => items.iter().map(|v| scalar(v.get_ref(), "env")).collect(),
        _ => Err("env is a table (KEY = \"value\") or a list of \"KEY=value\"".into()),
    };
    match assignments {
        Ok(values) => out.apply(table, at, spec, &values, Notes::default()),
        Err(why) => {
            out.push(Record::new(at.0, at.1, Outcome::Invalid(why)));
        }
    }
}

/// The values of one key, as command-line words.
fn values(value: &DeValue<'_>, kind: Kind, long: &str) -> Result<Vec<String>, String> {
    match value {
        DeValue::Array(items) if kind == Kind::Multi => {
            items.iter().map(|v| scalar(v.get_ref(), long)).collect()
        }
        DeValue::Array(_) => Err(format!("{long} takes one value, not a list")),
        other => Ok(vec![scalar(other, long)?]),
    }
}

fn scalar(value: &DeValue<'_>, long: &str) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        // 0o664 for a mode keeps its octal digits.
        DeValue::Integer(i) if i.radix() == 8 => Ok(i.as_str().to_string()),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .map_err(|e| format!("{long}: bad integer: {e}")),
        other => Err(format!(
            "{long}: expected a string, integer or boolean, got a {}",
            other.type_str()
        )),
    }
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::record::Val;

    #[test]
    fn keys_values_and_lines() {
        let dir = std::env::temp_dir().join(format!("rwsgi-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        std::fs::write(
            &path,
            "# comment\nprocesses = 4\nhttp_socket = [\":8000\", \"/tmp/a.sock\"]\n\
             lazy-apps = true\nchmod-socket = 0o660\nmaster = true\nthreads = \"x\"\n\
             [env]\nDJANGO_SETTINGS_MODULE = \"site.settings\"\n",
        )
        .unwrap();
        let table = OptionTable::new();
        let mut out = Collector::default();
        read(path.to_str().unwrap(), &table, &mut out).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let set: Vec<(String, Val)> = out
            .settings
            .iter()
            .map(|s| (s.spec.long.clone(), s.val.clone()))
            .collect();
        assert_eq!(
            set,
            [
                ("processes".to_string(), Val::Text("4".into())),
                ("http-socket".to_string(), Val::Text(":8000".into())),
                ("http-socket".to_string(), Val::Text("/tmp/a.sock".into())),
                ("lazy-apps".to_string(), Val::On),
                ("chmod-socket".to_string(), Val::Text("660".into())),
                (
                    "env".to_string(),
                    Val::Text("DJANGO_SETTINGS_MODULE=site.settings".into())
                ),
            ]
        );
        let master = out
            .records
            .iter()
            .find(|r| r.text.starts_with("master"))
            .unwrap();
        assert!(master.place.ends_with(":6"), "{}", master.place);
        assert!(matches!(master.outcome, Outcome::Unknown(ref h) if h.contains("not need")));
        let threads = out
            .records
            .iter()
            .find(|r| r.text.starts_with("threads"))
            .unwrap();
        assert!(matches!(threads.outcome, Outcome::Invalid(_)));
    }
}
