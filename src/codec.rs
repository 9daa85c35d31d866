//! `LineDecoder`: turns a TCP byte stream into lines, pure and bounded.
//!
//! TCP delivers a stream, not messages: one `recv` may hold half a line,
//! three lines, or a line and a half, and a multi-byte UTF-8 character or a
//! `\r\n` pair may be split between two reads. The decoder hides that. You
//! [`feed`](LineDecoder::feed) it whatever a read returned and it calls you
//! back once per complete line, as a [`Line`]:
//!
//! - [`Line::Text`]: a line, without its terminator. Every client's idea of
//!   a line end works: `\n` (`nc`), `\r\n` (Windows, PuTTY, telnet in
//!   BINARY mode), `\r\0` (telnet's "bare return", RFC 854) and a lone
//!   `\r` (a terminal in raw mode). A `\r` ends the line at once; a `\n` or
//!   `\0` right after it is the rest of the same terminator and is dropped,
//!   even when it comes in the next read.
//! - [`Line::TooLong`]: the line passed `max_line_bytes` (the terminator is
//!   not counted). It is reported once, as soon as it is known, and the rest
//!   of that line is discarded up to its terminator — so a client that never
//!   sends one can never make the decoder hold more than `max_line_bytes`
//!   bytes.
//! - [`Line::InvalidUtf8`]: a line that is not UTF-8. Only that line is
//!   lost; the next one decodes normally.
//!
//! Empty lines are not reported at all: to a user an extra terminator is
//! nothing, and it makes `\r` then `\n` in two reads harmless.
//!
//! **Editing.** Clients that send each key as it is pressed (Windows
//! `telnet`, PuTTY, `nc` on a raw terminal) send backspace (`\x08`) or DEL
//! (`\x7f`) when the user corrects a typo. Either erases the character —
//! one Unicode scalar value, so one Cyrillic letter is two bytes — before it
//! in the line being typed (nothing, at the start of a line). The line is
//! what the user saw on the screen: `hel`, `x`, backspace, `lo` is `hello`.
//! The length limit applies to the line as edited, byte by byte in order.
//!
//! "Not enough bytes yet" is not an error: the tail of a read without a
//! terminator is kept in a partial-line buffer until the rest arrives. That
//! buffer is allocated only when a line actually spans two reads (or holds
//! an erase) and is freed as soon as the line completes, so an idle
//! connection holds no heap memory here. A line that arrives whole inside
//! one read, without erases, is handed to the callback as a slice of the
//! input — no copy, no allocation.
//!
//! The chat service (`service/chat.rs`, after `telnet.rs` has taken telnet
//! commands out), the chat client and the load generator all use this one
//! decoder. Read `service/chat.rs` next.

/// Backspace: what many terminals send for the ⌫ key.
const BS: u8 = 0x08;
/// DEL: what the others send for the same key.
const DEL: u8 = 0x7f;

/// One decoded item, borrowed from the input or from the decoder's partial
/// buffer; copy it if you need it after the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete, non-empty line without its terminator.
    Text(&'a str),
    /// A line longer than `max_line_bytes`; its bytes were dropped.
    TooLong,
    /// A complete line that is not valid UTF-8 (its raw bytes, terminator
    /// removed).
    InvalidUtf8(&'a [u8]),
}

/// What the next byte means, given the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Inside a line (or between lines).
    #[default]
    Line,
    /// A `\r` just ended a line: a `\n` or `\0` next belongs to it.
    AfterCr,
    /// Inside a too-long line that was already reported: drop bytes up to
    /// and including its terminator.
    Discarding,
}

/// Splits a byte stream into lines; see the module docs.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// The longest line accepted, terminator not counted.
    max_line_bytes: usize,
    /// The start of a line whose terminator has not arrived yet (or a line
    /// being edited). Empty (and unallocated) between lines, never longer
    /// than `max_line_bytes`.
    partial: Vec<u8>,
    state: State,
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `max_line_bytes` bytes.
    /// Allocates nothing.
    pub const fn new(max_line_bytes: usize) -> Self {
        LineDecoder {
            max_line_bytes,
            partial: Vec::new(),
            state: State::Line,
        }
    }

    /// Bytes of an unfinished line held until its terminator arrives.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Heap bytes this decoder holds right now (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.partial.capacity()
    }

    /// Whether the decoder is skipping the rest of a too-long line.
    pub fn is_discarding(&self) -> bool {
        self.state == State::Discarding
    }

    /// Feeds the bytes of one read and calls `on_line` once per complete
    /// line (or too-long / invalid line), in order. Bytes after the last
    /// terminator are kept for the next call.
    pub fn feed(&mut self, mut input: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        while let Some(&first) = input.first() {
            match self.state {
                State::AfterCr => {
                    self.state = State::Line;
                    if first == b'\n' || first == b'\0' {
                        input = &input[1..];
                    }
                    continue;
                }
                State::Discarding => {
                    let Some(i) = memchr::memchr2(b'\n', b'\r', input) else {
                        return;
                    };
                    self.state = ended_by(input[i]);
                    input = &input[i + 1..];
                    continue;
                }
                State::Line => {}
            }
            let Some(i) = memchr::memchr2(b'\n', b'\r', input) else {
                if !self.append(input, &mut on_line) {
                    self.state = State::Discarding;
                }
                return;
            };
            let head = &input[..i];
            self.state = ended_by(input[i]);
            input = &input[i + 1..];
            if self.partial.is_empty() && memchr::memchr2(BS, DEL, head).is_none() {
                // The common case: the whole line is inside this read.
                emit(head, self.max_line_bytes, &mut on_line);
            } else if self.append(head, &mut on_line) {
                emit(&self.partial, self.max_line_bytes, &mut on_line);
                self.release();
            }
        }
    }

    /// End of input (the peer sent FIN): an unfinished last line, if any, is
    /// delivered as if its terminator had arrived. Leaves the decoder empty.
    pub fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) {
        // A discarded line was already reported when it passed the limit.
        if self.state != State::Discarding {
            emit(&self.partial, self.max_line_bytes, &mut on_line);
        }
        self.state = State::Line;
        self.release();
    }

    /// Adds bytes of the line being typed, applying erases. Returns false
    /// if the line passed the limit: then it was reported, and forgotten.
    fn append(&mut self, mut bytes: &[u8], on_line: &mut impl FnMut(Line<'_>)) -> bool {
        loop {
            let erase = memchr::memchr2(BS, DEL, bytes);
            let text = &bytes[..erase.unwrap_or(bytes.len())];
            if self.partial.len() + text.len() > self.max_line_bytes {
                on_line(Line::TooLong);
                self.release();
                return false;
            }
            self.partial.extend_from_slice(text);
            let Some(at) = erase else {
                return true;
            };
            erase_last_char(&mut self.partial);
            bytes = &bytes[at + 1..];
        }
    }

    /// Forgets the partial line and gives its memory back: lines that span
    /// reads are rare in chat, and idle connections should cost nothing.
    fn release(&mut self) {
        self.partial = Vec::new();
    }
}

/// The state after the terminator byte `b` (`\n` or `\r`).
fn ended_by(b: u8) -> State {
    if b == b'\r' {
        State::AfterCr
    } else {
        State::Line
    }
}

/// Removes the last Unicode scalar value of `line`: its last UTF-8
/// character if it ends with a whole one, else (broken UTF-8) its last byte.
fn erase_last_char(line: &mut Vec<u8>) {
    let Some(&last) = line.last() else {
        return;
    };
    let mut start = line.len() - 1;
    if last >= 0x80 {
        // Walk back over at most three continuation bytes (10xxxxxx) to the
        // character's first byte, and check that it really starts a
        // character of that length.
        while start > 0 && line.len() - start < 4 && line[start] & 0xc0 == 0x80 {
            start -= 1;
        }
        if std::str::from_utf8(&line[start..]).is_err() {
            start = line.len() - 1;
        }
    }
    line.truncate(start);
}

fn emit(line: &[u8], max_line_bytes: usize, on_line: &mut impl FnMut(Line<'_>)) {
    if line.is_empty() {
        return;
    }
    if line.len() > max_line_bytes {
        on_line(Line::TooLong);
        return;
    }
    match std::str::from_utf8(line) {
        Ok(text) => on_line(Line::Text(text)),
        Err(_) => on_line(Line::InvalidUtf8(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of a [`Line`], to compare after the callback.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Item {
        Text(String),
        TooLong,
        Invalid(Vec<u8>),
    }

    fn own(line: Line<'_>) -> Item {
        match line {
            Line::Text(t) => Item::Text(t.to_string()),
            Line::TooLong => Item::TooLong,
            Line::InvalidUtf8(b) => Item::Invalid(b.to_vec()),
        }
    }

    fn text(s: &str) -> Item {
        Item::Text(s.to_string())
    }

    /// Feeds `chunks` one by one (then `finish` if asked) and checks the
    /// memory bound after every call.
    fn decode(max: usize, chunks: &[&[u8]], finish: bool) -> Vec<Item> {
        let mut d = LineDecoder::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            d.feed(chunk, |l| out.push(own(l)));
            assert!(d.buffered_bytes() <= max, "holds {}", d.buffered_bytes());
        }
        if finish {
            d.finish(|l| out.push(own(l)));
            assert_eq!(d.heap_bytes(), 0);
        }
        out
    }

    /// Every split into two pieces, and every split into three pieces,
    /// yields the same items as the whole input.
    fn check_all_splits(max: usize, input: &[u8], expected: &[Item]) {
        assert_eq!(decode(max, &[input], false), expected, "whole");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(decode(max, &[a, b], false), expected, "split at {i}");
            for j in i..=input.len() {
                let (b1, c) = input.split_at(j);
                let b = &b1[i..];
                assert_eq!(decode(max, &[a, b, c], false), expected, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(max, &bytes, false), expected, "byte by byte");
    }

    #[test]
    fn every_line_ending_survives_every_split() {
        let input = "hi\r\nwörld ✓\n\nx\ry\n\r\nbare\r\0cr\rlast\n".as_bytes();
        check_all_splits(
            64,
            input,
            &[
                text("hi"),
                text("wörld ✓"),
                text("x"),
                text("y"),
                text("bare"),
                text("cr"),
                text("last"),
            ],
        );
    }

    #[test]
    fn empty_lines_are_not_reported() {
        check_all_splits(8, b"\n\r\n\r\0\r\r\n\n\x08\n\x7f\x7f\r\0", &[]);
        check_all_splits(8, b"\r\n\ra\r\r\n", &[text("a")]);
    }

    #[test]
    fn a_nul_not_after_cr_is_data() {
        check_all_splits(8, b"a\0b\n\0c\n", &[text("a\0b"), text("\0c")]);
    }

    #[test]
    fn backspace_and_del_erase_one_character() {
        // What a character-at-a-time client sends for "hel", x, ⌫, "lo".
        check_all_splits(32, b"helx\x08lo\r\n", &[text("hello")]);
        check_all_splits(32, b"hi typox\x7fo\n", &[text("hi typoo")]);
        // One Cyrillic letter is two bytes, one emoji four: still one key.
        check_all_splits(32, "Оленаь\x08\n".as_bytes(), &[text("Олена")]);
        check_all_splits(32, "ok😀\x7f!\n".as_bytes(), &[text("ok!")]);
        // Erasing past the start of the line does nothing more.
        check_all_splits(32, b"ab\x08\x08\x08\x08cd\n", &[text("cd")]);
        // An erase never reaches back into the previous line.
        check_all_splits(32, b"one\n\x08two\n", &[text("one"), text("two")]);
        // Broken UTF-8 is erased a byte at a time.
        check_all_splits(32, b"a\xa9\xa9\x08\n", &[Item::Invalid(b"a\xa9".to_vec())]);
        check_all_splits(32, b"a\xc3\x08b\n", &[text("ab")]);
    }

    #[test]
    fn the_limit_applies_to_the_edited_line() {
        // 4 bytes, erase, 1 more: never more than 4 held, so it fits.
        check_all_splits(4, b"abcd\x08e\n", &[text("abce")]);
        // 5 bytes before the erase: too long the moment the 5th came.
        check_all_splits(4, b"abcde\x08\x08\n", &[Item::TooLong]);
    }

    #[test]
    fn invalid_utf8_is_reported_per_line() {
        // A truncated two-byte char, then a good line, then a stray byte.
        let input = b"ok\n\xc3\n\xc3\xa9t\xc3\xa9\r\nbad\xffend\r\nafter\n";
        check_all_splits(
            64,
            input,
            &[
                text("ok"),
                Item::Invalid(b"\xc3".to_vec()),
                text("été"),
                Item::Invalid(b"bad\xffend".to_vec()),
                text("after"),
            ],
        );
    }

    #[test]
    fn too_long_is_reported_once_and_the_rest_discarded() {
        // max 4: "abcd" fits (with any terminator), "abcde" does not.
        let input = b"abcd\nabcd\r\nabcdefghij\r\nz\nabcd\rx\nabcdef\rok\r\0ab\n";
        check_all_splits(
            4,
            input,
            &[
                text("abcd"),
                text("abcd"),
                Item::TooLong,
                text("z"),
                text("abcd"),
                text("x"),
                Item::TooLong,
                text("ok"),
                text("ab"),
            ],
        );
    }

    #[test]
    fn a_line_with_no_newline_is_bounded_and_reported_early() {
        let mut d = LineDecoder::new(8);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            d.feed(b"0123456789abcdef", |l| out.push(own(l)));
            assert!(d.buffered_bytes() <= 8);
        }
        // Reported as soon as the limit passed, not at the (absent) end.
        assert_eq!(out, vec![Item::TooLong]);
        assert!(d.is_discarding());
        d.feed(b"tail\nnext\n", |l| out.push(own(l)));
        assert_eq!(out, vec![Item::TooLong, text("next")]);
        assert!(!d.is_discarding());
    }

    #[test]
    fn a_cr_ends_the_line_at_once() {
        // A raw-mode terminal sends a lone `\r`: the line must not wait for
        // a `\n` that never comes.
        let mut d = LineDecoder::new(4);
        let mut out = Vec::new();
        d.feed(b"abcd\r", |l| out.push(own(l)));
        assert_eq!(out, vec![text("abcd")]);
        assert_eq!(d.buffered_bytes(), 0);
        d.feed(b"\n", |l| out.push(own(l)));
        assert_eq!(out, vec![text("abcd")], "the \\n was half of \\r\\n");
    }

    #[test]
    fn idle_decoder_holds_no_heap() {
        let mut d = LineDecoder::new(4096);
        assert_eq!(d.heap_bytes(), 0);
        d.feed(b"half a li", |_| {});
        assert!(d.heap_bytes() > 0);
        d.feed(b"ne\nwhole\n", |_| {});
        assert_eq!(d.heap_bytes(), 0, "freed once the line completed");
        d.feed(b"typo\x08\n", |_| {});
        assert_eq!(d.heap_bytes(), 0, "freed after an edited line too");
        d.feed(b"x".repeat(5000).as_slice(), |_| {});
        assert_eq!(d.heap_bytes(), 0, "a discarded line holds nothing");
    }

    #[test]
    fn whole_lines_are_borrowed_from_the_input() {
        let input = b"first\nsecond\r\n";
        let mut d = LineDecoder::new(64);
        let range = input.as_ptr_range();
        d.feed(input, |l| {
            let Line::Text(t) = l else { panic!("{l:?}") };
            assert!(range.contains(&t.as_ptr()), "{t} was copied");
        });
        assert_eq!(d.heap_bytes(), 0);
    }

    #[test]
    fn finish_delivers_an_unterminated_last_line() {
        assert_eq!(
            decode(16, &[b"one\ntw", b"o"], true),
            vec![text("one"), text("two")]
        );
        assert_eq!(decode(16, &[b"one\n"], true), vec![text("one")]);
        assert_eq!(decode(16, &[b"x\r"], true), vec![text("x")]);
        assert_eq!(decode(16, &[b"ab\x08"], true), vec![text("a")]);
        assert_eq!(
            decode(2, &[b"toolong"], true),
            vec![Item::TooLong],
            "reported once, not again at the end"
        );
    }

    /// The decoder, written the slow way: one byte at a time, straight
    /// from the rules in the module docs. The real one must agree with it.
    fn reference(max: usize, input: &[u8]) -> Vec<Item> {
        let mut out = Vec::new();
        let mut line: Option<Vec<u8>> = Some(Vec::new()); // None: discarding
        let mut after_cr = false;
        let end = |line: &mut Option<Vec<u8>>, out: &mut Vec<Item>| {
            if let Some(l) = line.take().filter(|l| !l.is_empty()) {
                out.push(match String::from_utf8(l) {
                    Ok(t) => Item::Text(t),
                    Err(e) => Item::Invalid(e.into_bytes()),
                });
            }
            *line = Some(Vec::new());
        };
        for &b in input {
            if std::mem::take(&mut after_cr) && (b == b'\n' || b == 0) {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    after_cr = b == b'\r';
                    end(&mut line, &mut out);
                }
                BS | DEL => {
                    if let Some(l) = &mut line {
                        erase_last_char(l);
                    }
                }
                _ => {
                    if let Some(l) = &mut line {
                        l.push(b);
                        if l.len() > max {
                            out.push(Item::TooLong);
                            line = None;
                        }
                    }
                }
            }
        }
        out
    }

    /// Bytes that exercise every rule: terminators, erases, NUL, UTF-8
    /// lead and continuation bytes, invalid bytes, plain text.
    fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(0u8),
            Just(BS),
            Just(DEL),
            Just(0xd0u8),
            Just(0xb0u8),
            Just(0xffu8),
            b'a'..=b'e',
            any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..200)
    }

    /// Cut points for `input`, sorted, as chunk boundaries.
    fn chunks<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for c in cuts {
            out.push(&input[from..c]);
            from = c;
        }
        out.push(&input[from..]);
        out
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines(
            input in interesting_bytes(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            max in 0usize..12,
        ) {
            let whole = decode(max, &[&input], false);
            prop_assert_eq!(&whole, &reference(max, &input));
            prop_assert_eq!(&decode(max, &chunks(&input, &cuts), false), &whole);
        }
    }
}
