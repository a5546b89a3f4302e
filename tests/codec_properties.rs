//! Properties of the wire codecs over randomly generated valid requests
//! (seeded, so a failure replays): however the bytes of a request are split
//! into reads, they decode to the same requests (variables, body framing,
//! keep-alive...) and the same body bytes as the whole input does. Short
//! inputs are tried at every split point into 2 and 3 reads; long ones at a
//! few hundred random ones.
//!
//! The generators build HTTP/1.x requests (random methods, percent-escaped
//! paths, queries, header sets, Content-Length and chunked bodies with
//! extensions and trailers), uwsgi packets and SCGI netstrings with bodies.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rwsgi::protocol::chunked::{Chunk, ChunkedDecoder};
use rwsgi::protocol::{BodyFraming, Decoder, ErrorKind, Limits, Protocol, Request};

/// Requests generated per property.
const CASES: usize = 48;
/// Inputs up to this long are tried at every split into 2 reads.
const ALL_TWO_READ_SPLITS_UP_TO: usize = 512;
/// Inputs up to this long are tried at every split into 3 reads.
const ALL_THREE_READ_SPLITS_UP_TO: usize = 96;
/// Random splits tried (of each of 2 and 3 reads) on longer inputs.
const RANDOM_SPLITS: usize = 200;

// ---------------------------------------------------------------------------
// Decoding a connection the way the server does.

/// One request as it came out of a connection: the head in comparable form
/// and the body bytes its framing delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    vars: Vec<(Bytes, Bytes)>,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    http10: bool,
    head: bool,
    body: Vec<u8>,
}

impl Decoded {
    fn new(request: Request) -> Self {
        Decoded {
            vars: request.vars,
            framing: request.body,
            keep_alive: request.keep_alive,
            expect_continue: request.expect_continue,
            http10: request.http10,
            head: request.head,
            body: Vec::new(),
        }
    }

    fn var(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(k, _)| k.as_ref() == name.as_bytes())
            .map(|(_, v)| v.as_ref())
    }
}

/// Where a connection is between reads.
enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Feeds `reads` to a `protocol` connection: a head, its body by its
/// framing, the next head... Every request must be complete at the end and
/// no byte left over.
fn decode_connection(protocol: Protocol, reads: &[&[u8]]) -> Result<Vec<Decoded>, String> {
    let mut decoder = Decoder::new(protocol, Limits::default());
    let mut buf = BytesMut::new();
    let mut phase = Phase::Head;
    let mut done: Vec<Decoded> = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match &mut phase {
                Phase::Head => match decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                    None => break,
                    Some(request) => {
                        phase = match request.body {
                            BodyFraming::Length(n) => Phase::Length(n),
                            BodyFraming::Chunked => Phase::Chunked(ChunkedDecoder::new()),
                        };
                        done.push(Decoded::new(request));
                    }
                },
                Phase::Length(0) => phase = Phase::Head,
                Phase::Length(left) => {
                    let n = usize::try_from(*left).map_or(buf.len(), |n| n.min(buf.len()));
                    if n == 0 {
                        break;
                    }
                    *left -= n as u64;
                    let body = &mut done.last_mut().expect("a head first").body;
                    body.extend_from_slice(&buf.split_to(n));
                }
                Phase::Chunked(chunked) => {
                    match chunked.decode(&mut buf).map_err(|e| e.to_string())? {
                        None => break,
                        Some(Chunk::Data(data)) => {
                            let body = &mut done.last_mut().expect("a head first").body;
                            body.extend_from_slice(&data);
                        }
                        Some(Chunk::End) => phase = Phase::Head,
                    }
                }
            }
        }
    }
    match phase {
        Phase::Head if buf.is_empty() => Ok(done),
        Phase::Head => Err(format!("{} bytes left after the last head", buf.len())),
        _ => Err("input ended inside a body".to_owned()),
    }
}

/// Feeds `reads` to a [`ChunkedDecoder`]: the body and the bytes after its
/// end.
fn decode_chunked(reads: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), ErrorKind> {
    let mut chunked = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut ended = false;
    for read in reads {
        buf.extend_from_slice(read);
        while !ended {
            match chunked.decode(&mut buf).map_err(|e| e.kind())? {
                None => break,
                Some(Chunk::Data(data)) => body.extend_from_slice(&data),
                Some(Chunk::End) => ended = true,
            }
        }
    }
    assert!(ended, "no Chunk::End");
    Ok((body, buf.to_vec()))
}

// ---------------------------------------------------------------------------
// Splitting.

/// The cut points to try on an input of `len` bytes: every split into 2 and
/// 3 non-empty reads when short, `RANDOM_SPLITS` random ones of each when
/// long.
fn splits(len: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if len <= ALL_TWO_READ_SPLITS_UP_TO {
        out.extend((1..len).map(|cut| vec![cut]));
    } else {
        out.extend((0..RANDOM_SPLITS).map(|_| vec![rng.random_range(1..len)]));
    }
    if len <= ALL_THREE_READ_SPLITS_UP_TO {
        for first in 1..len {
            out.extend((first + 1..len).map(|second| vec![first, second]));
        }
    } else if len > 2 {
        for _ in 0..RANDOM_SPLITS {
            let first = rng.random_range(1..len - 1);
            out.push(vec![first, rng.random_range(first + 1..len)]);
        }
    }
    out
}

/// `data` cut at the sorted offsets `cuts`.
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut reads = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for &at in cuts.iter().chain(std::iter::once(&data.len())) {
        reads.push(&data[from..at]);
        from = at;
    }
    reads
}

/// Asserts that every split of `wire` decodes as the whole input does, and
/// returns the whole-input result.
fn assert_any_split_same<T: PartialEq + std::fmt::Debug>(
    wire: &[u8],
    rng: &mut StdRng,
    decode: impl Fn(&[&[u8]]) -> T,
) -> T {
    let whole = decode(&[wire]);
    for cuts in splits(wire.len(), rng) {
        let split = decode(&cut(wire, &cuts));
        assert!(
            split == whole,
            "split at {cuts:?} differs from the whole input\n input: {}\n whole: {whole:?}\n split: {split:?}",
            escaped(wire)
        );
    }
    whole
}

/// `bytes` printable, for failure messages.
fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

// ---------------------------------------------------------------------------
// Generating valid requests.

/// A generated request: its wire bytes and what it must decode to.
#[derive(Debug, Clone)]
struct Generated {
    wire: Vec<u8>,
    method: &'static str,
    path_info: Vec<u8>,
    query: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    keep_alive: bool,
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "MKCOL",
];
const FIELD_NAMES: &[&str] = &[
    "Accept",
    "Accept-Language",
    "User-Agent",
    "Cookie",
    "Cache-Control",
    "X-Forwarded-For",
    "X-Request-Id",
    "If-None-Match",
];
/// Path bytes that need no escaping (RFC 3986 pchar minus `%`).
const PATH_BYTES: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";

/// Whether to generate a small request (few fields, a tiny body), short
/// enough to be tried at every split into 3 reads.
fn small(rng: &mut StdRng) -> bool {
    rng.random_bool(0.3)
}

/// A random body of up to `max` bytes (any byte values).
fn random_body(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = match rng.random_range(0..4) {
        0 => 0,
        1 => rng.random_range(1..8),
        _ => rng.random_range(0..=max),
    };
    (0..len).map(|_| rng.random()).collect()
}

/// A path with percent-escapes, and the `PATH_INFO` it decodes to.
fn random_path(rng: &mut StdRng) -> (String, Vec<u8>) {
    let mut wire = String::new();
    let mut decoded = Vec::new();
    for _ in 0..rng.random_range(0..5) {
        let (segment, decoded_segment) = random_segment(rng);
        wire = wire + "/" + &segment;
        decoded.extend([b'/'].iter().chain(&decoded_segment));
    }
    if wire.is_empty() {
        return ("/".to_owned(), b"/".to_vec());
    }
    (wire, decoded)
}

/// A path segment with percent-escapes, and what it decodes to.
fn random_segment(rng: &mut StdRng) -> (String, Vec<u8>) {
    let mut wire = String::new();
    let mut decoded = Vec::new();
    for _ in 0..rng.random_range(0..10) {
        match rng.random_range(0..10) {
            0 | 1 => {
                let byte: u8 = rng.random();
                if rng.random_bool(0.5) {
                    write!(wire, "%{byte:02X}").unwrap();
                } else {
                    write!(wire, "%{byte:02x}").unwrap();
                }
                decoded.push(byte);
            }
            2 => {
                // A `%` not followed by two hex digits is kept as is.
                wire.push_str("%g");
                decoded.extend_from_slice(b"%g");
            }
            _ => {
                let byte = *PATH_BYTES.choose(rng).unwrap();
                wire.push(char::from(byte));
                decoded.push(byte);
            }
        }
    }
    (wire, decoded)
}

/// A query string (without `?`); escapes are left for the app to decode.
fn random_query(rng: &mut StdRng) -> String {
    let mut query = String::new();
    for i in 0..rng.random_range(1..4) {
        if i > 0 {
            query.push('&');
        }
        let key: String = (0..rng.random_range(1..6))
            .map(|_| char::from(rng.random_range(b'a'..=b'z')))
            .collect();
        write!(
            query,
            "{key}=%{:02X}{}",
            rng.random::<u8>(),
            rng.random::<u16>()
        )
        .unwrap();
    }
    query
}

/// A field value: visible ASCII, spaces and obs-text, sometimes with OWS
/// around it (which the codec trims).
fn random_field_value(rng: &mut StdRng) -> Vec<u8> {
    let mut value: Vec<u8> = (0..rng.random_range(0..40))
        .map(|_| match rng.random_range(0..10) {
            0 => b' ',
            1 => rng.random_range(0x80..=0xff),
            _ => rng.random_range(0x21..0x7f),
        })
        .collect();
    if rng.random_bool(0.2) {
        value.insert(0, b'\t');
        value.push(b' ');
    }
    value
}

/// A chunked encoding of `body` with random chunk sizes, hex case, leading
/// zeros, extensions and trailers.
fn chunk(rng: &mut StdRng, body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(70));
        let zeros = "0".repeat(rng.random_range(0..3));
        let size = if rng.random_bool(0.5) {
            format!("{zeros}{n:X}")
        } else {
            format!("{zeros}{n:x}")
        };
        wire.extend_from_slice(size.as_bytes());
        wire.extend_from_slice(random_chunk_extension(rng).as_bytes());
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    wire.extend_from_slice(b"0");
    wire.extend_from_slice(random_chunk_extension(rng).as_bytes());
    wire.extend_from_slice(b"\r\n");
    for i in 0..rng.random_range(0..3) {
        wire.extend_from_slice(format!("X-Trailer-{i}: ").as_bytes());
        wire.extend_from_slice(&random_field_value(rng));
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

/// Chunk extensions to pick from: mostly none, else `;name`, `;name=token`
/// (with BWS) or `;name="quoted"`.
const CHUNK_EXTENSIONS: &[&str] = &[
    "",
    "",
    "",
    ";ext",
    ";a=b",
    "; a = b",
    ";name=\"quoted \\\" value\"",
];

/// One of [`CHUNK_EXTENSIONS`].
fn random_chunk_extension(rng: &mut StdRng) -> &'static str {
    CHUNK_EXTENSIONS.choose(rng).unwrap()
}

/// A valid HTTP/1.x request. `keep_alive` forces a request after which the
/// connection stays open (for pipelining).
fn random_http(rng: &mut StdRng, keep_alive: bool) -> Generated {
    let small = small(rng);
    let method = *METHODS.choose(rng).unwrap();
    let http10 = rng.random_bool(0.2);
    let (path, path_info) = random_path(rng);
    let query = if !small && rng.random_bool(0.5) {
        random_query(rng)
    } else {
        String::new()
    };
    let target = if query.is_empty() && rng.random_bool(0.5) {
        path
    } else {
        format!("{path}?{query}")
    };
    let version = if http10 { "1.0" } else { "1.1" };
    let mut wire = format!("{method} {target} HTTP/{version}\r\n").into_bytes();
    let mut field = |name: &str, value: &[u8]| {
        wire.extend_from_slice(name.as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value);
        wire.extend_from_slice(b"\r\n");
    };
    if !http10 || rng.random_bool(0.5) {
        field("Host", b"example.com");
    }
    for _ in 0..rng.random_range(0..if small { 1 } else { 6 }) {
        let name = *FIELD_NAMES.choose(rng).unwrap();
        field(name, &random_field_value(rng));
    }
    if rng.random_bool(0.3) {
        field("Content-Type", b"application/octet-stream");
    }
    let closes = !keep_alive && rng.random_bool(0.3);
    match (http10, closes) {
        (_, true) => field("Connection", b"close"),
        (true, false) => field("Connection", b"keep-alive"),
        (false, false) if rng.random_bool(0.2) => field("Connection", b"keep-alive"),
        _ => {}
    }
    let chunked = !http10 && rng.random_bool(0.4);
    if !http10 && rng.random_bool(0.2) {
        field("Expect", b"100-continue");
    }
    let body = random_body(rng, if small { 8 } else { 600 });
    if chunked {
        field("Transfer-Encoding", b"chunked");
    } else if !body.is_empty() || rng.random_bool(0.3) {
        field("Content-Length", body.len().to_string().as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    if chunked {
        wire.extend_from_slice(&chunk(rng, &body));
    } else {
        wire.extend_from_slice(&body);
    }
    Generated {
        wire,
        method,
        path_info,
        query: query.into_bytes(),
        body,
        chunked,
        keep_alive: !closes,
    }
}

/// CGI variables as (name, value) pairs, in wire order.
type CgiVars = Vec<(Vec<u8>, Vec<u8>)>;

/// The CGI variables nginx would send for a random request, and its body.
/// Without `nul`, no value holds a NUL byte (SCGI ends values with one).
fn random_cgi_vars(rng: &mut StdRng, nul: bool) -> (CgiVars, Generated) {
    let no_nul = |value: Vec<u8>| -> Vec<u8> {
        if nul {
            return value;
        }
        value.into_iter().map(|b| b.max(1)).collect()
    };
    let small = small(rng);
    let method = *METHODS.choose(rng).unwrap();
    let (path, path_info) = random_path(rng);
    let path_info = no_nul(path_info);
    let query = if small {
        Vec::new()
    } else {
        random_query(rng).into_bytes()
    };
    let body = random_body(rng, if small { 8 } else { 600 });
    let mut vars: CgiVars = vec![
        (b"REQUEST_METHOD".to_vec(), method.as_bytes().to_vec()),
        (b"PATH_INFO".to_vec(), path_info.clone()),
        (b"QUERY_STRING".to_vec(), query.clone()),
    ];
    if !small {
        vars.extend([
            (b"REQUEST_URI".to_vec(), path.into_bytes()),
            (b"SERVER_PROTOCOL".to_vec(), b"HTTP/1.1".to_vec()),
            (b"REMOTE_ADDR".to_vec(), b"127.0.0.1".to_vec()),
            (b"SERVER_PORT".to_vec(), b"80".to_vec()),
        ]);
    }
    for _ in 0..rng.random_range(0..if small { 1 } else { 6 }) {
        let name = FIELD_NAMES.choose(rng).unwrap();
        let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        vars.push((var.into_bytes(), no_nul(random_field_value(rng))));
    }
    let at = rng.random_range(0..=vars.len());
    vars.insert(
        at,
        (
            b"CONTENT_LENGTH".to_vec(),
            body.len().to_string().into_bytes(),
        ),
    );
    let generated = Generated {
        wire: Vec::new(),
        method,
        path_info,
        query,
        body,
        chunked: false,
        keep_alive: false,
    };
    (vars, generated)
}

/// A uwsgi request packet (modifier1 0) followed by its body.
fn random_uwsgi(rng: &mut StdRng) -> Generated {
    let (vars, mut generated) = random_cgi_vars(rng, true);
    let mut block = Vec::new();
    for (key, value) in &vars {
        block.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
        block.extend_from_slice(key);
        block.extend_from_slice(&u16::try_from(value.len()).unwrap().to_le_bytes());
        block.extend_from_slice(value);
    }
    let mut wire = vec![0];
    wire.extend_from_slice(&u16::try_from(block.len()).unwrap().to_le_bytes());
    wire.push(0);
    wire.extend_from_slice(&block);
    wire.extend_from_slice(&generated.body);
    generated.wire = wire;
    generated
}

/// An SCGI netstring (CONTENT_LENGTH first, `SCGI: 1`) followed by its body.
fn random_scgi(rng: &mut StdRng) -> Generated {
    let (mut vars, mut generated) = random_cgi_vars(rng, false);
    let at = vars
        .iter()
        .position(|(k, _)| k == b"CONTENT_LENGTH")
        .unwrap();
    let content_length = vars.remove(at);
    vars.insert(0, content_length);
    vars.insert(1, (b"SCGI".to_vec(), b"1".to_vec()));
    let mut block = Vec::new();
    for (key, value) in &vars {
        block.extend_from_slice(key);
        block.push(0);
        block.extend_from_slice(value);
        block.push(0);
    }
    let mut wire = format!("{}:", block.len()).into_bytes();
    wire.extend_from_slice(&block);
    wire.push(b',');
    wire.extend_from_slice(&generated.body);
    generated.wire = wire;
    generated
}

/// Checks that the whole-input decoding is the request that was generated.
fn assert_decodes_as_generated(got: &Decoded, want: &Generated) {
    let context = || escaped(&want.wire);
    assert_eq!(
        got.var("REQUEST_METHOD"),
        Some(want.method.as_bytes()),
        "{}",
        context()
    );
    assert_eq!(
        got.var("PATH_INFO"),
        Some(&want.path_info[..]),
        "{}",
        context()
    );
    assert_eq!(
        got.var("QUERY_STRING"),
        Some(&want.query[..]),
        "{}",
        context()
    );
    assert_eq!(got.body, want.body, "{}", context());
    assert_eq!(
        got.framing == BodyFraming::Chunked,
        want.chunked,
        "{}",
        context()
    );
    assert_eq!(got.keep_alive, want.keep_alive, "{}", context());
    assert_eq!(got.head, want.method == "HEAD", "{}", context());
}

// ---------------------------------------------------------------------------
// The properties.

#[test]
fn http_generated_requests_decode_as_generated() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for _ in 0..4 * CASES {
        let generated = random_http(&mut rng, false);
        let decoded = decode_connection(Protocol::Http, &[&generated.wire])
            .unwrap_or_else(|e| panic!("{e}: {}", escaped(&generated.wire)));
        assert_eq!(decoded.len(), 1, "{}", escaped(&generated.wire));
        assert_decodes_as_generated(&decoded[0], &generated);
    }
}

#[test]
fn http_any_split_parses_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for _ in 0..CASES {
        let generated = random_http(&mut rng, false);
        let decode = |reads: &[&[u8]]| decode_connection(Protocol::Http, reads);
        let whole = assert_any_split_same(&generated.wire, &mut rng, decode);
        assert_decodes_as_generated(&whole.unwrap()[0], &generated);
    }
}

#[test]
fn http_pipelined_pair_any_split_parses_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    for _ in 0..CASES / 2 {
        let first = random_http(&mut rng, true);
        let second = random_http(&mut rng, false);
        let wire = [&first.wire[..], &second.wire[..]].concat();
        let decode = |reads: &[&[u8]]| decode_connection(Protocol::Http, reads);
        let whole = assert_any_split_same(&wire, &mut rng, decode).unwrap();
        assert_eq!(whole.len(), 2, "{}", escaped(&wire));
        assert_decodes_as_generated(&whole[0], &first);
        assert_decodes_as_generated(&whole[1], &second);
    }
}

#[test]
fn chunked_body_any_split_decodes_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for _ in 0..CASES {
        let body = random_body(&mut rng, 400);
        let next_request = b"GET / HTTP/1.1\r\n\r\n";
        let wire = [&chunk(&mut rng, &body)[..], next_request].concat();
        let whole = assert_any_split_same(&wire, &mut rng, decode_chunked);
        assert_eq!(whole, Ok((body, next_request.to_vec())));
    }
}

#[test]
fn uwsgi_any_split_parses_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);
    for _ in 0..CASES {
        let generated = random_uwsgi(&mut rng);
        let decode = |reads: &[&[u8]]| decode_connection(Protocol::Uwsgi, reads);
        let whole = assert_any_split_same(&generated.wire, &mut rng, decode);
        assert_decodes_as_generated(&whole.unwrap()[0], &generated);
    }
}

#[test]
fn scgi_any_split_parses_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0006);
    for _ in 0..CASES {
        let generated = random_scgi(&mut rng);
        let decode = |reads: &[&[u8]]| decode_connection(Protocol::Scgi, reads);
        let whole = assert_any_split_same(&generated.wire, &mut rng, decode);
        assert_decodes_as_generated(&whole.unwrap()[0], &generated);
    }
}
