//! What uWSGI's static options add to a static reply, as uWSGI's
//! `core/static.c` does it:
//!
//! - pre-compressed siblings (`static-gzip REGEXP`, `static-gzip-all`,
//!   `static-gzip-dir PREFIX`, `static-gzip-ext SUFFIX`): for a file the
//!   rules pick, a client that accepts `br` gets `FILE.br` and one that
//!   accepts `gzip` gets `FILE.gz` when that sibling exists, with
//!   `Content-Encoding` (and `Vary: Accept-Encoding`, so caches keep the
//!   two apart) and the original file's `Content-Type`;
//! - an `Expires` header (`static-expires REGEXP SECONDS` on the file's
//!   path, `static-expires-uri REGEXP SECONDS` on the request URI,
//!   `static-expires-type MIME SECONDS`): now plus SECONDS, from the first
//!   rule that matches.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use regex::bytes::Regex;

/// One `REGEXP SECONDS` (or `MIME SECONDS`) rule.
#[derive(Debug, Clone)]
pub struct ExpiresRule<P> {
    pattern: P,
    seconds: u64,
}

/// Parses `static-expires` / `static-expires-uri`: a regular expression,
/// a space, then seconds (the last space splits, as uWSGI's parser does).
pub fn parse_expires_regex(s: &str) -> Result<ExpiresRule<Regex>, String> {
    let (pattern, seconds) = split_seconds(s)?;
    let pattern = Regex::new(pattern).map_err(|e| format!("bad regular expression: {e}"))?;
    Ok(ExpiresRule { pattern, seconds })
}

/// Parses `static-expires-type`: a MIME type, a space, then seconds.
pub fn parse_expires_type(s: &str) -> Result<ExpiresRule<String>, String> {
    let (mime, seconds) = split_seconds(s)?;
    Ok(ExpiresRule {
        pattern: mime.to_string(),
        seconds,
    })
}

/// Parses a `static-gzip` regular expression.
pub fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("bad regular expression: {e}"))
}

fn split_seconds(s: &str) -> Result<(&str, u64), String> {
    let (pattern, seconds) = s
        .trim()
        .rsplit_once(' ')
        .ok_or_else(|| format!("{s:?} is not 'PATTERN SECONDS'"))?;
    let seconds = seconds
        .parse()
        .map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
    Ok((pattern.trim(), seconds))
}

/// Every static option of a worker.
#[derive(Debug, Clone, Default)]
pub struct StaticOptions {
    /// `static-gzip-all`.
    pub gzip_all: bool,
    /// `static-gzip`: on the file's path.
    pub gzip_regex: Vec<Regex>,
    /// `static-gzip-dir` / `static-gzip-prefix`: the path starts with one.
    pub gzip_prefix: Vec<String>,
    /// `static-gzip-ext` / `static-gzip-suffix`: the path ends with one.
    pub gzip_suffix: Vec<String>,
    /// `static-expires`: on the file's path.
    pub expires: Vec<ExpiresRule<Regex>>,
    /// `static-expires-uri`: on the request URI.
    pub expires_uri: Vec<ExpiresRule<Regex>>,
    /// `static-expires-type`: on the Content-Type.
    pub expires_type: Vec<ExpiresRule<String>>,
}

/// The content codings a request accepts that a sibling file may have.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accepts {
    /// `br` in Accept-Encoding.
    pub br: bool,
    /// `gzip` in Accept-Encoding.
    pub gzip: bool,
}

impl Accepts {
    /// Read from an Accept-Encoding value (a substring test, as uWSGI's).
    pub fn from_header(value: &[u8]) -> Accepts {
        let has = |needle: &[u8]| value.windows(needle.len()).any(|w| w == needle);
        Accepts {
            br: has(b"br"),
            gzip: has(b"gzip"),
        }
    }
}

impl StaticOptions {
    /// The pre-compressed sibling of `path` to send instead, and its coding:
    /// one the rules pick, the client accepts and that exists as a regular
    /// file.
    pub fn sibling(&self, path: &Path, accepts: Accepts) -> Option<(PathBuf, &'static str)> {
        if !(accepts.br || accepts.gzip) || !self.wants_compressed(path) {
            return None;
        }
        let codings = [(accepts.br, "br"), (accepts.gzip, "gzip")];
        codings
            .into_iter()
            .filter(|(ok, _)| *ok)
            .find_map(|(_, coding)| {
                let ext = if coding == "br" { "br" } else { "gz" };
                let mut name = path.as_os_str().to_owned();
                name.push(".");
                name.push(ext);
                let sibling = PathBuf::from(name);
                sibling.is_file().then_some((sibling, coding))
            })
    }

    fn wants_compressed(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        let text = path.to_string_lossy();
        self.gzip_all
            || self
                .gzip_prefix
                .iter()
                .any(|p| text.starts_with(p.as_str()))
            || self.gzip_suffix.iter().any(|s| text.ends_with(s.as_str()))
            || self.gzip_regex.iter().any(|r| r.is_match(bytes))
    }

    /// The `Expires` value for a file at `path`, asked for as `uri`, of
    /// type `mime`, if a rule gives one.
    pub fn expires(&self, path: &Path, uri: &[u8], mime: &str, now: SystemTime) -> Option<String> {
        use std::os::unix::ffi::OsStrExt;
        let path = path.as_os_str().as_bytes();
        let seconds = self
            .expires
            .iter()
            .find(|r| r.pattern.is_match(path))
            .or_else(|| self.expires_uri.iter().find(|r| r.pattern.is_match(uri)))
            .map(|r| r.seconds)
            .or_else(|| {
                self.expires_type
                    .iter()
                    .find(|r| {
                        mime.split(';')
                            .next()
                            .is_some_and(|m| m.trim() == r.pattern)
                    })
                    .map(|r| r.seconds)
            })?;
        Some(httpdate::fmt_http_date(now + Duration::from_secs(seconds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_rules_split_at_the_last_space_and_the_first_match_wins() {
        let options = StaticOptions {
            expires: vec![parse_expires_regex(r"\.css$ 3600").unwrap()],
            expires_uri: vec![parse_expires_regex("^/media/ 60").unwrap()],
            expires_type: vec![parse_expires_type("image/png 86400").unwrap()],
            ..StaticOptions::default()
        };
        let now = SystemTime::UNIX_EPOCH;
        let at = |s| Some(httpdate::fmt_http_date(now + Duration::from_secs(s)));
        assert_eq!(
            options.expires(Path::new("/s/a.css"), b"/media/a.css", "text/css", now),
            at(3600)
        );
        assert_eq!(
            options.expires(Path::new("/s/a.js"), b"/media/a.js", "text/javascript", now),
            at(60)
        );
        assert_eq!(
            options.expires(Path::new("/s/a.png"), b"/x/a.png", "image/png", now),
            at(86400)
        );
        assert_eq!(
            options.expires(Path::new("/s/a.js"), b"/x/a.js", "text/javascript", now),
            None
        );
        assert!(parse_expires_regex("nospace").is_err());
        assert!(parse_expires_regex("( 10").is_err());
        assert!(parse_expires_regex("x ten").is_err());
    }

    #[test]
    fn accept_encoding_is_read_as_uwsgi_reads_it() {
        let a = Accepts::from_header(b"gzip, deflate, br");
        assert!(a.gzip && a.br);
        let a = Accepts::from_header(b"identity");
        assert!(!a.gzip && !a.br);
    }
}
