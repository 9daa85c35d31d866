//! `echochat load echo`: ping-pong against the echo service, every reply
//! verified byte for byte.
//!
//! Each connection sends a message of `--size` bytes, reads until exactly
//! that many bytes came back, compares them with what it sent, and records
//! the latency. Then:
//!
//! - **closed loop** (no `--rate`): it sends the next message at once, so
//!   latency is simply send to reply;
//! - **open loop** (`--rate R`): message `k` of each connection is *due* at
//!   a fixed time (`schedule.rs`, R messages a second over all clients).
//!   A connection whose reply is late sends its overdue messages as soon as
//!   it can, back to back, and each one's latency is measured from when it
//!   was due, not when it went out (wrk2's method), so a server that stalls
//!   for 200 ms shows 200 ms in the percentiles instead of just receiving
//!   fewer messages. Messages that came due but were never sent are
//!   counted in `not_started`; the shortfall of the achieved rate is in the
//!   report.
//!
//! The loop is lean on purpose, so the load generator is never the
//! bottleneck: in steady state a message costs one `send` and one `recv`.
//!
//! - The reply is read into a buffer sized to what is still missing. A read
//!   that returns fewer bytes than asked drained the socket, so with mio's
//!   edge-triggered epoll no second "until `WouldBlock`" read is needed: the
//!   next arriving bytes raise a new edge.
//! - A read that completes the message is not followed by another read
//!   either: one message is in flight per connection, so nothing more can
//!   arrive until the next message is sent.
//! - Each message is a window of a random pattern at a per-(connection,
//!   sequence) offset, stamped with both, so a reply from another
//!   connection or an older message never compares equal. Every byte has
//!   its high bit set: no `\n`, so the echo service's exit word can never
//!   appear and nothing is held back.
//!
//! **Framed** (`--framed`, against the framed echo service): each message
//! goes out as one frame of `crate::frame` — a 4-byte big-endian length,
//! then the `--size` bytes — and the reply is read back through a
//! [`FrameDecoder`], the same decoder the clients use: it must yield
//! exactly one frame, whose payload equals what was sent. Replies are still
//! read by count (header plus payload, no more), so a bad reply costs one
//! verification error and the next message is read from the right place.
//! The decoder refuses a header announcing more than `--size` before
//! keeping any of its payload. The framed echo service answers byte for
//! byte, and may start before the whole message is sent; like plain echo,
//! that needs nothing special here.
//!
//! Read `worker.rs` for the loop that drives this, `chat.rs` for a
//! scenario with a handshake, `udp.rs` for the UDP twin.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::frame::{self, FrameDecoder, HEADER_BYTES};

use super::schedule::Schedule;
use super::worker::{Core, Ready, Scenario, Why, write_some};

/// Framed replies are read through a buffer of at most this size, shared
/// by the thread's connections.
const FRAMED_READ_BYTES: usize = 64 * 1024;

/// One connection's message in flight.
pub struct EchoConn {
    /// The message in flight as written (framed: header, then payload).
    out: Box<[u8]>,
    /// Bytes of `out` written so far.
    sent: usize,
    /// Plain: the reply so far (what must equal `out`). Framed: empty.
    inp: Box<[u8]>,
    /// Bytes of the reply received so far (framed: header included).
    got: usize,
    /// Framed: the reply's decoding.
    framed: Option<FrameCheck>,
    /// Messages started so far (the next one's sequence number is `seq + 1`).
    seq: u64,
    /// Open loop: messages that have come due so far.
    due_count: u64,
    /// When the message in flight was due (closed loop: when it was sent).
    due: Instant,
    /// A message is in flight.
    busy: bool,
}

/// What a framed connection's reply has shown so far.
struct FrameCheck {
    decoder: FrameDecoder,
    /// Frames the reply has yielded (must be one).
    frames: u32,
    /// Every frame so far equalled the payload sent; no bad header.
    ok: bool,
}

impl FrameCheck {
    fn new(size: usize) -> FrameCheck {
        FrameCheck {
            decoder: FrameDecoder::new(size),
            frames: 0,
            ok: true,
        }
    }

    /// The reply is complete (header plus payload bytes were read): it was
    /// good if it was exactly one frame equal to the payload. Ready for
    /// the next reply either way.
    fn finish_message(&mut self, size: usize) -> bool {
        let good = self.ok && self.frames == 1 && self.decoder.is_between_frames();
        if !good {
            // Out of step (or failed): start the next reply afresh.
            self.decoder = FrameDecoder::new(size);
        }
        self.frames = 0;
        self.ok = true;
        good
    }
}

/// One thread's echo scenario.
pub struct Echo {
    /// Payload bytes per message.
    size: usize,
    /// Bytes per message on the wire: `size`, plus the header if framed.
    wire: usize,
    framed: bool,
    /// Framed: where replies are read before the decoder sees them.
    scratch: Vec<u8>,
    /// Random bytes every message is cut from (see `fill_message`).
    pattern: Vec<u8>,
    /// Messages in flight over the thread's connections.
    busy: usize,
    /// Open loop: when each connection's messages are due.
    schedule: Option<Schedule>,
}

impl Echo {
    /// `size`-byte messages (`framed`: in frames); open loop at `rate`
    /// messages a second over `clients_total` connections when `rate` is
    /// given. `ids` are this thread's clients.
    pub fn new(
        size: usize,
        framed: bool,
        rate: Option<f64>,
        clients_total: usize,
        ids: Vec<usize>,
    ) -> Echo {
        let schedule = rate.map(|rate| {
            // Each connection sends every `clients / rate` seconds.
            let period = Duration::from_secs_f64(clients_total as f64 / rate);
            Schedule::new(period, clients_total, ids)
        });
        let wire = if framed { HEADER_BYTES + size } else { size };
        Echo {
            size,
            wire,
            framed,
            scratch: if framed {
                vec![0; wire.min(FRAMED_READ_BYTES)]
            } else {
                Vec::new()
            },
            pattern: make_pattern(size, 0x5EED ^ size as u64),
            busy: 0,
            schedule,
        }
    }

    /// Fill the next message (due at `due`) and write it.
    fn start_message(&mut self, core: &mut Core<'_, EchoConn>, i: usize, due: Instant) {
        let client = core.slots[i].client as u64;
        let c = &mut core.slots[i].conn;
        c.seq += 1;
        let payload = &mut c.out[self.wire - self.size..];
        fill_message(payload, &self.pattern, client, c.seq);
        c.sent = 0;
        c.got = 0;
        c.due = due;
        c.busy = true;
        self.busy += 1;
        self.write_out(core, i);
    }

    /// Write what is left of the message. A 1 KiB message fits the socket
    /// buffer, so this is one `send`; a big one continues on WRITABLE.
    fn write_out(&mut self, core: &mut Core<'_, EchoConn>, i: usize) {
        let slot = &mut core.slots[i];
        let c = &mut slot.conn;
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        match write_some(stream, &c.out[c.sent..]) {
            Ok(n) => {
                c.sent += n;
                core.stats.bytes_sent += n as u64;
            }
            Err(why) => self.close(core, i, why),
        }
    }

    /// Read the reply. See the module doc for why a short read, or a read
    /// that completes the message, is the last one until the next event —
    /// unless the event reported FIN or an error (`hup`): then read on to
    /// find it, since no new edge will announce it.
    fn read_in(&mut self, core: &mut Core<'_, EchoConn>, i: usize, hup: bool) {
        // `! server full` may come instead of the first reply.
        let watch_full = !core.slots[i].is_answered();
        loop {
            let slot = &mut core.slots[i];
            let c = &mut slot.conn;
            let Some(stream) = slot.stream.as_mut() else {
                return;
            };
            // A plain reply lands in place; a framed one goes through the
            // scratch buffer, where the decoder finds the frame in it (at
            // most what is missing of the reply is read either way).
            let total = if self.framed { self.wire } else { c.inp.len() };
            let buf = if self.framed {
                let want = (self.wire - c.got).min(self.scratch.len());
                &mut self.scratch[..want]
            } else {
                &mut c.inp[c.got..]
            };
            let want = buf.len();
            match stream.read(buf) {
                Ok(0) => return self.close(core, i, Why::Eof),
                Ok(n) => {
                    let bytes = if self.framed {
                        &self.scratch[..n]
                    } else {
                        &c.inp[c.got..c.got + n]
                    };
                    if watch_full {
                        slot.full.feed(bytes);
                    }
                    if let Some(check) = c.framed.as_mut() {
                        check_frames(check, bytes, &c.out[HEADER_BYTES..]);
                    }
                    c.got += n;
                    core.stats.bytes_received += n as u64;
                    if c.got == total {
                        return self.complete(core, i);
                    }
                    if n < want && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(core, i, Why::Error(e)),
            }
        }
    }

    /// Bytes while no message is in flight: before the first reply this is
    /// the server talking first (e.g. `! server full`, then FIN, which
    /// `close` counts as a refused session); after a reply it is more than
    /// was sent, a verification error. Read to `WouldBlock` to re-arm the
    /// edge.
    fn read_unsolicited(&mut self, core: &mut Core<'_, EchoConn>, i: usize) {
        let mut buf = [0u8; 256];
        loop {
            let Some(stream) = core.slots[i].stream.as_mut() else {
                return;
            };
            match stream.read(&mut buf) {
                Ok(0) => return self.close(core, i, Why::Eof),
                Ok(n) => {
                    core.stats.bytes_received += n as u64;
                    let slot = &mut core.slots[i];
                    if slot.is_answered() {
                        core.stats.verify_errors += 1;
                    } else {
                        slot.full.feed(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(core, i, Why::Error(e)),
            }
        }
    }

    /// A whole reply arrived: verify, record, send the next message if one
    /// is due (closed loop: always).
    fn complete(&mut self, core: &mut Core<'_, EchoConn>, i: usize) {
        let now = Instant::now();
        let c = &mut core.slots[i].conn;
        let ok = match c.framed.as_mut() {
            None => c.inp == c.out,
            Some(check) => check.finish_message(self.size),
        };
        let latency = now.saturating_duration_since(c.due);
        c.got = 0;
        c.busy = false;
        self.busy -= 1;
        let (seq, due_count) = (c.seq, c.due_count);
        let stats = &mut core.stats;
        if !ok {
            stats.verify_errors += 1;
        }
        stats.record_latency_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        stats.messages += 1;
        stats.bytes += self.size as u64;
        core.answered(i);
        if !core.loading(now) {
            return;
        }
        match &self.schedule {
            None => self.start_message(core, i, now),
            Some(s) if due_count > seq => {
                let due = s.due_at(i, seq);
                self.start_message(core, i, due);
            }
            Some(_) => {}
        }
    }

    fn close(&mut self, core: &mut Core<'_, EchoConn>, i: usize, why: Why) {
        let c = &mut core.slots[i].conn;
        if c.busy {
            c.busy = false;
            self.busy -= 1;
        }
        core.close(i, why);
    }
}

impl Scenario for Echo {
    type Conn = EchoConn;

    fn new_conn(&mut self, _client: usize) -> EchoConn {
        EchoConn {
            out: Box::new([]),
            sent: 0,
            inp: Box::new([]),
            got: 0,
            framed: None,
            seq: 0,
            due_count: 0,
            due: Instant::now(),
            busy: false,
        }
    }

    fn on_connected(&mut self, core: &mut Core<'_, EchoConn>, i: usize, ready: Ready) {
        core.session_up(i);
        let c = &mut core.slots[i].conn;
        c.out = vec![0; self.wire].into_boxed_slice();
        if self.framed {
            // The header never changes: every message is `size` bytes. The
            // size was checked against the 4-byte header's limit.
            let header = frame::header(self.size).unwrap_or([0xff; HEADER_BYTES]);
            c.out[..HEADER_BYTES].copy_from_slice(&header);
            c.framed = Some(FrameCheck::new(self.size));
        } else {
            c.inp = vec![0; self.size].into_boxed_slice();
        }
        // The server may talk first and close (`! server full`) before we
        // see the connect finish: this edge carries both.
        if ready.readable {
            self.read_unsolicited(core, i);
        }
    }

    fn on_ready(&mut self, core: &mut Core<'_, EchoConn>, i: usize, ready: Ready) {
        let c = &core.slots[i].conn;
        if !c.busy {
            if ready.readable {
                self.read_unsolicited(core, i);
            }
            return;
        }
        if ready.writable && c.sent < self.wire {
            self.write_out(core, i);
        }
        if ready.readable && core.slots[i].conn.busy {
            self.read_in(core, i, ready.hup);
        }
    }

    fn on_load_start(&mut self, core: &mut Core<'_, EchoConn>, now: Instant) {
        match &mut self.schedule {
            Some(s) => s.start(now),
            None => {
                for i in 0..core.slots.len() {
                    if core.slots[i].stream.is_some() {
                        self.start_message(core, i, now);
                    }
                }
            }
        }
    }

    fn next_wakeup(&self, _core: &Core<'_, EchoConn>) -> Option<Instant> {
        self.schedule.as_ref().and_then(Schedule::next_due)
    }

    /// Open loop: each message that came due is sent now if its connection
    /// is free, or as soon as the reply before it arrives.
    fn on_wakeup(&mut self, core: &mut Core<'_, EchoConn>, now: Instant) {
        while let Some((i, _round)) = self.schedule.as_mut().and_then(|s| s.pop_due(now)) {
            if core.slots[i].stream.is_none() {
                continue;
            }
            let c = &mut core.slots[i].conn;
            c.due_count += 1;
            if !c.busy
                && let Some(s) = &self.schedule
            {
                let due = s.due_at(i, c.seq);
                self.start_message(core, i, due);
            }
        }
    }

    fn drained(&self, _core: &Core<'_, EchoConn>) -> bool {
        self.busy == 0
    }

    fn finish(
        &mut self,
        core: &mut Core<'_, EchoConn>,
        _events: &mut mio::Events,
    ) -> Result<(), super::Error> {
        core.stats.incomplete = self.busy as u64;
        core.stats.not_started = core
            .slots
            .iter()
            .map(|s| s.conn.due_count.saturating_sub(s.conn.seq))
            .sum();
        Ok(())
    }
}

/// Feed the bytes of one read of a framed reply to its decoder: each frame
/// it yields must equal `payload`.
fn check_frames(check: &mut FrameCheck, bytes: &[u8], payload: &[u8]) {
    if !check.ok {
        // After a bad header the decoder stays failed; the rest of this
        // reply is only counted.
        return;
    }
    let FrameCheck {
        decoder,
        frames,
        ok,
        ..
    } = check;
    let fed = decoder.feed(bytes, |got| {
        *frames += 1;
        *ok &= got == payload;
    });
    if fed.is_err() {
        *ok = false;
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

/// Bytes of the (id, seq) stamp at the start of a message of at least
/// this length: 8 bytes each, 7 bits per byte.
pub const STAMP_BYTES: usize = 16;

/// The `(id, seq)` stamped by [`fill_message`] into the first
/// [`STAMP_BYTES`] of `buf`; `None` if `buf` is shorter or a stamp byte
/// lacks its high bit (not one of our messages).
pub fn read_stamp(buf: &[u8]) -> Option<(u64, u64)> {
    let stamp = buf.get(..STAMP_BYTES)?;
    if stamp.iter().any(|&b| b & 0x80 == 0) {
        return None;
    }
    let field = |bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .fold(0u64, |v, (k, &b)| v | u64::from(b & 0x7f) << (7 * k))
    };
    Some((field(&stamp[..8]), field(&stamp[8..])))
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
        assert_eq!(read_stamp(&a), Some((1, 1)));
        assert_eq!(read_stamp(&c), Some((1, 2)));
        let mut big = [0u8; 40];
        let id = (0xDEAD_BEEF << 24) | 12_345;
        fill_message(&mut big, &make_pattern(40, 1), id, (1 << 56) - 1);
        assert_eq!(read_stamp(&big), Some((id, (1 << 56) - 1)));
        assert_eq!(read_stamp(&big[..15]), None);
        let p1 = make_pattern(1, 7);
        let mut one = [0u8; 1];
        fill_message(&mut one, &p1, 1, 1);
        assert!(one[0] >= 0x80);
    }
}
