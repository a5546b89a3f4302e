//! What each configuration line became: a [`Record`] per line (for
//! `--check-config` and the startup log) and the [`Setting`]s it contributes
//! to the merged command line.

use super::options::{parse_bool, Kind, OptSpec, OptionTable};

/// How rwsgi takes one configuration line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The line sets rwsgi options (`args`, as on the command line).
    Applied {
        args: Vec<String>,
        /// Set when rwsgi's default for the option differs from uWSGI's
        /// (which matters when the line is removed).
        default_note: Option<String>,
        /// What else the operator should know.
        note: Option<String>,
    },
    /// Neither an option nor a problem: a section header, an include, a
    /// placeholder definition, a line of a section that is not read...
    Info { label: &'static str, detail: String },
    /// rwsgi always behaves the way the option asks: why.
    NotNeeded(String),
    /// rwsgi cannot do what the option asks: what to do instead.
    Unsupported(String),
    /// rwsgi cannot do what the option asks, and runs safely without it
    /// (`--strict` accepts it): why.
    Harmless(String),
    /// rwsgi will do it, not yet.
    UnsupportedYet(String),
    /// No such option (a hint may follow).
    Unknown(String),
    /// The value is wrong: why.
    Invalid(String),
}

/// How bad an outcome is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    Fine,
    /// Ignored with a warning; an error under `--strict`.
    Warning,
    Error,
}

impl Outcome {
    pub fn severity(&self, strict: bool) -> Severity {
        match self {
            Outcome::Applied { .. } | Outcome::Info { .. } | Outcome::NotNeeded(_) => {
                Severity::Fine
            }
            Outcome::Harmless(_) => Severity::Warning,
            Outcome::Unsupported(_) | Outcome::UnsupportedYet(_) | Outcome::Unknown(_) => {
                if strict {
                    Severity::Error
                } else {
                    Severity::Warning
                }
            }
            Outcome::Invalid(_) => Severity::Error,
        }
    }

    /// The outcome's name in `--check-config` output.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied {
                default_note: Some(_),
                ..
            } => "applied with a different default",
            Outcome::Applied { .. } => "applied",
            Outcome::Info { label, .. } => label,
            Outcome::NotNeeded(_) => "accepted, not needed",
            Outcome::Unsupported(_) => "unsupported",
            Outcome::Harmless(_) => "unsupported, safe to skip",
            Outcome::UnsupportedYet(_) => "unsupported yet",
            Outcome::Unknown(_) => "unknown option",
            Outcome::Invalid(_) => "error",
        }
    }

    /// The explanation after the label.
    pub fn detail(&self) -> String {
        match self {
            Outcome::Applied {
                args,
                default_note,
                note,
            } => {
                let mut out = if args.is_empty() {
                    String::new()
                } else {
                    shell_words(args)
                };
                for extra in [default_note, note].into_iter().flatten() {
                    if !out.is_empty() {
                        out.push_str(" — ");
                    }
                    out.push_str(extra);
                }
                out
            }
            Outcome::Info { detail, .. } => detail.clone(),
            Outcome::NotNeeded(why)
            | Outcome::Unsupported(why)
            | Outcome::Harmless(why)
            | Outcome::UnsupportedYet(why)
            | Outcome::Unknown(why)
            | Outcome::Invalid(why) => why.clone(),
        }
    }
}

/// One line of one configuration source.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Where it is: `uwsgi.ini:7`, `rwsgi.toml:3`, `RWSGI_PROCESSES`.
    pub place: String,
    /// The line as written (`harakiri = 30`).
    pub text: String,
    pub outcome: Outcome,
    /// A later line, variable or the command line that sets the same
    /// option, so this one does not count.
    pub overridden_by: Option<String>,
}

impl Record {
    pub fn new(place: impl Into<String>, text: impl Into<String>, outcome: Outcome) -> Record {
        Record {
            place: place.into(),
            text: text.into(),
            outcome,
            overridden_by: None,
        }
    }
}

/// An option value as a source states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    /// A flag set.
    On,
    /// A flag cleared (or an optional value switched off): no argument,
    /// but it overrides a lower layer.
    Off,
    /// An optional value left out (`--chmod-socket`).
    Bare,
    Text(String),
}

/// One option set by one record, waiting to be merged.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub spec: OptSpec,
    pub val: Val,
    /// Index of the record that set it.
    pub record: usize,
}

impl Setting {
    /// The command-line arguments it stands for.
    pub fn args(&self) -> Vec<String> {
        let long = &self.spec.long;
        match &self.val {
            Val::On | Val::Bare => vec![format!("--{long}")],
            Val::Off => Vec::new(),
            Val::Text(v) => vec![format!("--{long}={v}")],
        }
    }

    /// The arguments for a person to read (`--harakiri 30`).
    fn shown(&self) -> Vec<String> {
        let long = &self.spec.long;
        match &self.val {
            Val::On | Val::Bare => vec![format!("--{long}")],
            Val::Off => vec![format!("off (no --{long})")],
            Val::Text(v) => vec![format!("--{long}"), v.clone()],
        }
    }
}

/// Records and settings, in the order the sources were read.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub records: Vec<Record>,
    pub settings: Vec<Setting>,
}

/// Extra words for an applied line.
#[derive(Debug, Default, Clone)]
pub(crate) struct Notes {
    pub default_note: Option<String>,
    pub note: Option<String>,
}

impl Collector {
    /// Adds a record that sets nothing.
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Adds a line that sets rwsgi option `spec` to `values` (one value,
    /// or several for a repeatable option), checking each value with the
    /// option's own parser.
    pub fn apply(
        &mut self,
        table: &OptionTable,
        (place, text): (&str, &str),
        spec: &OptSpec,
        values: &[String],
        mut notes: Notes,
    ) {
        let mut vals = Vec::new();
        for value in values {
            match to_val(table, spec, value) {
                Ok((val, note)) => {
                    if let Some(note) = note {
                        notes.note = Some(join_notes(notes.note.take(), note));
                    }
                    vals.push(val);
                }
                Err(why) => {
                    let why = match &notes.note {
                        Some(note) => format!("{why} ({note})"),
                        None => why,
                    };
                    self.push(Record::new(place, text, Outcome::Invalid(why)));
                    return;
                }
            }
        }
        let index = self.records.len();
        let settings: Vec<Setting> = vals
            .into_iter()
            .map(|val| Setting {
                spec: spec.clone(),
                val,
                record: index,
            })
            .collect();
        let args = settings.iter().flat_map(Setting::shown).collect();
        self.push(Record::new(
            place,
            text,
            Outcome::Applied {
                args,
                default_note: notes.default_note,
                note: notes.note,
            },
        ));
        self.settings.extend(settings);
    }
}

/// Reads `value` for `spec`: a boolean for a flag, anything the option's
/// parser accepts otherwise. May add a note.
fn to_val(
    table: &OptionTable,
    spec: &OptSpec,
    value: &str,
) -> Result<(Val, Option<String>), String> {
    let value = value.trim();
    match spec.kind {
        Kind::Flag => match parse_bool(value) {
            Some(true) => Ok((Val::On, None)),
            Some(false) => Ok((Val::Off, None)),
            None => Ok((
                Val::On,
                Some(format!(
                    "{value:?} read as true (uWSGI reads any value but false/no/off/0 as true)"
                )),
            )),
        },
        Kind::OptionalValue if value.is_empty() || parse_bool(value) == Some(true) => {
            Ok((Val::Bare, None))
        }
        Kind::OptionalValue if parse_bool(value) == Some(false) => Ok((Val::Off, None)),
        Kind::Value | Kind::OptionalValue | Kind::Multi => {
            if value.is_empty() {
                return Err(format!("--{} needs a value", spec.long));
            }
            table.check_value(spec, value).map_err(|e| {
                if value.contains(" #") || value.contains(" ;") {
                    format!("{e} (uWSGI keeps a `;` or `#` after a value in the value: put the comment on a line of its own)")
                } else {
                    e
                }
            })?;
            Ok((Val::Text(value.to_string()), value_note(spec, value)))
        }
    }
}

/// What to know about a value that is valid: a `static-map` directory
/// that does not exist yet.
fn value_note(spec: &OptSpec, value: &str) -> Option<String> {
    match spec.long.as_str() {
        "static-map" => value
            .parse::<crate::server::StaticMap>()
            .ok()
            .and_then(|map| map.missing()),
        _ => None,
    }
}

fn join_notes(a: Option<String>, b: String) -> String {
    match a {
        Some(a) => format!("{a}; {b}"),
        None => b,
    }
}

/// Arguments joined for display, quoting the ones a shell would split.
pub(crate) fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "'\"$`\\;&|<>()".contains(c))
            {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
