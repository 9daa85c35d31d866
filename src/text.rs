//! The text filter: which characters one user's text may carry to another
//! user's terminal (DESIGN.md, chat protocol rule 6).
//!
//! A terminal obeys what it is sent. A C0 control such as ESC (`\x1b`)
//! starts an escape sequence that can clear the screen, move the cursor or
//! retitle the window; its 8-bit twin CSI (U+009B, a C1 control) does the
//! same on some terminals. Bidi controls (U+202E RIGHT-TO-LEFT OVERRIDE and
//! friends) make a line display in another order than it was written, so
//! `alice: hi` could read as something alice never typed. U+2028 and U+2029
//! (line and paragraph separators) break a line for readers that honour
//! them, which would let one chat line pass for two. So all of these are
//! removed from relayed text, and names may not hold them (`names.rs`).
//! Tab is kept: it is harmless and people use it.
//!
//! Everything else passes unchanged: the filter removes, it never rewrites,
//! so Cyrillic, emoji and combining accents reach the room as typed.
//!
//! Read `service/chat.rs` for where it is applied: every line the room
//! relays (messages, whispers, console lines) goes through [`push_filtered`].

/// Whether `c` is removed from relayed text (and refused in names).
pub fn is_filtered(c: char) -> bool {
    // `is_control` is Unicode's Cc: C0 (U+0000–U+001F), DEL and C1
    // (U+0080–U+009F).
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{200E}' // LEFT-TO-RIGHT MARK
            | '\u{200F}' // RIGHT-TO-LEFT MARK
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' // LINE SEPARATOR
            | '\u{2029}' // PARAGRAPH SEPARATOR
        )
}

/// Whether `text` may hold a filtered character, judged from its bytes.
/// Every filtered character is a byte below 0x20 (but tab), DEL, or a
/// UTF-8 sequence starting 0xC2 (U+0080–U+00BF) or 0xE2 (U+2000–U+2FFF);
/// plain text has none of those bytes and skips the per-character check.
fn may_hold_filtered(text: &str) -> bool {
    text.bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7F || b == 0xC2 || b == 0xE2)
}

/// Appends `text` to `buf` without the characters of [`is_filtered`].
pub fn push_filtered(buf: &mut Vec<u8>, text: &str) {
    if !may_hold_filtered(text) || !text.chars().any(is_filtered) {
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in text.chars().filter(|&c| !is_filtered(c)) {
        buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

/// `text` without the characters of [`is_filtered`].
pub fn filtered(text: &str) -> String {
    let mut buf = Vec::with_capacity(text.len());
    push_filtered(&mut buf, text);
    // Removing whole characters from valid UTF-8 leaves valid UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// Whether anything would be left to read once filtered characters and
/// whitespace are ignored (a line of only those is not relayed).
pub fn has_visible(text: &str) -> bool {
    text.chars().any(|c| !is_filtered(c) && !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_exactly_the_contract_list() {
        let mut removed: Vec<u32> = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_filtered(c))
            .map(u32::from)
            .collect();
        removed.sort_unstable();
        let mut want: Vec<u32> = (0x00..=0x1F).filter(|&c| c != 0x09).collect();
        want.push(0x7F);
        want.extend(0x80..=0x9F);
        want.extend([0x200E, 0x200F]);
        want.extend(0x202A..=0x202E);
        want.extend([0x2028, 0x2029]);
        want.extend(0x2066..=0x2069);
        want.sort_unstable();
        assert_eq!(removed, want);
    }

    #[test]
    fn byte_shortcut_never_misses_a_filtered_character() {
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            if is_filtered(c) {
                let s = c.to_string();
                assert!(may_hold_filtered(&s), "U+{:04X}", u32::from(c));
            }
        }
    }

    #[test]
    fn filters_controls_bidi_and_separators_keeps_the_rest() {
        let text = "a\x1b[31mb\x07\x7f\u{9b}2J\0\tc\u{202E}d\u{2066}e\u{2069}\u{200F}\u{2028}f\u{2029}g ✓ Олена é";
        assert_eq!(filtered(text), "a[31mb2J\tcdefg ✓ Олена é");
        // Nothing to remove: the same bytes, whatever the script.
        for plain in ["hello", "привіт, світе", "🙂 e\u{301}", "—“quotes”…", ""]
        {
            assert_eq!(filtered(plain), plain);
        }
    }

    #[test]
    fn visible_means_something_left_to_read() {
        assert!(has_visible("x"));
        assert!(has_visible(" \u{202E}й "));
        for empty in [
            "",
            " \t ",
            "\x1b\x07",
            "\u{202E}\u{2028} \u{2029}",
            "\u{3000}",
        ] {
            assert!(!has_visible(empty), "{empty:?}");
        }
    }
}
