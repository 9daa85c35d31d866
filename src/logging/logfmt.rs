//! logfmt values: how a value that came from the network is written so that
//! it can never forge a line or a key.
//!
//! A log line is `TIMESTAMP LEVEL EVENT key=value ...`. A value is written
//! bare when it is "plain"; otherwise it is wrapped in double quotes and
//! escaped (`\"`, `\\`, `\n`, `\r`, `\t`, `\xHH` for other control bytes).
//! Because a newline inside a value becomes the two characters `\n`, a chat
//! name or an error message cannot start a new log line, and because `=` and
//! spaces force quotes, it cannot look like a second key.

use std::fmt::{self, Write};

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
}
