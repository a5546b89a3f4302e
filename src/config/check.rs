//! Telling the operator what rwsgi made of the configuration: the
//! `--check-config` report (one line per configuration line) and the
//! warnings a normal start logs.

use std::fmt::Write as _;

use super::options::OptionTable;
use super::record::{shell_words, Outcome, Record, Severity};
use super::uwsgi_table as uwsgi;

/// What was read, for the report and the log.
#[derive(Debug, Default)]
pub struct ConfigNotes {
    pub(crate) records: Vec<Record>,
    pub(crate) strict: bool,
    /// The files read (`uwsgi.ini [uwsgi]`, `rwsgi.toml`).
    pub(crate) sources: Vec<String>,
    /// Whether an ini file was read (the uWSGI defaults footer).
    pub(crate) read_ini: bool,
}

impl ConfigNotes {
    /// Logs every line rwsgi does not honour as a warning, and one summary
    /// line. Call once logging is set up.
    pub fn log(&self) {
        for r in &self.records {
            if r.outcome.severity(self.strict) == Severity::Warning {
                tracing::warn!(
                    "config {}: `{}`: {}, ignored: {} (--check-config explains every line; --strict refuses such lines)",
                    r.place,
                    r.text,
                    r.outcome.label(),
                    r.outcome.detail()
                );
            } else {
                tracing::debug!(
                    "config {}: `{}`: {}: {}",
                    r.place,
                    r.text,
                    r.outcome.label(),
                    r.outcome.detail()
                );
            }
        }
        if !self.records.is_empty() {
            tracing::info!("config: {}", self.summary());
        }
    }

    /// `12 applied, 3 not needed, 1 unsupported...`
    pub(crate) fn summary(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for r in &self.records {
            let label = match &r.outcome {
                Outcome::Applied { .. } => "applied",
                Outcome::Info { .. } => continue,
                Outcome::NotNeeded(_) => "not needed",
                Outcome::Invalid(_) => "invalid",
                other => other.label(),
            };
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
        let what = if self.sources.is_empty() {
            "RWSGI_* variables".to_string()
        } else {
            self.sources.join(", ")
        };
        let counted: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
        if self.records.is_empty() {
            "no configuration file and no RWSGI_* variable".to_string()
        } else if counted.is_empty() {
            format!("{what}: no options")
        } else {
            format!("{what}: {}", counted.join(", "))
        }
    }
}

/// The `--check-config` report.
pub(crate) fn report(
    notes: &ConfigNotes,
    table: &OptionTable,
    command_line: &[String],
    effective: Option<&[String]>,
    listeners: Option<&str>,
    errors: &[String],
) -> String {
    let mut out = String::new();
    let width = notes
        .records
        .iter()
        .map(|r| r.place.len())
        .max()
        .unwrap_or(0);
    let mut fatal = 0;
    for r in &notes.records {
        let severity = r.outcome.severity(notes.strict);
        if severity == Severity::Error {
            fatal += 1;
        }
        let mut detail = r.outcome.detail();
        if let Some(by) = &r.overridden_by {
            detail.push_str(&format!(" (overridden by {by})"));
        }
        let label = shown_label(&r.outcome, severity);
        let sep = if detail.is_empty() { "" } else { ": " };
        let _ = writeln!(
            out,
            "{:width$}  {}  -> {label}{sep}{detail}",
            r.place, r.text
        );
    }
    if !command_line.is_empty() {
        let _ = writeln!(out, "command line: {}", shell_words(command_line));
    }
    let _ = writeln!(out, "summary: {}", notes.summary());
    if let Some(effective) = effective {
        let mut shown: Vec<String> = Vec::new();
        let mut skip_next = false;
        for arg in effective {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            match arg.as_str() {
                "--check-config" => {}
                "--ini" | "--config" => skip_next = true,
                a if a.starts_with("--ini=") || a.starts_with("--config=") => {}
                _ => shown.push(arg.clone()),
            }
        }
        let _ = writeln!(
            out,
            "equivalent command line: rwsgi {}",
            shell_words(&shown)
        );
    }
    if let Some(listeners) = listeners {
        let _ = writeln!(out, "listeners: {listeners}");
    }
    if notes.read_ini {
        let set: Vec<String> = notes
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Applied { .. } | Outcome::NotNeeded(_)))
            .filter_map(|r| r.text.split('=').next())
            .map(|k| k.trim().to_ascii_lowercase().replace('_', "-"))
            .collect();
        let unset: Vec<_> = uwsgi::default_differences(table)
            .into_iter()
            .filter(|(option, _, _)| !set.iter().any(|k| k == option))
            .collect();
        if !unset.is_empty() {
            let _ = writeln!(
                out,
                "defaults that differ from uWSGI's, for options not set:"
            );
        }
        for (option, theirs, ours) in unset {
            let _ = writeln!(out, "  {option}: uWSGI {theirs}; rwsgi {ours}");
        }
    }
    for e in errors {
        let _ = writeln!(out, "error: {e}");
    }
    let total = fatal + errors.len();
    if total == 0 {
        let _ = writeln!(out, "result: OK, rwsgi would start with this configuration");
    } else {
        let _ = writeln!(out, "result: {total} error(s), rwsgi would refuse to start");
    }
    out
}

/// The outcome's name, saying what a warning or `--strict` does to it.
fn shown_label(outcome: &Outcome, severity: Severity) -> String {
    let label = outcome.label();
    match (severity, outcome) {
        (Severity::Error, Outcome::Invalid(_)) => label.to_string(),
        (Severity::Error, _) => format!("error (--strict): {label}"),
        (Severity::Warning, Outcome::Unknown(_)) => format!("{label}, ignored"),
        _ => label.to_string(),
    }
}

/// The lines that stop rwsgi from starting, as `place: text: why`.
pub(crate) fn fatal_lines(notes: &ConfigNotes) -> Vec<String> {
    notes
        .records
        .iter()
        .filter(|r| r.outcome.severity(notes.strict) == Severity::Error)
        .map(|r| {
            format!(
                "{}: `{}`: {}: {}",
                r.place,
                r.text,
                shown_label(&r.outcome, Severity::Error),
                r.outcome.detail()
            )
        })
        .collect()
}
