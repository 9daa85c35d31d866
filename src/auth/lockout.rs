//! Lockout: slowing down password guessing, per name and client IP.
//!
//! After [`FREE_FAILURES`] wrong passwords for a name from one IP, that
//! pair is locked for 1 s; each further failure doubles the lock, up to
//! 15 min (DESIGN.md, "Accounts"). While locked, giving that name at the
//! prompt is refused without asking for a password, and a refused try is
//! not a failure, so waiting out the lock is all it takes for an honest
//! user. A right password clears the pair.
//!
//! Why per name *and* IP: locking a name for everyone would let anyone
//! lock a classmate out by typing wrong passwords for their name; locking
//! an IP would lock a whole classroom behind one NAT. An attacker with one
//! address gets 5 free tries per name and then a doubling wait: ~20 more
//! guesses in the first hour and 4 an hour after that.
//!
//! Tries already on the worker count too ("in flight"): a hundred
//! connections sending a password for the same name at once do not get a
//! hundred guesses before the first answer comes back.
//!
//! Memory is bounded: entries exist only for registered names that had a
//! wrong password, and at most `MAX_ENTRIES` are kept (the oldest
//! unlocked ones are forgotten first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong passwords allowed before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// The first lock.
pub const FIRST_LOCK: Duration = Duration::from_secs(1);
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// A pair whose last failure is this old starts again from zero.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Most (name, IP) pairs remembered.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

/// Failures and locks by (name key, IP).
#[derive(Debug, Default)]
pub struct Lockout {
    entries: HashMap<(Box<str>, IpAddr), Entry>,
}

impl Lockout {
    pub fn new() -> Lockout {
        Lockout::default()
    }

    /// Whether `name` may be tried from `ip` now (at the name prompt).
    ///
    /// # Errors
    /// The time left to wait, rounded up to whole seconds.
    pub fn check(&self, name: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(entry) = self.entries.get(&(name.into(), ip)) else {
            return Ok(());
        };
        if let Some(until) = entry.locked_until
            && until > now
        {
            return Err(round_up(until - now));
        }
        if entry.in_flight > 0 && entry.failures + entry.in_flight >= FREE_FAILURES {
            // The answers already on their way could lock the pair: wait
            // for them rather than stack more guesses behind them.
            return Err(lock_for(entry.failures + entry.in_flight));
        }
        Ok(())
    }

    /// A password for `name` from `ip` goes to the worker now.
    ///
    /// # Errors
    /// As [`Lockout::check`]: the pair got locked meanwhile.
    pub fn begin(&mut self, name: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.check(name, ip, now)?;
        self.make_room(now);
        let entry = self.entries.entry((name.into(), ip)).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            locked_until: None,
            last_failure: now,
        });
        if now.duration_since(entry.last_failure) > FORGET_AFTER && entry.in_flight == 0 {
            entry.failures = 0;
        }
        entry.in_flight += 1;
        Ok(())
    }

    /// The answer for a try started with [`Lockout::begin`] came back.
    /// Returns the lock the pair now has, if this failure locked it.
    pub fn end(&mut self, name: &str, ip: IpAddr, right: bool, now: Instant) -> Option<Duration> {
        let key = (Box::<str>::from(name), ip);
        if right {
            self.entries.remove(&key);
            return None;
        }
        let entry = self.entries.get_mut(&key)?;
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= FREE_FAILURES {
            let lock = lock_for(entry.failures);
            entry.locked_until = Some(now + lock);
            return Some(lock);
        }
        None
    }

    /// A try started with [`Lockout::begin`] ended without an answer (the
    /// connection closed, the job was refused): it counts for nothing.
    pub fn abandon(&mut self, name: &str, ip: IpAddr) {
        let key = (Box::<str>::from(name), ip);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if entry.in_flight == 0 && entry.failures == 0 {
                self.entries.remove(&key);
            }
        }
    }

    /// Pairs remembered (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the map under [`MAX_ENTRIES`]: first forget pairs that are
    /// neither locked nor in flight and failed long ago, then any that are
    /// not locked or in flight. Locked pairs are never forgotten early, so
    /// flooding the map cannot unlock anyone.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < MAX_ENTRIES {
            return;
        }
        let active = |e: &Entry| e.in_flight > 0 || e.locked_until.is_some_and(|u| u > now);
        self.entries
            .retain(|_, e| active(e) || now.duration_since(e.last_failure) < FORGET_AFTER);
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| active(e));
        }
    }
}

/// The lock after `failures` wrong passwords (`failures` ≥ 5): 1 s,
/// doubling, at most [`MAX_LOCK`].
fn lock_for(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(FREE_FAILURES).min(20);
    (FIRST_LOCK * (1u32 << doublings)).min(MAX_LOCK)
}

/// Whole seconds, rounded up, so `wait 1s` is never too short.
fn round_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const OTHER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn fail(l: &mut Lockout, now: Instant) -> Option<Duration> {
        l.begin("alice", IP, now).unwrap();
        l.end("alice", IP, false, now)
    }

    #[test]
    fn five_free_failures_then_doubling_locks_up_to_15_minutes() {
        let mut l = Lockout::new();
        let mut now = Instant::now();
        for _ in 0..4 {
            assert_eq!(fail(&mut l, now), None);
            assert_eq!(l.check("alice", IP, now), Ok(()));
        }
        assert_eq!(fail(&mut l, now), Some(Duration::from_secs(1)));
        assert_eq!(l.check("alice", IP, now), Err(Duration::from_secs(1)));
        // Other IPs and other names are not affected.
        assert_eq!(l.check("alice", OTHER_IP, now), Ok(()));
        assert_eq!(l.check("bob", IP, now), Ok(()));
        // A refused try is not a failure: begin refuses and counts nothing.
        assert!(l.begin("alice", IP, now).is_err());
        now += Duration::from_millis(1000);
        assert_eq!(l.check("alice", IP, now), Ok(()));
        let mut expected = 2;
        for _ in 0..12 {
            let lock = fail(&mut l, now).unwrap();
            assert_eq!(lock, Duration::from_secs(expected.min(900)));
            now += lock;
            expected *= 2;
        }
        // A right password clears everything.
        l.begin("alice", IP, now).unwrap();
        assert_eq!(l.end("alice", IP, true, now), None);
        assert!(l.is_empty());
    }

    #[test]
    fn remaining_time_is_rounded_up() {
        let mut l = Lockout::new();
        let now = Instant::now();
        for _ in 0..6 {
            l.begin("alice", IP, now).ok();
            l.end("alice", IP, false, now);
        }
        // Locked for 2 s from `now`.
        let later = now + Duration::from_millis(300);
        assert_eq!(l.check("alice", IP, later), Err(Duration::from_secs(2)));
        let later = now + Duration::from_millis(1999);
        assert_eq!(l.check("alice", IP, later), Err(Duration::from_secs(1)));
    }

    #[test]
    fn tries_in_flight_count_before_their_answers() {
        let mut l = Lockout::new();
        let now = Instant::now();
        for _ in 0..5 {
            l.begin("alice", IP, now).unwrap();
        }
        assert!(l.begin("alice", IP, now).is_err(), "a sixth waits");
        // An abandoned try (its connection closed) frees its place.
        l.abandon("alice", IP);
        assert!(l.begin("alice", IP, now).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_locks_survive_a_flood() {
        let mut l = Lockout::new();
        let now = Instant::now();
        for _ in 0..5 {
            l.begin("victim", IP, now).unwrap();
            l.end("victim", IP, false, now);
        }
        for i in 0..(MAX_ENTRIES * 2) {
            let name = format!("n{i}");
            l.begin(&name, OTHER_IP, now).unwrap();
            l.end(&name, OTHER_IP, false, now);
        }
        assert!(l.len() <= MAX_ENTRIES, "{}", l.len());
        assert!(l.check("victim", IP, now).is_err(), "still locked");
    }
}
