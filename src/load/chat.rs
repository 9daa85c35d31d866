//! `echochat load chat`: one thread's event loop of chat users.
//!
//! Each user connects and does the name handshake. The server either asks
//! (`* welcome to echochat; what is your name?`) and we answer with a name
//! unique to this run, or — names are remembered by client IP, and all our
//! users share a few loopback IPs — greets `* welcome back, NAME`, and the
//! user is joined already under that name, which it adopts. When every user
//! of every thread has joined, each sends `--rate` messages a second, their
//! start phases spread evenly over one period so the room gets a steady
//! stream rather than bursts. A message is
//!
//! ```text
//! TOKEN SENDER SEQ SEND_US NAME
//! ```
//!
//! (the run's token in hex, the sender's client index, its sequence number,
//! the send time in µs since the run's shared epoch, the sender's name).
//! Every receiver parses `NAME: text`, checks that the line came from
//! another user of this run under the name it claims, and records receive
//! time minus send time — one process, one clock. `* ` notices and
//! `[server] ` lines are ignored; lines of users outside this run are only
//! counted. The delivered fraction is lines received over messages sent ×
//! (users − 1).
//!
//! Read `echo.rs` first for the simpler loop; `mod.rs` for the phases.

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
use crate::codec::{Line, LineDecoder};

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the name handshake may take after connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line accepted from the server: its default `--max-line` (4 KiB)
/// plus a name prefix; longer lines are not ours and are dropped.
const MAX_LINE_BYTES: usize = 4096 + 64;
/// Bytes per `recv`, into one buffer per thread (not per user): a user's
/// decoder holds only an unfinished line, so 1,000 users do not cost
/// 1,000 receive buffers.
const READ_BYTES: usize = 64 * 1024;
/// Unsent bytes a user may queue when the socket's send buffer is full;
/// beyond this the message is dropped (and counted), never queued.
const OUT_MAX_BYTES: usize = 16 * 1024;
/// How long, at the end, users wait for the server to close after our FIN.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Name candidates tried before the handshake counts as failed.
const MAX_NAME_ATTEMPTS: u32 = 5;

/// A token that marks this run's messages, so two runs against one server
/// (or people typing in the room) do not count each other's lines.
pub fn run_token() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::process::id().rotate_left(16) ^ nanos
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Connecting {
        deadline: Instant,
    },
    /// Connected, waiting for the greeting or the `* hello`.
    Naming {
        deadline: Instant,
        attempt: u32,
    },
    Joined,
    /// At the end: FIN sent, reading (and discarding) until the server's.
    Leaving,
    Closed,
}

struct User {
    /// Global client index: the sender id in messages, and the name seed.
    id: usize,
    state: State,
    stream: Option<TcpStream>,
    /// The name the server knows us by (ours, or the remembered one).
    name: String,
    lines: LineDecoder,
    /// Bytes the socket did not take yet (bounded by `OUT_MAX_BYTES`).
    out: Vec<u8>,
    seq: u64,
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
    users: Vec<User>,
    stats: Stats,
    phase: Phase,
    /// Connects and handshakes in flight, and the ramp's bound on them.
    in_flight: usize,
    burst: usize,
    next_start: usize,
    /// This run's token, as 8 hex digits followed by a space.
    token: String,
    clients_total: usize,
    /// Send schedule: user `j` sends at `t0 + period * (round + id/N)`.
    t0: Instant,
    period: Duration,
    next_user: usize,
    round: u64,
    load_end: Instant,
    unreported_sent: u64,
    unreported_delivered: u64,
    /// (deadline, user) of connects in flight, in deadline order (every
    /// entry is its start + the same timeout); stale entries are skipped.
    connect_deadlines: VecDeque<(Instant, usize)>,
    /// The same for name handshakes.
    handshake_deadlines: VecDeque<(Instant, usize)>,
    /// The thread's receive buffer, shared by its users.
    scratch: Box<[u8]>,
    poll: Poll,
}

/// Run one thread's share of the users.
pub fn run_thread(
    target: &Target,
    plan: Plan,
    rate: f64,
    clients_total: usize,
    token: u32,
    shared: &Shared,
) -> Result<ThreadResult, Error> {
    let poll =
        Poll::new().map_err(|e| Error::new(format!("cannot create a poll instance: {e}")))?;
    let now = Instant::now();
    let users = plan
        .clients
        .iter()
        .map(|&id| User {
            id,
            state: State::Waiting,
            stream: None,
            name: String::new(),
            lines: LineDecoder::new(MAX_LINE_BYTES),
            out: Vec::new(),
            seq: 0,
        })
        .collect();
    let mut w = Worker {
        target,
        shared,
        users,
        stats: Stats::new(),
        phase: Phase::Ramp,
        in_flight: 0,
        burst: plan.burst.max(1),
        next_start: 0,
        token: format!("{token:08x} "),
        clients_total: clients_total.max(1),
        t0: now,
        period: Duration::from_secs_f64(1.0 / rate),
        next_user: 0,
        round: 0,
        load_end: now,
        unreported_sent: 0,
        unreported_delivered: 0,
        connect_deadlines: VecDeque::new(),
        handshake_deadlines: VecDeque::new(),
        scratch: vec![0; READ_BYTES].into_boxed_slice(),
        poll,
    };
    w.run(plan.started, plan.duration)
}

impl Worker<'_> {
    fn run(&mut self, started: Instant, duration: Duration) -> Result<ThreadResult, Error> {
        let mut events = Events::with_capacity(1024);
        let mut result = ThreadResult::default();
        let mut load_start = started;
        let mut drain_end = started;
        loop {
            let now = Instant::now();
            let timeout = match self.phase {
                Phase::Ramp => {
                    self.start_connects(now);
                    self.expire(now);
                    if self.next_start == self.users.len() && self.in_flight == 0 {
                        result.ramp = started.elapsed();
                        self.phase = Phase::WaitOthers;
                        self.shared.ready_threads.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    let next = [&self.connect_deadlines, &self.handshake_deadlines]
                        .iter()
                        .filter_map(|q| q.front().map(|(d, _)| *d))
                        .min();
                    next.map_or(Duration::from_millis(50), |d| {
                        d.saturating_duration_since(now)
                    })
                }
                Phase::WaitOthers => {
                    if self.shared.all_ready() {
                        if Shared::get(&self.shared.connected) == 0 {
                            break;
                        }
                        load_start = Instant::now();
                        self.t0 = load_start;
                        self.load_end = load_start + duration;
                        self.phase = Phase::Load;
                        continue;
                    }
                    Duration::from_millis(5)
                }
                Phase::Load => {
                    self.send_due(now);
                    if now >= self.load_end {
                        result.load = now - load_start;
                        self.phase = Phase::Drain;
                        drain_end = now + DRAIN;
                        self.flush_counters();
                        self.shared.sending_done.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    self.next_due()
                        .min(self.load_end)
                        .saturating_duration_since(now)
                }
                Phase::Drain => {
                    if now >= drain_end || self.all_delivered() {
                        break;
                    }
                    // Other threads' deliveries show only in the shared
                    // counters, so look again soon.
                    Duration::from_millis(5).min(drain_end - now)
                }
            };
            poll_once(&mut self.poll, &mut events, timeout)?;
            for ev in events.iter() {
                let hup = ev.is_read_closed() || ev.is_error();
                self.on_event(ev.token().0, ev.is_readable() || hup, ev.is_writable(), hup);
            }
            self.flush_counters();
        }
        self.leave(&mut events)?;
        result.stats = std::mem::take(&mut self.stats);
        Ok(result)
    }

    /// Leave politely: send FIN and read until the server closes, bounded
    /// by `LEAVE_TIMEOUT`. Closing a socket with unread bytes in its
    /// receive queue (`* X left` notices keep arriving) makes the kernel
    /// send RST, and the server would log every user as `reason=reset`.
    fn leave(&mut self, events: &mut Events) -> Result<(), Error> {
        let mut leaving = 0;
        for u in &mut self.users {
            if u.state != State::Joined {
                continue;
            }
            if let Some(stream) = u.stream.as_ref()
                && stream.shutdown(std::net::Shutdown::Write).is_ok()
            {
                u.state = State::Leaving;
                leaving += 1;
            }
        }
        let deadline = Instant::now() + LEAVE_TIMEOUT;
        let mut scratch = std::mem::take(&mut self.scratch);
        while leaving > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            poll_once(&mut self.poll, events, deadline - now)?;
            for ev in events.iter() {
                let Some(u) = self.users.get_mut(ev.token().0) else {
                    continue;
                };
                if u.state != State::Leaving {
                    continue;
                }
                if drain_to_eof(u.stream.as_mut(), &mut scratch) {
                    u.state = State::Closed;
                    u.stream = None;
                    leaving -= 1;
                }
            }
        }
        self.scratch = scratch;
        Ok(())
    }

    fn flush_counters(&mut self) {
        Shared::add(
            &self.shared.messages,
            std::mem::take(&mut self.unreported_sent),
        );
        Shared::add(
            &self.shared.delivered,
            std::mem::take(&mut self.unreported_delivered),
        );
    }

    /// Every thread stopped sending, and every message reached every other
    /// joined user.
    fn all_delivered(&self) -> bool {
        if self.shared.sending_done.load(Ordering::Acquire) < self.shared.threads {
            return false;
        }
        let sent = Shared::get(&self.shared.messages);
        let receivers = Shared::get(&self.shared.connected).saturating_sub(1);
        Shared::get(&self.shared.delivered) >= sent * receivers
    }

    fn start_connects(&mut self, now: Instant) {
        while self.in_flight < self.burst && self.next_start < self.users.len() {
            let i = self.next_start;
            self.next_start += 1;
            let id = self.users[i].id;
            match connect::start_registered(self.target, id, self.poll.registry(), Token(i)) {
                Ok(stream) => {
                    let deadline = now + CONNECT_TIMEOUT;
                    let u = &mut self.users[i];
                    u.stream = Some(stream);
                    u.state = State::Connecting { deadline };
                    self.connect_deadlines.push_back((deadline, i));
                    self.in_flight += 1;
                }
                Err(cause) => self.connect_failed(i, cause),
            }
        }
    }

    /// Fail connects and handshakes still in flight at their deadline.
    fn expire(&mut self, now: Instant) {
        for handshake in [false, true] {
            loop {
                let q = if handshake {
                    &mut self.handshake_deadlines
                } else {
                    &mut self.connect_deadlines
                };
                let Some(&(deadline, i)) = q.front() else {
                    break;
                };
                if deadline > now {
                    break;
                }
                q.pop_front();
                let expired = match self.users[i].state {
                    State::Connecting { deadline: d } if !handshake => d == deadline,
                    State::Naming { deadline: d, .. } if handshake => d == deadline,
                    _ => false,
                };
                if expired {
                    self.in_flight -= 1;
                    self.connect_failed(i, ConnectCause::TimedOut);
                }
            }
        }
    }

    fn connect_failed(&mut self, i: usize, cause: ConnectCause) {
        let u = &mut self.users[i];
        u.state = State::Closed;
        u.stream = None;
        self.stats.connect_failed(cause);
        Shared::add(&self.shared.failed, 1);
    }

    /// `hup`: the event also reported FIN or an error (see `read_lines`).
    fn on_event(&mut self, i: usize, readable: bool, writable: bool, hup: bool) {
        let Some(u) = self.users.get(i) else { return };
        match u.state {
            State::Connecting { .. } => self.finish_connect(i),
            State::Naming { .. } | State::Joined => {
                if writable && !u.out.is_empty() {
                    self.flush_out(i);
                }
                if readable {
                    self.read_lines(i, hup);
                }
            }
            _ => {}
        }
    }

    fn finish_connect(&mut self, i: usize) {
        let Some(stream) = self.users[i].stream.as_ref() else {
            return;
        };
        match connect::finish(stream) {
            Ok(false) => {}
            Ok(true) => {
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let u = &mut self.users[i];
                u.state = State::Naming {
                    deadline,
                    attempt: 0,
                };
                self.handshake_deadlines.push_back((deadline, i));
                // The greeting may be in already (on loopback it can arrive
                // with the handshake); the edge that woke us said WRITABLE,
                // so read now rather than wait for another edge.
                self.read_lines(i, true);
            }
            Err(cause) => {
                self.in_flight -= 1;
                self.connect_failed(i, cause);
            }
        }
    }

    /// Read until the socket is drained, handing each line to `on_line`.
    /// A short read means drained, unless `hup`: FIN or an error already
    /// reported raises no new edge, so read on until `WouldBlock` or EOF.
    fn read_lines(&mut self, i: usize, hup: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_lines_into(i, &mut scratch, hup);
        self.scratch = scratch;
    }

    fn read_lines_into(&mut self, i: usize, scratch: &mut [u8], hup: bool) {
        loop {
            let u = &mut self.users[i];
            let Some(stream) = u.stream.as_mut() else {
                return;
            };
            match stream.read(scratch) {
                Ok(0) => return self.close(i, None),
                Ok(n) => {
                    let now_us = micros(self.shared.epoch.elapsed());
                    // Take the decoder out so `on_line` may borrow `self`;
                    // the placeholder allocates nothing.
                    let mut lines = std::mem::replace(&mut u.lines, LineDecoder::new(0));
                    lines.feed(&scratch[..n], |line| match line {
                        Line::Text(text) => self.on_line(i, text.as_bytes(), now_us),
                        Line::InvalidUtf8(bytes) => self.on_line(i, bytes, now_us),
                        // Our lines are short: a long one is someone else's.
                        Line::TooLong => self.stats.foreign_lines += 1,
                    });
                    let u = &mut self.users[i];
                    if u.state == State::Closed {
                        return;
                    }
                    u.lines = lines;
                    // A short read drained the socket: epoll will report the
                    // next bytes as a new edge.
                    if n < scratch.len() && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, Some(e)),
            }
        }
    }

    fn on_line(&mut self, i: usize, line: &[u8], now_us: u64) {
        match self.users[i].state {
            State::Naming { deadline, attempt } => self.on_naming_line(i, line, deadline, attempt),
            State::Joined => self.on_room_line(i, line, now_us),
            _ => {}
        }
    }

    /// The handshake: answer the name question, adopt the joined name.
    fn on_naming_line(&mut self, i: usize, line: &[u8], deadline: Instant, attempt: u32) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        if line.starts_with("* ") && line.ends_with("what is your name?") {
            if attempt >= MAX_NAME_ATTEMPTS {
                self.in_flight -= 1;
                return self.connect_failed(i, ConnectCause::Other);
            }
            let name = candidate_name(self.users[i].id, attempt);
            let mut msg = name.into_bytes();
            msg.push(b'\n');
            self.send(i, &msg);
        } else if let Some(name) = line
            .strip_prefix("* hello, ")
            .or_else(|| line.strip_prefix("* welcome back, "))
        {
            self.joined(i, name.trim().to_string());
        } else if line.starts_with("! ") {
            // Name taken or refused: the next question gets a new candidate.
            self.users[i].state = State::Naming {
                deadline,
                attempt: attempt + 1,
            };
        }
    }

    fn joined(&mut self, i: usize, name: String) {
        let u = &mut self.users[i];
        u.name = name;
        u.state = State::Joined;
        self.in_flight -= 1;
        self.stats.connected += 1;
        Shared::add(&self.shared.connected, 1);
    }

    /// A line in the room: count and time our users' messages.
    fn on_room_line(&mut self, i: usize, line: &[u8], now_us: u64) {
        if line.starts_with(b"* ") || line.starts_with(b"[server] ") {
            return;
        }
        if line.starts_with(b"! ") {
            self.stats.server_errors += 1;
            return;
        }
        let Some(colon) = find(line, b": ") else {
            self.stats.verify_errors += 1;
            return;
        };
        let (from, text) = (&line[..colon], &line[colon + 2..]);
        let Some(fields) = text.strip_prefix(self.token.as_bytes()) else {
            self.stats.foreign_lines += 1;
            return;
        };
        match parse_message(fields) {
            Some(m) if m.name == from && m.sender != self.users[i].id && m.send_us <= now_us => {
                self.stats.delivered += 1;
                self.unreported_delivered += 1;
                self.stats.bytes += line.len() as u64 + 1;
                self.stats.record_latency_us(now_us - m.send_us);
            }
            _ => self.stats.verify_errors += 1,
        }
    }

    /// The next send time in the schedule.
    fn next_due(&self) -> Instant {
        let id = self.users[self.next_user].id;
        let phase =
            (self.round as f64 + id as f64 / self.clients_total as f64) * self.period.as_secs_f64();
        self.t0 + Duration::from_secs_f64(phase)
    }

    /// Send every message that is due (catching up if the loop fell behind).
    fn send_due(&mut self, now: Instant) {
        while now < self.load_end && self.next_due() <= now {
            let i = self.next_user;
            if self.users[i].state == State::Joined {
                self.send_message(i);
            }
            self.next_user += 1;
            if self.next_user == self.users.len() {
                self.next_user = 0;
                self.round += 1;
            }
        }
    }

    fn send_message(&mut self, i: usize) {
        let send_us = micros(self.shared.epoch.elapsed());
        let u = &mut self.users[i];
        u.seq += 1;
        let mut buf = [0u8; 128];
        let mut cur = io::Cursor::new(&mut buf[..]);
        // 8 + 1 + 20 + 1 + 20 + 1 + 20 + 1 + 32 + 1 bytes at most: fits.
        if writeln!(
            cur,
            "{}{} {} {} {}",
            self.token, u.id, u.seq, send_us, u.name
        )
        .is_err()
        {
            self.stats.send_dropped += 1;
            return;
        }
        let len = cur.position() as usize;
        if u.out.len() + len > OUT_MAX_BYTES {
            self.stats.send_dropped += 1;
            return;
        }
        self.stats.messages += 1;
        self.unreported_sent += 1;
        self.send(i, &buf[..len]);
    }

    /// Write now if nothing is queued, queue what the socket did not take.
    fn send(&mut self, i: usize, bytes: &[u8]) {
        let u = &mut self.users[i];
        if !u.out.is_empty() {
            u.out.extend_from_slice(bytes);
            return;
        }
        let Some(stream) = u.stream.as_mut() else {
            return;
        };
        let mut done = 0;
        while done < bytes.len() {
            match stream.write(&bytes[done..]) {
                Ok(0) => return self.close(i, None),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, Some(e)),
            }
        }
        // Bounded: `send_message` refuses to queue past OUT_MAX_BYTES.
        u.out.extend_from_slice(&bytes[done..]);
    }

    fn flush_out(&mut self, i: usize) {
        let u = &mut self.users[i];
        let Some(stream) = u.stream.as_mut() else {
            return;
        };
        let mut done = 0;
        while done < u.out.len() {
            match stream.write(&u.out[done..]) {
                Ok(0) => return self.close(i, None),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(i, Some(e)),
            }
        }
        u.out.drain(..done);
    }

    /// EOF (`None`) or an error. Before joining this is a failed session
    /// (e.g. `! server full`, then FIN); after, an io error.
    fn close(&mut self, i: usize, err: Option<io::Error>) {
        match self.users[i].state {
            State::Naming { .. } => {
                self.in_flight -= 1;
                let cause = err.as_ref().map_or(ConnectCause::Closed, ConnectCause::of);
                self.connect_failed(i, cause);
            }
            State::Joined => {
                self.stats.io_errors += 1;
                let u = &mut self.users[i];
                u.state = State::Closed;
                u.stream = None;
            }
            _ => {}
        }
    }
}

/// Read and discard until `WouldBlock`; true at EOF or on an error.
fn drain_to_eof(stream: Option<&mut TcpStream>, scratch: &mut [u8]) -> bool {
    let Some(stream) = stream else { return true };
    loop {
        match stream.read(scratch) {
            Ok(0) => return true,
            // Not lean on purpose: FIN may sit behind these bytes and would
            // raise no new edge.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The name user `id` asks for on attempt `attempt`: at most 32 characters
/// of letters, digits, `_` and `-`, unique per process and user.
fn candidate_name(id: usize, attempt: u32) -> String {
    let pid = std::process::id();
    if attempt == 0 {
        format!("ld{pid}-{id}")
    } else {
        format!("ld{pid}-{id}-{attempt}")
    }
}

/// The fields of one of our messages.
struct Message<'a> {
    sender: usize,
    send_us: u64,
    name: &'a [u8],
}

/// Parse `SENDER SEQ SEND_US NAME` (the token already stripped).
fn parse_message(fields: &[u8]) -> Option<Message<'_>> {
    let mut it = fields.splitn(4, |&b| b == b' ');
    let sender = parse_u64(it.next()?)? as usize;
    let _seq = parse_u64(it.next()?)?;
    let send_us = parse_u64(it.next()?)?;
    let name = it.next()?;
    (!name.is_empty()).then_some(Message {
        sender,
        send_us,
        name,
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse() {
        let m = parse_message(b"12 7 123456 ld1-12").unwrap();
        assert_eq!(m.sender, 12);
        assert_eq!(m.send_us, 123456);
        assert_eq!(m.name, b"ld1-12");
        assert!(parse_message(b"12 7 x ld").is_none());
        assert!(parse_message(b"12 7 5").is_none());
        assert!(parse_message(b"").is_none());
        assert!(parse_message(b"99999999999999999999999 1 1 a").is_none());
    }

    #[test]
    fn names_are_valid() {
        for (id, attempt) in [(0, 0), (19_999, 4), (usize::MAX, u32::MAX)] {
            let n = candidate_name(id, attempt);
            assert!(!n.is_empty() && n.len() <= 48, "{n}");
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
        assert!(candidate_name(19_999, 4).len() <= 32);
    }
}
