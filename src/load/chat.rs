//! `echochat load chat`: one thread's share of chat users.
//!
//! Each user connects and does the name handshake. The server either asks
//! (`* welcome to echochat; what is your name?`) and we answer with a name
//! unique to this run, or — names are remembered by client IP, and all our
//! users share a few loopback IPs — greets `* welcome back, NAME`, and the
//! user is joined already under that name, which it adopts. When every user
//! of every thread has joined, each sends `--rate` messages a second on the
//! shared schedule (`schedule.rs`: start phases spread evenly over one
//! period, so the room gets a steady stream rather than bursts). A message
//! is
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
//! counted (`foreign_lines`). The delivered fraction is lines received over
//! messages sent × (users − 1).
//!
//! A room of N users sending r messages a second makes the generator
//! receive N × (N − 1) × r lines a second (a million for 1,000 users at
//! 1 msg/s), so the receive path is the hot one: one 64 KiB read buffer per
//! thread, lines split with `memchr`, fields parsed in place without
//! allocating, and `--threads` to spread users over cores.
//!
//! Read `echo.rs` first for the simpler scenario; `worker.rs` for the loop.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::progress::Shared;
use super::schedule::Schedule;
use super::worker::{Core, Ready, Scenario, SlotState, Why, write_some};
use crate::codec::{Line, LineDecoder};

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

/// One chat user.
pub struct User {
    /// The name the server knows us by (ours, or the remembered one).
    name: String,
    lines: LineDecoder,
    /// Bytes the socket did not take yet (bounded by `OUT_MAX_BYTES`).
    out: Vec<u8>,
    seq: u64,
    /// Name candidates the server turned down so far.
    attempt: u32,
}

/// One thread's chat users.
pub struct Chat {
    /// This run's token, as 8 hex digits followed by a space.
    token: String,
    schedule: Schedule,
    /// The thread's receive buffer, shared by its users.
    scratch: Box<[u8]>,
}

impl Chat {
    /// Users `ids` of `clients_total`, each sending `rate` messages a
    /// second, marked with `token`.
    pub fn new(rate: f64, clients_total: usize, ids: Vec<usize>, token: u32) -> Chat {
        Chat {
            token: format!("{token:08x} "),
            schedule: Schedule::new(Duration::from_secs_f64(1.0 / rate), clients_total, ids),
            scratch: vec![0; READ_BYTES].into_boxed_slice(),
        }
    }

    /// Read until the socket is drained, handing each line to `on_line`.
    /// A short read means drained, unless `hup`: FIN or an error already
    /// reported raises no new edge, so read on until `WouldBlock` or EOF.
    fn read_lines(&mut self, core: &mut Core<'_, User>, i: usize, hup: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_lines_into(core, i, &mut scratch, hup);
        self.scratch = scratch;
    }

    fn read_lines_into(
        &mut self,
        core: &mut Core<'_, User>,
        i: usize,
        scratch: &mut [u8],
        hup: bool,
    ) {
        loop {
            let Some(stream) = core.slots[i].stream.as_mut() else {
                return;
            };
            match stream.read(scratch) {
                Ok(0) => return core.close(i, Why::Eof),
                Ok(n) => {
                    core.stats.bytes_received += n as u64;
                    let now_us = micros(core.shared.epoch.elapsed());
                    // Take the decoder out so `on_line` may borrow `core`;
                    // the placeholder allocates nothing.
                    let mut lines =
                        std::mem::replace(&mut core.slots[i].conn.lines, LineDecoder::new(0));
                    lines.feed(&scratch[..n], |line| match line {
                        Line::Text(text) => self.on_line(core, i, text.as_bytes(), now_us),
                        Line::InvalidUtf8(bytes) => self.on_line(core, i, bytes, now_us),
                        // Our lines are short: a long one is someone else's.
                        Line::TooLong => core.stats.foreign_lines += 1,
                    });
                    let slot = &mut core.slots[i];
                    if slot.state == SlotState::Free {
                        return;
                    }
                    slot.conn.lines = lines;
                    // A short read drained the socket: epoll will report the
                    // next bytes as a new edge.
                    if n < scratch.len() && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return core.close(i, Why::Error(e)),
            }
        }
    }

    fn on_line(&mut self, core: &mut Core<'_, User>, i: usize, line: &[u8], now_us: u64) {
        match core.slots[i].state {
            SlotState::Handshake => self.on_naming_line(core, i, line),
            SlotState::Up => self.on_room_line(core, i, line, now_us),
            _ => {}
        }
    }

    /// The handshake: answer the name question, adopt the joined name.
    fn on_naming_line(&mut self, core: &mut Core<'_, User>, i: usize, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        if line.starts_with("* ") && line.ends_with("what is your name?") {
            let slot = &core.slots[i];
            let attempt = slot.conn.attempt;
            if attempt >= MAX_NAME_ATTEMPTS {
                return core.close(i, Why::Error(io::Error::other("no name accepted")));
            }
            let mut msg = candidate_name(slot.client, attempt).into_bytes();
            msg.push(b'\n');
            self.send(core, i, &msg);
        } else if let Some(name) = line
            .strip_prefix("* hello, ")
            .or_else(|| line.strip_prefix("* welcome back, "))
        {
            core.slots[i].conn.name = name.trim().to_string();
            core.session_up(i);
            core.answered(i);
        } else if line.starts_with("! ") {
            let slot = &mut core.slots[i];
            // `! server full, try again later`, then FIN: counted as `full`.
            slot.full.feed(line.as_bytes());
            // Name taken or refused: the next question gets a new candidate.
            slot.conn.attempt += 1;
        }
    }

    /// A line in the room: count and time our users' messages.
    fn on_room_line(&mut self, core: &mut Core<'_, User>, i: usize, line: &[u8], now_us: u64) {
        let stats = &mut core.stats;
        match line.first() {
            Some(b'*') | Some(b'[') => return,
            Some(b'!') => {
                stats.server_errors += 1;
                return;
            }
            _ => {}
        }
        // Names hold no `:`, so the first one ends the sender's name.
        let Some(colon) = memchr::memchr(b':', line) else {
            stats.verify_errors += 1;
            return;
        };
        let (from, text) = (&line[..colon], &line[colon + 1..]);
        let Some(fields) = text
            .strip_prefix(b" ")
            .and_then(|t| t.strip_prefix(self.token.as_bytes()))
        else {
            stats.foreign_lines += 1;
            return;
        };
        match parse_message(fields) {
            Some(m)
                if m.name == from && m.sender != core.slots[i].client && m.send_us <= now_us =>
            {
                stats.delivered += 1;
                stats.bytes += line.len() as u64 + 1;
                stats.record_latency_us(now_us - m.send_us);
            }
            _ => stats.verify_errors += 1,
        }
    }

    fn send_message(&mut self, core: &mut Core<'_, User>, i: usize) {
        let send_us = micros(core.shared.epoch.elapsed());
        let slot = &mut core.slots[i];
        let u = &mut slot.conn;
        u.seq += 1;
        let mut buf = [0u8; 128];
        let mut cur = io::Cursor::new(&mut buf[..]);
        // 8 + 1 + 20 + 1 + 20 + 1 + 20 + 1 + 32 + 1 bytes at most: fits.
        if writeln!(
            cur,
            "{}{} {} {} {}",
            self.token, slot.client, u.seq, send_us, u.name
        )
        .is_err()
        {
            core.stats.send_dropped += 1;
            return;
        }
        let len = cur.position() as usize;
        if u.out.len() + len > OUT_MAX_BYTES {
            core.stats.send_dropped += 1;
            return;
        }
        core.stats.messages += 1;
        self.send(core, i, &buf[..len]);
    }

    /// Write now if nothing is queued, queue what the socket did not take.
    fn send(&mut self, core: &mut Core<'_, User>, i: usize, bytes: &[u8]) {
        let slot = &mut core.slots[i];
        let u = &mut slot.conn;
        if !u.out.is_empty() {
            u.out.extend_from_slice(bytes);
            return;
        }
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        match write_some(stream, bytes) {
            Ok(done) => {
                core.stats.bytes_sent += done as u64;
                // Bounded: `send_message` refuses to queue past OUT_MAX_BYTES.
                u.out.extend_from_slice(&bytes[done..]);
            }
            Err(why) => core.close(i, why),
        }
    }

    fn flush_out(&mut self, core: &mut Core<'_, User>, i: usize) {
        let slot = &mut core.slots[i];
        let u = &mut slot.conn;
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        match write_some(stream, &u.out) {
            Ok(done) => {
                core.stats.bytes_sent += done as u64;
                u.out.drain(..done);
            }
            Err(why) => core.close(i, why),
        }
    }
}

impl Scenario for Chat {
    type Conn = User;

    fn new_conn(&mut self, _client: usize) -> User {
        User {
            name: String::new(),
            lines: LineDecoder::new(MAX_LINE_BYTES),
            out: Vec::new(),
            seq: 0,
            attempt: 0,
        }
    }

    fn on_connected(&mut self, core: &mut Core<'_, User>, i: usize, _ready: Ready) {
        // The greeting may be in already (on loopback it can arrive with
        // the handshake); the edge that woke us said WRITABLE, so read now
        // rather than wait for another edge.
        self.read_lines(core, i, true);
    }

    fn on_ready(&mut self, core: &mut Core<'_, User>, i: usize, ready: Ready) {
        if ready.writable && !core.slots[i].conn.out.is_empty() {
            self.flush_out(core, i);
        }
        if ready.readable && core.slots[i].state != SlotState::Free {
            self.read_lines(core, i, ready.hup);
        }
    }

    fn on_load_start(&mut self, _core: &mut Core<'_, User>, now: Instant) {
        self.schedule.start(now);
    }

    fn next_wakeup(&self, _core: &Core<'_, User>) -> Option<Instant> {
        self.schedule.next_due()
    }

    /// Send every message that is due (catching up if the loop fell behind).
    fn on_wakeup(&mut self, core: &mut Core<'_, User>, now: Instant) {
        while let Some((i, _round)) = self.schedule.pop_due(now) {
            if core.slots[i].state == SlotState::Up {
                self.send_message(core, i);
            }
        }
    }

    /// Every thread stopped sending, and every message reached every other
    /// joined user (the counts are shared, so this looks at all threads).
    fn drained(&self, core: &Core<'_, User>) -> bool {
        let shared = core.shared;
        if shared.sending_done.load(Ordering::Acquire) < shared.threads {
            return false;
        }
        let sent = Shared::get(&shared.messages);
        let receivers = Shared::get(&shared.connected).saturating_sub(1);
        Shared::get(&shared.delivered) >= sent * receivers
    }

    fn finish(
        &mut self,
        core: &mut Core<'_, User>,
        events: &mut mio::Events,
    ) -> Result<(), super::Error> {
        core.leave(events, LEAVE_TIMEOUT)
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
