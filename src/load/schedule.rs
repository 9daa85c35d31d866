//! When each send is due, for every scenario that runs at a fixed rate:
//! chat users (each `--rate` a second), open-loop echo (`--rate` messages a
//! second over all clients) and connect churn (`--rate` connects a second
//! over all threads).
//!
//! Every user `id` of `total` sends once per `period`, its sends offset by
//! `id / total` of a period, so the server sees a steady stream rather than
//! bursts: send `round` of user `id` is due at
//!
//! ```text
//! t0 + (round + id / total) × period
//! ```
//!
//! A due time is a pure function of (id, round), so a sender that fell
//! behind knows exactly when each late message *was* due — which is what
//! open-loop latency is measured from (wrk2's answer to coordinated
//! omission: a stalled server cannot hide its stall by being sent less).
//! A thread walks its own users (ascending ids) round by round; nothing is
//! queued per message.

use std::time::{Duration, Instant};

/// One thread's share of a fixed-rate schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    t0: Instant,
    period_s: f64,
    total: f64,
    /// Global ids of this thread's users, ascending (so due times ascend
    /// within a round).
    ids: Vec<usize>,
    /// Where the walk is: user `next` of round `round`.
    next: usize,
    round: u64,
}

impl Schedule {
    /// Users `ids` (of `total` over all threads) each sending once per
    /// `period`. Starts when [`start`](Schedule::start) is called.
    pub fn new(period: Duration, total: usize, ids: Vec<usize>) -> Schedule {
        Schedule {
            t0: Instant::now(),
            period_s: period.as_secs_f64(),
            total: total.max(1) as f64,
            ids,
            next: 0,
            round: 0,
        }
    }

    /// The schedule's time zero: the start of the load phase.
    pub fn start(&mut self, t0: Instant) {
        self.t0 = t0;
        self.next = 0;
        self.round = 0;
    }

    /// When send `round` of local user `local` is due.
    pub fn due_at(&self, local: usize, round: u64) -> Instant {
        let id = self.ids.get(local).copied().unwrap_or(0) as f64;
        let offset = (round as f64 + id / self.total) * self.period_s;
        self.t0 + Duration::from_secs_f64(offset)
    }

    /// The next due time of the walk; `None` for a thread without users.
    pub fn next_due(&self) -> Option<Instant> {
        (!self.ids.is_empty()).then(|| self.due_at(self.next, self.round))
    }

    /// The next (local user, round) whose send is due by `now`, advancing
    /// the walk; `None` when nothing is due yet.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        if self.next_due()? > now {
            return None;
        }
        let due = (self.next, self.round);
        self.next += 1;
        if self.next == self.ids.len() {
            self.next = 0;
            self.round += 1;
        }
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_spread_over_the_period_and_rounds_repeat() {
        // Users 1 and 3 of 4, one send a second each.
        let mut s = Schedule::new(Duration::from_secs(1), 4, vec![1, 3]);
        let t0 = Instant::now();
        s.start(t0);
        let ms = |m| t0 + Duration::from_millis(m);
        assert_eq!(s.next_due(), Some(ms(250)));
        assert_eq!(s.pop_due(ms(249)), None);
        assert_eq!(s.pop_due(ms(250)), Some((0, 0)));
        assert_eq!(s.next_due(), Some(ms(750)));
        // Far behind: every missed send comes out, in order, and each
        // knows when it was due.
        let late = ms(2_000);
        let mut got = Vec::new();
        while let Some(d) = s.pop_due(late) {
            got.push(d);
        }
        assert_eq!(got, [(1, 0), (0, 1), (1, 1)]);
        assert_eq!(s.due_at(1, 1), ms(1_750));
        assert_eq!(s.next_due(), Some(ms(2_250)));
    }

    #[test]
    fn no_users_means_never_due() {
        let mut s = Schedule::new(Duration::from_secs(1), 4, Vec::new());
        assert_eq!(s.next_due(), None);
        assert_eq!(s.pop_due(Instant::now() + Duration::from_secs(9)), None);
    }
}
