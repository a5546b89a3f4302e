//! One test per wire behaviour of [`ChunkedDecoder`], named after it.

use bytes::{Bytes, BytesMut};

use super::{Chunk, ChunkedDecoder};
use crate::protocol::{ErrorKind, ProtocolError};

/// Decodes `input` fed in `step`-byte pieces: the body, or the error, plus
/// what was left after `Chunk::End`.
fn decode_by(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ProtocolError> {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf)? {
                None => break,
                Some(Chunk::Data(data)) => body.extend_from_slice(&data),
                Some(Chunk::End) => return Ok((body, buf.to_vec())),
            }
        }
    }
    panic!("no Chunk::End for {:?}", String::from_utf8_lossy(input));
}

fn body(input: &[u8]) -> Vec<u8> {
    let whole = decode_by(input, input.len()).unwrap();
    assert_eq!(decode_by(input, 1).unwrap(), whole, "byte by byte differs");
    whole.0
}

fn rejected(input: &[u8]) -> ErrorKind {
    let kind = decode_by(input, input.len()).unwrap_err().kind();
    assert_eq!(
        decode_by(input, 1).unwrap_err().kind(),
        kind,
        "byte by byte differs"
    );
    kind
}

#[test]
fn chunks_are_concatenated() {
    assert_eq!(
        body(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        b"hello world"
    );
}

#[test]
fn end_leaves_the_next_request_in_the_buffer() {
    let (_, rest) = decode_by(b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 64).unwrap();
    assert_eq!(rest, b"GET / HTTP/1.1\r\n");
}

#[test]
fn end_is_repeated_without_consuming() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"0\r\n\r\nNEXT"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Chunk::End));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Chunk::End));
    assert_eq!(&buf[..], b"NEXT");
}

#[test]
fn chunked_data_arrives_incrementally() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"a\r\nhel"[..]);
    let first = decoder.decode(&mut buf).unwrap();
    assert_eq!(first, Some(Chunk::Data(Bytes::from_static(b"hel"))));
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"lo worl\r\n1\r\nd\r\n0\r\n\r\n");
    let second = decoder.decode(&mut buf).unwrap();
    let rest_of_chunk = Chunk::Data(Bytes::from_static(b"lo worl"));
    assert_eq!(second, Some(rest_of_chunk), "never past the chunk");
    let third = decoder.decode(&mut buf).unwrap();
    assert_eq!(third, Some(Chunk::Data(Bytes::from_static(b"d"))));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Chunk::End));
    assert!(buf.is_empty());
}

#[test]
fn chunk_size_is_hex_with_leading_zeros_and_any_case() {
    assert_eq!(
        body(b"0005\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n").len(),
        15
    );
    assert_eq!(body(b"00000000000000000000001\r\nx\r\n0\r\n\r\n"), b"x");
}

#[test]
fn chunked_size_overflow_is_rejected() {
    assert_eq!(rejected(b"10000000000000000\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"fffffffffffffffff\r\n"), ErrorKind::BadRequest);
}

#[test]
fn largest_chunk_size_is_accepted() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    let data = decoder.decode(&mut buf).unwrap();
    assert_eq!(data, Some(Chunk::Data(Bytes::from_static(b"ab"))));
}

#[test]
fn signed_chunk_size_is_rejected() {
    assert_eq!(rejected(b"+5\r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"-5\r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn empty_chunk_size_is_rejected() {
    assert_eq!(rejected(b"\r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(
        rejected(b";a=b\r\nhello\r\n0\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn whitespace_around_chunk_size_is_rejected() {
    assert_eq!(rejected(b" 5\r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"5 \r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn chunk_extensions_are_accepted_and_ignored() {
    let input = b"5; a; b=c ;d = \"e \\\" f\"\r\nhello\r\n0;last\r\n\r\n";
    assert_eq!(body(input), b"hello");
}

#[test]
fn invalid_chunk_extension_is_rejected() {
    assert_eq!(rejected(b"5;\r\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(
        rejected(b"5;a=\r\nhello\r\n0\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"5;a=\"open\r\nhello\r\n0\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(
        rejected(b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"),
        ErrorKind::BadRequest
    );
}

#[test]
fn bare_lf_in_chunked_body_is_rejected() {
    assert_eq!(rejected(b"5\nhello\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"5\r\nhello\r\n0\r\n\n"), ErrorKind::BadRequest);
}

#[test]
fn missing_crlf_after_chunk_data_is_rejected() {
    assert_eq!(rejected(b"5\r\nhelloX\r\n0\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(rejected(b"5\r\nhello\rX0\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn trailers_are_consumed() {
    assert_eq!(body(b"1\r\nx\r\n0\r\nVary: *\r\nX-Sum: 1\r\n\r\n"), b"x");
}

#[test]
fn forbidden_trailer_is_rejected() {
    for name in [
        "Content-Length: 9",
        "transfer-encoding: chunked",
        "HOST: evil",
    ] {
        let input = format!("1\r\nx\r\n0\r\n{name}\r\n\r\n");
        assert_eq!(rejected(input.as_bytes()), ErrorKind::BadRequest, "{name}");
    }
}

#[test]
fn malformed_trailer_is_rejected() {
    assert_eq!(rejected(b"0\r\nNo colon\r\n\r\n"), ErrorKind::BadRequest);
    assert_eq!(
        rejected(b"0\r\nA: 1\r\n folded\r\n\r\n"),
        ErrorKind::BadRequest
    );
    assert_eq!(rejected(b"0\r\nA : 1\r\n\r\n"), ErrorKind::BadRequest);
}

#[test]
fn endless_chunk_size_line_is_rejected() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"1;a=b"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[b'x'; 5000]);
    assert!(decoder.decode(&mut buf).is_err());
}

#[test]
fn endless_trailer_section_is_431() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"0\r\n"[..]);
    let mut result = Ok(None);
    for _ in 0..1000 {
        buf.extend_from_slice(b"X-Pad: 0123456789\r\n");
        result = decoder.decode(&mut buf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err().kind(), ErrorKind::HeadersTooLarge);
}
