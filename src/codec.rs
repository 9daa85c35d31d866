//! `LineDecoder`: turns a TCP byte stream into lines, pure and bounded.
//!
//! TCP delivers a stream, not messages: one `recv` may hold half a line,
//! three lines, or a line and a half, and a multi-byte UTF-8 character or a
//! `\r\n` pair may be split between two reads. The decoder hides that. You
//! [`feed`](LineDecoder::feed) it whatever a read returned and it calls you
//! back once per complete line, as a [`Line`]:
//!
//! - [`Line::Text`]: a line ended by `\n`, with a `\r` just before the `\n`
//!   dropped (so `nc`, `telnet` and Windows clients all work). Any other `\r`
//!   stays in the text.
//! - [`Line::TooLong`]: the line passed `max_line_bytes` (the terminator is
//!   not counted). It is reported once, as soon as it is known, and the rest
//!   of that line is discarded up to its `\n` — so a client that never sends
//!   a newline can never make the decoder hold more than `max_line_bytes + 1`
//!   bytes.
//! - [`Line::InvalidUtf8`]: a line that is not UTF-8. Only that line is
//!   lost; the next one decodes normally.
//!
//! "Not enough bytes yet" is not an error: the tail of a read without a
//! `\n` is kept in a partial-line buffer until the rest arrives. That buffer
//! is allocated only when a line actually spans two reads and is freed as
//! soon as the line completes, so an idle connection holds no heap memory
//! here. A line that arrives whole inside one read is handed to the callback
//! as a slice of the input — no copy, no allocation.
//!
//! The chat service (`service/chat.rs`), the chat client and the load
//! generator all use this one decoder. Read `service/chat.rs` next.

/// One decoded item, borrowed from the input or from the decoder's partial
/// buffer; copy it if you need it after the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its `\n` (or `\r\n`).
    Text(&'a str),
    /// A line longer than `max_line_bytes`; its bytes were dropped.
    TooLong,
    /// A complete line that is not valid UTF-8 (its raw bytes, terminator
    /// removed).
    InvalidUtf8(&'a [u8]),
}

/// Splits a byte stream into lines; see the module docs.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// The longest line accepted, terminator not counted.
    max_line_bytes: usize,
    /// The start of a line whose `\n` has not arrived yet. Empty (and
    /// unallocated) between lines, never longer than `max_line_bytes + 1`
    /// (the `+ 1` is a `\r` that may turn out to be half of `\r\n`).
    partial: Vec<u8>,
    /// Inside a too-long line that was already reported: drop bytes up to
    /// and including the next `\n`.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `max_line_bytes` bytes.
    /// Allocates nothing.
    pub const fn new(max_line_bytes: usize) -> Self {
        LineDecoder {
            max_line_bytes,
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// Bytes of an unfinished line held until its `\n` arrives.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Heap bytes this decoder holds right now (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.partial.capacity()
    }

    /// Whether the decoder is skipping the rest of a too-long line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Feeds the bytes of one read and calls `on_line` once per complete
    /// line (or too-long / invalid line), in order. Bytes after the last
    /// `\n` are kept for the next call.
    pub fn feed(&mut self, mut input: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        while !input.is_empty() {
            let newline = input.iter().position(|&b| b == b'\n');
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.discarding = false;
                        input = &input[i + 1..];
                        continue;
                    }
                    None => return,
                }
            }
            let Some(i) = newline else {
                self.keep_partial(input, &mut on_line);
                return;
            };
            let head = &input[..i];
            input = &input[i + 1..];
            if self.partial.is_empty() {
                // The common case: the whole line is inside this read.
                emit(strip_cr(head), self.max_line_bytes, &mut on_line);
            } else {
                self.finish_partial(head, &mut on_line);
            }
        }
    }

    /// End of input (the peer sent FIN): an unfinished last line, if any, is
    /// delivered as if its `\n` had arrived. Leaves the decoder empty.
    pub fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) {
        if self.discarding {
            // Already reported when it passed the limit.
            self.discarding = false;
        } else if !self.partial.is_empty() {
            emit(strip_cr(&self.partial), self.max_line_bytes, &mut on_line);
        }
        self.release();
    }

    /// The read ended without `\n`: hold the bytes, or report the line as
    /// too long the moment it cannot fit any more.
    fn keep_partial(&mut self, tail: &[u8], on_line: &mut impl FnMut(Line<'_>)) {
        let total = self.partial.len() + tail.len();
        // `max + 1` bytes still fit if the last one is `\r`: it may be the
        // first half of a `\r\n` terminator, which is not counted.
        let fits = total <= self.max_line_bytes
            || (total == self.max_line_bytes + 1 && tail.last() == Some(&b'\r'));
        if fits {
            self.partial.extend_from_slice(tail);
        } else {
            on_line(Line::TooLong);
            self.release();
            self.discarding = true;
        }
    }

    /// The `\n` of a line that began in an earlier read arrived; `head` is
    /// the part of the line in this read.
    fn finish_partial(&mut self, head: &[u8], on_line: &mut impl FnMut(Line<'_>)) {
        let total = self.partial.len() + head.len();
        let last = head.last().or(self.partial.last());
        let content = total - usize::from(last == Some(&b'\r'));
        if content > self.max_line_bytes {
            on_line(Line::TooLong);
        } else {
            self.partial.extend_from_slice(head);
            self.partial.truncate(content);
            emit(&self.partial, self.max_line_bytes, on_line);
        }
        self.release();
    }

    /// Forgets the partial line and gives its memory back: lines that span
    /// reads are rare in chat, and idle connections should cost nothing.
    fn release(&mut self) {
        self.partial = Vec::new();
    }
}

/// Drops the `\r` of a `\r\n` terminator.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn emit(line: &[u8], max_line_bytes: usize, on_line: &mut impl FnMut(Line<'_>)) {
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
            assert!(
                d.buffered_bytes() <= max + 1,
                "holds {}",
                d.buffered_bytes()
            );
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
    fn lines_crlf_and_utf8_survive_every_split() {
        let input = "hi\r\nwörld ✓\n\nx\ry\n\r\n".as_bytes();
        check_all_splits(
            64,
            input,
            &[
                text("hi"),
                text("wörld ✓"),
                text(""),
                text("x\ry"),
                text(""),
            ],
        );
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
        // max 4: "abcd" fits (with either terminator), "abcde" does not.
        let input = b"abcd\nabcd\r\nabcdefghij\r\nz\nabcd\rx\nok\n";
        check_all_splits(
            4,
            input,
            &[
                text("abcd"),
                text("abcd"),
                Item::TooLong,
                text("z"),
                Item::TooLong,
                text("ok"),
            ],
        );
    }

    #[test]
    fn a_line_with_no_newline_is_bounded_and_reported_early() {
        let mut d = LineDecoder::new(8);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            d.feed(b"0123456789abcdef", |l| out.push(own(l)));
            assert!(d.buffered_bytes() <= 9);
        }
        // Reported as soon as the limit passed, not at the (absent) end.
        assert_eq!(out, vec![Item::TooLong]);
        assert!(d.is_discarding());
        d.feed(b"tail\nnext\n", |l| out.push(own(l)));
        assert_eq!(out, vec![Item::TooLong, text("next")]);
        assert!(!d.is_discarding());
    }

    #[test]
    fn max_bytes_then_cr_waits_for_the_newline() {
        // 4 bytes + '\r' held: the '\r' may be a terminator.
        let mut d = LineDecoder::new(4);
        let mut out = Vec::new();
        d.feed(b"abcd\r", |l| out.push(own(l)));
        assert!(out.is_empty());
        assert_eq!(d.buffered_bytes(), 5);
        d.feed(b"\n", |l| out.push(own(l)));
        assert_eq!(out, vec![text("abcd")]);
    }

    #[test]
    fn idle_decoder_holds_no_heap() {
        let mut d = LineDecoder::new(4096);
        assert_eq!(d.heap_bytes(), 0);
        d.feed(b"half a li", |_| {});
        assert!(d.heap_bytes() > 0);
        d.feed(b"ne\nwhole\n", |_| {});
        assert_eq!(d.heap_bytes(), 0, "freed once the line completed");
        d.feed(b"x".repeat(5000).as_slice(), |_| {});
        assert_eq!(d.heap_bytes(), 0, "a discarded line holds nothing");
    }

    #[test]
    fn finish_delivers_an_unterminated_last_line() {
        assert_eq!(
            decode(16, &[b"one\ntw", b"o"], true),
            vec![text("one"), text("two")]
        );
        assert_eq!(decode(16, &[b"one\n"], true), vec![text("one")]);
        assert_eq!(decode(16, &[b"x\r"], true), vec![text("x")]);
        assert_eq!(
            decode(2, &[b"toolong"], true),
            vec![Item::TooLong],
            "reported once, not again at the end"
        );
    }
}
