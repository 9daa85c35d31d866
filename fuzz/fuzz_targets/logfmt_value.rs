//! The logfmt value writer: whatever the text, the output is one value
//! with no raw control character (so no forged line), bare only when safe
//! (so no forged key), and it unescapes back to exactly the text; the log
//! reader's `parse_line` reads it back as that one value, and takes any
//! other line without a panic (a damaged line is shown, never a crash).

#![no_main]

use echochat::logfmt::{Value, parse_line};
use libfuzzer_sys::fuzz_target;

/// Reverses the quoting: `\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`.
fn unescape(quoted: &str) -> Vec<u8> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .expect("quoted value");
    let mut out = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            panic!("unescaped quote in {quoted:?}");
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('"') => out.push(b'"'),
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
            }
            other => panic!("bad escape {other:?} in {quoted:?}"),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let written = Value(&text).to_string();
    assert!(!written.chars().any(char::is_control), "{written:?}");
    if written.starts_with('"') {
        assert_eq!(unescape(&written), text.as_bytes());
    } else {
        assert_eq!(written, text);
        assert!(!text.is_empty());
        assert!(!text.contains([' ', '"', '=', '\\']));
    }
    let line = format!("2026-11-22T13:53:12.123Z INFO  fuzz a={written} b=1");
    let parsed = parse_line(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(parsed.get("a"), Some(&*text), "{line:?}");
    assert_eq!(parsed.get("b"), Some("1"), "a forged key in {line:?}");
    assert_eq!(parsed.fields.len(), 2, "{line:?}");
    let _ = parse_line(&text);
});
