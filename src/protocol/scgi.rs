//! SCGI: a netstring `<len>:` + `NAME\0VALUE\0...` + `,`, then the body
//! (`CONTENT_LENGTH` bytes). The reply is CGI style (`Status: 200 OK`) and
//! the connection closes after it. nginx sends the `SCGI: 1` variable only
//! with the stock `scgi_params`, so its absence is tolerated.

use bytes::{Buf, Bytes, BytesMut};
use nom::bytes::complete::{tag, take_until};
use nom::sequence::terminated;
use nom::{IResult, Parser};

use super::cgi::{parse_decimal, request_from_vars};
use super::{ErrorKind, Limits, ProtocolError, Request};

/// Most digits a netstring length may have (65535 needs 5; allow padding).
const MAX_LEN_DIGITS: usize = 10;

/// Decodes SCGI request heads.
#[derive(Debug)]
pub struct ScgiCodec {
    /// Caps the netstring (`limits.vars_block`) and the body.
    limits: Limits,
}

impl ScgiCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        ScgiCodec { limits }
    }

    /// Decodes one netstring head from the front of `buf`, removing it; the
    /// body stays in `buf`. `Ok(None)`: not a whole head yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        // Every check below depends only on bytes already seen in order, so
        // the verdict is the same however the head is split across reads.
        match buf.first() {
            None => return Ok(None),
            Some(b) if b.is_ascii_uppercase() => return Err(wrong_protocol()),
            Some(b) if !b.is_ascii_digit() => {
                return Err(ProtocolError::bad(
                    "SCGI request does not start with a netstring length (`<digits>:`)",
                ))
            }
            Some(_) => {}
        }
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_LEN_DIGITS {
            return Err(ProtocolError::bad(format!(
                "SCGI netstring length has more than {MAX_LEN_DIGITS} digits"
            )));
        }
        if digits == buf.len() {
            return Ok(None);
        }
        if buf[digits] != b':' {
            return Err(ProtocolError::bad(
                "SCGI netstring length is not followed by ':'",
            ));
        }
        let size = parse_decimal(&buf[..digits])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError::bad("SCGI netstring length overflows"))?;
        if size > self.limits.vars_block {
            return Err(ProtocolError::new(
                ErrorKind::HeadersTooLarge,
                format!(
                    "SCGI netstring of {size} bytes exceeds buffer-size {}",
                    self.limits.vars_block
                ),
            ));
        }
        let total = digits + 1 + size + 1;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        if buf[total - 1] != b',' {
            return Err(ProtocolError::bad(
                "SCGI netstring is not terminated by ','",
            ));
        }
        buf.advance(digits + 1);
        let block = buf.split_to(size).freeze();
        buf.advance(1);
        let vars = parse_headers(&block)?;
        if vars.first().map(|(k, _)| k.as_ref()) != Some(b"CONTENT_LENGTH".as_ref()) {
            return Err(ProtocolError::bad(
                "SCGI headers must start with CONTENT_LENGTH",
            ));
        }
        request_from_vars(vars, &self.limits).map(Some)
    }
}

fn wrong_protocol() -> ProtocolError {
    ProtocolError::new(
        ErrorKind::WrongProtocol,
        "HTTP request on an SCGI socket: this is an SCGI socket, point nginx at it with scgi_pass (or use --http-socket for HTTP)",
    )
}

/// Parses `NAME\0VALUE\0` pairs sharing `block`'s memory.
fn parse_headers(block: &Bytes) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let mut vars = Vec::with_capacity(32);
    let mut rest: &[u8] = block;
    while !rest.is_empty() {
        let (after, (key, value)) = header_pair(rest).map_err(|_| {
            ProtocolError::bad(format!(
                "malformed SCGI header at offset {} (each name and value ends with NUL)",
                block.len() - rest.len()
            ))
        })?;
        if key.is_empty() {
            return Err(ProtocolError::bad("empty SCGI header name"));
        }
        vars.push((block.slice_ref(key), block.slice_ref(value)));
        rest = after;
    }
    Ok(vars)
}

/// One `NAME\0VALUE\0` pair.
fn header_pair(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    (
        terminated(take_until(&b"\0"[..]), tag(&b"\0"[..])),
        terminated(take_until(&b"\0"[..]), tag(&b"\0"[..])),
    )
        .parse_complete(input)
}

/// Encodes `vars` as an SCGI netstring (used by tests and benchmarks).
pub fn encode_netstring(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(k);
        block.push(0);
        block.extend_from_slice(v);
        block.push(0);
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BodyFraming;

    fn sample() -> Vec<u8> {
        encode_netstring(&[
            (b"CONTENT_LENGTH", b"3"),
            (b"SCGI", b"1"),
            (b"REQUEST_METHOD", b"POST"),
            (b"PATH_INFO", b"/s"),
        ])
    }

    #[test]
    fn decodes_a_netstring_and_leaves_the_body() {
        let mut buf = BytesMut::from(&sample()[..]);
        buf.extend_from_slice(b"abc");
        let req = ScgiCodec::new(Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(req.var(b"PATH_INFO").unwrap().as_ref(), b"/s");
        assert_eq!(req.body, BodyFraming::Length(3));
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn any_split_decodes_the_same() {
        let packet = sample();
        for split in 0..packet.len() {
            let mut codec = ScgiCodec::new(Limits::default());
            let mut buf = BytesMut::from(&packet[..split]);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "split {split}");
            buf.extend_from_slice(&packet[split..]);
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap().vars.len(), 4);
        }
    }

    #[test]
    fn missing_scgi_header_is_tolerated() {
        let packet = encode_netstring(&[(b"CONTENT_LENGTH", b"0"), (b"PATH_INFO", b"/")]);
        let req = ScgiCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&packet[..]))
            .unwrap()
            .unwrap();
        assert_eq!(req.body, BodyFraming::Length(0));
    }

    #[test]
    fn missing_comma_is_400() {
        let mut packet = sample();
        *packet.last_mut().unwrap() = b';';
        let err = ScgiCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&packet[..]))
            .unwrap_err();
        assert!(err.detail().contains("','"));
    }

    #[test]
    fn content_length_must_come_first() {
        let packet = encode_netstring(&[(b"PATH_INFO", b"/"), (b"CONTENT_LENGTH", b"0")]);
        let err = ScgiCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&packet[..]))
            .unwrap_err();
        assert!(err.detail().contains("CONTENT_LENGTH"));
    }

    #[test]
    fn netstring_over_limit_is_431_before_buffering() {
        let limits = Limits {
            vars_block: 100,
            ..Limits::default()
        };
        let err = ScgiCodec::new(limits)
            .decode(&mut BytesMut::from(&b"5000:"[..]))
            .unwrap_err();
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn verdicts_do_not_depend_on_the_split() {
        // Found by fuzzing: each was judged differently whole and in parts.
        for input in [
            &b"Gx"[..],
            b"99999999999:",
            b"000000000000017:CONTENT_LENGTH\x000\x00,",
        ] {
            let whole = ScgiCodec::new(Limits::default()).decode(&mut BytesMut::from(input));
            for split in 1..input.len() {
                let mut codec = ScgiCodec::new(Limits::default());
                let mut buf = BytesMut::from(&input[..split]);
                let first = codec.decode(&mut buf);
                let verdict = match first {
                    Err(e) => Err(e.kind()),
                    Ok(Some(_)) => Ok(true),
                    Ok(None) => {
                        buf.extend_from_slice(&input[split..]);
                        codec
                            .decode(&mut buf)
                            .map(|r| r.is_some())
                            .map_err(|e| e.kind())
                    }
                };
                assert_eq!(
                    verdict,
                    whole.clone().map(|r| r.is_some()).map_err(|e| e.kind()),
                    "{input:?} split {split}"
                );
            }
        }
    }

    #[test]
    fn http_on_scgi_socket_is_named() {
        let err = ScgiCodec::new(Limits::default())
            .decode(&mut BytesMut::from(&b"POST /x HTTP/1.1\r\n"[..]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongProtocol);
        assert!(err.detail().contains("scgi_pass"));
    }
}
