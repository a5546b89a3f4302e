//! Static files (`--static-map /prefix=DIR`), served by tokio without
//! touching Python, on every protocol (HTTP, uwsgi, SCGI).
//!
//! A request whose path (`SCRIPT_NAME` + `PATH_INFO`, percent-decoded) is
//! a mapped prefix or lies below one on a segment boundary (`/static`
//! maps `/static` and `/static/x`, not `/staticfoo`) is answered here; the
//! longest prefix wins. Everything else goes to the app.
//!
//! - GET and HEAD only; other methods get 405 with `Allow: GET, HEAD`.
//! - A missing file is a 404 from rwsgi: unlike uWSGI, a mapped prefix
//!   never falls through to the app, so the app cannot be reached (or
//!   probed) through the static namespace, and a typo shows as a 404 in
//!   the access log instead of an app error page.
//! - A directory is a 403: no listing, no index file.
//! - `..` segments (also `%2e%2e`, `..%2f`: the path is decoded already),
//!   NUL bytes and symlinks that lead out of DIR are refused (403, 400
//!   for NUL) unless the target is under a `--static-safe` path.
//! - `Content-Type` from the extension, `ETag` and `Last-Modified`, 304
//!   for `If-None-Match` / `If-Modified-Since`, a single `Range` (206,
//!   416), `If-Range`; see `conditional` for what is left out.
//! - Pre-compressed `.br` / `.gz` siblings and `Expires` headers where
//!   uWSGI's static options ask for them (`extras`).
//! - Bodies go out with sendfile(2) (small ones in the same write as the
//!   head), under the write timeout. HTTP keeps the connection alive (a
//!   request body up to 64 KiB is read and dropped); uwsgi and SCGI close
//!   as usual.
//!
//! Refusals log at info with the peer and the reason; every response
//! gets the same access-log line as an app response, and is counted by
//! the observer.
//!
//! # Layout
//!
//! - `resolve`: URL path to an open file, the traversal checks.
//! - `conditional`: validators, 304, ranges.
//! - `mime`: the extension table.
//! - `extras`: uWSGI's static-gzip and static-expires options.
//! - `reply`: the reply to a GET or HEAD, built on the blocking pool.
//! - `send`: writing the reply, the log lines, dropping a request body.

mod conditional;
pub mod extras;
mod mime;
mod reply;
mod resolve;
mod send;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use self::conditional::Conditions;
use self::extras::{Accepts, StaticOptions};
use self::reply::{Lookup, Reply};
use super::stream::Stream;
use super::{ListenerContext, Peer};
use crate::exchange::RequestLabel;
use crate::protocol::Request;

/// One `--static-map /prefix=DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// The URL prefix without a trailing slash (empty for `/`, which maps
    /// every path).
    prefix: Vec<u8>,
    /// The directory, made absolute against the directory rwsgi started
    /// in, but not canonicalized: symlinks in it are resolved per request.
    dir: PathBuf,
}

impl FromStr for StaticMap {
    type Err = String;

    /// Parses `/prefix=DIR`. DIR may not exist yet (a deploy may create
    /// it after the server starts, and uWSGI starts too): the prefix is
    /// served once it appears, 404 until then. Something else than a
    /// directory at DIR is an error.
    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, dir) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not /PREFIX=DIR"))?;
        if !prefix.starts_with('/') {
            return Err(format!("the prefix {prefix:?} must start with '/'"));
        }
        if dir.is_empty() {
            return Err(format!("no directory after '=' in {s:?}"));
        }
        let dir = std::path::absolute(dir).map_err(|e| format!("cannot use {dir}: {e}"))?;
        if dir.try_exists().unwrap_or(true) && !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        Ok(StaticMap {
            prefix: prefix.trim_end_matches('/').as_bytes().to_vec(),
            dir,
        })
    }
}

impl StaticMap {
    /// What to warn of when the directory is not there (yet).
    pub fn missing(&self) -> Option<String> {
        (!self.dir.exists()).then(|| {
            format!(
                "the directory {} does not exist yet: {}/ is served once it does (404 until then)",
                self.dir.display(),
                String::from_utf8_lossy(&self.prefix)
            )
        })
    }
}

impl StaticFiles {
    /// A warning for each mapped directory that does not exist.
    pub fn missing(&self) -> Vec<String> {
        self.maps.iter().filter_map(StaticMap::missing).collect()
    }
}

/// Parses a `--static-safe` path: it must exist; returned absolute.
pub fn parse_safe_path(s: &str) -> Result<PathBuf, String> {
    existing(Path::new(s))
}

fn existing(path: &Path) -> Result<PathBuf, String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("cannot use {}: {e}", path.display()))?;
    match absolute.try_exists() {
        Ok(true) => Ok(absolute),
        Ok(false) => Err(format!("{} does not exist", absolute.display())),
        Err(e) => Err(format!("cannot use {}: {e}", absolute.display())),
    }
}

/// Every static map of a worker and the paths symlinks may lead to.
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    /// Longest prefix first, so the first match is the longest.
    maps: Vec<StaticMap>,
    /// `--static-safe`: symlink targets under these are served even when
    /// outside the mapped directory.
    safe: Arc<[PathBuf]>,
    /// `--static-gzip*` and `--static-expires*`.
    options: Arc<StaticOptions>,
}

impl StaticFiles {
    /// The maps (any order; the longest matching prefix wins) and the
    /// safe paths.
    pub fn new(mut maps: Vec<StaticMap>, safe: Vec<PathBuf>) -> Self {
        maps.sort_by_key(|map| std::cmp::Reverse(map.prefix.len()));
        StaticFiles {
            maps,
            safe: safe.into(),
            options: Arc::default(),
        }
    }

    /// With uWSGI's static options (pre-compressed siblings, Expires).
    pub fn with_options(mut self, options: StaticOptions) -> Self {
        self.options = Arc::new(options);
        self
    }

    /// Whether no path is mapped.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The map for `path` and the rest of the path below its prefix.
    fn lookup<'p>(&self, path: &'p [u8]) -> Option<(&StaticMap, &'p [u8])> {
        self.maps.iter().find_map(|map| {
            let rest = path.strip_prefix(map.prefix.as_slice())?;
            (rest.is_empty() || rest[0] == b'/').then_some((map, rest))
        })
    }
}

/// Serves `request` if its path is mapped; `None` sends it on to the app.
/// `Some(keep_alive)`: it was answered, and whether the connection may
/// read another request. The connection asks only when some maps are
/// configured.
pub(super) async fn serve<S: Stream>(
    stream: &mut S,
    buf: &mut BytesMut,
    request: &Request,
    peer: &Peer,
    ctx: &ListenerContext,
    started: Instant,
    label: &RequestLabel,
) -> Option<bool> {
    let statics = &ctx.shared.static_files;
    let path = [
        request.var(b"SCRIPT_NAME").map_or(&b""[..], |v| v),
        request.var(b"PATH_INFO").map_or(&b""[..], |v| v),
    ]
    .concat();
    let (map, rest) = statics.lookup(&path)?;
    let method = request.var(b"REQUEST_METHOD").map_or(&b""[..], |v| v);
    let reply = if method == b"GET" || method == b"HEAD" {
        let lookup = Lookup {
            rest: rest.to_vec(),
            dir: map.dir.clone(),
            safe: statics.safe.clone(),
            conditions: Conditions::from_request(request),
            get: method == b"GET",
            options: statics.options.clone(),
            accepts: request
                .var(b"HTTP_ACCEPT_ENCODING")
                .map_or_else(Accepts::default, |v| Accepts::from_header(v)),
            uri: request
                .var(b"REQUEST_URI")
                .map_or_else(Vec::new, |v| v.to_vec()),
        };
        // Opening and stat-ing a file can block (a cold disk, NFS): off
        // the worker's single I/O thread.
        tokio::task::spawn_blocking(move || lookup.run())
            .await
            .unwrap_or_else(|e| Reply::error(500, format!("the lookup task failed: {e}")))
    } else {
        Reply::method_not_allowed()
    };
    let kept = send::send(stream, reply, request, peer, ctx, started, label).await;
    Some(kept && send::discard_body(stream, buf, request, ctx).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(maps: &[&str]) -> StaticFiles {
        let dir = std::env::temp_dir();
        let maps = maps
            .iter()
            .map(|p| format!("{p}={}", dir.display()).parse().unwrap())
            .collect();
        StaticFiles::new(maps, Vec::new())
    }

    fn matched(files: &StaticFiles, path: &str) -> Option<(String, String)> {
        files.lookup(path.as_bytes()).map(|(map, rest)| {
            (
                String::from_utf8(map.prefix.clone()).unwrap(),
                String::from_utf8(rest.to_vec()).unwrap(),
            )
        })
    }

    #[test]
    fn prefixes_match_on_segment_boundaries_longest_first() {
        let files = files(&["/static", "/static/img/", "/media"]);
        let m = |p| matched(&files, p);
        assert_eq!(
            m("/static/a.css"),
            Some(("/static".into(), "/a.css".into()))
        );
        assert_eq!(m("/static"), Some(("/static".into(), "".into())));
        assert_eq!(
            m("/static/img/x.png"),
            Some(("/static/img".into(), "/x.png".into()))
        );
        assert_eq!(m("/static/imgx"), Some(("/static".into(), "/imgx".into())));
        assert_eq!(m("/staticfoo"), None);
        assert_eq!(m("/app"), None);
    }

    #[test]
    fn a_root_map_takes_every_path() {
        let files = files(&["/"]);
        assert_eq!(matched(&files, "/x/y"), Some(("".into(), "/x/y".into())));
        assert_eq!(matched(&files, "*"), None);
    }

    #[test]
    fn map_options_are_validated() {
        assert!("static=/tmp".parse::<StaticMap>().is_err());
        assert!("/static".parse::<StaticMap>().is_err());
        assert!("/static=".parse::<StaticMap>().is_err());
        let later: StaticMap = "/static=/no/such/dir/here".parse().unwrap();
        assert!(later
            .missing()
            .unwrap()
            .contains("/no/such/dir/here does not exist yet"));
        let file = std::env::current_exe().unwrap();
        assert!(format!("/s={}", file.display())
            .parse::<StaticMap>()
            .is_err());
        let map: StaticMap = "/s/=.".parse().unwrap();
        assert_eq!(map.prefix, b"/s");
        assert!(map.dir.is_absolute());
    }
}
