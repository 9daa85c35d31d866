//! The traffic cap (`--log-traffic-rate N`): how a load test of a million
//! messages a second still leaves hours of lifecycle history in the log.
//!
//! Each service may write `N` recv/send (and datagram) lines a second one
//! by one. Past that, the rest of that second's events are only counted, and
//! once the second is over one `traffic` line sums the whole second: every
//! event of it, written or not (`recv`, `send`, `bytes_in`, `bytes_out`,
//! `conns`), and how many were not written (`suppressed`). A second that
//! stayed under the cap has all its lines and no `traffic` line, so a class
//! watching `tail -F` sees each `recv` and nothing else.
//!
//! This sits on the hottest path of the server (two events per echoed
//! message), so it is checked *before* a line is formatted: a thread-local
//! tally per service (the reactor is one thread; no lock), a few integer
//! additions, and a set of the connections seen this second. Counting a
//! suppressed event costs tens of nanoseconds; formatting and writing its
//! line would cost a microsecond.
//!
//! Seconds follow the wall clock (`12:00:07.000` to `12:00:08.000`), so the
//! `traffic` line of a second comes just after it and `echochat log
//! --summary` can put individual lines and sums on one time axis. The
//! reactor calls [`traffic_tick`] once per turn, which ends a second that is
//! over, and folds [`traffic_deadline`] into its poll timeout, so the sum of
//! the last busy second is written on time even if the server then falls
//! idle.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Event, write};

/// `--log-traffic-rate`; 0 = no cap (every line written, nothing counted).
/// Set by `logging::init`; 0 until then, so code that records events
/// without a log (unit tests) is never capped.
static RATE: AtomicU32 = AtomicU32::new(0);

/// Sets `--log-traffic-rate` (lines per second per service; 0 = no cap).
pub fn set_rate(lines_per_second: u32) {
    RATE.store(lines_per_second, Ordering::Relaxed);
}

/// Which way the bytes went: `recv`/datagram in, `send`/datagram out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    In,
    Out,
}

thread_local! {
    static GATE: RefCell<Gate> = RefCell::new(Gate::default());
}

/// Counts an event; says whether its line should be written.
pub(super) fn admit(service: &'static str, key: u64, way: Way, bytes: usize) -> bool {
    let rate = RATE.load(Ordering::Relaxed);
    // No cap, or no output wants debug lines (then `log!` drops the line
    // for the price of one atomic load): nothing to count.
    if rate == 0 || log::max_level() < log::LevelFilter::Debug {
        return true;
    }
    GATE.with_borrow_mut(|gate| gate.admit(service, key, way, bytes as u64, rate))
}

/// Ends the current second if `now` is past it, writing a `traffic` line
/// for each service that went over the cap in it. The reactor calls this
/// once per turn, before handling the turn's events; it costs a comparison
/// when the second is not over.
pub fn traffic_tick(now: Instant) {
    let lines = GATE.with_borrow_mut(|gate| gate.tick(now));
    for line in &lines {
        write(line);
    }
}

/// When [`traffic_tick`] must run next to write a pending `traffic` line:
/// `None` when no service went over the cap this second. The reactor takes
/// it into account when choosing how long `poll` may sleep.
pub fn traffic_deadline() -> Option<Instant> {
    GATE.with_borrow(|gate| if gate.pending { gate.window_end } else { None })
}

/// Writes the sums of the current second now (at `stop`).
pub(super) fn finish() {
    let lines = GATE.with_borrow_mut(Gate::close);
    for line in &lines {
        write(line);
    }
}

/// A UDP peer as a key of the per-second connection set (UDP has no
/// `conn`; `conns` counts peers). Exact for IPv4, folded for IPv6.
pub(super) fn peer_key(peer: &SocketAddr) -> u64 {
    let port = u64::from(peer.port());
    match peer {
        SocketAddr::V4(a) => (u64::from(a.ip().to_bits()) << 16) | port,
        SocketAddr::V6(a) => {
            let bits = a.ip().to_bits();
            ((bits >> 64) as u64 ^ (bits as u64).rotate_left(17)) ^ (port << 48)
        }
    }
}

/// All services' tallies for the current second.
#[derive(Default)]
struct Gate {
    /// The end of the current second; `None` before the first tick.
    window_end: Option<Instant>,
    /// Some tally suppressed a line: a `traffic` line is owed.
    pending: bool,
    /// One per service seen; a handful, so a linear search is fastest.
    tallies: Vec<Tally>,
}

impl Gate {
    fn admit(&mut self, service: &'static str, key: u64, way: Way, bytes: u64, rate: u32) -> bool {
        let tally = match self
            .tallies
            .iter()
            .position(|t| std::ptr::eq(t.service, service) || t.service == service)
        {
            Some(i) => &mut self.tallies[i],
            None => {
                self.tallies.push(Tally::new(service));
                let last = self.tallies.len() - 1;
                &mut self.tallies[last]
            }
        };
        tally.count(key, way, bytes);
        if tally.written < rate {
            tally.written += 1;
            true
        } else {
            tally.suppressed += 1;
            self.pending = true;
            false
        }
    }

    fn tick(&mut self, now: Instant) -> Vec<Event> {
        if self.window_end.is_some_and(|end| now < end) {
            return Vec::new();
        }
        let lines = self.close();
        self.window_end = Some(now + until_next_second());
        lines
    }

    /// The `traffic` lines owed for the current second; starts the next.
    fn close(&mut self) -> Vec<Event> {
        let mut lines = Vec::new();
        if self.pending {
            for t in self.tallies.iter().filter(|t| t.suppressed > 0) {
                lines.push(Event::Traffic {
                    service: t.service,
                    recv: t.recv,
                    send: t.send,
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    conns: t.conns.len() as u64,
                    suppressed: t.suppressed,
                });
            }
        }
        for t in &mut self.tallies {
            t.reset();
        }
        self.pending = false;
        lines
    }
}

/// Time left in the current wall-clock second.
fn until_next_second() -> Duration {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_nanos(u64::from(1_000_000_000 - into))
}

/// One service's counts for the current second.
struct Tally {
    service: &'static str,
    /// Lines written one by one this second (against the cap).
    written: u32,
    recv: u64,
    send: u64,
    bytes_in: u64,
    bytes_out: u64,
    suppressed: u64,
    /// Connections (or UDP peers) with traffic this second. Bounded by the
    /// connections the server holds; cleared, not freed, each second.
    conns: HashSet<u64, BuildHasherDefault<KeyHasher>>,
    /// The last key added: echo's recv and send of one message come from
    /// the same connection, so most events skip the set.
    last_key: Option<u64>,
}

impl Tally {
    fn new(service: &'static str) -> Self {
        Tally {
            service,
            written: 0,
            recv: 0,
            send: 0,
            bytes_in: 0,
            bytes_out: 0,
            suppressed: 0,
            conns: HashSet::default(),
            last_key: None,
        }
    }

    fn count(&mut self, key: u64, way: Way, bytes: u64) {
        match way {
            Way::In => {
                self.recv += 1;
                self.bytes_in += bytes;
            }
            Way::Out => {
                self.send += 1;
                self.bytes_out += bytes;
            }
        }
        if self.last_key != Some(key) {
            self.last_key = Some(key);
            self.conns.insert(key);
        }
    }

    fn reset(&mut self) {
        self.written = 0;
        self.recv = 0;
        self.send = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.suppressed = 0;
        self.conns.clear();
        self.last_key = None;
    }
}

/// Hashes a `u64` key with one multiplication: the keys are connection
/// ids (or packed addresses) chosen by us, not by an attacker, so
/// SipHash's protection would cost without protecting anything.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(e: &Event) -> (u64, u64, u64, u64, u64, u64) {
        match e {
            Event::Traffic {
                recv,
                send,
                bytes_in,
                bytes_out,
                conns,
                suppressed,
                ..
            } => (*recv, *send, *bytes_in, *bytes_out, *conns, *suppressed),
            other => panic!("not traffic: {other:?}"),
        }
    }

    #[test]
    fn under_the_cap_every_line_is_written_and_no_sum() {
        let mut g = Gate::default();
        let t0 = Instant::now();
        assert!(g.tick(t0).is_empty());
        for i in 0..10 {
            assert!(g.admit("echo", i, Way::In, 5, 10));
        }
        assert!(!g.pending);
        assert!(g.tick(t0 + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn past_the_cap_lines_are_counted_and_summed_for_the_whole_second() {
        let mut g = Gate::default();
        let t0 = Instant::now();
        g.tick(t0);
        let mut written = 0;
        for i in 0..50u64 {
            written += u32::from(g.admit("echo", i % 7, Way::In, 100, 10));
            written += u32::from(g.admit("echo", i % 7, Way::Out, 100, 10));
        }
        // Another service has its own allowance.
        assert!(g.admit("chat", 1, Way::In, 3, 10));
        assert_eq!(written, 10);
        assert!(g.pending);
        // Not over yet: nothing written.
        assert!(g.tick(t0).is_empty());
        let lines = g.tick(t0 + Duration::from_secs(1));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(sums(&lines[0]), (50, 50, 5000, 5000, 7, 90));
        assert!(!g.pending);
        // The next second starts fresh.
        assert!(g.admit("echo", 1, Way::In, 1, 10));
    }

    #[test]
    fn finish_writes_the_pending_second() {
        let mut g = Gate::default();
        g.tick(Instant::now());
        for _ in 0..3 {
            g.admit("udp-echo", 9, Way::Out, 8, 1);
        }
        let lines = g.close();
        assert_eq!(sums(&lines[0]), (0, 3, 0, 24, 1, 2));
        assert!(g.close().is_empty());
    }

    #[test]
    fn peers_are_told_apart() {
        let a = peer_key(&"127.0.0.1:1000".parse().unwrap());
        let b = peer_key(&"127.0.0.1:1001".parse().unwrap());
        let c = peer_key(&"[::1]:1000".parse().unwrap());
        let d = peer_key(&"[::2]:1000".parse().unwrap());
        assert!(a != b && c != d && a != c);
    }

    #[test]
    fn a_second_ends_on_the_wall_clock_second() {
        let left = until_next_second();
        assert!(left > Duration::ZERO && left <= Duration::from_secs(1));
    }
}
