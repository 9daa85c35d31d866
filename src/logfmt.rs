//! logfmt: the one format of a log line, both ways.
//!
//! A log line is `TIMESTAMP LEVEL EVENT key=value ...`. Writing: a value is
//! bare when it is "plain"; otherwise it is wrapped in double quotes and
//! escaped (`\"`, `\\`, `\n`, `\r`, `\t`, `\xHH` for other control bytes).
//! Because a newline inside a value becomes the two characters `\n`, a chat
//! name or an error message cannot start a new log line, and because `=` and
//! spaces force quotes, it cannot look like a second key.
//!
//! Reading: [`parse_line`] is the strict inverse, used by `echochat log`
//! (`logread/`). A line it rejects is "damaged": shown as it is, never a
//! crash. This module knows nothing of events; `event.rs` uses [`Value`]
//! to write them.

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::time::SystemTime;

/// Displays a string as a logfmt value, quoted and escaped when needed.
pub struct Value<'a>(pub &'a str);

/// Whether `s` can be written without quotes: non-empty, and no space, `"`,
/// `=`, `\` or control character (C0, DEL or C1).
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| !(c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control()))
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain(self.0) {
            return f.write_str(self.0);
        }
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                // C1 controls are two UTF-8 bytes; write each byte so the
                // escape says exactly what arrived.
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// One parsed log line: `TIMESTAMP LEVEL EVENT key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// As written: `2026-11-22T13:53:12.123Z`.
    pub time: &'a str,
    /// `INFO`, `DEBUG`, `WARN`, `ERROR` or `TRACE` (without the padding).
    pub level: &'a str,
    pub event: &'a str,
    /// Keys in order; values unquoted and unescaped.
    pub fields: Vec<(&'a str, Cow<'a, str>)>,
}

impl Line<'_> {
    /// The value of `key`, if the line has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The timestamp as a time (it was checked to have the right shape;
    /// an impossible date such as month 13 gives `None`).
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(self.time).ok()
    }
}

/// Why a line is not a log line; says where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line (without its `\n`) strictly: the timestamp shape, a
/// known level padded to five characters, an event name of lowercase
/// letters, digits and `-`, then ` key=value` pairs where a value is bare
/// (see [`Value`]) or quoted with only the escapes `Value` writes.
///
/// # Errors
/// Anything else: the line is damaged (torn, edited, or not ours).
pub fn parse_line(line: &str) -> Result<Line<'_>, ParseError> {
    let b = line.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ ";
    if b.len() < shape.len()
        || !shape.iter().zip(b).all(|(want, got)| match want {
            b'd' => got.is_ascii_digit(),
            c => c == got,
        })
    {
        return Err(ParseError("no timestamp at the start"));
    }
    let time = &line[..24];
    let level = line
        .get(25..30)
        .ok_or(ParseError("no level after the timestamp"))?;
    let level = match level {
        "INFO " | "DEBUG" | "WARN " | "ERROR" | "TRACE" => level.trim_end(),
        _ => return Err(ParseError("unknown level")),
    };
    let rest = line
        .get(30..)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(ParseError("no event after the level"))?;
    let end = rest.find(' ').unwrap_or(rest.len());
    let event = &rest[..end];
    if event.is_empty()
        || !event
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(ParseError("bad event name"));
    }
    let mut fields = Vec::new();
    let mut r = &rest[end..];
    while !r.is_empty() {
        r = r
            .strip_prefix(' ')
            .ok_or(ParseError("no space between fields"))?;
        let eq = r.find('=').ok_or(ParseError("a field without '='"))?;
        let key = &r[..eq];
        if key.is_empty()
            || !key
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        {
            return Err(ParseError("bad key"));
        }
        r = &r[eq + 1..];
        let (value, next) = match r.strip_prefix('"') {
            Some(quoted) => parse_quoted(quoted)?,
            None => {
                let end = r.find(' ').unwrap_or(r.len());
                let v = &r[..end];
                if !is_plain(v) {
                    return Err(ParseError("a bare value that needs quotes"));
                }
                (Cow::Borrowed(v), &r[end..])
            }
        };
        fields.push((key, value));
        r = next;
    }
    Ok(Line {
        time,
        level,
        event,
        fields,
    })
}

/// A quoted value after its opening `"`: the unescaped text and what
/// follows the closing quote.
fn parse_quoted(s: &str) -> Result<(Cow<'_, str>, &str), ParseError> {
    let b = s.as_bytes();
    let close = |i: usize| -> Result<&str, ParseError> {
        let next = &s[i + 1..];
        if next.is_empty() || next.starts_with(' ') {
            Ok(next)
        } else {
            Err(ParseError("text right after a closing quote"))
        }
    };
    // Most quoted values have no escapes: borrow them.
    let mut i = 0;
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' && !b[i].is_ascii_control() {
        i += 1;
    }
    if b.get(i) == Some(&b'"') {
        return Ok((Cow::Borrowed(&s[..i]), close(i)?));
    }
    let mut out: Vec<u8> = b[..i].to_vec();
    loop {
        match b.get(i) {
            None => return Err(ParseError("a quote that is never closed")),
            Some(b'"') => break,
            Some(b'\\') => {
                let (byte, used) = match b.get(i + 1) {
                    Some(b'"') => (b'"', 2),
                    Some(b'\\') => (b'\\', 2),
                    Some(b'n') => (b'\n', 2),
                    Some(b'r') => (b'\r', 2),
                    Some(b't') => (b'\t', 2),
                    Some(b'x') => {
                        let hex = s
                            .get(i + 2..i + 4)
                            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                            .ok_or(ParseError("a bad \\x escape"))?;
                        // Two hex digits always fit a byte.
                        let v = u8::from_str_radix(hex, 16).unwrap_or(0);
                        (v, 4)
                    }
                    _ => return Err(ParseError("an unknown escape")),
                };
                out.push(byte);
                i += used;
            }
            Some(c) if c.is_ascii_control() => {
                return Err(ParseError("a raw control byte in a value"));
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    let text = match String::from_utf8(out) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok((Cow::Owned(text), close(i)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> String {
        Value(s).to_string()
    }

    #[test]
    fn plain_values_stay_bare() {
        assert_eq!(v("echo"), "echo");
        assert_eq!(v("127.0.0.1:7000"), "127.0.0.1:7000");
        assert_eq!(v("[::1]:7000"), "[::1]:7000");
        assert_eq!(v("héllo"), "héllo");
    }

    #[test]
    fn unsafe_values_are_quoted_and_escaped() {
        assert_eq!(v(""), "\"\"");
        assert_eq!(v("a b"), "\"a b\"");
        assert_eq!(v("k=v"), "\"k=v\"");
        assert_eq!(v("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(v("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(v("line\nfake INFO stop"), "\"line\\nfake INFO stop\"");
        assert_eq!(v("cr\rtab\t"), "\"cr\\rtab\\t\"");
        assert_eq!(v("\x1b[31mred"), "\"\\x1b[31mred\"");
        assert_eq!(v("del\x7f"), "\"del\\x7f\"");
        assert_eq!(v("c1\u{85}"), "\"c1\\xc2\\x85\"");
    }

    #[test]
    fn no_output_contains_a_raw_control_or_unescaped_quote() {
        let nasty = "x=\"1\"\n2026-01-01T00:00:00.000Z INFO stop reason=signal\r\x00\x1b\u{9b}";
        let out = v(nasty);
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        let inner = &out[1..out.len() - 1];
        // Every quote inside is escaped: removing escaped pairs leaves none.
        assert!(!inner.replace("\\\\", "").replace("\\\"", "").contains('"'));
    }

    const TS: &str = "2026-11-22T13:53:12.123Z";

    #[test]
    fn parses_what_value_writes() {
        for nasty in [
            "plain",
            "a b",
            "k=v",
            "say \"hi\"",
            "back\\slash",
            "l\nf",
            "\x1b[31m",
            "c1\u{85}",
            "",
        ] {
            let line = format!("{TS} INFO  join service=chat conn=3 name={}", Value(nasty));
            let parsed = parse_line(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(parsed.get("name"), Some(nasty), "{line}");
            assert_eq!(parsed.get("conn"), Some("3"));
        }
    }

    #[test]
    fn reads_the_parts() {
        let line = format!("{TS} DEBUG recv service=echo conn=17 bytes=1024");
        let l = parse_line(&line).unwrap();
        assert_eq!((l.time, l.level, l.event), (TS, "DEBUG", "recv"));
        assert_eq!(l.fields.len(), 3);
        assert!(l.timestamp().is_some());
        let bare = format!("{TS} INFO  start");
        assert_eq!(parse_line(&bare).unwrap().fields, vec![]);
    }

    #[test]
    fn damaged_lines_are_rejected_not_panicked_on() {
        let torn = "2026-11-30T22:28:53.715Z INFO  accept service=echo conn=2026-11-30T22:28:53.715Z INFO  accept";
        for bad in [
            "",
            "garbage",
            "2026-11-22T13:53:12.123Z",
            "2026-11-22T13:53:12.123Z INFO ",
            "2026-11-22T13:53:12.123Z NOTE  x",
            "2026-11-22T13:53:12.123Z INFO  Accept",
            "2026-11-22T13:53:12.123Z INFO  x k",
            "2026-11-22T13:53:12.123Z INFO  x k=\"open",
            "2026-11-22T13:53:12.123Z INFO  x k=\"a\"b",
            "2026-11-22T13:53:12.123Z INFO  x k=\"\\q\"",
            "2026-11-22T13:53:12.123Z INFO  x k=\"\\x4\"",
            "2026-11-22T13:53:12.123Z INFO  x k=v  j=w",
            "2026-11-22T13:53:12.123Z INFO  x k=\u{e9}=",
            torn,
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
        // Every prefix of a good line with quotes and escapes: never a panic.
        let good = format!("{TS} WARN  log-error error=\"disk \\\"full\\\" \\xc2\\x85\" lost=3");
        assert!(parse_line(&good).is_ok(), "{good}");
        for cut in 0..good.len() {
            if good.is_char_boundary(cut) {
                let _ = parse_line(&good[..cut]);
            }
        }
    }
}
