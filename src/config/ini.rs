//! Reading uWSGI ini files as uWSGI reads them: one `[section]` (default
//! `[uwsgi]`), `key = value` lines (no quoting, no comments after a value;
//! `;` and `#` start a comment line), repeated keys kept in order,
//! placeholders expanded line by line (see [`super::placeholders`]), other
//! files or sections included with `ini = FILE[:SECTION]` or `ini =
//! :SECTION`, and uWSGI's config logic: `if-env`, `if-exists`, `if-file`,
//! `if-dir`, `if-opt` (and their `if-not-` forms) up to `endif`, `for` and
//! `for-readline` up to `endfor`.
//!
//! This module only reads; what each option means is [`super::uwsgi`]'s.

use std::collections::HashMap;
use std::path::Path;

use super::placeholders::{expand, Expanded, FileMagic};
use super::record::{Outcome, Record};

/// The section read when none is named.
pub(crate) const DEFAULT_SECTION: &str = "uwsgi";

/// Includes nested deeper than this are an error (a loop, surely).
const MAX_DEPTH: usize = 16;

/// One option line, its placeholders expanded.
#[derive(Debug, Clone)]
pub(crate) struct IniLine {
    /// `file:line`.
    pub place: String,
    /// The line as written, trimmed.
    pub text: String,
    /// The key, lower case, `_` read as `-`.
    pub key: String,
    /// The value after expansion.
    pub value: String,
    /// Notes from the expansion.
    pub notes: Vec<String>,
}

/// What reading produced, in file order.
#[derive(Debug, Clone)]
pub(crate) enum IniItem {
    Option(IniLine),
    /// A line that sets nothing (a section header, an include, a line
    /// skipped by config logic) or that is wrong.
    Other(Record),
}

/// Reads ini files; placeholders carry over from one file to the next.
#[derive(Debug, Default)]
pub(crate) struct IniReader {
    /// What `%(name)` refers to: the last value of every key so far.
    vars: HashMap<String, String>,
    pub items: Vec<IniItem>,
    /// Placeholder name → the first place that used it.
    pub used: HashMap<String, String>,
    depth: usize,
}

/// A `FILE[:SECTION]` argument split: the whole string when it names an
/// existing file, else at the last colon.
pub(crate) fn split_spec(spec: &str) -> (&str, &str) {
    if Path::new(spec).exists() {
        return (spec, DEFAULT_SECTION);
    }
    match spec.rsplit_once(':') {
        Some((file, section)) if !section.contains('/') => (
            file,
            if section.is_empty() {
                DEFAULT_SECTION
            } else {
                section
            },
        ),
        _ => (spec, DEFAULT_SECTION),
    }
}

/// One open `if-*` or `for*` block.
#[derive(Debug)]
enum Block {
    If {
        active: bool,
        line: String,
    },
    For {
        items: Vec<String>,
        body: Vec<(usize, String)>,
        line: String,
    },
}

/// The file being read.
struct Current<'a> {
    given: &'a str,
    magic: FileMagic,
}

impl IniReader {
    /// Reads `[section]` of `file` (`given` as the user wrote it).
    pub fn read(&mut self, given: &str, section: &str) -> Result<(), String> {
        let path = Path::new(given);
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read ini file {given}: {e}"))?;
        let cur = Current {
            given,
            magic: FileMagic::new(given, path, section),
        };
        let mut in_section = false;
        let mut found = false;
        let mut blocks: Vec<Block> = Vec::new();
        let mut skipped_since: Option<(String, String, usize)> = None;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            let place = format!("{given}:{number}");
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                self.flush_skipped(&mut skipped_since, section);
                in_section = name.trim() == section;
                if in_section {
                    found = true;
                    let detail = "read".to_string();
                    self.other(Record::new(place, line, info("section", detail)));
                } else {
                    skipped_since = Some((place, line.to_string(), 0));
                }
                continue;
            }
            if !in_section {
                match &mut skipped_since {
                    Some((_, _, n)) => *n += 1,
                    None => skipped_since = Some((place, line.to_string(), 0)),
                }
                continue;
            }
            self.line(&cur, &mut blocks, number, line);
        }
        self.flush_skipped(&mut skipped_since, section);
        for block in blocks {
            let (line, what) = match block {
                Block::If { line, .. } => (line, "endif"),
                Block::For { line, .. } => (line, "endfor"),
            };
            let why = format!("no `{what}` closes this block before the section ends");
            self.other(Record::new(given, line, Outcome::Invalid(why)));
        }
        if !found {
            return Err(format!("ini file {given} has no [{section}] section"));
        }
        Ok(())
    }

    fn other(&mut self, record: Record) {
        self.items.push(IniItem::Other(record));
    }

    /// Records the lines of a section that is not read as one line.
    fn flush_skipped(&mut self, pending: &mut Option<(String, String, usize)>, section: &str) {
        if let Some((place, text, more)) = pending.take() {
            let detail = if text.starts_with('[') {
                format!("not the section read ([{section}]); {more} option line(s) in it")
            } else {
                format!("outside any section ([{section}] is read); {more} more line(s)")
            };
            self.other(Record::new(place, text, info("skipped", detail)));
        }
    }

    /// Takes one option line of the section read.
    fn line(&mut self, cur: &Current<'_>, blocks: &mut Vec<Block>, number: usize, line: &str) {
        let place = format!("{}:{number}", cur.given);
        let (key, raw_value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        let norm = key.to_ascii_lowercase().replace('_', "-");
        if let Some(Block::For { body, .. }) = blocks.last_mut() {
            if norm != "endfor" {
                body.push((number, line.to_string()));
                return;
            }
        }
        let active = blocks
            .iter()
            .all(|b| !matches!(b, Block::If { active: false, .. }));
        if norm == "endif" || norm == "endfor" {
            self.close_block(cur, blocks, &norm, place, line);
            return;
        }
        if !active {
            let line_text = line.to_string();
            if norm.starts_with("if-") {
                blocks.push(Block::If {
                    active: false,
                    line: line_text,
                });
            } else if norm == "for" || norm.starts_with("for-") {
                blocks.push(Block::For {
                    items: Vec::new(),
                    body: Vec::new(),
                    line: line_text,
                });
            }
            let detail = "inside an if-* block whose condition is false".to_string();
            self.other(Record::new(place, line, info("skipped", detail)));
            return;
        }
        let expanded = expand(raw_value, &self.vars, &cur.magic);
        for name in &expanded.used {
            self.used
                .entry(name.to_ascii_lowercase().replace('_', "-"))
                .or_insert(place.clone());
        }
        if norm.starts_with("if-") {
            self.open_if(&norm, place, line, expanded, blocks);
            return;
        }
        if let Some(kind) = norm.strip_prefix("for") {
            if kind.is_empty() || kind.starts_with('-') {
                self.open_for(kind, place, line, expanded, blocks);
                return;
            }
        }
        match norm.as_str() {
            "ini" | "include" => self.include(cur, place, line, &expanded.value),
            "set-placeholder" | "set-ph" => {
                let outcome = match expanded.value.split_once('=') {
                    Some((name, value)) => {
                        self.vars.insert(name.trim().into(), value.trim().into());
                        info(
                            "placeholder",
                            format!("%({}) = {}", name.trim(), value.trim()),
                        )
                    }
                    None => Outcome::Invalid("expected set-placeholder = NAME=VALUE".into()),
                };
                self.other(Record::new(place, line, outcome));
            }
            _ => {
                self.vars.insert(key.to_string(), expanded.value.clone());
                self.items.push(IniItem::Option(IniLine {
                    place,
                    text: line.to_string(),
                    key: norm,
                    value: expanded.value,
                    notes: expanded.notes,
                }));
            }
        }
    }

    /// `ini = FILE[:SECTION]` or `ini = :SECTION` (this file).
    fn include(&mut self, cur: &Current<'_>, place: String, line: &str, value: &str) {
        let (file, section) = match value.strip_prefix(':') {
            Some(section) => (cur.given, section),
            None => split_spec(value),
        };
        let detail = format!("{file} [{section}], its lines follow");
        self.other(Record::new(place.clone(), line, info("included", detail)));
        if self.depth >= MAX_DEPTH {
            let why = format!("includes nested more than {MAX_DEPTH} deep (a loop?)");
            self.other(Record::new(place, line, Outcome::Invalid(why)));
            return;
        }
        self.depth += 1;
        if let Err(e) = self.read(file, section) {
            self.other(Record::new(place, line, Outcome::Invalid(e)));
        }
        self.depth -= 1;
    }

    fn open_if(
        &mut self,
        norm: &str,
        place: String,
        line: &str,
        expanded: Expanded,
        blocks: &mut Vec<Block>,
    ) {
        let (negate, test) = match norm.strip_prefix("if-not-") {
            Some(test) => (true, test),
            None => (false, &norm[3..]),
        };
        let arg = expanded.value.as_str();
        let (holds, underscore) = match test {
            "env" => match arg.split_once('=') {
                Some((var, want)) => {
                    let got = std::env::var(var).unwrap_or_default();
                    (got == want, got)
                }
                None => {
                    let got = std::env::var(arg).unwrap_or_default();
                    (!got.is_empty(), got)
                }
            },
            "exists" => (Path::new(arg).exists(), arg.to_string()),
            "file" => (Path::new(arg).is_file(), arg.to_string()),
            "dir" => (Path::new(arg).is_dir(), arg.to_string()),
            "opt" => match arg.split_once('=') {
                Some((name, want)) => (
                    self.vars.get(name).is_some_and(|v| v == want),
                    String::new(),
                ),
                None => (
                    self.vars.contains_key(arg),
                    self.vars.get(arg).cloned().unwrap_or_default(),
                ),
            },
            _ => {
                let why = "this config condition is not supported; its block is skipped".into();
                self.other(Record::new(place, line, Outcome::Unsupported(why)));
                let line = line.to_string();
                blocks.push(Block::If {
                    active: false,
                    line,
                });
                return;
            }
        };
        let active = holds != negate;
        if active && !negate {
            self.vars.insert("_".into(), underscore);
        }
        let detail = if active {
            "true: the lines up to endif are read".to_string()
        } else {
            "false: the lines up to endif are skipped".to_string()
        };
        self.other(Record::new(place, line, info("condition", detail)));
        let line = line.to_string();
        blocks.push(Block::If { active, line });
    }

    fn open_for(
        &mut self,
        kind: &str,
        place: String,
        line: &str,
        expanded: Expanded,
        blocks: &mut Vec<Block>,
    ) {
        let items: Result<Vec<String>, String> = match kind {
            "" => Ok(expanded
                .value
                .split_whitespace()
                .map(String::from)
                .collect()),
            "-readline" => std::fs::read_to_string(&expanded.value)
                .map(|t| {
                    t.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect()
                })
                .map_err(|e| format!("cannot read {}: {e}", expanded.value)),
            _ => Err(format!(
                "`for{kind}` is not supported; expand the loop by hand"
            )),
        };
        let outcome = match &items {
            Ok(items) => info(
                "loop",
                format!(
                    "{} item(s): the lines up to endfor are read once per item, %(_) = the item",
                    items.len()
                ),
            ),
            Err(e) if kind.is_empty() || kind == "-readline" => Outcome::Invalid(e.clone()),
            Err(e) => Outcome::Unsupported(e.clone()),
        };
        self.other(Record::new(place, line, outcome));
        blocks.push(Block::For {
            items: items.unwrap_or_default(),
            body: Vec::new(),
            line: line.to_string(),
        });
    }

    fn close_block(
        &mut self,
        cur: &Current<'_>,
        blocks: &mut Vec<Block>,
        norm: &str,
        place: String,
        line: &str,
    ) {
        match (norm, blocks.pop()) {
            ("endif", Some(Block::If { .. })) => {
                self.other(Record::new(
                    place,
                    line,
                    info("condition", "end of block".into()),
                ));
            }
            ("endfor", Some(Block::For { items, body, .. })) => {
                self.other(Record::new(place, line, info("loop", "end of loop".into())));
                for item in items {
                    self.vars.insert("_".into(), item);
                    let mut inner = Vec::new();
                    for (number, text) in &body {
                        self.line(cur, &mut inner, *number, text);
                    }
                }
            }
            (_, open) => {
                blocks.extend(open);
                let why = format!("`{norm}` without an open block");
                self.other(Record::new(place, line, Outcome::Invalid(why)));
            }
        }
    }
}

fn info(label: &'static str, detail: String) -> Outcome {
    Outcome::Info { label, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, section: &str) -> Result<IniReader, String> {
        let dir = std::env::temp_dir().join(format!("rwsgi-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.ini", rand_suffix()));
        std::fs::write(&path, text).unwrap();
        let mut reader = IniReader::default();
        let result = reader.read(path.to_str().unwrap(), section);
        let _ = std::fs::remove_file(&path);
        result.map(|()| reader)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn options(reader: &IniReader) -> Vec<(String, String)> {
        reader
            .items
            .iter()
            .filter_map(|i| match i {
                IniItem::Option(l) => Some((l.key.clone(), l.value.clone())),
                IniItem::Other(_) => None,
            })
            .collect()
    }

    #[test]
    fn reads_the_uwsgi_section_only() {
        let r = read(
            "top = 1\n[other]\nprocesses = 9\n[uwsgi]\n; comment\n# another\nprocesses = 4\nmaster\n",
            "uwsgi",
        )
        .unwrap();
        assert_eq!(
            options(&r),
            [
                ("processes".into(), "4".into()),
                ("master".into(), "".into())
            ]
        );
    }

    #[test]
    fn repeated_keys_stay_in_order() {
        let r = read("[uwsgi]\nsocket = a.sock\nsocket = :9000\n", "uwsgi").unwrap();
        assert_eq!(options(&r).len(), 2);
        assert_eq!(options(&r)[1].1, ":9000");
    }

    #[test]
    fn a_missing_section_is_an_error() {
        let err = read("[dev]\nprocesses = 4\n", "uwsgi").unwrap_err();
        assert!(err.contains("no [uwsgi] section"), "{err}");
    }

    #[test]
    fn a_named_section_and_an_include_of_another() {
        let r = read(
            "[base]\nchdir = /srv\n[prod]\nini = :base\nprocesses = %(chdir)\n",
            "prod",
        )
        .unwrap();
        assert_eq!(
            options(&r),
            [
                ("chdir".into(), "/srv".into()),
                ("processes".into(), "/srv".into())
            ]
        );
    }

    #[test]
    fn conditions_and_loops() {
        std::env::set_var("RWSGI_INI_TEST_FLAG", "yes");
        let r = read(
            "[uwsgi]\nif-env = RWSGI_INI_TEST_FLAG\nenv = FLAG=%(_)\nendif =\n\
             if-env = RWSGI_INI_TEST_UNSET\nprocesses = 99\nendif =\n\
             for = a b\npythonpath = /p/%(_)\nendfor =\n",
            "uwsgi",
        )
        .unwrap();
        assert_eq!(
            options(&r),
            [
                ("env".into(), "FLAG=yes".into()),
                ("pythonpath".into(), "/p/a".into()),
                ("pythonpath".into(), "/p/b".into()),
            ]
        );
    }

    #[test]
    fn file_and_section_spec() {
        assert_eq!(
            split_spec("/nonexistent/app.ini"),
            ("/nonexistent/app.ini", "uwsgi")
        );
        assert_eq!(
            split_spec("/nonexistent/app.ini:prod"),
            ("/nonexistent/app.ini", "prod")
        );
    }
}
