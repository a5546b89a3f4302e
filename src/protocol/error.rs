//! Typed decode errors. Every error is the peer's fault (the client or the
//! proxy sent something bad) and maps to one HTTP status.

use std::fmt;

/// What was wrong with the input; decides the status the peer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed syntax (400).
    BadRequest,
    /// The request line is longer than the limit (414).
    UriTooLong,
    /// Too many header fields, a field too long, or a head/vars block too
    /// large (431).
    HeadersTooLarge,
    /// The declared body is larger than `limit-post` (413).
    BodyTooLarge,
    /// A transfer-coding or HTTP version we do not implement (501 / 505).
    NotImplemented,
    /// An HTTP version other than 1.0 / 1.1 (505).
    VersionNotSupported,
    /// A different protocol arrived on this socket (e.g. HTTP on the uwsgi
    /// socket): answered with a plain HTTP 400 that says which socket it is.
    WrongProtocol,
}

impl ErrorKind {
    /// The HTTP status code this kind of error is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::WrongProtocol => 400,
            ErrorKind::UriTooLong => 414,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::NotImplemented => 501,
            ErrorKind::VersionNotSupported => 505,
        }
    }
}

/// A decode error: its kind and a human-readable cause for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    kind: ErrorKind,
    detail: String,
}

impl ProtocolError {
    /// An error of `kind`, with `detail` naming the cause for the log.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ProtocolError {
            kind,
            detail: detail.into(),
        }
    }

    /// A 400 Bad Request with the given cause.
    pub fn bad(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The cause, for logs and the error page.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.kind.status())
    }
}

impl std::error::Error for ProtocolError {}
