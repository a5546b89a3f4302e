//! Reading uWSGI ini files as uWSGI 2.0 reads them (`core/ini.c`): one
//! `[section]` (default `[uwsgi]`), `key = value` lines, repeated keys
//! kept in order, other files or sections included with `ini =
//! FILE[:SECTION]` or `ini = :SECTION`, and uWSGI's config logic:
//! `if-env`, `if-exists`, `if-file`, `if-dir`, `if-opt` (and their `if-not-`
//! forms) up to `endif`, `for` and `for-readline` up to `endfor`.
//!
//! A line whose first non-blank character is `;` or `#` is a comment. A
//! `;` or `#` later on the line is *not*: uWSGI keeps it in the value
//! (`processes = 4 ; four` has the value `4 ; four`), and what the value
//! means is then up to the option ([`super::uwsgi`]). Placeholders follow
//! [`super::placeholders`]: the magic variables when the file is read,
//! `$(...)`, `@(...)` and `%(...)` once every file is read
//! ([`IniReader::finish`]).
//!
//! This module only reads; what each option means is [`super::uwsgi`]'s.

use std::collections::HashMap;
use std::path::Path;

use super::placeholders::{expand_all, Exported, FileMagic};
use super::record::{Outcome, Record};

/// The section read when none is named.
pub(crate) const DEFAULT_SECTION: &str = "uwsgi";

/// Includes nested deeper than this are an error (a loop, surely).
const MAX_DEPTH: usize = 16;

/// One option line.
#[derive(Debug, Clone)]
pub(crate) struct IniLine {
    /// `file:line`.
    pub place: String,
    /// The line as written, trimmed.
    pub text: String,
    /// The key, lower case, `_` read as `-`.
    pub key: String,
    /// The value, its placeholders expanded once [`IniReader::finish`]
    /// has run.
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
    /// Every option and placeholder in order, as uWSGI's exported options
    /// (what `%(name)` and `if-opt` look up), with the item it came from.
    exported: Vec<(Exported, Option<usize>)>,
    pub items: Vec<IniItem>,
    /// Placeholder name → the first place that used it.
    pub used: HashMap<String, String>,
    /// The first file's magic variables (for `%D`, `%N`...).
    first_magic: Option<FileMagic>,
    depth: usize,
}

/// A `FILE[:SECTION]` argument split: the whole string when it names an
/// existing file, else at the last colon (the section is `None` when
/// none is named).
pub(crate) fn split_spec(spec: &str) -> (&str, Option<&str>) {
    if Path::new(spec).exists() {
        return (spec, None);
    }
    match spec.rsplit_once(':') {
        Some((file, section)) if !section.contains('/') => (file, Some(section)),
        _ => (spec, None),
    }
}

/// The section an optional spec names (`file:` reads `[uwsgi]`).
pub(crate) fn section_of(section: Option<&str>) -> &str {
    section.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_SECTION)
}

/// One open `if-*` or `for*` block.
#[derive(Debug)]
enum Block {
    If {
        active: bool,
        line: String,
        /// What `%(_)` stands for in the block.
        data: Option<String>,
    },
    For {
        items: Vec<String>,
        /// Line number, as written, magic variables expanded.
        body: Vec<(usize, String, String)>,
        line: String,
    },
}

/// The file being read.
struct Current<'a> {
    given: &'a str,
}

impl IniReader {
    /// Reads `[section]` of `file` (`given` as the user wrote it; a
    /// `section` of `None` is `[uwsgi]`).
    pub fn read(&mut self, given: &str, section: Option<&str>) -> Result<(), String> {
        let path = Path::new(given);
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read ini file {given}: {e}"))?;
        let magic = FileMagic::new(given, section, self.first_magic.as_ref());
        if self.first_magic.is_none() {
            self.first_magic = Some(magic.clone());
        }
        let wanted = section_of(section);
        let cur = Current { given };
        let mut in_section = false;
        let mut found = false;
        let mut blocks: Vec<Block> = Vec::new();
        let mut skipped_since: Option<(String, String, usize)> = None;
        for (index, written) in raw.lines().enumerate() {
            let number = index + 1;
            // uWSGI expands the magic variables over the whole text before
            // it splits lines; line by line is the same except for a `%`
            // that ends a line (uWSGI removes it with the newline).
            let expanded = magic.expand(written);
            let written = written.trim_matches([' ', '\t', '\r']);
            let line = expanded.trim_matches([' ', '\t', '\r']);
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            let place = format!("{given}:{number}");
            if let Some(name) = line.strip_prefix('[') {
                self.flush_skipped(&mut skipped_since, wanted);
                // uWSGI drops the last character, whatever it is.
                let name = &name[..name.len().saturating_sub(1)];
                in_section = name == wanted;
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
            self.line(&cur, &mut blocks, number, (written, line), None);
        }
        self.flush_skipped(&mut skipped_since, wanted);
        for block in blocks {
            let (line, what) = match block {
                Block::If { line, .. } => (line, "endif"),
                Block::For { line, .. } => (line, "endfor"),
            };
            let why = format!("no `{what}` closes this block before the section ends");
            self.other(Record::new(given, line, Outcome::Invalid(why)));
        }
        if !found {
            return Err(format!("ini file {given} has no [{wanted}] section"));
        }
        Ok(())
    }

    /// Expands `$(...)`, `@(...)` and `%(...)` in every value read, in
    /// uWSGI's order; call once after the last [`IniReader::read`].
    pub fn finish(&mut self) {
        let mut opts: Vec<Exported> = self.exported.iter().map(|(e, _)| e.clone()).collect();
        expand_all(&mut opts, &|name| std::env::var(name).ok());
        for (opt, (_, item)) in opts.into_iter().zip(&self.exported) {
            let Some(IniItem::Option(line)) = item.and_then(|i| self.items.get_mut(i)) else {
                continue;
            };
            for name in &opt.used {
                self.used
                    .entry(name.to_ascii_lowercase().replace('_', "-"))
                    .or_insert(line.place.clone());
            }
            line.value = opt.value;
            line.notes.extend(opt.notes);
        }
    }

    fn other(&mut self, record: Record) {
        self.items.push(IniItem::Other(record));
    }

    /// The first value of option `key` read so far (uWSGI's
    /// `uwsgi_get_exported_opt`, for `if-opt`).
    fn exported_value(&self, key: &str) -> Option<String> {
        self.exported
            .iter()
            .find(|(e, _)| e.key == key)
            .map(|(e, _)| e.value.clone())
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

    /// Takes one option line of the section read; `underscore` is the
    /// loop item a `for` body is replayed with.
    fn line(
        &mut self,
        cur: &Current<'_>,
        blocks: &mut Vec<Block>,
        number: usize,
        (written, line): (&str, &str),
        underscore: Option<&str>,
    ) {
        let place = format!("{}:{number}", cur.given);
        let (key, raw_value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), v.trim_matches([' ', '\t', '\r'])),
            None => (line, ""),
        };
        let norm = key.to_ascii_lowercase().replace('_', "-");
        if let Some(Block::For { body, .. }) = blocks.last_mut() {
            if !is_end(&norm) {
                body.push((number, written.to_string(), line.to_string()));
                return;
            }
        }
        let active = blocks
            .iter()
            .all(|b| !matches!(b, Block::If { active: false, .. }));
        if is_end(&norm) {
            self.close_block(cur, blocks, &norm, place, line);
            return;
        }
        if !active {
            let line_text = line.to_string();
            if norm.starts_with("if-") {
                blocks.push(Block::If {
                    active: false,
                    line: line_text,
                    data: None,
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
        // Inside a block, uWSGI replaces `%(_)` in the value as it reads it.
        let data = underscore.map(String::from).or_else(|| {
            blocks.iter().rev().find_map(|b| match b {
                Block::If { data, .. } => data.clone(),
                Block::For { .. } => None,
            })
        });
        let value = match &data {
            Some(d) => raw_value.replace("%(_)", d),
            None => raw_value.to_string(),
        };
        if norm.starts_with("if-") {
            self.open_if(&norm, place, line, &value, blocks);
            return;
        }
        if let Some(kind) = norm.strip_prefix("for") {
            if kind.is_empty() || kind.starts_with('-') {
                self.open_for(kind, place, line, &value, blocks);
                return;
            }
        }
        match norm.as_str() {
            "ini" | "include" => self.include(cur, place, line, &value),
            "set-placeholder" | "set-ph" => {
                let outcome = match value.split_once('=') {
                    Some((name, v)) => {
                        self.export(name, v, None);
                        info("placeholder", format!("%({name}) = {v}"))
                    }
                    None => Outcome::Invalid("expected set-placeholder = NAME=VALUE".into()),
                };
                self.other(Record::new(place, line, outcome));
            }
            _ => {
                let index = self.items.len();
                self.export(key, &value, Some(index));
                self.items.push(IniItem::Option(IniLine {
                    place,
                    text: written.to_string(),
                    key: norm,
                    value,
                    notes: Vec::new(),
                }));
            }
        }
    }

    fn export(&mut self, key: &str, value: &str, item: Option<usize>) {
        let exported = Exported {
            key: key.to_string(),
            value: value.to_string(),
            used: Vec::new(),
            notes: Vec::new(),
        };
        self.exported.push((exported, item));
    }

    /// `ini = FILE[:SECTION]` or `ini = :SECTION` (this file).
    fn include(&mut self, cur: &Current<'_>, place: String, line: &str, value: &str) {
        let (file, section) = match value.strip_prefix(':') {
            Some(section) => (cur.given, Some(section)),
            None => split_spec(value),
        };
        let detail = format!("{file} [{}], its lines follow", section_of(section));
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
        arg: &str,
        blocks: &mut Vec<Block>,
    ) {
        let (negate, test) = match norm.strip_prefix("if-not-") {
            Some(test) => (true, test),
            None => (false, &norm[3..]),
        };
        // What the test found, and what `%(_)` is in the block. uWSGI
        // counts a variable or option that is set, even empty, as true.
        let (holds, data) = match test {
            "env" | "opt" => {
                let (name, want) = match arg.split_once('=') {
                    Some((name, want)) => (name, Some(want)),
                    None => (arg, None),
                };
                let got = match test {
                    "env" => std::env::var(name).ok(),
                    _ => self.exported_value(name),
                };
                let holds = got.as_deref().is_some_and(|g| want.is_none_or(|w| g == w));
                (holds, got)
            }
            "exists" => (Path::new(arg).exists(), Some(arg.to_string())),
            "file" => (Path::new(arg).is_file(), Some(arg.to_string())),
            "dir" => (Path::new(arg).is_dir(), Some(arg.to_string())),
            _ => {
                let why = "this config condition is not supported; its block is skipped".into();
                self.other(Record::new(place, line, Outcome::Unsupported(why)));
                let line = line.to_string();
                blocks.push(Block::If {
                    active: false,
                    line,
                    data: None,
                });
                return;
            }
        };
        let active = holds != negate;
        let detail = if active {
            "true: the lines up to endif are read".to_string()
        } else {
            "false: the lines up to endif are skipped".to_string()
        };
        self.other(Record::new(place, line, info("condition", detail)));
        let line = line.to_string();
        blocks.push(Block::If { active, line, data });
    }

    fn open_for(
        &mut self,
        kind: &str,
        place: String,
        line: &str,
        arg: &str,
        blocks: &mut Vec<Block>,
    ) {
        let items: Result<Vec<String>, String> = match kind {
            "" => Ok(arg
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            "-readline" => std::fs::read_to_string(arg)
                .map(|t| t.lines().map(String::from).collect())
                .map_err(|e| format!("cannot read {arg}: {e}")),
            "-times" => {
                let n = super::placeholders::leading_i64(arg).max(0);
                Ok((1..=n).map(|i| i.to_string()).collect())
            }
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
            Err(e) if matches!(kind, "" | "-readline" | "-times") => Outcome::Invalid(e.clone()),
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
        match blocks.pop() {
            Some(Block::If { .. }) => {
                self.other(Record::new(
                    place,
                    line,
                    info("condition", "end of block".into()),
                ));
            }
            Some(Block::For { items, body, .. }) => {
                self.other(Record::new(place, line, info("loop", "end of loop".into())));
                for item in items {
                    let mut inner = Vec::new();
                    for (number, written, text) in &body {
                        self.line(cur, &mut inner, *number, (written, text), Some(&item));
                    }
                }
            }
            None => {
                let why = format!("`{norm}` without an open block");
                self.other(Record::new(place, line, Outcome::Invalid(why)));
            }
        }
    }
}

/// uWSGI ends any block on any of these.
fn is_end(norm: &str) -> bool {
    matches!(norm, "end" | "endif" | "endfor" | "end-if" | "end-for")
}

fn info(label: &'static str, detail: String) -> Outcome {
    Outcome::Info { label, detail }
}

#[cfg(test)]
#[path = "ini_tests.rs"]
mod tests;
