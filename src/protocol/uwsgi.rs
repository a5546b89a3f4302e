//! The uwsgi binary packet: a 4-byte header (`modifier1: u8`,
//! `datasize: u16 LE`, `modifier2: u8`), then `datasize` bytes of variables,
//! each `key_len: u16 LE, key, val_len: u16 LE, val`. The body follows,
//! `CONTENT_LENGTH` bytes. The reply is a plain HTTP response and the
//! connection closes after it.

use bytes::{Buf, Bytes, BytesMut};
use nom::multi::length_data;
use nom::number::complete::le_u16;
use nom::{IResult, Parser};

use super::cgi::request_from_vars;
use super::{ErrorKind, Limits, ProtocolError, Request};

/// Size of the fixed packet header.
const HEADER_LEN: usize = 4;

/// Decodes uwsgi request packets.
#[derive(Debug)]
pub struct UwsgiCodec {
    /// Caps the vars block (`limits.vars_block`) and the body.
    limits: Limits,
}

impl UwsgiCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        UwsgiCodec { limits }
    }

    /// Decodes one packet head from the front of `buf`, removing it; the
    /// body stays in `buf`. `Ok(None)`: not a whole packet yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        // Decided by the first byte alone, so the verdict never depends on
        // how the packet was split across reads.
        check_modifier(buf)?;
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let size = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
        if size > self.limits.vars_block {
            return Err(ProtocolError::new(
                ErrorKind::HeadersTooLarge,
                format!(
                    "uwsgi vars block of {size} bytes exceeds buffer-size {}",
                    self.limits.vars_block
                ),
            ));
        }
        if buf.len() < HEADER_LEN + size {
            buf.reserve(HEADER_LEN + size - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let block = buf.split_to(size).freeze();
        let vars = parse_vars(&block)?;
        request_from_vars(vars, &self.limits).map(Some)
    }
}

/// modifier1 0 is a WSGI request; nothing else is served here. An
/// uppercase letter there is the start of an HTTP method: the peer speaks
/// HTTP to the uwsgi socket.
fn check_modifier(buf: &[u8]) -> Result<(), ProtocolError> {
    match buf.first() {
        None | Some(0) => Ok(()),
        Some(m) if m.is_ascii_uppercase() => Err(wrong_protocol()),
        Some(m) => Err(ProtocolError::bad(format!(
            "uwsgi modifier1 {m} is not supported (only 0, a WSGI request)"
        ))),
    }
}

fn wrong_protocol() -> ProtocolError {
    ProtocolError::new(
        ErrorKind::WrongProtocol,
        "HTTP request on a uwsgi socket: this is a uwsgi socket, point nginx at it with uwsgi_pass (or use --http-socket for HTTP)",
    )
}

/// Parses the vars block into (key, value) pairs that share `block`'s memory.
fn parse_vars(block: &Bytes) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let mut vars = Vec::with_capacity(32);
    let mut rest: &[u8] = block;
    while !rest.is_empty() {
        let (after, (key, value)) = var_pair(rest).map_err(|_| {
            ProtocolError::bad(format!(
                "truncated uwsgi var at offset {} of a {}-byte vars block",
                block.len() - rest.len(),
                block.len()
            ))
        })?;
        vars.push((block.slice_ref(key), block.slice_ref(value)));
        rest = after;
    }
    Ok(vars)
}

/// One `key_len, key, val_len, val` entry.
fn var_pair(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (input, key) = length_data(le_u16).parse_complete(input)?;
    let (input, value) = length_data(le_u16).parse_complete(input)?;
    Ok((input, (key, value)))
}

/// Encodes `vars` as a uwsgi request packet (used by tests and benchmarks).
pub fn encode_packet(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut packet = vec![0u8];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BodyFraming;

    fn sample() -> Vec<u8> {
        encode_packet(&[
            (b"REQUEST_METHOD", b"POST"),
            (b"PATH_INFO", b"/x"),
            (b"CONTENT_LENGTH", b"5"),
            (b"HTTP_HOST", b"example.com"),
        ])
    }

    #[test]
    fn decodes_a_packet_and_leaves_the_body() {
        let mut buf = BytesMut::from(&sample()[..]);
        buf.extend_from_slice(b"hello");
        let req = UwsgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(req.var(b"PATH_INFO").unwrap().as_ref(), b"/x");
        assert_eq!(req.body, BodyFraming::Length(5));
        assert!(!req.keep_alive);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn any_split_decodes_the_same() {
        let packet = sample();
        for split in 0..packet.len() {
            let mut codec = UwsgiCodec::new(Limits::default());
            let mut buf = BytesMut::from(&packet[..split]);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "split {split}");
            buf.extend_from_slice(&packet[split..]);
            let req = codec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(req.vars.len(), 4);
        }
    }

    #[test]
    fn byte_by_byte_decodes() {
        let packet = sample();
        let mut codec = UwsgiCodec::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in packet {
            buf.extend_from_slice(&[b]);
            if let Some(r) = codec.decode(&mut buf).unwrap() {
                got = Some(r);
            }
        }
        assert_eq!(
            got.unwrap().var(b"HTTP_HOST").unwrap().as_ref(),
            b"example.com"
        );
    }

    #[test]
    fn vars_block_of_65535_bytes_is_accepted() {
        // 2 + 10 (key) + 2 + value = 65535: the largest block a u16 declares.
        let big = vec![b'a'; 65535 - 2 - 10 - 2];
        let packet = encode_packet(&[(b"HTTP_X_BIG", &big)]);
        assert_eq!(packet.len(), 4 + 65535);
        let mut buf = BytesMut::from(&packet[..]);
        let req = UwsgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(req.var(b"HTTP_X_BIG").unwrap().len(), big.len());
    }

    #[test]
    fn vars_block_over_limit_is_431() {
        let packet = encode_packet(&[(b"HTTP_X", &[b'a'; 200])]);
        let limits = Limits {
            vars_block: 100,
            ..Limits::default()
        };
        let err = UwsgiCodec::new(limits)
            .decode(&mut BytesMut::from(&packet[..]))
            .unwrap_err();
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn truncated_var_is_400() {
        // Declares a 10-byte key inside a 4-byte block.
        let mut buf = BytesMut::from(&[0u8, 4, 0, 0, 10, 0, b'a', b'b'][..]);
        let err = UwsgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.detail().contains("truncated"));
    }

    #[test]
    fn http_on_uwsgi_socket_is_named() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let err = UwsgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongProtocol);
        assert!(err.detail().contains("uwsgi_pass"));
    }

    #[test]
    fn wrong_protocol_verdict_does_not_depend_on_the_split() {
        // Found by fuzzing: "GETX/" was a 400 whole, WrongProtocol in parts.
        let whole = UwsgiCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&b"GETX/"[..]))
            .unwrap_err();
        let mut codec = UwsgiCodec::new(Limits::default());
        let first = codec.decode(&mut BytesMut::from(&b"G"[..])).unwrap_err();
        assert_eq!(whole.kind(), ErrorKind::WrongProtocol);
        assert_eq!(first.kind(), ErrorKind::WrongProtocol);
    }

    #[test]
    fn unsupported_modifier_is_400() {
        let mut buf = BytesMut::from(&[5u8, 0, 0, 0][..]);
        let err = UwsgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap_err();
        assert!(err.detail().contains("modifier1 5"));
    }
}
