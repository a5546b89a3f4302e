//! What each uWSGI option means to rwsgi: the table that turns an ini
//! line into rwsgi options, or says plainly why it is not needed, what to
//! do instead, or that rwsgi does not know it.
//!
//! Options that share a name with an rwsgi option and are not in the table
//! map onto that option unchanged. Options rwsgi is about to gain
//! ([`Rule::Pending`]) map onto it as soon as `Cli` has it.

use super::ini::IniLine;
use super::options::{OptionTable, LOADER_OPTIONS};
use super::record::{Collector, Notes, Outcome, Record};
use super::uwsgi_names::UWSGI_OPTIONS;
use super::uwsgi_table::{explicit_rule, rule, uwsgi_kind, Rule::*, Special as SpecialRule};
use super::uwsgi_value;

/// A uWSGI option name close to `key` (for typos such as `vacum`).
pub(crate) fn suggest(key: &str, table: &OptionTable) -> Option<String> {
    let candidates = UWSGI_OPTIONS
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(table.specs().iter().map(|s| s.long.clone()))
        .filter(|name| name.len() > 2);
    candidates
        .map(|name| (distance(key, &name), name))
        .filter(|(d, name)| *d <= 2 && *d < name.len() / 2)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Turns the option lines of an ini file into records and settings.
pub(crate) struct Classifier<'a> {
    pub table: &'a OptionTable,
    /// What `socket` lines speak (`protocol = http` changes it).
    pub socket_option: &'static str,
}

impl<'a> Classifier<'a> {
    /// A classifier for these lines (it looks for `protocol` first: in
    /// uWSGI it applies to every `socket` line, wherever it is).
    pub fn new(table: &'a OptionTable, lines: &[&IniLine]) -> Classifier<'a> {
        let protocol = lines
            .iter()
            .rev()
            .find(|l| l.key == "protocol")
            .map(|l| l.value.to_ascii_lowercase());
        let socket_option = match protocol.as_deref() {
            Some("http") | Some("http11") => "http-socket",
            Some("scgi") => "scgi-socket",
            _ => "uwsgi-socket",
        };
        Classifier {
            table,
            socket_option,
        }
    }

    /// Classifies one line; `placeholder_use` is the first place that
    /// used it as `%(key)`, if any.
    pub fn line(&self, line: &IniLine, placeholder_use: Option<&str>, out: &mut Collector) {
        let at = (line.place.as_str(), line.text.as_str());
        let reading = match uwsgi_kind(&line.key) {
            Some(kind) => uwsgi_value::read(kind, &line.value),
            None => uwsgi_value::Reading {
                value: line.value.clone(),
                note: None,
            },
        };
        let expansion = join(
            (!line.notes.is_empty()).then(|| line.notes.join("; ")),
            reading.note,
        );
        let value = reading.value.as_str();
        let told = |why: &str| match &expansion {
            Some(note) => format!("{why} ({note})"),
            None => why.to_string(),
        };
        // A rule written for the name wins; then rwsgi's own option of the
        // same name (attach-daemon...); then the name's family.
        let own = self
            .table
            .lookup(&line.key)
            .filter(|spec| !LOADER_OPTIONS.contains(&spec.long.as_str()));
        let rule = match explicit_rule(&line.key)
            .or_else(|| own.is_none().then(|| rule(&line.key)).flatten())
        {
            Some(rule) => rule,
            None => match own {
                // An rwsgi option under its own name.
                Some(_) => {
                    let notes = Notes {
                        default_note: None,
                        note: expansion,
                    };
                    self.apply(out, at, &line.key, value, notes);
                    return;
                }
                _ => {
                    let outcome = match placeholder_use {
                        Some(place) => Outcome::Info {
                            label: "placeholder",
                            detail: format!("not an option; %({}) is used at {place}", line.key),
                        },
                        None => Outcome::Unknown(unknown_hint(&line.key, self.table)),
                    };
                    out.push(Record::new(at.0, at.1, outcome));
                    return;
                }
            },
        };
        let notes = |note: Option<&str>, default_note: Option<String>| Notes {
            default_note,
            note: join(note.map(String::from), expansion.clone()),
        };
        match rule {
            Same(long) => self.apply(out, at, long, value, notes(None, None)),
            Like(long, note) => self.apply(out, at, long, value, notes(Some(note), None)),
            Default(long, uwsgi_default, note) => {
                let default_note = self.table.lookup(long).map(|spec| {
                    format!(
                        "uWSGI's default is {uwsgi_default}, rwsgi's {}",
                        spec.default.as_deref().unwrap_or("none")
                    )
                });
                self.apply(out, at, long, value, notes(note, default_note));
            }
            NotNeeded(why) => out.push(Record::new(at.0, at.1, Outcome::NotNeeded(told(why)))),
            Unsupported(why) => {
                out.push(Record::new(at.0, at.1, Outcome::Unsupported(told(why))));
            }
            Harmless(why) => out.push(Record::new(at.0, at.1, Outcome::Harmless(told(why)))),
            Fatal(why) => out.push(Record::new(at.0, at.1, Outcome::Invalid(told(why)))),
            Pending(long, _) if !long.is_empty() && self.table.lookup(long).is_some() => {
                self.apply(out, at, long, value, notes(None, None));
            }
            Pending(_, why) => {
                out.push(Record::new(at.0, at.1, Outcome::UnsupportedYet(told(why))));
            }
            Special(special) => self.special(special, line, value, out, notes(None, None)),
        }
    }

    fn apply(&self, out: &mut Collector, at: (&str, &str), long: &str, value: &str, notes: Notes) {
        match self.table.lookup(long) {
            Some(spec) => out.apply(self.table, at, spec, &[value.to_string()], notes),
            None => {
                let why = format!("rwsgi has no --{long} yet");
                out.push(Record::new(at.0, at.1, Outcome::UnsupportedYet(why)));
            }
        }
    }

    fn special(
        &self,
        special: SpecialRule,
        line: &IniLine,
        value: &str,
        out: &mut Collector,
        mut notes: Notes,
    ) {
        let at = (line.place.as_str(), line.text.as_str());
        let value = value.trim();
        let push = |out: &mut Collector, outcome| out.push(Record::new(at.0, at.1, outcome));
        match special {
            SpecialRule::Socket if value.starts_with('@') => push(
                out,
                Outcome::Invalid(
                    "abstract-namespace Unix sockets (@name) are not supported; use a path such as /run/app/app.sock".into(),
                ),
            ),
            SpecialRule::Socket => {
                if self.socket_option != "uwsgi-socket" {
                    let n = format!("`protocol` makes `socket` lines serve {}", self.socket_option);
                    notes.note = join(Some(n), notes.note);
                }
                self.apply(out, at, self.socket_option, value, notes);
            }
            SpecialRule::HttpRouter => {
                let n = "uWSGI's `http` starts an HTTP router process in front of the workers; rwsgi's workers serve HTTP/1.1 on this address themselves";
                notes.note = join(Some(n.into()), notes.note);
                self.apply(out, at, "http-socket", value, notes);
            }
            SpecialRule::Protocol => match value.to_ascii_lowercase().as_str() {
                "uwsgi" | "http" | "http11" | "scgi" => {
                    let detail = format!("`socket` lines of this file serve --{}", self.socket_option);
                    push(
                        out,
                        Outcome::Applied {
                            args: Vec::new(),
                            default_note: None,
                            note: Some(detail),
                        },
                    );
                }
                other => push(
                    out,
                    Outcome::Unsupported(format!(
                        "rwsgi does not speak {other:?}: use uwsgi, http or scgi"
                    )),
                ),
            },
            SpecialRule::HttpKeepalive => match value.parse::<u64>() {
                Ok(secs) if secs > 1 => {
                    let n = "rwsgi keeps idle HTTP/1.1 connections open for this many seconds";
                    notes.note = join(Some(n.into()), notes.note);
                    self.apply(out, at, "keepalive-timeout", value, notes);
                }
                _ if super::options::parse_bool(value) == Some(false) => push(
                    out,
                    Outcome::Unsupported(
                        "rwsgi always supports HTTP/1.1 keep-alive (--keepalive-timeout, 5 s by default)".into(),
                    ),
                ),
                _ => push(
                    out,
                    Outcome::NotNeeded(
                        "rwsgi always supports HTTP/1.1 keep-alive (--keepalive-timeout, 5 s by default)".into(),
                    ),
                ),
            },
            SpecialRule::Logger => match value.split_whitespace().last().and_then(|t| t.strip_prefix("file:")) {
                Some(path) if !path.contains('=') => {
                    let n = "rwsgi writes all of its log (requests and the rest) to this file";
                    notes.note = join(Some(n.into()), notes.note);
                    self.apply(out, at, "logto", path, notes);
                }
                _ => push(
                    out,
                    Outcome::UnsupportedYet(
                        "only `file:PATH` loggers map (onto --logto) yet; for syslog or journald, log to stderr under systemd".into(),
                    ),
                ),
            },
            SpecialRule::Hook if value.contains("unix_signal:15 gracefully_kill_them_all") => push(
                out,
                Outcome::NotNeeded("rwsgi always stops gracefully on SIGTERM".into()),
            ),
            SpecialRule::Hook => self.apply(out, at, &line.key, value, notes),
        }
    }
}

/// Why an unknown key is unknown, and what it might have meant.
pub(crate) fn unknown_hint(key: &str, table: &OptionTable) -> String {
    match suggest(key, table) {
        Some(name) => format!("did you mean `{name}`?"),
        None => "neither uWSGI nor rwsgi has it (a typo, or a placeholder never used)".into(),
    }
}

/// A note for an option that uWSGI has and the native formats do not
/// (in a TOML file or an `RWSGI_*` variable).
pub(crate) fn uwsgi_only_hint(key: &str) -> Option<String> {
    match rule(key)? {
        NotNeeded(why) => Some(format!("a uWSGI option rwsgi does not need: {why}")),
        Unsupported(why) | Harmless(why) | Fatal(why) | Pending(_, why) => {
            Some(format!("a uWSGI option rwsgi does not have: {why}"))
        }
        Same(long) | Like(long, _) | Default(long, _, _) => {
            Some(format!("a uWSGI name; rwsgi's is `{long}`"))
        }
        Special(_) => Some("a uWSGI option; see rwsgi --help for rwsgi's".into()),
    }
}

fn join(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        let table = OptionTable::new();
        assert_eq!(suggest("vacum", &table).as_deref(), Some("vacuum"));
        assert_eq!(suggest("vaccum", &table).as_deref(), Some("vacuum"));
        assert_eq!(suggest("procesess", &table).as_deref(), Some("processes"));
        assert_eq!(suggest("zzzzzz", &table), None);
        assert_eq!(
            suggest("py-callos-afterfork", &table).as_deref(),
            Some("py-call-osafterfork")
        );
    }

    /// How `key = value` is taken, by its outcome's label.
    fn verdict(key: &str, value: &str) -> String {
        let table = OptionTable::new();
        let line = IniLine {
            place: "a.ini:2".into(),
            text: format!("{key} = {value}"),
            key: key.into(),
            value: value.into(),
            notes: Vec::new(),
        };
        let classifier = Classifier::new(&table, &[&line]);
        let mut out = Collector::default();
        classifier.line(&line, None, &mut out);
        out.records[0].outcome.label().to_string()
    }

    #[test]
    fn uwsgi_options_are_never_called_unknown() {
        for key in [
            "ksm",
            "close-on-exec",
            "gevent",
            "gevent-early-monkey-patch",
            "logformat-strftime",
            "logger-req",
            "cheaper-busyness-max",
            "fastrouter-events",
        ] {
            assert_ne!(verdict(key, "1"), "unknown option", "{key}");
        }
    }

    #[test]
    fn names_uwsgi_does_not_have_are_unknown_even_in_a_known_family() {
        for key in ["exec-pre", "log-buffering", "py-callos-afterfork", "vacum"] {
            assert_eq!(verdict(key, "1"), "unknown option", "{key}");
        }
    }

    #[test]
    fn strict_refuses_what_rwsgi_cannot_honour_safely_and_accepts_what_is_harmless() {
        use crate::config::record::Severity;
        let severity = |key: &str| {
            let table = OptionTable::new();
            let line = IniLine {
                place: "a.ini:2".into(),
                text: format!("{key} = 1"),
                key: key.into(),
                value: "1".into(),
                notes: Vec::new(),
            };
            let mut out = Collector::default();
            Classifier::new(&table, &[&line]).line(&line, None, &mut out);
            out.records[0].outcome.severity(true)
        };
        // uWSGI's own strict mode refuses only unknown names.
        assert_eq!(severity("frobnicate"), Severity::Error);
        // Running without these changes what the app or operator relies on.
        for key in ["chroot", "gevent", "cron", "add-header", "mount"] {
            assert_eq!(severity(key), Severity::Error, "{key}");
        }
        // rwsgi honours these itself.
        assert_eq!(severity("attach-daemon"), Severity::Fine);
        // Running without these is safe.
        for key in ["ksm", "cpu-affinity", "carbon", "close-on-exec", "master"] {
            assert!(severity(key) < Severity::Error, "{key}");
        }
    }
}
