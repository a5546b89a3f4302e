//! Runs gunicorn's public request corpus (`shared/conformance-vectors/gunicorn`)
//! through [`HttpCodec`] and [`ChunkedDecoder`]: every valid vector must decode
//! to the requests gunicorn expects, fed whole, byte by byte and at random
//! split points; every invalid vector must be refused. Vectors that need a
//! gunicorn feature rwsgi does not have, or on which rwsgi deliberately
//! differs, are listed below with the reason; none is ignored silently.

use std::collections::BTreeMap;
use std::fs;

use base64::Engine;
use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rwsgi::protocol::chunked::{Chunk, ChunkedDecoder};
use rwsgi::protocol::http::HttpCodec;
use rwsgi::protocol::{BodyFraming, ErrorKind, Limits, ProtocolError, Request};
use serde_json::Value;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance-vectors/gunicorn"
);

/// Vectors whose `cfg` turns on a gunicorn feature rwsgi does not have.
const SKIPPED: &[(&str, &str)] = &[
    (
        "valid/pp_01",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "valid/pp_02",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "valid/pp_03",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "valid/pp_04",
        "PROXY protocol (v2) is not supported by the HTTP codec",
    ),
    (
        "valid/pp_05",
        "PROXY protocol (v2) is not supported by the HTTP codec",
    ),
    (
        "invalid/pp_01",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "invalid/pp_02",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "invalid/pp_03",
        "PROXY protocol is not supported by the HTTP codec",
    ),
    (
        "valid/compat_obs_fold",
        "we never allow obs-fold (permit_obsolete_folding)",
    ),
    (
        "valid/compat_obs_fold_huge",
        "we never allow obs-fold (permit_obsolete_folding)",
    ),
    (
        "invalid/013",
        "needs permit_obsolete_folding; we refuse obs-fold before any limit",
    ),
    (
        "valid/031compat",
        "we never casefold or allow lowercase methods",
    ),
    (
        "valid/031compat2",
        "we never allow lowercase methods (permit_unconventional_http_method)",
    ),
    (
        "valid/040_compat",
        "header_map=dangerous: we always drop names with '_'",
    ),
    (
        "invalid/040",
        "header_map=refuse: we drop names with '_' instead (valid/040)",
    ),
    (
        "invalid/chunked_07",
        "header_map=refuse: we drop names with '_' instead",
    ),
    (
        "valid/028",
        "strip_header_spaces: we always refuse 'Name :' (invalid/020)",
    ),
    (
        "invalid/019",
        "forwarded_allow_ips: X-Forwarded-* is the WSGI layer's business",
    ),
];

/// Valid vectors rwsgi deliberately refuses, with the error it gives.
const REFUSED_VALID: &[(&str, ErrorKind, &str)] = &[
    (
        "valid/009",
        ErrorKind::BadRequest,
        "Content-Length with Transfer-Encoding: identity. RFC 9112 §6.1 lets a \
         server refuse CL+TE, and such a pair is the classic smuggling vector: \
         we refuse every CL+TE combination rather than special-case identity",
    ),
    (
        "valid/025",
        ErrorKind::NotImplemented,
        "Transfer-Encoding: gzip then chunked. We do not decode gzip, and \
         handing the app a still-gzipped wsgi.input would corrupt the body, \
         so 501 (RFC 9112 §6.1: unknown transfer-coding SHOULD be 501)",
    ),
    (
        "valid/025_line",
        ErrorKind::NotImplemented,
        "Transfer-Encoding: gzip,chunked; same as valid/025",
    ),
    (
        "valid/rfc9112_smuggle_gzip_chunked_01",
        ErrorKind::NotImplemented,
        "Transfer-Encoding: gzip, chunked; same as valid/025",
    ),
];

/// The Host field [`with_host`] adds to gunicorn's valid HTTP/1.1 vectors
/// that have none.
const ADDED_HOST: &str = "conformance.test";

/// A valid vector's bytes with a `Host` field after each HTTP/1.1 request
/// line that has none: gunicorn accepts HTTP/1.1 requests without Host,
/// RFC 9112 §3.2 says a server MUST answer them 400, and rwsgi does: a
/// vector refused for that alone must give gunicorn's requests once each
/// has a Host. `None` when no head needed one.
fn with_host(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut added = false;
    // Where the current HTTP/1.1 head's request line ends in `out`, and
    // whether a Host field was seen in it.
    let mut head: Option<(usize, bool)> = None;
    let mut rest = data;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(lf + 1);
        out.extend_from_slice(line);
        match &mut head {
            None => {
                let request_line = line.ends_with(b" HTTP/1.1\r\n")
                    && line.first().is_some_and(|b| !b.is_ascii_whitespace());
                if request_line {
                    head = Some((out.len(), false));
                }
            }
            Some((_, seen)) if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"host:") => {
                *seen = true;
            }
            Some((at, seen)) if line == b"\r\n" => {
                if !*seen {
                    let field = format!("Host: {ADDED_HOST}\r\n");
                    out.splice(*at..*at, field.bytes());
                    added = true;
                }
                head = None;
            }
            Some(_) => {}
        }
        rest = after;
    }
    out.extend_from_slice(rest);
    added.then_some(out)
}

/// gunicorn's expected requests with the field [`with_host`] added to each
/// HTTP/1.1 one that has no Host.
fn want_with_host(want: &[Value]) -> Vec<Value> {
    want.iter()
        .map(|req| {
            let mut req = req.clone();
            let http11 = req["version"][1] == 1;
            let headers = req["headers"].as_array_mut().unwrap();
            if http11 && !headers.iter().any(|h| h[0] == "HOST") {
                headers.insert(0, serde_json::json!(["HOST", ADDED_HOST]));
            }
            req
        })
        .collect()
}

/// Valid vectors whose body is shorter than their Content-Length: gunicorn's
/// reader stops at EOF, so its expected body is what the file holds. We
/// check that body arrived and that the codec still waits for the rest.
const TRUNCATED_BODY: &[&str] = &["valid/099"];

/// gunicorn's defaults, on top of which a vector's `cfg` applies.
fn limits_for(cfg: &serde_json::Map<String, Value>) -> Option<Limits> {
    let mut limits = Limits {
        request_line: 4094,
        header_count: 100,
        header_field: 8190,
        ..Limits::default()
    };
    for (key, value) in cfg {
        let n = usize::try_from(value.as_u64()?).ok()?;
        match key.as_str() {
            // gunicorn: 0 means unlimited.
            "limit_request_line" => limits.request_line = if n == 0 { usize::MAX } else { n },
            "limit_request_fields" => limits.header_count = n,
            // gunicorn: 0 means the default.
            "limit_request_field_size" => limits.header_field = if n == 0 { 8190 } else { n },
            _ => return None,
        }
    }
    Some(limits)
}

/// Undoes the corpus's escaping, as gunicorn's `treq.py` does: raw newlines
/// are layout only; `\r`, `\n`, `\t`, `\0` and `\xHH` stand for bytes.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let [b, tail @ ..] = rest {
        rest = tail;
        let byte = match (b, tail) {
            (b'\n', _) => continue,
            (b'\\', [escape, after @ ..]) => {
                rest = after;
                match escape {
                    b'r' => b'\r',
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'0' => 0,
                    b'x' => {
                        let (Some(hex), Some(after)) = (after.get(..2), after.get(2..)) else {
                            panic!("truncated \\x escape in corpus");
                        };
                        rest = after;
                        let hex = std::str::from_utf8(hex).expect("bad \\x escape");
                        u8::from_str_radix(hex, 16).expect("bad \\x escape")
                    }
                    _ => panic!("unexpected escape in corpus"),
                }
            }
            _ => *b,
        };
        out.push(byte);
    }
    out
}

/// Where a connection is between requests.
enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// The last request did not keep the connection alive.
    Closed,
}

/// A connection fed bytes piece by piece, as the server would.
struct Connection {
    codec: HttpCodec,
    buf: BytesMut,
    phase: Phase,
    done: Vec<(Request, Vec<u8>)>,
    current: Option<(Request, Vec<u8>)>,
}

/// How a fed vector ended.
#[derive(Debug)]
enum Outcome {
    /// All bytes consumed, no request half-read.
    Clean(Vec<(Request, Vec<u8>)>),
    /// EOF in the middle of a head or a body.
    Eof(Vec<(Request, Vec<u8>)>, Option<(Request, Vec<u8>)>),
    /// The codec refused the input.
    Refused(ProtocolError),
}

impl Connection {
    fn new(limits: Limits) -> Self {
        Connection {
            codec: HttpCodec::new(limits),
            buf: BytesMut::new(),
            phase: Phase::Head,
            done: Vec::new(),
            current: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.buf.extend_from_slice(bytes);
        while self.step()? {}
        Ok(())
    }

    /// One decoding step; false when more bytes are needed.
    fn step(&mut self) -> Result<bool, ProtocolError> {
        match &mut self.phase {
            Phase::Closed => Ok(false),
            Phase::Head => {
                let Some(req) = self.codec.decode(&mut self.buf)? else {
                    return Ok(false);
                };
                self.phase = match req.body {
                    BodyFraming::Length(n) => Phase::Length(n),
                    BodyFraming::Chunked => Phase::Chunked(ChunkedDecoder::new()),
                };
                self.current = Some((req, Vec::new()));
                Ok(true)
            }
            Phase::Length(0) => {
                self.finish_request();
                Ok(true)
            }
            Phase::Length(left) => {
                let n = usize::try_from(*left).unwrap().min(self.buf.len());
                if n == 0 {
                    return Ok(false);
                }
                let body = self.buf.split_to(n);
                *left -= n as u64;
                self.current.as_mut().unwrap().1.extend_from_slice(&body);
                Ok(true)
            }
            Phase::Chunked(decoder) => match decoder.decode(&mut self.buf)? {
                None => Ok(false),
                Some(Chunk::Data(data)) => {
                    assert!(!data.is_empty(), "empty Chunk::Data");
                    self.current.as_mut().unwrap().1.extend_from_slice(&data);
                    Ok(true)
                }
                Some(Chunk::End) => {
                    self.finish_request();
                    Ok(true)
                }
            },
        }
    }

    fn finish_request(&mut self) {
        let (req, body) = self.current.take().unwrap();
        self.phase = if req.keep_alive {
            Phase::Head
        } else {
            Phase::Closed
        };
        self.done.push((req, body));
    }

    fn eof(self) -> Outcome {
        let clean = match self.phase {
            Phase::Closed => true,
            Phase::Head => self.buf.is_empty(),
            _ => false,
        };
        if clean {
            Outcome::Clean(self.done)
        } else {
            Outcome::Eof(self.done, self.current)
        }
    }
}

/// Feeds `data` cut at `cuts` (sorted offsets).
fn run(data: &[u8], limits: &Limits, cuts: &[usize]) -> Outcome {
    let mut conn = Connection::new(limits.clone());
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        if let Err(e) = conn.feed(&data[from..cut]) {
            return Outcome::Refused(e);
        }
        from = cut;
    }
    conn.eof()
}

/// The ways each vector is fed: whole, byte by byte, and seeded random cuts.
fn splits(len: usize, rng: &mut StdRng) -> Vec<(String, Vec<usize>)> {
    let mut out = vec![
        ("whole".to_owned(), vec![]),
        ("byte by byte".to_owned(), (1..len).collect()),
    ];
    for _ in 0..12 {
        let pieces = rng.random_range(1..=4);
        let mut cuts: Vec<usize> = (0..pieces).map(|_| rng.random_range(0..=len)).collect();
        cuts.sort_unstable();
        out.push((format!("cuts {cuts:?}"), cuts));
    }
    out
}

/// gunicorn's expectations hold strings that are latin-1 decoded bytes.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("non latin-1"))
        .collect()
}

/// The variables a request's expected headers should produce: CONTENT_TYPE /
/// CONTENT_LENGTH or HTTP_*, repeated names combined as RFC 9110 says.
fn expected_vars(headers: &[Value]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut vars: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for pair in headers {
        let name = pair[0].as_str().unwrap();
        let value = latin1(pair[1].as_str().unwrap());
        let key = match name {
            "CONTENT-TYPE" | "CONTENT-LENGTH" => name.replace('-', "_"),
            _ => format!("HTTP_{}", name.replace('-', "_")),
        };
        match vars.get_mut(key.as_bytes()) {
            Some(old) if key == "CONTENT_LENGTH" => assert_eq!(*old, value),
            Some(old) => {
                old.extend_from_slice(if key == "HTTP_COOKIE" { b"; " } else { b", " });
                old.extend_from_slice(&value);
            }
            None => drop(vars.insert(key.into_bytes(), value)),
        }
    }
    vars
}

/// Compares one decoded request with gunicorn's expectation.
fn check_request(name: &str, got: &(Request, Vec<u8>), want: &Value) -> Result<(), String> {
    let (req, body) = got;
    let var = |k: &[u8]| req.var(k).map(|v| v.to_vec()).unwrap_or_default();
    let version = format!("HTTP/1.{}", want["version"][1]);
    let core = [
        (
            &b"REQUEST_METHOD"[..],
            latin1(want["method"].as_str().unwrap()),
        ),
        (b"REQUEST_URI", latin1(want["uri"].as_str().unwrap())),
        (b"SERVER_PROTOCOL", version.into_bytes()),
    ];
    for (key, expected) in core {
        if var(key) != expected {
            return Err(format!("{name}: {} differs", String::from_utf8_lossy(key)));
        }
    }
    let headers: BTreeMap<Vec<u8>, Vec<u8>> = req
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with(b"HTTP_") || k.starts_with(b"CONTENT_"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    if headers.len() != req.vars.len() - 5 {
        return Err(format!("{name}: unexpected extra variables"));
    }
    if headers != expected_vars(want["headers"].as_array().unwrap()) {
        return Err(format!("{name}: headers differ: {headers:?}"));
    }
    let want_body = base64::engine::general_purpose::STANDARD
        .decode(want["body_b64"].as_str().unwrap())
        .unwrap();
    if *body != want_body {
        return Err(format!("{name}: body differs"));
    }
    Ok(())
}

/// A valid vector: every split must give gunicorn's requests.
fn check_valid(name: &str, data: &[u8], limits: &Limits, want: &[Value], rng: &mut StdRng) {
    for (how, cuts) in splits(data.len(), rng) {
        let got = match run(data, limits, &cuts) {
            Outcome::Clean(reqs) => reqs,
            Outcome::Eof(mut reqs, Some(partial)) if TRUNCATED_BODY.contains(&name) => {
                reqs.push(partial);
                reqs
            }
            other => panic!("{name} ({how}): {other:?}"),
        };
        assert_eq!(got.len(), want.len(), "{name} ({how}): request count");
        for (got, want) in got.iter().zip(want) {
            if let Err(e) = check_request(name, got, want) {
                panic!("{e} ({how})");
            }
        }
    }
}

/// An invalid vector: every split must refuse it, the same way. Returns the
/// error, or `None` if it ended mid-message at EOF.
fn check_invalid(
    name: &str,
    data: &[u8],
    limits: &Limits,
    error: &str,
    rng: &mut StdRng,
) -> Option<ProtocolError> {
    let mut first: Option<Option<ProtocolError>> = None;
    for (how, cuts) in splits(data.len(), rng) {
        let got = match run(data, limits, &cuts) {
            Outcome::Refused(e) => Some(e),
            Outcome::Eof(..) => None,
            Outcome::Clean(reqs) => panic!("{name} ({how}) accepted: {reqs:?}"),
        };
        let kind = got.as_ref().map(ProtocolError::kind);
        assert!(allowed(error, kind), "{name} ({how}): {kind:?} for {error}");
        let first_kind = first.get_or_insert(got).as_ref().map(ProtocolError::kind);
        assert_eq!(first_kind, kind, "{name} ({how}) differs from whole");
    }
    first.flatten()
}

/// Which of our outcomes match gunicorn's exception (`None`: EOF mid-message).
fn allowed(gunicorn_error: &str, kind: Option<ErrorKind>) -> bool {
    use ErrorKind::*;
    match gunicorn_error {
        "NoMoreData" | "ChunkMissingTerminator" => kind.is_none(),
        "LimitRequestLine" => kind == Some(UriTooLong),
        "LimitRequestHeaders" => kind == Some(HeadersTooLarge),
        "InvalidHTTPVersion" => matches!(kind, Some(BadRequest | VersionNotSupported)),
        _ => matches!(kind, Some(BadRequest | NotImplemented)),
    }
}

#[test]
fn gunicorn_corpus() {
    let expected: Value =
        serde_json::from_slice(&fs::read(format!("{CORPUS}/expected.json")).unwrap()).unwrap();
    let expected = expected.as_object().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5753_4749);
    let (mut valid, mut invalid_err, mut invalid_eof, mut refused, mut skipped) = (0, 0, 0, 0, 0);
    let mut hostless = 0;
    for (name, vector) in expected {
        let data = unescape(&fs::read(format!("{CORPUS}/{name}.http")).unwrap());
        let cfg = vector["cfg"].as_object().unwrap();
        if let Some((_, why)) = SKIPPED.iter().find(|(n, _)| n == name) {
            println!("skip    {name}: {why}");
            skipped += 1;
            continue;
        }
        let limits =
            limits_for(cfg).unwrap_or_else(|| panic!("{name}: cfg {cfg:?} needs a SKIPPED entry"));
        if let Some((_, kind, why)) = REFUSED_VALID.iter().find(|(n, ..)| n == name) {
            match run(&data, &limits, &[]) {
                Outcome::Refused(e) if e.kind() == *kind => {}
                other => panic!("{name} should be refused with {kind:?}: {other:?}"),
            }
            println!("refuse  {name}: {why}");
            refused += 1;
        } else if let Some(want) = vector.get("requests") {
            let want = want.as_array().unwrap();
            match run(&data, &limits, &[]) {
                Outcome::Refused(e) if e.detail().contains("Host field missing") => {
                    let hosted = with_host(&data)
                        .unwrap_or_else(|| panic!("{name}: refused for a Host it has"));
                    check_valid(name, &hosted, &limits, &want_with_host(want), &mut rng);
                    hostless += 1;
                }
                _ => check_valid(name, &data, &limits, want, &mut rng),
            }
            valid += 1;
        } else {
            let error = vector["error"].as_str().unwrap();
            if let Some(e) = check_invalid(name, &data, &limits, error, &mut rng) {
                println!("refused {name}: {e} (gunicorn: {error})");
                invalid_err += 1;
            } else {
                println!("eof     {name}: incomplete at EOF ({error})");
                invalid_eof += 1;
            }
        }
    }
    println!(
        "valid passed: {valid} ({hostless} refused for a missing Host, then passed with one); \
         invalid refused: {} ({invalid_err} by error, {invalid_eof} incomplete at EOF); \
         valid deliberately refused: {refused}; skipped: {skipped}; total {}",
        invalid_err + invalid_eof,
        expected.len()
    );
    assert_eq!(
        valid + invalid_err + invalid_eof + refused + skipped,
        expected.len()
    );
    assert_eq!(
        invalid_eof, 2,
        "only NoMoreData and ChunkMissingTerminator end at EOF"
    );
    assert!(valid >= 40, "too few valid vectors ran: {valid}");
}

/// Guards the harness itself: the escapes decode to the bytes gunicorn sees.
#[test]
fn corpus_escapes_decode_like_gunicorn() {
    let raw = b"GET / HTTP/1.1\\r\\n\nX: a\\tb\\x07\\0\\r\\n\n\\r\\n\n";
    assert_eq!(
        unescape(raw),
        b"GET / HTTP/1.1\r\nX: a\tb\x07\0\r\n\r\n".to_vec()
    );
}

/// No input may panic the decoders: every corpus vector with a few bytes
/// replaced, inserted or removed, under default and tiny limits.
#[test]
fn mutated_corpus_never_panics() {
    let mut rng = StdRng::seed_from_u64(7);
    let interesting = b"\r\n \t:;,\"%_-0aF\x00\x7f\xff";
    let tiny = Limits {
        request_line: 12,
        header_count: 2,
        header_field: 12,
        head_size: 40,
        body: 3,
        ..Limits::default()
    };
    let mut runs = 0;
    for dir in ["valid", "invalid"] {
        for entry in fs::read_dir(format!("{CORPUS}/{dir}")).unwrap() {
            let data = unescape(&fs::read(entry.unwrap().path()).unwrap());
            for _ in 0..100 {
                let mut mutated = data.clone();
                for _ in 0..rng.random_range(1..=3) {
                    let at = rng.random_range(0..=mutated.len());
                    let byte = interesting[rng.random_range(0..interesting.len())];
                    match (rng.random_range(0..3), at < mutated.len()) {
                        (0, true) => mutated[at] = byte,
                        (1, _) => mutated.insert(at, byte),
                        (_, true) => drop(mutated.remove(at)),
                        _ => {}
                    }
                }
                let cut = rng.random_range(0..=mutated.len());
                for limits in [&Limits::default(), &tiny] {
                    let _ = run(&mutated, limits, &[]);
                    let _ = run(&mutated, limits, &[cut]);
                    runs += 2;
                }
            }
        }
    }
    println!("mutated runs without panic: {runs}");
}
