//! uWSGI's placeholders in ini files, expanded in uWSGI's order and with
//! its rules (uWSGI 2.0 `core/utils.c` `magic_sub` and
//! `uwsgi_apply_config_pass`, `core/config.c` `uwsgi_manage_placeholder`):
//!
//! 1. When a file is read, its whole text goes through the magic table:
//!    `%d`, `%n`, `%x`... the file's own variables; `%%` is `%`; `%(` is
//!    kept for step 4; a `%` followed by any other character is removed
//!    with that character (`%Z` becomes nothing), as uWSGI's table maps
//!    every other character to an empty string. Upper-case letters are
//!    the first file's values.
//! 2. Once every file is read, `$(VAR)` in every value: an environment
//!    variable. An unset one is left as written.
//! 3. Then `@(FILE)`: the file's contents, without one final newline.
//! 4. Then `%(name)`: the *first* value of option (or `set-placeholder`)
//!    `name` anywhere in the configuration, even on a later line. An
//!    undefined name is left as written. With spaces it is a little
//!    calculation: `%(processes + 1)`, `%(a b)` (concatenation), `++`, `--`.
//!
//! This module only expands text; [`super::ini`] decides which lines.

use std::collections::HashMap;
use std::path::Path;

/// The magic variables of one config file (`%` + one character).
#[derive(Debug, Clone, Default)]
pub(crate) struct FileMagic {
    table: HashMap<char, String>,
}

/// Letters whose upper-case form means the first file's value.
const FIRST_FILE_LETTERS: &str = "odspcenxij";

impl FileMagic {
    /// The table for `given` (the path as written), its `section` when
    /// the spec named one after a colon, and `first`, the first config
    /// file's table, for the upper-case letters.
    pub fn new(given: &str, section: Option<&str>, first: Option<&FileMagic>) -> FileMagic {
        let path = Path::new(given);
        let full = std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf());
        let mut t: HashMap<char, String> = HashMap::new();
        let full_text = full.display().to_string();
        let file_name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = full.parent().unwrap_or(Path::new("/"));
        let mut dir_text = dir.display().to_string();
        if !dir_text.ends_with('/') {
            dir_text.push('/');
        }
        t.insert('o', given.to_string());
        t.insert('p', full_text.clone());
        t.insert('s', file_name.clone());
        t.insert('d', dir_text);
        let last_dir = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        t.insert('c', last_dir.unwrap_or_default());
        let (name, ext) = match file_name.rsplit_once('.') {
            Some((n, e)) => (n.to_string(), e.to_string()),
            None => (file_name.clone(), String::new()),
        };
        t.insert('n', name);
        t.insert('e', ext);
        t.insert('x', section.unwrap_or_default().to_string());
        t.insert('j', djb33x_hex(full_text.as_bytes()));
        if let Ok(meta) = std::fs::symlink_metadata(&full) {
            use std::os::unix::fs::MetadataExt;
            t.insert('i', meta.ino().to_string());
        }
        let parts: Vec<String> = dir
            .iter()
            .skip(1) // the root
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for (i, digit) in ('0'..='9').enumerate() {
            t.insert(digit, parts.get(i).cloned().unwrap_or_default());
        }
        let source = first.map_or(&t, |f| &f.table).clone();
        for c in FIRST_FILE_LETTERS.chars() {
            let value = source.get(&c).cloned().unwrap_or_default();
            t.insert(c.to_ascii_uppercase(), value);
        }
        process_magic(&mut t);
        FileMagic { table: t }
    }

    /// The value of `%c`. Every character has one: the empty string when
    /// it is not a magic letter (uWSGI's table is filled that way).
    fn get(&self, c: char) -> String {
        match c {
            '%' => "%".to_string(),
            _ => self.table.get(&c).cloned().unwrap_or_default(),
        }
    }

    /// The file's whole text with its magic variables expanded.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                // Kept for the %(name) pass.
                Some('(') => out.push_str("%("),
                Some(next) => out.push_str(&self.get(next)),
                // A last `%` has nothing after it and stays.
                None => out.push('%'),
            }
        }
        out
    }
}

/// The magic variables that are the same for every file.
fn process_magic(t: &mut HashMap<char, String>) {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let binary = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let uid = own_id(Id::Uid);
    let gid = own_id(Id::Gid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pairs = [
        ('v', cwd),
        ('b', binary),
        ('h', hostname()),
        ('t', now.as_secs().to_string()),
        ('T', now.as_micros().to_string()),
        ('V', env!("CARGO_PKG_VERSION").to_string()),
        ('k', cpus.to_string()),
        ('[', "\x1b".to_string()),
        ('u', uid.to_string()),
        (
            'U',
            name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string()),
        ),
        ('g', gid.to_string()),
        (
            'G',
            name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string()),
        ),
    ];
    t.extend(pairs);
}

/// uWSGI's `%j`: the djb33x hash of the path, its four bytes in memory
/// order as hex.
fn djb33x_hex(bytes: &[u8]) -> String {
    let mut hash: u32 = 5381;
    for &b in bytes {
        // C's `char` is signed: bytes over 127 are sign-extended.
        hash = (hash << 5).wrapping_add(hash) ^ (b as i8 as i32 as u32);
    }
    hash.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One option as the passes see it: its key and its value so far.
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    pub key: String,
    pub value: String,
    pub used: Vec<String>,
    pub notes: Vec<String>,
}

/// Most replacements in one value (`a = %(a)` would loop for ever).
const MAX_REPLACEMENTS: usize = 256;

/// Runs the `$(...)`, `@(...)` and `%(...)` passes, in that order, over
/// every value, in configuration order (see the module doc).
pub(crate) fn expand_all(opts: &mut [Exported], env: &dyn Fn(&str) -> Option<String>) {
    for opt in opts.iter_mut() {
        let value = std::mem::take(&mut opt.value);
        opt.value = pass(&value, '$', &mut |name| match env(name) {
            Some(v) => Some(v),
            None => {
                opt.notes.push(format!(
                    "$({name}) is not set: left as written, as uWSGI leaves it"
                ));
                None
            }
        });
    }
    for opt in opts.iter_mut() {
        let value = std::mem::take(&mut opt.value);
        opt.value = pass(
            &value,
            '@',
            &mut |name| match std::fs::read_to_string(name) {
                Ok(mut text) => {
                    if text.ends_with('\n') || text.ends_with('\r') {
                        text.pop();
                    }
                    Some(text)
                }
                Err(e) => {
                    opt.notes
                        .push(format!("@({name}) cannot be read ({e}): left as written"));
                    None
                }
            },
        );
    }
    for i in 0..opts.len() {
        // Cloned, not taken: `%(name)` may name this very option.
        let value = opts[i].value.clone();
        let mut used = Vec::new();
        let expanded = pass(&value, '%', &mut |name| {
            let found = placeholder(name, opts);
            if found.is_some() && !used.iter().any(|u| u == name) {
                used.push(name.to_string());
            }
            found
        });
        opts[i].value = expanded;
        opts[i].used.extend(used);
    }
}

/// The value of `%(name)`: the first option called `name`, or a
/// calculation when `name` has spaces. `None` leaves it as written.
fn placeholder(name: &str, opts: &[Exported]) -> Option<String> {
    let first = |key: &str| opts.iter().find(|o| o.key == key).map(|o| o.value.clone());
    if !name.contains(' ') {
        return first(name);
    }
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut op = Op::Concat;
    let mut current: Option<String> = None;
    for token in name.split(' ').filter(|t| !t.is_empty()) {
        let value = match token {
            "+" | "-" | "*" | "/" => {
                op = match token {
                    "+" => Op::Add,
                    "-" => Op::Sub,
                    "*" => Op::Mul,
                    _ => Op::Div,
                };
                continue;
            }
            "++" | "--" => {
                if let Some(c) = &current {
                    let n = leading_i64(c);
                    current = Some((if token == "++" { n + 1 } else { n - 1 }).to_string());
                }
                op = Op::Concat;
                continue;
            }
            t if t.bytes().all(|b| b.is_ascii_digit()) => t.to_string(),
            t => first(t).unwrap_or_default(),
        };
        let a = current.as_deref().unwrap_or("");
        current = Some(match op {
            Op::Concat => format!("{a}{value}"),
            Op::Add => (leading_i64(a).wrapping_add(leading_i64(&value))).to_string(),
            Op::Sub => (leading_i64(a).wrapping_sub(leading_i64(&value))).to_string(),
            Op::Mul => (leading_i64(a).wrapping_mul(leading_i64(&value))).to_string(),
            Op::Div => match leading_i64(&value) {
                0 => "0".to_string(),
                d => (leading_i64(a) / d).to_string(),
            },
        });
        op = Op::Concat;
    }
    current
}

/// C's `strtoll(s, NULL, 10)`: the leading number, 0 when there is none.
pub(crate) fn leading_i64(s: &str) -> i64 {
    let t = s.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// Replaces every `SYMBOL(key)` in `value` whose `hook(key)` is `Some`,
/// scanning again from the start after each replacement (so a value that
/// brings a placeholder is expanded too); nested parentheses belong to
/// the key.
fn pass(value: &str, symbol: char, hook: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut value = value.to_string();
    let mut from = 0;
    let opener: String = [symbol, '('].iter().collect();
    for _ in 0..MAX_REPLACEMENTS {
        let Some(rel) = value[from..].find(&opener) else {
            break;
        };
        let start = from + rel;
        let key_start = start + 2;
        let Some(key_len) = closing(&value[key_start..]) else {
            break;
        };
        let key = &value[key_start..key_start + key_len];
        match (!key.is_empty()).then(|| hook(key)).flatten() {
            Some(found) => {
                value = format!(
                    "{}{found}{}",
                    &value[..start],
                    &value[key_start + key_len + 1..]
                );
                from = 0;
            }
            None => from = key_start,
        }
    }
    value
}

/// The length of the key before its closing parenthesis.
fn closing(rest: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

enum Id {
    Uid,
    Gid,
}

fn own_id(id: Id) -> u32 {
    // SAFETY: getuid/getgid cannot fail and touch no memory of ours.
    unsafe {
        match id {
            Id::Uid => libc::getuid(),
            Id::Gid => libc::getgid(),
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname
    // NUL-terminates within it when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The name of user or group `id` in `/etc/passwd` or `/etc/group`.
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == id).then(|| name.to_string())
    })
}

#[cfg(test)]
fn magic_for(path: &str, section: Option<&str>) -> FileMagic {
    FileMagic::new(path, section, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(pairs: &[(&str, &str)]) -> Vec<Exported> {
        pairs
            .iter()
            .map(|(k, v)| Exported {
                key: k.to_string(),
                value: v.to_string(),
                used: Vec::new(),
                notes: Vec::new(),
            })
            .collect()
    }

    fn passes(pairs: &[(&str, &str)], env: &[(&str, &str)]) -> Vec<Exported> {
        let mut opts = exported(pairs);
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand_all(&mut opts, &|name| env.get(name).cloned());
        opts
    }

    #[test]
    fn magic_variables_of_the_file_as_uwsgi_magic_sub_fills_them() {
        let m = magic_for("/srv/mysite/conf/site.ini", Some("prod"));
        assert_eq!(m.expand("%d"), "/srv/mysite/conf/");
        assert_eq!(m.expand("/run/%n.sock"), "/run/site.sock");
        assert_eq!(
            m.expand("%s %e %c %p"),
            "site.ini ini conf /srv/mysite/conf/site.ini"
        );
        assert_eq!(m.expand("%o|%x"), "/srv/mysite/conf/site.ini|prod");
        assert_eq!(m.expand("%0/%1/%2"), "srv/mysite/conf");
        assert!(m.expand("%k").parse::<usize>().unwrap() >= 1);
        assert_eq!(m.expand("%j").len(), 8);
    }

    #[test]
    fn x_is_empty_without_a_section_after_a_colon_as_in_uwsgi() {
        assert_eq!(magic_for("/srv/a.ini", None).expand("[%x]"), "[]");
    }

    #[test]
    fn percent_before_any_other_character_removes_both_as_uwsgi_table_maps_it_to_nothing() {
        let m = magic_for("/srv/a.ini", None);
        assert_eq!(m.expand("A=%Z|50% x|%%|%("), "A=|50x|%|%(");
        assert_eq!(m.expand("100%"), "100%");
    }

    #[test]
    fn upper_case_letters_are_the_first_files_as_in_uwsgi() {
        let first = magic_for("/srv/base.ini", None);
        let m = FileMagic::new("/etc/other.ini", None, Some(&first));
        assert_eq!(m.expand("%n %N"), "other base");
    }

    #[test]
    fn an_unset_environment_variable_is_left_as_written_as_uwsgi_getenv_pass_leaves_it() {
        let opts = passes(
            &[("http-socket", ":$(PORT)"), ("a", "$(HOME)/x")],
            &[("HOME", "/root")],
        );
        assert_eq!(opts[0].value, ":$(PORT)");
        assert_eq!(opts[0].notes.len(), 1);
        assert_eq!(opts[1].value, "/root/x");
    }

    #[test]
    fn an_undefined_placeholder_is_left_as_written_as_uwsgi_leaves_it() {
        let opts = passes(&[("log-format", "%(method) %(uri)")], &[]);
        assert_eq!(opts[0].value, "%(method) %(uri)");
        assert!(opts[0].used.is_empty());
    }

    #[test]
    fn a_placeholder_is_the_first_value_even_from_a_later_line_as_uwsgi_get_exported_opt() {
        let opts = passes(
            &[
                ("chdir", "%(base)/app"),
                ("base", "/srv"),
                ("base", "/other"),
            ],
            &[],
        );
        assert_eq!(opts[0].value, "/srv/app");
        assert_eq!(opts[0].used, ["base"]);
    }

    #[test]
    fn placeholders_with_spaces_calculate_as_uwsgi_manage_placeholder() {
        let opts = passes(
            &[
                ("processes", "4   ; four"),
                ("a", "%(processes + 1)"),
                ("b", "%(processes * 2 ++)"),
                ("c", "%(processes processes)"),
                ("d", "%(processes / 0)"),
            ],
            &[],
        );
        let values: Vec<&str> = opts.iter().skip(1).map(|o| o.value.as_str()).collect();
        assert_eq!(values, ["5", "9", "4   ; four4   ; four", "0"]);
    }

    #[test]
    fn environment_comes_before_files_before_placeholders_as_in_uwsgi_setup() {
        let dir = std::env::temp_dir().join(format!("rwsgi-ph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let at = format!("@({})", file.display());
        let opts = passes(
            &[("key", &at), ("x", "%(key)-$(V)"), ("y", "$(NAME)")],
            &[("V", "1"), ("NAME", "%(key)")],
        );
        assert_eq!(opts[1].value, "s3cret-1");
        assert_eq!(opts[2].value, "s3cret");
    }

    #[test]
    fn a_self_reference_stops() {
        let opts = passes(&[("a", "%(a)")], &[]);
        assert_eq!(opts[0].value, "%(a)");
    }

    #[test]
    fn leading_numbers_read_like_strtoll() {
        assert_eq!(leading_i64("  42abc"), 42);
        assert_eq!(leading_i64("-3"), -3);
        assert_eq!(leading_i64("x"), 0);
    }
}
