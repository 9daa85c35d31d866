//! Timers: mio has none, so deadlines live here and the nearest one becomes
//! `poll`'s timeout.
//!
//! Idle timeouts use a min-heap of `(deadline, conn)` that is checked
//! lazily: traffic does not touch the heap, it only moves the connection's
//! `last_active`. When an entry comes due, the reactor looks at the
//! connection: still idle long enough → close it; otherwise push a new
//! entry for its real deadline. So a busy connection costs nothing per
//! message, and an idle one costs one heap entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::{Reactor, live_mut};
use crate::service::ConnKey;

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnKey)>>,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, key: ConnKey) {
        self.heap.push(Reverse((at, key)));
    }

    /// The nearest deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Replaces every entry with `live`'s (one per open connection). Entries
    /// of closed connections are otherwise only dropped when they come due,
    /// which with a 2-hour timeout and short connections is never soon.
    pub fn rebuild(&mut self, live: impl Iterator<Item = (Instant, ConnKey)>) {
        let heap: BinaryHeap<_> = live.map(Reverse).collect();
        self.heap = heap;
        self.heap.shrink_to_fit();
    }

    /// Removes and returns one entry that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<ConnKey> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, k))| k),
            _ => None,
        }
    }
}

impl Reactor {
    /// Step 4: the deadlines that came due: services' own, then idle
    /// connections.
    pub(super) fn fire_timers(&mut self) {
        self.fire_service_timers();
        self.fire_idle_timers();
    }

    /// Services' own deadlines (see `Service::next_deadline`).
    fn fire_service_timers(&mut self) {
        for index in 0..self.services.len() {
            if self.services[index]
                .next_deadline()
                .is_some_and(|at| at <= self.now)
            {
                self.services[index].on_timer(self.now, &mut self.fx);
                self.apply_effects();
            }
        }
    }

    /// Closes connections idle for `--idle-timeout`.
    fn fire_idle_timers(&mut self) {
        let Some(idle) = self.config.idle_timeout else {
            return;
        };
        if self.timers.len() > 2 * self.conns.len() + 1024 {
            // Mostly closed connections' entries: keep memory bounded by the
            // connections that are open.
            let live = self
                .conns
                .iter()
                .map(|(_, c)| (c.last_active + idle, c.key));
            self.timers.rebuild(live);
        }
        while let Some(key) = self.timers.pop_due(self.now) {
            let Some(conn) = live_mut(&mut self.conns, key) else {
                continue;
            };
            let due = conn.last_active + idle;
            if due > self.now {
                self.timers.schedule(due, key);
            } else if conn.closing.is_none() {
                // Let the service say goodbye; if that goodbye is never
                // read, the next idle period ends it (below).
                let service = conn.service;
                self.timers.schedule(self.now + idle, key);
                self.services[service].on_idle(key, idle, &mut self.fx);
                self.apply_effects();
            } else {
                // Marked for closing, yet not a byte moved for a whole idle
                // period: the client will not read what it is owed.
                conn.out.clear();
                self.closing.push(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let k = |id| ConnKey { slot: 0, id };
        let mut t = Timers::default();
        t.schedule(t0 + Duration::from_secs(3), k(3));
        t.schedule(t0 + Duration::from_secs(1), k(1));
        t.schedule(t0 + Duration::from_secs(2), k(2));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(t.pop_due(later), Some(k(1)));
        assert_eq!(t.pop_due(later), Some(k(2)));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(3)));
    }
}
