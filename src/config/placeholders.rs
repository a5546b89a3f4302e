//! uWSGI's placeholders in ini values, expanded as uWSGI does when it reads
//! the file: `%d` and the other magic variables of the file being read,
//! `%(name)` for an option (or `set-placeholder`) defined earlier, `$(VAR)`
//! for an environment variable, `%%` for a percent sign.
//!
//! A `%(name)` nothing defined is left as written, as uWSGI leaves it
//! (`log-format` values use that syntax for their own variables).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The magic variables of one config file.
#[derive(Debug, Clone)]
pub(crate) struct FileMagic {
    /// The path as given (`%o`).
    given: String,
    /// The absolute path (`%p`).
    path: PathBuf,
    /// The section read (for `%x`).
    section: String,
}

impl FileMagic {
    pub fn new(given: &str, path: &Path, section: &str) -> FileMagic {
        let path = std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf());
        FileMagic {
            given: given.to_string(),
            path,
            section: section.to_string(),
        }
    }

    /// The value of `%c` for a magic letter `c`, if it is one.
    fn get(&self, c: char) -> Option<String> {
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let value = match c {
            'o' | 'O' => self.given.clone(),
            'p' | 'P' => self.path.display().to_string(),
            's' | 'S' => file_name,
            'd' | 'D' => {
                let d = dir.display().to_string();
                if d.ends_with('/') {
                    d
                } else {
                    d + "/"
                }
            }
            'c' | 'C' => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            'e' | 'E' => match file_name.rsplit_once('.') {
                Some((_, ext)) => ext.to_string(),
                None => String::new(),
            },
            'n' | 'N' => match file_name.rsplit_once('.') {
                Some((name, _)) => name.to_string(),
                None => file_name,
            },
            'x' | 'X' => format!("{}:{}", self.given, self.section),
            '0'..='9' => {
                let n = c as usize - '0' as usize;
                dir.iter()
                    .skip(1) // the root
                    .nth(n)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }
            'k' => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .to_string(),
            'h' => hostname(),
            'u' => own_id(Id::Uid).to_string(),
            'g' => own_id(Id::Gid).to_string(),
            'U' => user_name().unwrap_or_else(|| own_id(Id::Uid).to_string()),
            't' => now().as_secs().to_string(),
            'T' => now().as_micros().to_string(),
            'V' => env!("CARGO_PKG_VERSION").to_string(),
            '[' => "\x1b".to_string(),
            _ => return None,
        };
        Some(value)
    }
}

/// A value after expansion.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub value: String,
    /// The `%(name)`s that were found (so `name` is a placeholder).
    pub used: Vec<String>,
    /// What the operator should know (an unset `$(VAR)`...).
    pub notes: Vec<String>,
}

/// Expands `raw`; `vars` holds what `%(name)` may refer to.
pub(crate) fn expand(raw: &str, vars: &HashMap<String, String>, magic: &FileMagic) -> Expanded {
    let mut out = Expanded::default();
    let mut rest = raw;
    while let Some(pos) = rest.find(['%', '$']) {
        out.value.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let (text, len) = match expand_one(tail, vars, magic, &mut out) {
            Some(found) => found,
            None => (tail[..1].to_string(), 1),
        };
        out.value.push_str(&text);
        rest = &tail[len..];
    }
    out.value.push_str(rest);
    out
}

/// Expands the placeholder at the start of `tail`, if there is one: its
/// value and how many bytes it took.
fn expand_one(
    tail: &str,
    vars: &HashMap<String, String>,
    magic: &FileMagic,
    out: &mut Expanded,
) -> Option<(String, usize)> {
    if let Some(inner) = tail.strip_prefix("$(") {
        let end = inner.find(')')?;
        let name = &inner[..end];
        let value = std::env::var(name).unwrap_or_else(|_| {
            out.notes
                .push(format!("$({name}) is not set: expanded to nothing"));
            String::new()
        });
        return Some((value, end + 3));
    }
    let inner = tail.strip_prefix('%')?;
    if let Some(body) = inner.strip_prefix('(') {
        let end = body.find(')')?;
        let name = &body[..end];
        let value = vars.get(name)?;
        out.used.push(name.to_string());
        return Some((value.clone(), end + 3));
    }
    let c = inner.chars().next()?;
    if c == '%' {
        return Some(("%".to_string(), 2));
    }
    magic.get(c).map(|v| (v, 1 + c.len_utf8()))
}

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
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

fn user_name() -> Option<String> {
    let uid = own_id(Id::Uid);
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn magic() -> FileMagic {
        FileMagic {
            given: "conf/site.ini".into(),
            path: PathBuf::from("/srv/mysite/conf/site.ini"),
            section: "uwsgi".into(),
        }
    }

    fn run(raw: &str, vars: &[(&str, &str)]) -> Expanded {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(raw, &vars, &magic())
    }

    #[test]
    fn magic_variables_of_the_file() {
        assert_eq!(run("%d", &[]).value, "/srv/mysite/conf/");
        assert_eq!(run("%dapp.sock", &[]).value, "/srv/mysite/conf/app.sock");
        assert_eq!(run("/run/%n.sock", &[]).value, "/run/site.sock");
        assert_eq!(
            run("%s %e %c %p", &[]).value,
            "site.ini ini conf /srv/mysite/conf/site.ini"
        );
        assert_eq!(run("%o %x", &[]).value, "conf/site.ini conf/site.ini:uwsgi");
        assert_eq!(run("%0/%1/%2", &[]).value, "srv/mysite/conf");
        assert_eq!(run("100%%", &[]).value, "100%");
        assert!(run("%k", &[]).value.parse::<usize>().unwrap() >= 1);
    }

    #[test]
    fn options_defined_earlier() {
        let e = run("%(base)/static", &[("base", "/srv/app")]);
        assert_eq!(e.value, "/srv/app/static");
        assert_eq!(e.used, ["base"]);
    }

    #[test]
    fn unknown_names_stay_as_written() {
        let e = run("%(method) %(uri) %Z 50% $x", &[]);
        assert_eq!(e.value, "%(method) %(uri) %Z 50% $x");
        assert!(e.used.is_empty());
    }

    #[test]
    fn environment_variables() {
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(run("$(HOME)/app", &[]).value, format!("{home}/app"));
        let e = run("x$(RWSGI_SURELY_NOT_SET_42)y", &[]);
        assert_eq!(e.value, "xy");
        assert_eq!(e.notes.len(), 1);
    }
}
