//! `echochat load echo`: one thread's event loop of closed-loop ping-pong.
//!
//! Each connection sends a message of `--size` bytes, reads until exactly
//! that many bytes came back, compares them byte for byte with what it
//! sent, records the round-trip time, and sends the next one. The loop is
//! lean on purpose, so the load generator is never the bottleneck: in
//! steady state a message costs one `send` and one `recv`.
//!
//! - The reply is read into a buffer sized to what is still missing. A read
//!   that returns fewer bytes than asked drained the socket, so with mio's
//!   edge-triggered epoll no second "until `WouldBlock`" read is needed: the
//!   next arriving bytes raise a new edge.
//! - A read that completes the message is not followed by another read
//!   either: the protocol is closed-loop, so nothing more can arrive until
//!   the next message is sent — which happens right away, in the same turn.
//! - Each message is a window of a random pattern at a per-(connection,
//!   sequence) offset, stamped with both, so a reply from another
//!   connection or an older message never compares equal. Every byte has its high bit set: no `\n`, so the echo
//!   service's exit word can never appear and nothing is held back.
//!
//! Read `mod.rs` for how the threads are started and merged, `connect.rs`
//! for the connect ramp.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token};

use super::connect::{self, Target};
use super::progress::Shared;
use super::stats::{ConnectCause, Stats};
use super::{DRAIN, Error, Plan, ThreadResult, poll_once};

/// Where one connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet (the ramp has not reached it).
    Waiting,
    /// Connect in flight; fails as timed out at the deadline.
    Connecting { deadline: Instant },
    /// Connected, no message in flight.
    Idle,
    /// A message is in flight.
    Busy,
    /// Failed or closed; never used again.
    Closed,
}

struct Conn {
    /// Global client index: seeds the message content.
    id: u64,
    state: State,
    stream: Option<TcpStream>,
    /// The message in flight (what the reply must equal).
    out: Box<[u8]>,
    /// Bytes of `out` written so far.
    sent: usize,
    /// The reply so far.
    inp: Box<[u8]>,
    /// Bytes of the reply received so far.
    got: usize,
    seq: u64,
    sent_at: Instant,
    /// At least one reply completed: a close before that means the server
    /// turned the session down (e.g. `! server full`), a connect failure.
    answered: bool,
}

/// Why a connection is being closed.
enum CloseKind {
    Eof,
    Error(io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ramp,
    WaitOthers,
    Load,
    Drain,
}

struct Worker<'a> {
    target: &'a Target,
    shared: &'a Shared,
    size: usize,
    conns: Vec<Conn>,
    stats: Stats,
    phase: Phase,
    /// Connects in flight, and the ramp's bound on them.
    in_flight: usize,
    burst: usize,
    next_start: usize,
    /// Messages in flight (conns in `Busy`).
    busy: usize,
    /// New messages are sent only before this instant.
    load_end: Instant,
    /// Round trips not yet added to the shared progress counter.
    unreported: u64,
    poll: Poll,
    /// Random bytes every message is cut from (see `fill_message`).
    pattern: Vec<u8>,
}

/// How long a connect may take before it counts as timed out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Run one thread's share of the connections.
pub fn run_thread(
    target: &Target,
    plan: Plan,
    size: usize,
    shared: &Shared,
) -> Result<ThreadResult, Error> {
    let poll =
        Poll::new().map_err(|e| Error::new(format!("cannot create a poll instance: {e}")))?;
    let now = Instant::now();
    let conns = plan
        .clients
        .iter()
        .map(|&id| Conn {
            id: id as u64,
            state: State::Waiting,
            stream: None,
            out: Box::new([]),
            sent: 0,
            inp: Box::new([]),
            got: 0,
            seq: 0,
            sent_at: now,
            answered: false,
        })
        .collect();
    let mut w = Worker {
        target,
        shared,
        size,
        conns,
        stats: Stats::new(),
        phase: Phase::Ramp,
        in_flight: 0,
        burst: plan.burst.max(1),
        next_start: 0,
        busy: 0,
        load_end: now,
        unreported: 0,
        poll,
        pattern: make_pattern(size, 0x5EED ^ size as u64),
    };
    w.run(plan.started, plan.duration)
}

impl Worker<'_> {
    fn run(&mut self, started: Instant, duration: Duration) -> Result<ThreadResult, Error> {
        let mut events = Events::with_capacity(1024);
        let mut result = ThreadResult::default();
        let mut load_start = started;
        let mut drain_end = started;
        let mut connect_deadlines = VecDeque::new();
        loop {
            let now = Instant::now();
            let timeout = match self.phase {
                Phase::Ramp => {
                    self.start_connects(now, &mut connect_deadlines);
                    self.expire_connects(now, &mut connect_deadlines);
                    if self.next_start == self.conns.len() && self.in_flight == 0 {
                        result.ramp = started.elapsed();
                        self.phase = Phase::WaitOthers;
                        self.shared.ready_threads.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    connect_deadlines
                        .front()
                        .map_or(Duration::from_millis(50), |(d, _)| {
                            d.saturating_duration_since(now)
                        })
                }
                Phase::WaitOthers => {
                    if self.shared.all_ready() {
                        if Shared::get(&self.shared.connected) == 0 {
                            // Nothing to drive anywhere: report the ramp.
                            break;
                        }
                        load_start = Instant::now();
                        self.load_end = load_start + duration;
                        self.phase = Phase::Load;
                        self.send_first_messages(load_start);
                        continue;
                    }
                    Duration::from_millis(5)
                }
                Phase::Load => {
                    if now >= self.load_end {
                        result.load = now - load_start;
                        self.phase = Phase::Drain;
                        drain_end = now + DRAIN;
                        continue;
                    }
                    self.load_end - now
                }
                Phase::Drain => {
                    if self.busy == 0 || now >= drain_end {
                        break;
                    }
                    drain_end - now
                }
            };
            poll_once(&mut self.poll, &mut events, timeout)?;
            for ev in events.iter() {
                let hup = ev.is_read_closed() || ev.is_error();
                self.on_event(ev.token().0, ev.is_readable() || hup, ev.is_writable(), hup);
            }
            Shared::add(&self.shared.messages, std::mem::take(&mut self.unreported));
        }
        self.stats.incomplete = self.busy as u64;
        self.stats.served = self.conns.iter().filter(|c| c.answered).count() as u64;
        result.stats = std::mem::take(&mut self.stats);
        Ok(result)
    }

    /// Keep up to `burst` connects in flight.
    fn start_connects(&mut self, now: Instant, deadlines: &mut VecDeque<(Instant, usize)>) {
        while self.in_flight < self.burst && self.next_start < self.conns.len() {
            let i = self.next_start;
            self.next_start += 1;
            let id = self.conns[i].id as usize;
            match connect::start_registered(self.target, id, self.poll.registry(), Token(i)) {
                Ok(stream) => {
                    let deadline = now + CONNECT_TIMEOUT;
                    let c = &mut self.conns[i];
                    c.stream = Some(stream);
                    c.state = State::Connecting { deadline };
                    deadlines.push_back((deadline, i));
                    self.in_flight += 1;
                }
                Err(cause) => self.connect_failed(i, cause),
            }
        }
    }

    /// Connects still in flight at their deadline fail as timed out. All
    /// deadlines are start + the same timeout, so the queue is in order.
    fn expire_connects(&mut self, now: Instant, deadlines: &mut VecDeque<(Instant, usize)>) {
        while let Some(&(deadline, i)) = deadlines.front() {
            if deadline > now {
                break;
            }
            deadlines.pop_front();
            // The entry is stale if that connect already finished.
            if self.conns[i].state == (State::Connecting { deadline }) {
                self.in_flight -= 1;
                self.connect_failed(i, ConnectCause::TimedOut);
            }
        }
    }

    fn connect_failed(&mut self, i: usize, cause: ConnectCause) {
        self.conns[i].state = State::Closed;
        self.conns[i].stream = None;
        self.stats.connect_failed(cause);
        Shared::add(&self.shared.failed, 1);
    }

    /// `hup`: the event also reported FIN or an error, which, unlike new
    /// bytes, raises no further edge once this one is consumed.
    fn on_event(&mut self, i: usize, readable: bool, writable: bool, hup: bool) {
        let Some(c) = self.conns.get(i) else { return };
        match c.state {
            State::Connecting { .. } => {
                self.finish_connect(i);
                // The server may talk first and close (`! server full`)
                // before we see the connect finish: this edge carries both.
                if readable && self.conns[i].state == State::Idle {
                    self.read_unsolicited(i);
                }
            }
            State::Idle if readable => self.read_unsolicited(i),
            State::Busy => {
                if writable && c.sent < self.size {
                    self.write_out(i);
                }
                if readable && self.conns[i].state == State::Busy {
                    self.read_in(i, hup);
                }
            }
            _ => {}
        }
    }

    fn finish_connect(&mut self, i: usize) {
        let Some(stream) = self.conns[i].stream.as_ref() else {
            return;
        };
        match connect::finish(stream) {
            Ok(false) => {}
            Ok(true) => {
                self.in_flight -= 1;
                let c = &mut self.conns[i];
                c.state = State::Idle;
                c.out = vec![0; self.size].into_boxed_slice();
                c.inp = vec![0; self.size].into_boxed_slice();
                self.stats.connected += 1;
                Shared::add(&self.shared.connected, 1);
            }
            Err(cause) => {
                self.in_flight -= 1;
                self.connect_failed(i, cause);
            }
        }
    }

    fn send_first_messages(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Idle {
                self.start_message(i, now);
            }
        }
    }

    /// Fill the next message and write it.
    fn start_message(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        c.seq += 1;
        fill_message(&mut c.out, &self.pattern, c.id, c.seq);
        c.sent = 0;
        c.got = 0;
        c.sent_at = now;
        c.state = State::Busy;
        self.busy += 1;
        self.write_out(i);
    }

    /// Write what is left of the message. A 1 KiB message fits the socket
    /// buffer, so this is one `send`; a big one continues on WRITABLE.
    fn write_out(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            match stream.write(&c.out[c.sent..]) {
                Ok(0) => return self.close(i, CloseKind::Eof),
                Ok(n) => {
                    c.sent += n;
                    if c.sent == c.out.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, CloseKind::Error(e)),
            }
        }
    }

    /// Read the reply. See the module doc for why a short read, or a read
    /// that completes the message, is the last one until the next event —
    /// unless the event reported FIN or an error (`hup`): then read on to
    /// find it, since no new edge will announce it.
    fn read_in(&mut self, i: usize, hup: bool) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            let want = c.inp.len() - c.got;
            match stream.read(&mut c.inp[c.got..]) {
                Ok(0) => return self.close(i, CloseKind::Eof),
                Ok(n) => {
                    c.got += n;
                    if c.got == c.inp.len() {
                        return self.complete(i);
                    }
                    if n < want && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, CloseKind::Error(e)),
            }
        }
    }

    /// Bytes while no message is in flight: before the load starts this is
    /// the server talking first (e.g. `! server full`, then FIN, which
    /// `close` counts as a refused session); after a reply it is more than
    /// was sent, a verification error. Read to `WouldBlock` to re-arm the
    /// edge.
    fn read_unsolicited(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            match stream.read(&mut c.inp[..]) {
                Ok(0) => return self.close(i, CloseKind::Eof),
                Ok(_) => {
                    if c.answered {
                        self.stats.verify_errors += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, CloseKind::Error(e)),
            }
        }
    }

    /// A whole reply arrived: verify, record, send the next message.
    fn complete(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.conns[i];
        if c.inp != c.out {
            self.stats.verify_errors += 1;
        }
        let rtt = now.saturating_duration_since(c.sent_at);
        self.stats
            .record_latency_us(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
        self.stats.messages += 1;
        self.stats.bytes += c.inp.len() as u64;
        self.unreported += 1;
        c.answered = true;
        c.got = 0;
        c.state = State::Idle;
        self.busy -= 1;
        if self.phase == Phase::Load && now < self.load_end {
            self.start_message(i, now);
        }
    }

    fn close(&mut self, i: usize, kind: CloseKind) {
        let c = &mut self.conns[i];
        let was_busy = c.state == State::Busy;
        // Dropping the stream closes the descriptor, which also removes it
        // from the epoll set.
        c.stream = None;
        c.state = State::Closed;
        if was_busy {
            self.busy -= 1;
        }
        if !c.answered {
            // The server ended the session before the first reply.
            let cause = match &kind {
                CloseKind::Eof => ConnectCause::Closed,
                CloseKind::Error(e) => ConnectCause::of(e),
            };
            self.stats.connected -= 1;
            self.shared.connected.fetch_sub(1, Ordering::Relaxed);
            self.stats.connect_failed(cause);
            Shared::add(&self.shared.failed, 1);
        } else {
            self.stats.io_errors += 1;
        }
    }
}

/// Fill `buf` with the bytes of message `seq` of connection `id`.
///
/// A fresh pseudo-random stream per message would cost more CPU than the
/// server spends on it (64 KiB of splitmix per message), so each message is
/// a window of one random `pattern` (twice the message size, shared by the
/// thread) at an offset derived from `(id, seq)`, with `id` and `seq`
/// stamped into its first 16 bytes. A reply from another connection or an
/// older message therefore never compares equal, and filling is a memcpy.
/// Every byte has its high bit set (no `\n`).
pub fn fill_message(buf: &mut [u8], pattern: &[u8], id: u64, seq: u64) {
    let len = buf.len();
    let offset = if len == 0 {
        0
    } else {
        (splitmix(id ^ seq.rotate_left(32)) % len as u64) as usize
    };
    buf.copy_from_slice(&pattern[offset..offset + len]);
    // Stamp id and seq, 7 bits per byte, high bit set.
    let stamp = (0..8)
        .map(|k| (id >> (7 * k)) as u8 | 0x80)
        .chain((0..8).map(|k| (seq >> (7 * k)) as u8 | 0x80));
    for (dst, b) in buf.iter_mut().zip(stamp) {
        *dst = b;
    }
}

/// The random bytes messages are cut from: `2 * size` bytes, high bit set.
pub fn make_pattern(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(2 * size + 8);
    while out.len() < 2 * size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out.extend_from_slice(&(splitmix(state) | 0x8080_8080_8080_8080).to_le_bytes());
    }
    out.truncate(2 * size);
    out
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_by_connection_and_sequence_and_have_no_newline() {
        let p = make_pattern(37, 7);
        let mut a = [0u8; 37];
        let mut b = [0u8; 37];
        let mut c = [0u8; 37];
        fill_message(&mut a, &p, 1, 1);
        fill_message(&mut b, &p, 2, 1);
        fill_message(&mut c, &p, 1, 2);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().chain(&b).chain(&c).all(|&x| x >= 0x80));
        let mut again = [0u8; 37];
        fill_message(&mut again, &p, 1, 1);
        assert_eq!(a, again);
        let p1 = make_pattern(1, 7);
        let mut one = [0u8; 1];
        fill_message(&mut one, &p1, 1, 1);
        assert!(one[0] >= 0x80);
    }
}
