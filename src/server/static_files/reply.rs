//! Builds the reply to a GET or HEAD of a mapped path, on tokio's
//! blocking pool: resolves and opens the file, evaluates the validators
//! and ranges, reads small bodies; errors become short text replies that
//! carry the reason for the log.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::conditional::{decide, Conditions, Decision, Validators};
use super::extras::{Accepts, StaticOptions};
use super::mime;
use super::resolve::{self, Opened, Refusal, RelativePath};

/// Files up to this size are read into the head's write buffer: one
/// write instead of a write and a sendfile.
const INLINE_LIMIT: u64 = 32 * 1024;

/// A response built here: head fields and what body follows.
pub(super) struct Reply {
    /// Status line, e.g. `206 Partial Content`.
    pub status: &'static str,
    /// Headers besides Date, Server and the connection's framing.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body, if the request gets one.
    pub body: Payload,
    /// Why the request was refused, for the info log; `None` when served.
    pub refused: Option<String>,
}

/// A reply's body.
pub(super) enum Payload {
    /// Nothing (304, HEAD).
    Empty,
    /// Bytes already in memory: an error text or a small file.
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, with sendfile.
    File {
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
}

/// What the blocking pool needs to answer a GET or HEAD.
pub(super) struct Lookup {
    /// The decoded path below the prefix.
    pub rest: Vec<u8>,
    /// The map's directory.
    pub dir: PathBuf,
    /// `--static-safe` paths.
    pub safe: Arc<[PathBuf]>,
    /// The request's validators and range.
    pub conditions: Conditions,
    /// GET (a body, ranges) rather than HEAD.
    pub get: bool,
    /// `static-gzip*` and `static-expires*`.
    pub options: Arc<StaticOptions>,
    /// The codings the request's Accept-Encoding allows.
    pub accepts: Accepts,
    /// The request URI, for `static-expires-uri`.
    pub uri: Vec<u8>,
}

impl Lookup {
    /// Resolves, opens and answers (200, 206, 304, 416 or an error).
    pub fn run(self) -> Reply {
        let rel = match resolve::relative_path(&self.rest) {
            Ok(rel) => rel,
            Err(refused) => return Reply::refused(refused),
        };
        match resolve::open(&self.dir, &rel, &self.safe) {
            Ok(opened) => self.answer(&rel, opened),
            Err(refused) => Reply::refused(refused),
        }
    }

    /// 200, 206, 304 or 416 for an open file.
    fn answer(&self, rel: &RelativePath, opened: Opened) -> Reply {
        let original = opened.path.clone();
        let (opened, coding) = match self.options.sibling(&opened.path, self.accepts) {
            Some((path, coding)) => match resolve::open_sibling(&path) {
                Some(sibling) => (sibling, Some(coding)),
                None => (opened, None),
            },
            None => (opened, None),
        };
        let size = opened.meta.len();
        // The sibling's own validators: its ETag differs from the file's.
        let validators = Validators::new(opened.meta.modified().ok(), size);
        let name = rel.path.file_name().map_or(&b""[..], |n| n.as_bytes());
        let mut headers = vec![
            header("ETag", &validators.etag()),
            header("Last-Modified", &validators.last_modified()),
        ];
        if let Some(coding) = coding {
            headers.push(header("Content-Encoding", coding));
            headers.push(header("Vary", "Accept-Encoding"));
        }
        let content_type = mime::content_type(name);
        let now = std::time::SystemTime::now();
        if let Some(expires) = self
            .options
            .expires(&original, &self.uri, content_type, now)
        {
            headers.push(header("Expires", &expires));
        }
        let decision = decide(&validators, &self.conditions, self.get);
        let (status, offset, len) = match decision {
            Decision::NotModified => {
                return Reply {
                    status: "304 Not Modified",
                    headers,
                    body: Payload::Empty,
                    refused: None,
                }
            }
            Decision::Unsatisfiable => {
                let range = self.conditions.range.as_deref().unwrap_or_default();
                let mut reply = Reply::error(
                    416,
                    format!(
                        "range {:?} not satisfiable for {size} bytes",
                        String::from_utf8_lossy(range)
                    ),
                );
                reply
                    .headers
                    .push(header("Content-Range", &format!("bytes */{size}")));
                return reply;
            }
            Decision::Full => ("200 OK", 0, size),
            Decision::Partial { start, end } => {
                headers.push(header(
                    "Content-Range",
                    &format!("bytes {start}-{end}/{size}"),
                ));
                ("206 Partial Content", start, end - start + 1)
            }
        };
        headers.push(header("Content-Type", content_type));
        headers.push(header("Accept-Ranges", "bytes"));
        headers.push(header("Content-Length", &len.to_string()));
        let body = if !self.get || len == 0 {
            Payload::Empty
        } else if len <= INLINE_LIMIT {
            match read_at(&opened.file, offset, len) {
                Ok(bytes) => Payload::Bytes(bytes),
                Err(e) => return Reply::error(500, format!("cannot read the file: {e}")),
            }
        } else {
            Payload::File {
                file: opened.file,
                offset,
                len,
            }
        };
        Reply {
            status,
            headers,
            body,
            refused: None,
        }
    }
}

fn read_at(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

impl Reply {
    /// An error reply: a short text body, and `reason` for the log.
    pub fn error(status: u16, reason: impl Into<String>) -> Reply {
        let status = status_line(status);
        let text = Bytes::from(format!("{status}\n"));
        Reply {
            status,
            headers: vec![
                header("Content-Type", "text/plain; charset=utf-8"),
                header("Content-Length", &text.len().to_string()),
            ],
            body: Payload::Bytes(text),
            refused: Some(reason.into()),
        }
    }

    /// 405 for anything but GET and HEAD.
    pub fn method_not_allowed() -> Reply {
        let mut reply = Reply::error(405, "method not allowed on a static path");
        reply.headers.push(header("Allow", "GET, HEAD"));
        reply
    }

    fn refused(refusal: Refusal) -> Reply {
        Reply::error(refusal.status, refusal.reason)
    }
}

fn status_line(code: u16) -> &'static str {
    match code {
        400 => "400 Bad Request",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Method Not Allowed",
        416 => "416 Range Not Satisfiable",
        _ => "500 Internal Server Error",
    }
}

fn header(name: &'static str, value: &str) -> (Bytes, Bytes) {
    (
        Bytes::from_static(name.as_bytes()),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}
