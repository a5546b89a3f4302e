//! `Content-Type` from a file name's extension: a small built-in table of
//! what web apps ship as static assets. Text types say `charset=utf-8`;
//! anything unknown is `application/octet-stream`.

/// The `Content-Type` for a file named `name` (the last path segment as
/// requested, so a symlink is typed by its own name, as nginx does).
pub(super) fn content_type(name: &[u8]) -> &'static str {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return DEFAULT;
    };
    let ext = &name[dot + 1..];
    if ext.is_empty() || ext.len() > 8 {
        return DEFAULT;
    }
    let mut lower = [0u8; 8];
    let lower = &mut lower[..ext.len()];
    lower.copy_from_slice(ext);
    lower.make_ascii_lowercase();
    TYPES
        .iter()
        .find(|(e, _)| e.as_bytes() == &lower[..])
        .map_or(DEFAULT, |(_, t)| t)
}

/// For files whose extension is not in [`TYPES`].
const DEFAULT: &str = "application/octet-stream";

/// Extension (lowercase) → media type.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "text/xml; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("wasm", "application/wasm"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
];

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn known_extensions_map_to_their_type() {
        assert_eq!(content_type(b"app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type(b"a.b.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"logo.PNG"), "image/png");
        assert_eq!(content_type(b"font.woff2"), "font/woff2");
        assert_eq!(content_type(b"app.js.map"), "application/json");
    }

    #[test]
    fn unknown_or_missing_extensions_are_octet_stream() {
        for name in [
            &b"README"[..],
            b"archive.tar.xz",
            b"trailing.",
            b".hidden",
            b"x.verylongext",
        ] {
            assert_eq!(content_type(name), "application/octet-stream", "{name:?}");
        }
    }
}
