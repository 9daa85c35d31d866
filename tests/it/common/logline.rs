//! The one log-line parser of the tests: strict, so a test that reads the
//! log also proves every line it read keeps DESIGN.md's grammar.
//!
//! A line is `TIMESTAMP LEVEL EVENT key=value ...`:
//! - `TIMESTAMP` is RFC 3339 UTC with milliseconds (`2026-11-22T13:53:12.123Z`);
//! - `LEVEL` is padded to five characters (`INFO `, `WARN `, `DEBUG`,
//!   `ERROR`, `TRACE`), then one space, as the server writes it;
//! - `EVENT` is lowercase letters and `-` (`accept`, `bind-retry`);
//! - each field is ` key=value`, a key at most once; a value is bare (not
//!   empty; no space, `"`, `=`, `\` or control character) or double-quoted
//!   with only the escapes `\"`, `\\`, `\n`, `\r`, `\t` and `\xHH` (for a
//!   byte no other escape names and that is not printable ASCII: the bytes
//!   of a control character).
//!
//! Anything else is an error, so a forged key, a raw control byte or a half
//! line cannot slip through a test. Values come back unescaped.
//!
//! A file that is still being written may end in a half line: read it with
//! [`complete_lines`] (`Server::log` does) and parse only whole lines.

use std::fmt;

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `2026-11-22T13:53:12.123Z`, as written.
    pub time: String,
    /// `INFO`, `WARN`, `DEBUG`, `ERROR` or `TRACE` (without the padding).
    pub level: String,
    pub event: String,
    /// Keys in the order written, values unescaped.
    pub fields: Vec<(String, String)>,
    /// The line as written, for failure messages (`Display` shows it).
    pub text: String,
}

impl LogLine {
    /// The unescaped value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The keys in the order written.
    pub fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// `event` with `key=value` among its fields: the usual question a test
    /// asks of a line (`ev.is("disconnect", "conn", &conn)`).
    pub fn is(&self, event: &str, key: &str, value: &str) -> bool {
        self.event == event && self.get(key) == Some(value)
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The width of `2026-11-22T13:53:12.123Z`.
const TIME_LEN: usize = 24;

/// Parses one line (without its `\n`); says what is wrong if it breaks the
/// grammar in the module doc.
pub fn parse_log_line(line: &str) -> Result<LogLine, String> {
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        return Err(format!("raw control character {c:?}"));
    }
    let time = line.get(..TIME_LEN).ok_or("no timestamp at the start")?;
    check_time(time)?;
    let rest = line[TIME_LEN..]
        .strip_prefix(' ')
        .ok_or("no space after the timestamp")?;
    let level = rest.get(..5).ok_or("no level")?;
    if !["INFO ", "WARN ", "DEBUG", "ERROR", "TRACE"].contains(&level) {
        return Err(format!("bad level {level:?}"));
    }
    let rest = rest[5..]
        .strip_prefix(' ')
        .ok_or("no single space after the level")?;
    let end = rest.find(' ').unwrap_or(rest.len());
    let (event, mut rest) = rest.split_at(end);
    if !event.starts_with(|c: char| c.is_ascii_lowercase())
        || !event.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    {
        return Err(format!("bad event name {event:?}"));
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix(' ').ok_or("no space before a key")?;
        let eq = rest.find('=').ok_or("a word without =")?;
        let key = &rest[..eq];
        if !key.starts_with(|c: char| c.is_ascii_lowercase())
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!("bad key {key:?}"));
        }
        if fields.iter().any(|(k, _)| k == key) {
            return Err(format!("key {key} twice"));
        }
        let (value, after) =
            parse_value(&rest[eq + 1..]).map_err(|e| format!("value of {key}: {e}"))?;
        fields.push((key.to_string(), value));
        rest = after;
    }
    Ok(LogLine {
        time: time.to_string(),
        level: level.trim_end().to_string(),
        event: event.to_string(),
        fields,
        text: line.to_string(),
    })
}

/// `dddd-dd-ddTdd:dd:dd.dddZ`, with the month, day and clock in range.
fn check_time(t: &str) -> Result<(), String> {
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let ok_shape = t.len() == shape.len()
        && shape.iter().zip(t.bytes()).all(|(&s, c)| match s {
            b'd' => c.is_ascii_digit(),
            s => s == c,
        });
    if !ok_shape {
        return Err(format!("bad timestamp {t:?}"));
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(u32::MAX);
    let in_range = (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 61; // a leap second
    if !in_range {
        return Err(format!("timestamp out of range {t:?}"));
    }
    Ok(())
}

/// One value at the start of `s`; returns it unescaped and what follows it
/// (empty, or starting with the space before the next key).
fn parse_value(s: &str) -> Result<(String, &str), String> {
    let Some(q) = s.strip_prefix('"') else {
        let end = s.find(' ').unwrap_or(s.len());
        let v = &s[..end];
        if v.is_empty() {
            return Err("empty bare value".into());
        }
        if v.contains(['"', '=', '\\']) {
            return Err(format!("bare value {v:?} needs quoting"));
        }
        return Ok((v.to_string(), &s[end..]));
    };
    // Bytes, because `\xHH` escapes one byte of a character at a time.
    let mut value = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    loop {
        match b.get(i) {
            None => return Err("unterminated quoted value".into()),
            Some(b'"') => break,
            Some(b'\\') => {
                let c = *b.get(i + 1).ok_or("dangling backslash")?;
                i += 2;
                value.push(match c {
                    b'"' | b'\\' => c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'x' => {
                        let hex = q.get(i..i + 2).unwrap_or("");
                        let byte = u8::from_str_radix(hex, 16)
                            .ok()
                            .filter(|_| hex.bytes().all(|h| h.is_ascii_hexdigit()))
                            .ok_or_else(|| format!("bad \\x escape {hex:?}"))?;
                        if (0x20..0x7f).contains(&byte) || b"\"\\\n\r\t".contains(&byte) {
                            return Err(format!("\\x{hex} escapes a byte that has its own form"));
                        }
                        i += 2;
                        byte
                    }
                    c => return Err(format!("unknown escape \\{}", char::from(c))),
                });
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
    let rest = &q[i + 1..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err("text right after a closing quote".into());
    }
    let value = String::from_utf8(value).map_err(|_| "\\x escapes that are not UTF-8")?;
    Ok((value, rest))
}

/// The part of `text` up to and including its last `\n`: the lines a
/// writer has finished. A reader racing the server may see a half line at
/// the end; that is not yet a line, not a malformed one.
pub fn complete_lines(text: &str) -> &str {
    text.rfind('\n').map_or("", |i| &text[..=i])
}

/// Parses every line of a finished log text; fails the test on the first
/// bad line, or if the text ends mid-line.
#[track_caller]
pub fn parse_all(text: &str) -> Vec<LogLine> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "log ends mid-line: {:?}",
        text.lines().last()
    );
    text.lines().map(parse_or_fail).collect()
}

/// Parses one line, failing the test if it is malformed.
#[track_caller]
pub fn parse_or_fail(line: &str) -> LogLine {
    parse_log_line(line).unwrap_or_else(|e| panic!("malformed log line ({e}): {line:?}"))
}

/// The event name of one whole line of [`Server::log`](super::Server::log).
/// Strict like the rest: a malformed line fails the test. Prefer
/// `server.events()` or `server.wait_log(...)`, which parse once.
#[track_caller]
pub fn event_name(line: &str) -> Option<&str> {
    let event = parse_or_fail(line).event;
    // TIMESTAMP, space, five-character level, space: then the event.
    let start = TIME_LEN + 7;
    Some(&line[start..start + event.len()])
}

/// The unescaped value of `key` in one whole line (strict, as
/// [`event_name`]).
#[track_caller]
pub fn field(line: &str, key: &str) -> Option<String> {
    parse_or_fail(line).get(key).map(str::to_string)
}

// The parser must be able to fail, or every log check built on it proves
// nothing.
#[test]
fn parser_accepts_the_contract_and_unescapes() {
    let good = "2026-11-22T13:53:12.123Z INFO  console text=\"x reason=exit \\\"q\\\" \\x1b \\\\ \\t\\xc2\\x85\"";
    let l = parse_log_line(good).unwrap();
    assert_eq!(l.time, "2026-11-22T13:53:12.123Z");
    assert_eq!(l.level, "INFO");
    assert_eq!(l.event, "console");
    assert_eq!(l.keys(), ["text"]);
    assert_eq!(l.get("text"), Some("x reason=exit \"q\" \x1b \\ \t\u{85}"));
    assert_eq!(l.to_string(), good);

    let l = parse_log_line(
        "2026-11-22T13:53:12.124Z DEBUG recv service=echo conn=17 bytes=1024 name=\"\"",
    )
    .unwrap();
    assert!(l.is("recv", "conn", "17"));
    assert!(!l.is("send", "conn", "17"));
    assert_eq!(l.get("name"), Some(""));
    assert_eq!(l.keys(), ["service", "conn", "bytes", "name"]);
    // An event without fields, and a non-ASCII bare value.
    let l = parse_log_line("2026-11-22T13:53:12.124Z WARN  bind-retry").unwrap();
    assert_eq!((l.level.as_str(), l.event.as_str()), ("WARN", "bind-retry"));
    let l = parse_log_line("2026-11-22T13:53:12.124Z INFO  join name=Олена").unwrap();
    assert_eq!(l.get("name"), Some("Олена"));
    // A well-formed line with an extra key parses; tests catch that by the
    // keys each event may have.
    let extra = "2026-11-22T13:53:12.123Z INFO  console text=x reason=exit";
    assert_eq!(parse_log_line(extra).unwrap().keys(), ["text", "reason"]);
}

#[test]
fn parser_rejects_forgeries_and_damage() {
    for bad in [
        "",
        "INFO console text=x",
        "2026-11-22 13:53:12.123Z INFO  console text=x",
        "2026-11-22T13:53:12.12Z INFO  console text=x",
        "2026-13-22T13:53:12.123Z INFO  console text=x",
        "2026-11-22T25:53:12.123Z INFO  console text=x",
        "2026-11-22T13:53:12.123Z NOTE  console text=x",
        "2026-11-22T13:53:12.123Z INFO console text=x",
        "2026-11-22T13:53:12.123Z INFO   console text=x",
        "2026-11-22T13:53:12.123Z INFO  Console text=x",
        "2026-11-22T13:53:12.123Z INFO  -x text=x",
        "2026-11-22T13:53:12.123Z INFO  console text=\"x\"y",
        "2026-11-22T13:53:12.123Z INFO  console text=a\"b",
        "2026-11-22T13:53:12.123Z INFO  console text=a=b",
        "2026-11-22T13:53:12.123Z INFO  console text=a\\b",
        "2026-11-22T13:53:12.123Z INFO  console text=",
        "2026-11-22T13:53:12.123Z INFO  console text=\"unterminated",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\x1b\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"tab\there\"",
        "2026-11-22T13:53:12.123Z INFO  console text=c1\u{85}",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\\q\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\\x1\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\\x41\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\\x0a\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"\\xff\"",
        "2026-11-22T13:53:12.123Z INFO  console text=\"dangling\\",
        "2026-11-22T13:53:12.123Z INFO  console text=x text=y",
        "2026-11-22T13:53:12.123Z INFO  console text=x  conn=1",
        "2026-11-22T13:53:12.123Z INFO  console text=x ",
        "2026-11-22T13:53:12.123Z INFO  console Text=x",
        "2026-11-22T13:53:12.123Z INFO  console x",
        "2026-11-22T13:53:12.123Z INFO  console =x",
    ] {
        assert!(
            parse_log_line(bad).is_err(),
            "accepted a malformed line: {bad:?}"
        );
    }
}

#[test]
fn only_complete_lines_are_read_from_a_growing_file() {
    let a = "2026-11-22T13:53:12.123Z INFO  start version=1 pid=2\n";
    assert_eq!(complete_lines(""), "");
    assert_eq!(complete_lines("2026-11-22T13:5"), "");
    assert_eq!(complete_lines(&format!("{a}2026-11-22T13:5")), a);
    assert_eq!(parse_all(a).len(), 1);
    assert_eq!(event_name(a.trim_end()), Some("start"));
    assert_eq!(field(a.trim_end(), "pid").as_deref(), Some("2"));
    assert_eq!(field(a.trim_end(), "conn"), None);
    let torn = std::panic::catch_unwind(|| parse_all(&format!("{a}2026-11-22T13:5")));
    assert!(torn.is_err(), "a log ending mid-line passed");
}
