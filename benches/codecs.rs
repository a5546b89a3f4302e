//! Codec micro-benchmarks: how fast each wire decoder turns a typical
//! request into a [`Request`](rwsgi::protocol::Request), in bytes per second.
//!
//! - `http/get_browser`: a browser's GET head, ~500 bytes, 10 header fields.
//! - `http/post_chunked`: a POST head plus an 8 KiB body in 8 chunks, decoded
//!   to the last chunk with [`ChunkedDecoder`].
//! - `uwsgi/nginx_vars`: a uwsgi packet with the ~20 variables nginx sends
//!   (`uwsgi_params` plus the request's headers).
//! - `scgi/nginx_vars`: an SCGI netstring with the same variables.
//!
//! Each iteration decodes from a fresh buffer with a fresh decoder (made
//! outside the timed part), as a new connection would. Run with
//! `cargo bench --bench codecs`; it is a benchmark, `cargo test` asserts no
//! timing.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

use rwsgi::protocol::chunked::{Chunk, ChunkedDecoder};
use rwsgi::protocol::{scgi, uwsgi, BodyFraming, Decoder, Limits, Protocol};

/// A Firefox-like page load: 10 header fields, about 500 bytes.
const BROWSER_GET: &[u8] = b"GET /articles/2024/rust-wsgi-servers?page=2&sort=recent HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/articles/2024/\r\n\
Connection: keep-alive\r\n\
Cookie: sessionid=8f2c1e9a7b6d4c3e2f1a0b9c8d7e6f5a; csrftoken=Zx9Yw8Vu7Ts6Rq5Po4\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Priority: u=0, i\r\n\
\r\n";

/// The variables nginx sends for that page through `uwsgi_pass` or
/// `scgi_pass`: the stock params plus the request's headers as HTTP_*.
fn nginx_vars() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"QUERY_STRING", b"page=2&sort=recent"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (
            b"REQUEST_URI",
            b"/articles/2024/rust-wsgi-servers?page=2&sort=recent",
        ),
        (b"PATH_INFO", b"/articles/2024/rust-wsgi-servers"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.77"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"www.example.com"),
        (b"HTTP_HOST", b"www.example.com"),
        (
            b"HTTP_USER_AGENT",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            b"HTTP_ACCEPT",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
        (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br, zstd"),
        (b"HTTP_REFERER", b"https://www.example.com/articles/2024/"),
        (
            b"HTTP_COOKIE",
            b"sessionid=8f2c1e9a7b6d4c3e2f1a0b9c8d7e6f5a; csrftoken=Zx9Yw8Vu7Ts6Rq5Po4",
        ),
        (b"HTTP_UPGRADE_INSECURE_REQUESTS", b"1"),
    ]
}

/// A POST head and an 8 KiB body sent as 8 chunks of 1 KiB.
fn chunked_post() -> Vec<u8> {
    let mut wire = b"POST /api/upload HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: python-requests/2.32.3\r\n\
Accept: */*\r\n\
Content-Type: application/octet-stream\r\n\
Transfer-Encoding: chunked\r\n\
\r\n"
        .to_vec();
    for _ in 0..8 {
        wire.extend_from_slice(b"400\r\n");
        wire.extend_from_slice(&[b'x'; 1024]);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// Benchmarks decoding one request head of `protocol` from `wire`.
fn bench_head(c: &mut Criterion, group: &str, name: &str, protocol: Protocol, wire: &[u8]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                (
                    Decoder::new(protocol, Limits::default()),
                    BytesMut::from(wire),
                )
            },
            |(mut decoder, mut buf)| {
                let request = decoder.decode(&mut buf).expect("valid request");
                black_box(request.expect("a whole head"))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Decodes a chunked POST: the head, then every chunk up to the last.
fn decode_chunked_post(mut buf: BytesMut) -> usize {
    let mut decoder = Decoder::new(Protocol::Http, Limits::default());
    let request = decoder
        .decode(&mut buf)
        .expect("valid head")
        .expect("a whole head");
    assert_eq!(request.body, BodyFraming::Chunked);
    let mut body = ChunkedDecoder::new();
    let mut received = 0;
    loop {
        match body.decode(&mut buf).expect("valid chunk") {
            Some(Chunk::Data(data)) => received += data.len(),
            Some(Chunk::End) => return received,
            None => panic!("the whole body is buffered"),
        }
    }
}

fn http(c: &mut Criterion) {
    bench_head(c, "http", "get_browser", Protocol::Http, BROWSER_GET);

    let wire = chunked_post();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("post_chunked", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |buf| black_box(decode_chunked_post(buf)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn uwsgi_packet(c: &mut Criterion) {
    let wire = uwsgi::encode_packet(&nginx_vars());
    bench_head(c, "uwsgi", "nginx_vars", Protocol::Uwsgi, &wire);
}

fn scgi_netstring(c: &mut Criterion) {
    // SCGI wants CONTENT_LENGTH first and SCGI=1 present, as nginx sends.
    let mut vars: Vec<(&[u8], &[u8])> = vec![(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")];
    vars.extend(nginx_vars());
    let wire = scgi::encode_netstring(&vars);
    bench_head(c, "scgi", "nginx_vars", Protocol::Scgi, &wire);
}

criterion_group!(codecs, http, uwsgi_packet, scgi_netstring);
criterion_main!(codecs);
