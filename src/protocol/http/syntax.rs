//! RFC 9110 / RFC 9112 grammar shared by the head parser and the chunked
//! decoder: byte classes (token, field value, request-target), line finding
//! and the field-line parser used for header and trailer fields. Pure
//! functions over complete byte slices; they know nothing of limits or state.

use std::ops::Range;

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::bytes::streaming;
use nom::combinator::opt;
use nom::multi::many0_count;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::protocol::ProtocolError;

/// nom result over bytes with the unit error: callers map failures to a
/// [`ProtocolError`] that names the cause themselves, so nom's error values
/// would only cost time.
pub(crate) type PResult<'a, O> = IResult<&'a [u8], O, ()>;

/// `tchar` (RFC 9110 §5.6.2): the bytes allowed in methods, field names,
/// transfer-codings and chunk-extension names.
pub(crate) fn is_tchar(b: u8) -> bool {
    CLASSES[b as usize] & TCHAR != 0
}

/// `OWS` / `BWS` bytes: SP and HTAB.
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Bytes allowed inside a field value (RFC 9110 §5.5): VCHAR, SP, HTAB and
/// obs-text. Every other CTL (CR, LF, NUL, DEL...) is rejected.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    CLASSES[b as usize] & FIELD_VALUE != 0
}

/// Bytes allowed in a request-target: visible ASCII plus obs-text (raw UTF-8
/// from sloppy clients is passed through, as gunicorn and nginx do). SP, CTLs
/// and DEL end or break the target.
pub(crate) fn is_target_byte(b: u8) -> bool {
    CLASSES[b as usize] & TARGET != 0
}

/// Class bits of [`CLASSES`].
const TCHAR: u8 = 1;
const FIELD_VALUE: u8 = 2;
const TARGET: u8 = 4;

/// The byte classes above, one bit each, looked up per byte of a head: a
/// table load instead of a chain of range checks per byte took a typical
/// 16-byte field line from 295 to 200 instructions (callgrind).
static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let tchar = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let field_value = b == b'\t' || (b >= 0x20 && b < 0x7f) || b >= 0x80;
        let target = (b >= 0x21 && b < 0x7f) || b >= 0x80;
        let mut class = 0;
        if tchar {
            class |= TCHAR;
        }
        if field_value {
            class |= FIELD_VALUE;
        }
        if target {
            class |= TARGET;
        }
        table[i] = class;
        i += 1;
    }
    table
}

/// Offset of the first LF in `input`, or `None` when none has arrived yet
/// (nom's `Incomplete`). nom's single-byte search runs on `memchr`.
pub(crate) fn find_lf(input: &[u8]) -> Option<usize> {
    let found: PResult<&[u8]> = streaming::take_until(&b"\n"[..]).parse(input);
    found.ok().map(|(_, before)| before.len())
}

/// Leading and trailing SP/HTAB removed.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Where a field line's name and (trimmed) value sit, relative to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldLine {
    /// The field name, exactly as sent (case preserved for the error log).
    pub(crate) name: Range<usize>,
    /// The value without leading/trailing SP/HTAB; empty values are allowed.
    pub(crate) value: Range<usize>,
}

/// Parses one field line (CRLF already removed): `token ":" OWS value OWS`.
/// Rejects obs-fold, whitespace before the colon, non-token name bytes and
/// CTLs in the value, each with its own cause.
pub(crate) fn field_line(line: &[u8]) -> Result<FieldLine, ProtocolError> {
    if line.first().copied().is_some_and(is_ows) {
        return Err(ProtocolError::bad(
            "field line starts with whitespace (obsolete line folding)",
        ));
    }
    let name: PResult<&[u8]> = take_while1(is_tchar).parse(line);
    let Ok((rest, name)) = name else {
        return Err(ProtocolError::bad("empty or invalid field name"));
    };
    let rest = match rest.split_first() {
        Some((b':', rest)) => rest,
        Some((b, _)) if is_ows(*b) => {
            return Err(ProtocolError::bad(
                "whitespace between field name and colon",
            ))
        }
        Some((b, _)) => {
            return Err(ProtocolError::bad(format!(
                "invalid byte 0x{b:02x} in field name"
            )))
        }
        None => return Err(ProtocolError::bad("field line without a colon")),
    };
    let value: PResult<&[u8]> = take_while(is_field_value_byte).parse(rest);
    let Ok((tail, raw_value)) = value else {
        return Err(ProtocolError::bad("invalid field value"));
    };
    if let Some(b) = tail.first() {
        return Err(ProtocolError::bad(format!(
            "invalid byte 0x{b:02x} in field value"
        )));
    }
    let value = trim_ows(raw_value);
    let start = offset_in(line, value);
    Ok(FieldLine {
        name: 0..name.len(),
        value: start..start + value.len(),
    })
}

/// Offset of `part` inside `whole`, `part` being a sub-slice of it.
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// `quoted-string` (RFC 9110 §5.6.4), returned with its quotes.
pub(crate) fn quoted_string(input: &[u8]) -> PResult<'_, &[u8]> {
    let Some((b'"', mut rest)) = input.split_first() else {
        return Err(nom::Err::Error(()));
    };
    loop {
        match rest {
            [b'"', tail @ ..] => {
                let len = input.len() - tail.len();
                return Ok((tail, &input[..len]));
            }
            [b'\\', escaped, tail @ ..] if is_field_value_byte(*escaped) => rest = tail,
            [b, tail @ ..] if is_qdtext(*b) => rest = tail,
            _ => return Err(nom::Err::Error(())),
        }
    }
}

/// `qdtext`: what may appear unescaped between the quotes.
fn is_qdtext(b: u8) -> bool {
    b == b'\t'
        || b == b' '
        || b == 0x21
        || (0x23..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b >= 0x80
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`: the
/// parameter list of a chunk-extension (RFC 9112 §7.1.1); returns how many.
pub(crate) fn chunk_extensions(input: &[u8]) -> PResult<'_, usize> {
    let bws = || take_while(is_ows);
    let param = (
        bws(),
        tag(&b";"[..]),
        bws(),
        take_while1(is_tchar),
        opt(preceded((bws(), tag(&b"="[..]), bws()), ext_value)),
    );
    many0_count(param).parse(input)
}

/// A chunk-extension value: a token or a quoted-string.
fn ext_value(input: &[u8]) -> PResult<'_, &[u8]> {
    match input {
        [b'"', ..] => quoted_string(input),
        _ => take_while1(is_tchar).parse(input),
    }
}

/// The value of one hex digit.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives every byte the class the RFCs define, spelled out
    /// here by the grammar's own character lists.
    #[test]
    fn every_byte_is_classed_as_the_grammar_says() {
        let tchar_symbols = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let vchar = (0x21..=0x7e).contains(&b);
            let obs_text = b >= 0x80;
            assert_eq!(
                is_tchar(b),
                b.is_ascii_digit() || b.is_ascii_alphabetic() || tchar_symbols.contains(&b),
                "tchar {b:#04x}"
            );
            assert_eq!(
                is_field_value_byte(b),
                vchar || obs_text || b == b' ' || b == b'\t',
                "field value {b:#04x}"
            );
            assert_eq!(is_target_byte(b), vchar || obs_text, "target {b:#04x}");
        }
    }
}
