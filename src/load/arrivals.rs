//! What became of each datagram one UDP socket sent: in order, late
//! (reordered), or a second copy (duplicated) — told apart with a fixed
//! amount of memory per socket.
//!
//! TCP hands the receiver every byte once and in order; UDP promises
//! neither. Every datagram of `load udp-echo` carries its socket's sequence
//! number (1, 2, 3, ...), so the reply says which datagram it answers. The
//! receiver remembers the highest number seen and, for the [`WINDOW`]
//! numbers just below it, whether each has arrived: a ring of bits
//! (128 bytes), the same idea as the anti-replay window of IPsec (RFC 4303,
//! 3.4.3) and the duplicate check of RTP receivers (RFC 3550, A.1).
//!
//! - a number above the highest: **in order** (numbers skipped on the way
//!   may come later, or never: then they are lost);
//! - a number below the highest, not seen yet: **reordered** — it arrived
//!   after a datagram sent later;
//! - a number below the highest, already seen: **duplicated**;
//! - a number more than [`WINDOW`] below the highest: too old to remember;
//!   it is counted as reordered (whether it was also a copy cannot be told).
//!
//! Losses are not found here: what never arrives leaves no trace. The
//! scenario counts them at the end as sent minus received (`udp.rs`).

/// Sequence numbers remembered below the highest one seen.
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// How one arriving sequence number relates to those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than any before: in order.
    InOrder,
    /// Lower than one already seen, and not seen itself: reordered.
    Late,
    /// Seen before: an extra copy.
    Duplicate,
    /// Lower than the highest by [`WINDOW`] or more: reordered, and whether
    /// it is a copy is not known.
    TooOld,
}

/// The arrivals of one socket's replies; see the module doc.
#[derive(Debug, Clone)]
pub struct Arrivals {
    /// The highest sequence number seen; 0 before the first (numbers start
    /// at 1).
    highest: u64,
    /// Bit `s % WINDOW` says whether `s` arrived, for
    /// `highest - WINDOW < s <= highest`.
    seen: [u64; WORDS],
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals::new()
    }
}

impl Arrivals {
    pub const fn new() -> Arrivals {
        Arrivals {
            highest: 0,
            seen: [0; WORDS],
        }
    }

    /// Record the arrival of sequence number `seq` (at least 1).
    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq > self.highest {
            // The numbers between the old highest and `seq` take over the
            // bits of numbers that now fall out of the window: clear them.
            let gap = seq - self.highest;
            if gap >= WINDOW {
                self.seen = [0; WORDS];
            } else {
                for s in self.highest + 1..seq {
                    self.clear(s);
                }
            }
            self.highest = seq;
            self.set(seq);
            return Arrival::InOrder;
        }
        if self.highest - seq >= WINDOW {
            return Arrival::TooOld;
        }
        if self.is_set(seq) {
            Arrival::Duplicate
        } else {
            self.set(seq);
            Arrival::Late
        }
    }

    fn bit(s: u64) -> (usize, u64) {
        let b = s % WINDOW;
        ((b / 64) as usize, 1 << (b % 64))
    }

    fn set(&mut self, s: u64) {
        let (w, m) = Arrivals::bit(s);
        self.seen[w] |= m;
    }

    fn clear(&mut self, s: u64) {
        let (w, m) = Arrivals::bit(s);
        self.seen[w] &= !m;
    }

    fn is_set(&self, s: u64) -> bool {
        let (w, m) = Arrivals::bit(s);
        self.seen[w] & m != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_late_duplicate_and_too_old() {
        let mut a = Arrivals::new();
        assert_eq!(a.record(1), Arrival::InOrder);
        assert_eq!(a.record(3), Arrival::InOrder);
        assert_eq!(a.record(2), Arrival::Late);
        assert_eq!(a.record(2), Arrival::Duplicate);
        assert_eq!(a.record(3), Arrival::Duplicate);
        assert_eq!(a.record(1), Arrival::Duplicate);
        assert_eq!(a.highest, 3);
        // A jump past the whole window forgets everything below it.
        assert_eq!(a.record(3 + WINDOW), Arrival::InOrder);
        assert_eq!(a.record(3), Arrival::TooOld);
        assert_eq!(a.record(4), Arrival::Late);
        assert_eq!(a.record(4), Arrival::Duplicate);
    }

    #[test]
    fn bits_reused_by_the_ring_start_clear() {
        let mut a = Arrivals::new();
        for s in 1..=WINDOW {
            assert_eq!(a.record(s), Arrival::InOrder);
        }
        // WINDOW + 5 reuses the bits of 1..=5 (and the numbers skipped on
        // the way, WINDOW+1..WINDOW+4, must not look seen).
        assert_eq!(a.record(WINDOW + 5), Arrival::InOrder);
        for s in WINDOW + 1..WINDOW + 5 {
            assert_eq!(a.record(s), Arrival::Late, "{s}");
        }
        assert_eq!(a.record(6), Arrival::Duplicate);
        assert_eq!(a.record(5), Arrival::TooOld);
    }

    proptest! {
        /// Against a model that remembers everything: within the window
        /// the answers agree exactly.
        #[test]
        fn agrees_with_a_set_within_the_window(seqs in prop::collection::vec(1u64..3000, 1..400)) {
            let mut a = Arrivals::new();
            let mut all = std::collections::BTreeSet::new();
            let mut highest = 0;
            for s in seqs {
                let want = if s > highest {
                    Arrival::InOrder
                } else if highest - s >= WINDOW {
                    Arrival::TooOld
                } else if all.contains(&s) {
                    Arrival::Duplicate
                } else {
                    Arrival::Late
                };
                prop_assert_eq!(a.record(s), want, "seq {}", s);
                all.insert(s);
                highest = highest.max(s);
            }
        }
    }
}
