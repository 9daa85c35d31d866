//! A token bucket: how chat limits how fast one user may send lines.
//!
//! Each user has an allowance of `burst` lines that refills at `rate`
//! lines a second. A line spends one. When a read leaves the allowance
//! below zero, the room stops *reading* that user (`pause why=rate`) until
//! it has refilled: nothing the user sent is lost — it waits in the
//! kernel's receive buffer, and TCP flow control slows the sender down —
//! and nobody else waits for them. Reading a whole `--read-chunk` before
//! pausing means the debt is bounded by the lines one read can hold.
//!
//! Time is passed in, so the bucket is tested without sleeping.

use std::time::{Duration, Instant};

/// One user's allowance.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    /// Lines that may be sent now; negative after a read that overspent.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

/// `--chat-rate` and `--chat-burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Lines per second, on average.
    pub per_second: f64,
    /// Lines at once (the bucket's size).
    pub burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        TokenBucket {
            tokens: limit.burst,
            updated: now,
        }
    }

    /// Adds what `rate` refilled since the last update, up to `burst`.
    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        self.updated = now;
    }

    /// Spends `lines`; returns true while the allowance is not overdrawn.
    pub fn spend(&mut self, lines: usize, limit: RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        self.tokens -= lines as f64;
        self.tokens >= 0.0
    }

    /// When the allowance will be back to at least one line (now, if it
    /// is already).
    pub fn ready_at(&self, limit: RateLimit) -> Instant {
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 || limit.per_second <= 0.0 {
            return self.updated;
        }
        let secs = (missing / limit.per_second).min(86_400.0);
        self.updated + Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 20.0,
        burst: 40.0,
    };

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        assert!(b.spend(40, LIMIT, t0), "the burst fits");
        assert!(!b.spend(1, LIMIT, t0), "one more overdraws");
        // -1 now: one line back takes 1/20 s for 0, 2/20 s for +1.
        assert_eq!(b.ready_at(LIMIT), t0 + Duration::from_millis(100));
        let later = t0 + Duration::from_millis(100);
        assert!(b.spend(1, LIMIT, later), "refilled at the rate");
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        let much_later = t0 + Duration::from_secs(3600);
        assert!(b.spend(40, LIMIT, much_later));
        assert!(!b.spend(1, LIMIT, much_later));
    }

    #[test]
    fn a_big_overdraft_waits_in_proportion() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        assert!(!b.spend(240, LIMIT, t0)); // 200 lines of debt
        let ready = b.ready_at(LIMIT);
        assert_eq!(ready, t0 + Duration::from_secs_f64(201.0 / 20.0));
    }
}
