//! A fixed-size receive buffer that splits a byte stream into lines, for the
//! chat load generator.
//!
//! Local stand-in for `crate::codec::LineDecoder` (still a stub on main when
//! this was written); swap it in when it lands. It allocates once, per
//! connection, and never grows: a line longer than the buffer is discarded
//! up to its `\n` and counted, since no line the load test cares about is
//! that long.

/// A line buffer of fixed capacity.
#[derive(Debug, Default)]
pub struct LineBuf {
    buf: Box<[u8]>,
    len: usize,
    /// Inside an over-long line: drop bytes up to the next `\n`.
    skipping: bool,
}

impl LineBuf {
    pub fn new(capacity: usize) -> LineBuf {
        LineBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            len: 0,
            skipping: false,
        }
    }

    /// Where the next `read` should put its bytes.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Hand every complete line (without `\n` and a `\r` before it) to `f`,
    /// keep the partial rest. Returns how many over-long lines were dropped.
    pub fn drain_lines(&mut self, mut f: impl FnMut(&[u8])) -> u64 {
        let mut start = 0;
        let mut dropped = 0;
        while let Some(pos) = self.buf[start..self.len].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            if self.skipping {
                self.skipping = false;
            } else {
                let line = &self.buf[start..end];
                f(line.strip_suffix(b"\r").unwrap_or(line));
            }
            start = end + 1;
        }
        if start > 0 {
            self.buf.copy_within(start..self.len, 0);
            self.len -= start;
        } else if self.len == self.buf.len() {
            // Full and no `\n`: the line cannot fit; drop it to its end.
            if !self.skipping {
                dropped += 1;
            }
            self.skipping = true;
            self.len = 0;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lb: &mut LineBuf, bytes: &[u8], out: &mut Vec<String>) -> u64 {
        let mut dropped = 0;
        for chunk in bytes.chunks(1) {
            let spare = lb.spare();
            spare[..chunk.len()].copy_from_slice(chunk);
            lb.filled(chunk.len());
            dropped += lb.drain_lines(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        }
        dropped
    }

    #[test]
    fn splits_at_every_position() {
        let input = b"* hello, a\r\nb: x 1 2\n\nc: tail";
        for split in 0..=input.len() {
            let mut lb = LineBuf::new(64);
            let mut out = Vec::new();
            for part in [&input[..split], &input[split..]] {
                let spare = lb.spare();
                spare[..part.len()].copy_from_slice(part);
                lb.filled(part.len());
                lb.drain_lines(|l| out.push(String::from_utf8_lossy(l).into_owned()));
            }
            assert_eq!(out, ["* hello, a", "b: x 1 2", ""], "split at {split}");
        }
    }

    #[test]
    fn over_long_lines_are_dropped_and_counted() {
        let mut lb = LineBuf::new(8);
        let mut out = Vec::new();
        let dropped = feed(&mut lb, b"ok\n0123456789abcdef\nnext\n", &mut out);
        assert_eq!(dropped, 1);
        assert_eq!(out, ["ok", "next"]);
    }
}
