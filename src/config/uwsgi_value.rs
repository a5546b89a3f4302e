//! Reading one ini value the way uWSGI's option parser for that option
//! reads it (see [`ValueKind`]). uWSGI keeps a `;` or `#` after a value in
//! the value (`core/ini.c` only skips lines that start with one), so
//! `processes = 4   ; four workers` works in uWSGI only because its number
//! parser stops at the first non-digit. rwsgi reads each value the same
//! way, and says what uWSGI ignored so `--check-config` can show it.

use super::options::parse_bool;
use super::uwsgi_table::ValueKind;

/// A value as uWSGI would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading {
    /// What the option gets.
    pub value: String,
    /// What the operator should know (the part uWSGI ignores...).
    pub note: Option<String>,
}

/// Reads `raw` (already trimmed) for an option uWSGI parses as `kind`.
pub(crate) fn read(kind: ValueKind, raw: &str) -> Reading {
    let plain = |value: &str| Reading {
        value: value.to_string(),
        note: None,
    };
    match kind {
        ValueKind::Number => match leading_number(raw) {
            Some((number, rest)) if !rest.trim().is_empty() => Reading {
                value: number.to_string(),
                note: Some(format!(
                    "uWSGI reads the number {number} and ignores `{}`; so does rwsgi",
                    rest.trim()
                )),
            },
            // No digits at all: uWSGI would silently read 0; rwsgi's own
            // check names the bad value instead.
            _ => plain(raw),
        },
        ValueKind::Flag | ValueKind::NegatedFlag => {
            if parse_bool(raw).is_some() {
                return plain(raw);
            }
            let on = kind == ValueKind::Flag;
            let shown = if on { "true" } else { "false" };
            Reading {
                value: shown.to_string(),
                note: Some(format!(
                    "uWSGI reads `{raw}` as {}: only a bare false/no/off/0 counts as false, \
                     and a `;` or `#` after a value is part of it",
                    if on { "on" } else { "off" }
                )),
            }
        }
        ValueKind::Text => match comment_start(raw) {
            Some(at) => Reading {
                value: raw.to_string(),
                note: Some(format!(
                    "uWSGI keeps `{}` in the value (a comment must be on a line of its own); so does rwsgi",
                    &raw[at..]
                )),
            },
            None => plain(raw),
        },
    }
}

/// The leading number C's `atoi`/`strtoul` read (an optional sign and
/// the digits after it) and what follows it; `None` without digits.
fn leading_number(raw: &str) -> Option<(&str, &str)> {
    let sign = usize::from(raw.starts_with(['-', '+']));
    let digits = raw[sign..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| raw.split_at(sign + digits))
}

/// Where a `;` or `#` that looks like a comment (after a blank) starts.
fn comment_start(raw: &str) -> Option<usize> {
    raw.char_indices()
        .zip(raw.chars().skip(1))
        .find(|((_, c), next)| c.is_whitespace() && matches!(next, ';' | '#'))
        .map(|((i, _), _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_option_takes_the_leading_digits_as_uwsgi_atoi_does() {
        let r = read(ValueKind::Number, "4   ; four workers");
        assert_eq!(r.value, "4");
        assert!(r.note.unwrap().contains("ignores `; four workers`"));
        assert_eq!(read(ValueKind::Number, "60  # seconds").value, "60");
        assert_eq!(read(ValueKind::Number, "3600s").value, "3600");
    }

    #[test]
    fn a_plain_number_reads_without_a_note() {
        assert_eq!(
            read(ValueKind::Number, "4"),
            Reading {
                value: "4".into(),
                note: None
            }
        );
    }

    #[test]
    fn a_number_without_digits_is_left_to_rwsgis_check_rather_than_read_as_zero() {
        assert_eq!(read(ValueKind::Number, "soon").value, "soon");
    }

    #[test]
    fn a_flag_with_a_trailing_comment_is_on_as_uwsgi_opt_true_reads_it() {
        let r = read(ValueKind::Flag, "true   ; Delete sockets");
        assert_eq!(r.value, "true");
        assert!(r.note.is_some());
        // Even `false` followed by a comment: uWSGI compares the whole value.
        assert_eq!(read(ValueKind::Flag, "false ; off?").value, "true");
        assert_eq!(read(ValueKind::Flag, "no").value, "no");
        assert_eq!(read(ValueKind::Flag, "").value, "");
    }

    #[test]
    fn a_text_option_keeps_the_comment_in_its_value_as_uwsgi_does() {
        let r = read(ValueKind::Text, "/var/log/app.log ; the log");
        assert_eq!(r.value, "/var/log/app.log ; the log");
        assert!(r.note.unwrap().contains("`; the log`"));
        assert_eq!(read(ValueKind::Text, "a;b#c").note, None);
    }
}
