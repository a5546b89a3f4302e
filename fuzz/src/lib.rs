//! What every fuzz target checks, shared so the four targets stay one line
//! each: a connection model that feeds bytes to a codec the way the server
//! does (head, then the body by its framing, then the next pipelined head),
//! fed the same input whole, in three pieces and byte by byte, under several
//! [`Limits`]. The codec must never panic, must always make progress (no
//! endless loop) and must reach the same outcome however the input is split.
//!
//! Everything here is deterministic in the input, so a crash artifact
//! replays the same way.

use std::fmt::Debug;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use rwsgi::protocol::chunked::{Chunk, ChunkedDecoder};
use rwsgi::protocol::{BodyFraming, Decoder, ErrorKind, Limits, Protocol, Request};

/// Inputs up to this size are also fed one byte per read.
const BYTEWISE_MAX: usize = 1024;

/// Set to `0` to compare only whether input was refused, not with which
/// error kind: for looking past a known error-kind disagreement (the
/// default, and CI, compare kinds).
const SAME_ERROR_KIND_ENV: &str = "RWSGI_FUZZ_SAME_ERROR_KIND";

/// Decodes `data` as a connection speaking `protocol`: heads, bodies and
/// pipelined heads, under default, small and input-derived limits, whole and
/// split; panics on any disagreement.
pub fn check_connection(protocol: Protocol, data: &[u8]) {
    for limits in limit_sets(data) {
        let whole = run(data, &limits, |reads| connection(protocol, &limits, reads));
        check_limits(protocol, &limits, &whole);
    }
}

/// Decodes `data` as back-to-back chunked bodies, whole and split; panics on
/// any disagreement.
pub fn check_chunked(data: &[u8]) {
    run(data, &"no limits", chunked_bodies);
}

/// Runs `feed` on `data` whole, in three pieces, and (when short) byte by
/// byte, and asserts the transcripts agree. Returns the whole-input
/// transcript. `context` (the limits) goes into the panic message.
fn run(
    data: &[u8],
    context: &dyn Debug,
    feed: impl Fn(&mut dyn Iterator<Item = &[u8]>) -> Transcript,
) -> Transcript {
    let whole = feed(&mut std::iter::once(data));
    let cuts = cuts(data);
    let split = feed(&mut pieces(data, &cuts));
    assert_same(&whole, &split, || format!("cut at {cuts:?}, {context:?}"));
    if data.len() <= BYTEWISE_MAX {
        let bytewise = feed(&mut data.chunks(1));
        assert_same(&whole, &bytewise, || format!("byte by byte, {context:?}"));
    }
    whole
}

/// Panics when `split` is not what `whole` was; `how` says how it was fed.
fn assert_same(whole: &Transcript, split: &Transcript, how: impl Fn() -> String) {
    static SAME_KIND: OnceLock<bool> = OnceLock::new();
    let same_kind =
        *SAME_KIND.get_or_init(|| std::env::var(SAME_ERROR_KIND_ENV).as_deref() != Ok("0"));
    let agree = if same_kind {
        whole == split
    } else {
        whole.exchanges == split.exchanges
            && whole.refused.is_some() == split.refused.is_some()
            && whole.buffered == split.buffered
    };
    assert!(
        agree,
        "decoded whole and {} differ:\n whole: {whole:?}\n split: {split:?}",
        how()
    );
}

/// Two cut points taken from the first byte: one near the front (where heads
/// start), one scaled across the whole input.
fn cuts(data: &[u8]) -> Vec<usize> {
    let seed = usize::from(data.first().copied().unwrap_or(0));
    let mut cuts = vec![seed % (data.len() + 1), seed * data.len() / 255];
    cuts.sort_unstable();
    cuts
}

/// `data` cut at the sorted offsets `cuts` (empty pieces included: a read
/// that returned nothing new must change nothing).
fn pieces<'a>(data: &'a [u8], cuts: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let ends = cuts.iter().copied().chain(std::iter::once(data.len()));
    let starts = std::iter::once(0).chain(cuts.iter().copied());
    starts.zip(ends).map(move |(from, to)| &data[from..to])
}

/// The limits each input is decoded under: the defaults, a small set that
/// inputs of a few hundred bytes can exceed, and a set derived from the last
/// byte so the fuzzer can explore every order in which limits trip. The field
/// line limit stays at 2 or more: below that, the CRLF that ends a head is
/// refused when its CR arrives alone but not when both arrive together, a
/// difference no sane setting reaches.
fn limit_sets(data: &[u8]) -> [Limits; 3] {
    let small = Limits {
        request_line: 40,
        header_count: 4,
        header_field: 48,
        head_size: 200,
        vars_block: 96,
        body: 64,
    };
    let b = usize::from(data.last().copied().unwrap_or(0));
    let derived = Limits {
        request_line: 1 + b % 61,
        header_count: b % 5,
        header_field: 2 + (b * 7) % 67,
        head_size: (b * 13) % 257,
        vars_block: (b * 3) % 131,
        body: (b % 4) as u64 * 17,
    };
    [Limits::default(), small, derived]
}

/// What one request came out as: its head, the body bytes the server would
/// have handed on, and whether the body reached its end.
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    head: Option<Head>,
    body: Vec<u8>,
    complete: bool,
}

/// A [`Request`] in comparable form.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    vars: Vec<(Bytes, Bytes)>,
    body: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    http10: bool,
    head: bool,
}

impl From<Request> for Head {
    fn from(r: Request) -> Self {
        Head {
            vars: r.vars,
            body: r.body,
            keep_alive: r.keep_alive,
            expect_continue: r.expect_continue,
            http10: r.http10,
            head: r.head,
        }
    }
}

impl Exchange {
    fn new(head: Option<Head>) -> Self {
        Exchange {
            head,
            body: Vec::new(),
            complete: false,
        }
    }
}

/// Everything a connection produced, and how it stopped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Transcript {
    exchanges: Vec<Exchange>,
    /// The error that ended the connection, if one did.
    refused: Option<ErrorKind>,
    /// Bytes left unconsumed at the end of the input (0 once refused: the
    /// server closes then, whatever was buffered).
    buffered: usize,
}

impl Transcript {
    /// Records how the input ended.
    fn finish(&mut self, buf: &[u8]) {
        self.buffered = if self.refused.is_some() { 0 } else { buf.len() };
    }
}

/// Where a connection is between reads.
enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    Refused,
}

/// What one decoding step did.
enum Step {
    /// More bytes are needed.
    NeedMore,
    /// Made progress; the phase stays.
    Stay,
    /// Made progress into a new phase.
    Next(Phase),
}

/// Feeds `reads` to a connection speaking `protocol`, as the server would,
/// decoding on after `keep_alive: false` too (a pipelining peer may send
/// more, and the codec must cope with whatever follows).
fn connection(
    protocol: Protocol,
    limits: &Limits,
    reads: &mut dyn Iterator<Item = &[u8]>,
) -> Transcript {
    let mut decoder = Decoder::new(protocol, limits.clone());
    let mut buf = BytesMut::new();
    let mut phase = Phase::Head;
    let mut out = Transcript::default();
    let mut fed = 0usize;
    let mut steps = 0usize;
    for read in reads {
        buf.extend_from_slice(read);
        fed += read.len();
        loop {
            steps += 1;
            assert!(steps <= 4 * fed + 64, "no progress after {steps} steps");
            let before = buf.len();
            let step = match &mut phase {
                Phase::Refused => break,
                Phase::Head => head_step(protocol, limits, &mut decoder, &mut buf, &mut out),
                Phase::Length(left) => Ok(length_step(left, &mut buf, &mut out)),
                Phase::Chunked(chunked) => chunked_step(chunked, &mut buf, &mut out),
            };
            assert!(buf.len() <= before, "a decoder grew the buffer");
            match step {
                Err(kind) => {
                    out.refused = Some(kind);
                    phase = Phase::Refused;
                }
                Ok(Step::NeedMore) => break,
                Ok(Step::Stay) => {}
                Ok(Step::Next(next)) => phase = next,
            }
        }
    }
    out.finish(&buf);
    out
}

/// Decodes a head; the next phase is its body.
fn head_step(
    protocol: Protocol,
    limits: &Limits,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    out: &mut Transcript,
) -> Result<Step, ErrorKind> {
    let before = buf.len();
    let Some(request) = decoder.decode(buf).map_err(|e| e.kind())? else {
        assert_eq!(buf.len(), before, "Ok(None) consumed head bytes");
        let most = largest_head(protocol, limits);
        assert!(
            before <= most,
            "{before} bytes buffered for a head (limit {most})"
        );
        return Ok(Step::NeedMore);
    };
    assert!(buf.len() < before, "a head was decoded from no bytes");
    let used = before - buf.len();
    let most = largest_head(protocol, limits);
    assert!(used <= most, "a head of {used} bytes (limit {most})");
    if protocol != Protocol::Http {
        assert!(!request.keep_alive, "uwsgi/SCGI request kept alive");
        assert!(request.body != BodyFraming::Chunked, "chunked outside HTTP");
    }
    if request.body == BodyFraming::Chunked {
        assert!(!request.http10, "chunked body on HTTP/1.0");
    }
    let next = match request.body {
        BodyFraming::Length(n) => Phase::Length(n),
        BodyFraming::Chunked => Phase::Chunked(ChunkedDecoder::new()),
    };
    out.exchanges.push(Exchange::new(Some(request.into())));
    Ok(Step::Next(next))
}

/// The most bytes a head may take under `limits`, so also the most a
/// decoder may leave buffered while it waits for the rest of one.
fn largest_head(protocol: Protocol, limits: &Limits) -> usize {
    /// Most digits an SCGI netstring length may have, `:` and `,`.
    const NETSTRING_FRAME: usize = 10 + 2;
    match protocol {
        Protocol::Http => limits.head_size,
        Protocol::Uwsgi => 4 + limits.vars_block,
        Protocol::Scgi => NETSTRING_FRAME + limits.vars_block,
    }
}

/// Takes Content-Length body bytes; back to heads once all have come.
fn length_step(left: &mut u64, buf: &mut BytesMut, out: &mut Transcript) -> Step {
    let exchange = out.exchanges.last_mut().expect("a body without a head");
    if *left == 0 {
        exchange.complete = true;
        return Step::Next(Phase::Head);
    }
    let n = usize::try_from(*left).map_or(buf.len(), |left| left.min(buf.len()));
    if n == 0 {
        return Step::NeedMore;
    }
    exchange.body.extend_from_slice(&buf.split_to(n));
    *left -= n as u64;
    Step::Stay
}

/// Takes one piece of a chunked body; back to heads after its end.
fn chunked_step(
    chunked: &mut ChunkedDecoder,
    buf: &mut BytesMut,
    out: &mut Transcript,
) -> Result<Step, ErrorKind> {
    let exchange = out.exchanges.last_mut().expect("a body without a head");
    Ok(match chunked_piece(chunked, buf)? {
        None => Step::NeedMore,
        Some(Chunk::Data(data)) => {
            exchange.body.extend_from_slice(&data);
            Step::Stay
        }
        Some(Chunk::End) => {
            exchange.complete = true;
            Step::Next(Phase::Head)
        }
    })
}

/// One [`ChunkedDecoder::decode`] call with its invariants checked: data is
/// never empty and never more than was consumed; the end is repeated
/// without consuming anything.
fn chunked_piece(
    chunked: &mut ChunkedDecoder,
    buf: &mut BytesMut,
) -> Result<Option<Chunk>, ErrorKind> {
    let before = buf.len();
    let piece = chunked.decode(buf).map_err(|e| e.kind())?;
    match &piece {
        Some(Chunk::Data(data)) => {
            assert!(!data.is_empty(), "empty Chunk::Data");
            assert!(before - buf.len() >= data.len(), "data not consumed");
        }
        Some(Chunk::End) => {
            let after = buf.len();
            let again = chunked.decode(buf).map_err(|e| e.kind());
            assert_eq!(again, Ok(Some(Chunk::End)), "end not repeated");
            assert_eq!(buf.len(), after, "a repeated end consumed bytes");
        }
        None => {}
    }
    Ok(piece)
}

/// Feeds `reads` as chunked bodies back to back (each end starts a new one).
fn chunked_bodies(reads: &mut dyn Iterator<Item = &[u8]>) -> Transcript {
    let mut chunked = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Transcript {
        exchanges: vec![Exchange::new(None)],
        ..Transcript::default()
    };
    let mut fed = 0usize;
    let mut steps = 0usize;
    'reads: for read in reads {
        buf.extend_from_slice(read);
        fed += read.len();
        loop {
            steps += 1;
            assert!(steps <= 4 * fed + 64, "no progress after {steps} steps");
            let exchange = out.exchanges.last_mut().expect("one body at least");
            match chunked_piece(&mut chunked, &mut buf) {
                Err(kind) => {
                    out.refused = Some(kind);
                    break 'reads;
                }
                Ok(None) => break,
                Ok(Some(Chunk::Data(data))) => exchange.body.extend_from_slice(&data),
                Ok(Some(Chunk::End)) => {
                    exchange.complete = true;
                    if buf.is_empty() {
                        break;
                    }
                    chunked = ChunkedDecoder::new();
                    out.exchanges.push(Exchange::new(None));
                }
            }
        }
    }
    out.finish(&buf);
    out
}

/// Limits the decoded requests must respect.
fn check_limits(protocol: Protocol, limits: &Limits, transcript: &Transcript) {
    for exchange in &transcript.exchanges {
        let Some(head) = &exchange.head else { continue };
        if let BodyFraming::Length(n) = head.body {
            assert!(limits.body == 0 || n <= limits.body, "limit-post ignored");
        }
        if protocol == Protocol::Http {
            let field_lines = head.vars.len().saturating_sub(5);
            assert!(field_lines <= limits.header_count, "header_count ignored");
        }
    }
}
