//! From a URL path to an open file, refusing anything that could leave the
//! mapped directory: `..` segments (after percent-decoding, so `%2e%2e`
//! and `..%2f` too), NUL bytes, and symlinks whose target lies outside
//! the directory (unless under a `--static-safe` path). Blocking: runs on
//! tokio's blocking pool.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a path was not served: the status and the reason for the log.
#[derive(Debug)]
pub(super) struct Refusal {
    /// 400, 403, 404 or 500.
    pub status: u16,
    /// For the log line, prefixed with `static: `.
    pub reason: String,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// The path below a map's prefix, checked segment by segment.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RelativePath {
    /// The segments joined, never absolute, never with `..`.
    pub path: PathBuf,
    /// The URL ended with `/`: only a directory could match (and
    /// directories are refused), so a file there is a 404.
    pub trailing_slash: bool,
}

/// Splits `rest` (the decoded path after the prefix) into segments.
/// Empty and `.` segments are dropped; a `..` segment or a NUL byte
/// refuses the request. Backslashes are ordinary bytes on Unix.
pub(super) fn relative_path(rest: &[u8]) -> Result<RelativePath, Refusal> {
    if rest.contains(&0) {
        return Err(Refusal::new(400, "NUL byte in path refused"));
    }
    let mut path = PathBuf::new();
    for segment in rest.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Refusal::new(403, "path traversal refused ('..' segment)")),
            _ => path.push(OsStr::from_bytes(segment)),
        }
    }
    Ok(RelativePath {
        path,
        trailing_slash: rest.len() > 1 && rest.ends_with(b"/"),
    })
}

/// An open regular file ready to be served.
#[derive(Debug)]
pub(super) struct Opened {
    /// The file, opened read-only.
    pub file: File,
    /// Its real path (symlinks resolved), which static options match.
    pub path: PathBuf,
    /// Its metadata, taken from the open descriptor.
    pub meta: Metadata,
}

/// Opens `rel` below `dir`. Both `dir` and the target are canonicalized
/// on every request, so a deploy that swaps a `current` symlink is
/// followed; the target must stay under the canonical `dir` or under one
/// of the `safe` paths.
///
/// The check guards against what remote clients send, not against a local
/// user who can write into `dir` and races a symlink in between the check
/// and the open; the open does refuse a symlink as its last component.
pub(super) fn open(dir: &Path, rel: &RelativePath, safe: &[PathBuf]) -> Result<Opened, Refusal> {
    let root = dir.canonicalize().map_err(|e| {
        // Not there yet (a deploy creates it later): as a missing file.
        let status = if e.kind() == std::io::ErrorKind::NotFound {
            404
        } else {
            500
        };
        Refusal::new(
            status,
            format!("the mapped directory {} is unusable: {e}", dir.display()),
        )
    })?;
    let real = root.join(&rel.path).canonicalize().map_err(not_found)?;
    if !real.starts_with(&root) && !under_safe(&real, safe) {
        return Err(Refusal::new(
            403,
            format!(
                "symlink out of {} refused (it leads to {}; see --static-safe)",
                root.display(),
                real.display()
            ),
        ));
    }
    let meta = std::fs::metadata(&real).map_err(not_found)?;
    check_kind(&meta, rel)?;
    // O_NONBLOCK: opening a FIFO swapped in after the check must not hang
    // a thread (it is no-op for regular files).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(not_found)?;
    let meta = file.metadata().map_err(not_found)?;
    check_kind(&meta, rel)?;
    Ok(Opened {
        file,
        path: real,
        meta,
    })
}

/// Only regular files are served; a directory is a 403 (there is no
/// listing and no index file).
fn check_kind(meta: &Metadata, rel: &RelativePath) -> Result<(), Refusal> {
    if meta.is_dir() {
        return Err(Refusal::new(403, "directory refused (no listing)"));
    }
    if !meta.is_file() {
        return Err(Refusal::new(403, "not a regular file"));
    }
    if rel.trailing_slash {
        return Err(Refusal::new(404, "a file asked for as a directory"));
    }
    Ok(())
}

fn under_safe(real: &Path, safe: &[PathBuf]) -> bool {
    safe.iter()
        .filter_map(|s| s.canonicalize().ok())
        .any(|s| real.starts_with(s))
}

/// Maps a lookup or open error to 404 (nothing there), 403 (not allowed)
/// or 500 (the disk failed).
fn not_found(e: io::Error) -> Refusal {
    let code = e.raw_os_error().unwrap_or(0);
    match e.kind() {
        io::ErrorKind::NotFound => Refusal::new(404, "no such file"),
        io::ErrorKind::PermissionDenied => Refusal::new(403, format!("permission denied: {e}")),
        _ if code == libc::ENOTDIR || code == libc::ENAMETOOLONG => {
            Refusal::new(404, format!("no such file: {e}"))
        }
        _ if code == libc::ELOOP => Refusal::new(403, format!("symlink refused: {e}")),
        _ => Refusal::new(500, format!("cannot open the file: {e}")),
    }
}

/// Opens a pre-compressed sibling of a served file: a regular file, never
/// through a symlink (which could lead out of the mapped directory).
pub(super) fn open_sibling(path: &Path) -> Option<Opened> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then(|| Opened {
        file,
        path: path.to_path_buf(),
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(raw: &[u8]) -> Result<RelativePath, u16> {
        relative_path(raw).map_err(|r| r.status)
    }

    #[test]
    fn segments_join_without_dots_or_empty_parts() {
        let got = rel(b"//a/./b\\c/").unwrap();
        assert_eq!(got.path, PathBuf::from("a/b\\c"));
        assert!(got.trailing_slash);
        assert_eq!(rel(b"/x.txt").unwrap().path, PathBuf::from("x.txt"));
        assert!(!rel(b"/").unwrap().trailing_slash);
        assert_eq!(rel(b"").unwrap().path, PathBuf::new());
    }

    #[test]
    fn dot_dot_segments_and_nul_are_refused() {
        for bad in [
            &b"/../x"[..],
            b"/a/../b",
            b"/a/..",
            b"/..",
            b"//..//etc/passwd",
        ] {
            assert_eq!(rel(bad), Err(403), "{bad:?}");
        }
        assert_eq!(rel(b"/a\0.txt"), Err(400));
        // Not a `..` segment: ordinary names.
        for ok in [&b"/..a"[..], b"/a..", b"/...", b"/..\\x"] {
            assert!(rel(ok).is_ok(), "{ok:?}");
        }
    }
}
