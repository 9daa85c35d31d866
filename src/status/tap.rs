//! The log tap: the last lines written to the log file, kept in memory so
//! the status page can stream them (`/api/events`) as they happen.
//!
//! The file logger (`logging/mod.rs`) calls [`publish`] with each line it
//! writes. Lines go into a ring of the last [`TAP_LINES`] lines, whose
//! buffers are reused, so steady state allocates nothing; memory is bounded
//! whatever the rate. A sequence number says how many lines were ever
//! published, so the reactor can ask "anything new?" each turn with one
//! atomic load and read only what it has not seen.
//!
//! The ring is global because the logger is (`log` has one logger per
//! process), and lines may come from another thread (password hashing);
//! a `Mutex` that is almost never contended costs one atomic operation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Lines kept for a page that connects (and for one that fell behind).
pub const TAP_LINES: usize = 256;
/// A longer line is cut here (a page shows a line, not a file).
pub const TAP_LINE_MAX: usize = 2048;

/// The last lines and how many were ever published.
#[derive(Debug, Default)]
pub struct Ring {
    lines: VecDeque<Vec<u8>>,
    /// Lines ever pushed; the newest line's number is `seq` (1-based).
    seq: u64,
    capacity: usize,
}

impl Ring {
    pub const fn new(capacity: usize) -> Self {
        Ring {
            lines: VecDeque::new(),
            seq: 0,
            capacity,
        }
    }

    /// Adds a line (without its `\n`), dropping the oldest when full and
    /// reusing its buffer.
    pub fn push(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = &line[..line.len().min(TAP_LINE_MAX)];
        let mut buf = if self.lines.len() >= self.capacity.max(1) {
            self.lines.pop_front().unwrap_or_default()
        } else {
            Vec::with_capacity(line.len())
        };
        buf.clear();
        buf.extend_from_slice(line);
        self.lines.push_back(buf);
        self.seq += 1;
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Calls `f` for every kept line newer than line number `after`, oldest
    /// first; returns the newest line number and how many lines after
    /// `after` were already dropped from the ring (the reader fell behind).
    pub fn since(&self, after: u64, mut f: impl FnMut(&[u8])) -> (u64, u64) {
        let oldest_kept = self.seq - self.lines.len() as u64 + 1;
        let first = after.saturating_add(1).max(oldest_kept);
        let missed = first - after.saturating_add(1).min(first);
        let skip = (first - oldest_kept) as usize;
        for line in self.lines.iter().skip(skip) {
            f(line);
        }
        (self.seq, missed)
    }
}

static RING: Mutex<Ring> = Mutex::new(Ring::new(TAP_LINES));
static SEQ: AtomicU64 = AtomicU64::new(0);

fn ring() -> MutexGuard<'static, Ring> {
    // A panic while holding the lock leaves at worst a ring short of a
    // line; the page is a view, keep it working.
    RING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps a line the log file just received (called by the file logger).
pub fn publish(line: &[u8]) {
    let mut ring = ring();
    ring.push(line);
    SEQ.store(ring.seq(), Ordering::Release);
}

/// How many lines were ever published: compare with the last number seen
/// to know, without a lock, whether there is anything new.
pub fn seq() -> u64 {
    SEQ.load(Ordering::Acquire)
}

/// [`Ring::since`] on the global ring.
pub fn read_since(after: u64, f: impl FnMut(&[u8])) -> (u64, u64) {
    ring().since(after, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(ring: &Ring, after: u64) -> (Vec<String>, u64, u64) {
        let mut got = Vec::new();
        let (seq, missed) = ring.since(after, |l| got.push(String::from_utf8_lossy(l).into()));
        (got, seq, missed)
    }

    #[test]
    fn keeps_the_last_lines_in_order() {
        let mut ring = Ring::new(3);
        for i in 1..=5 {
            ring.push(format!("line {i}\n").as_bytes());
        }
        let (got, seq, missed) = collect(&ring, 0);
        assert_eq!(got, ["line 3", "line 4", "line 5"]);
        assert_eq!(seq, 5);
        assert_eq!(missed, 2);
        let (got, _, missed) = collect(&ring, 4);
        assert_eq!(got, ["line 5"]);
        assert_eq!(missed, 0);
        let (got, seq, _) = collect(&ring, 5);
        assert!(got.is_empty());
        assert_eq!(seq, 5);
    }

    #[test]
    fn empty_ring_reads_nothing() {
        let ring = Ring::new(3);
        let (got, seq, missed) = collect(&ring, 0);
        assert!(got.is_empty());
        assert_eq!((seq, missed), (0, 0));
    }

    #[test]
    fn long_lines_are_cut() {
        let mut ring = Ring::new(2);
        ring.push(&vec![b'x'; TAP_LINE_MAX * 2]);
        let (got, _, _) = collect(&ring, 0);
        assert_eq!(got[0].len(), TAP_LINE_MAX);
    }

    #[test]
    fn global_tap_counts_lines() {
        let before = seq();
        publish(b"2026-01-01T00:00:00.000Z INFO  test tap=1\n");
        assert!(seq() > before);
        let mut seen = false;
        read_since(before, |l| seen |= l.ends_with(b"tap=1"));
        assert!(seen);
    }
}
