//! `echochat load connect`: connection churn against the echo service, the
//! other half of a reactor's work (accepting, setting up and tearing down
//! connections rather than moving bytes).
//!
//! Each cycle opens a connection, sends one line stamped with the run's
//! token and the cycle's number followed by the server's exit word
//! (`--exit-word`, `exit` by default), reads the echo back and checks it
//! byte for byte, then reads on until the server closes. The exit line
//! itself may come back or not (DESIGN.md's echo returns it; older servers
//! did not): anything else is a verification error. A cycle counts in
//! `connected` (and `messages`) once the stamped line verified *and* the
//! server closed; its latency runs from the connect's start (or, with
//! `--rate`, from when the cycle was due, as in open-loop echo) to the
//! verified line.
//!
//! Why the exit word: whoever closes a TCP connection first keeps its
//! `TIME_WAIT` for a minute, holding that (source port, destination) pair.
//! If we closed first, a few thousand connects a second would use up the
//! ~28,000 ephemeral ports of a source address within seconds and the run
//! would measure `out_of_ports`. The echo service closes right after
//! echoing its exit word, so its side keeps the `TIME_WAIT` (which costs it
//! no port) and ours closes passively. With `--exit-word ''` we send FIN
//! ourselves after the verified reply instead.
//!
//! Without `--rate`, each thread keeps its share of `--clients` cycles
//! under way at all times; with `--rate`, cycles start on the schedule
//! (`schedule.rs`), at most `--clients` at once, and late ones start as
//! soon as a slot frees.
//!
//! Read `echo.rs` for the round trip, `worker.rs` for the loop.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::schedule::Schedule;
use super::worker::{Core, Ready, Scenario, SlotState, Why, write_some};

/// After a connect fails at once (no descriptor, no port), wait this long
/// before the next, instead of spinning on the failure.
const RETRY_AFTER: Duration = Duration::from_millis(1);

/// One cycle: a connection's single round trip.
pub struct Cycle {
    /// When the cycle was due (`--rate`) or started: latency runs from here.
    due: Instant,
    /// What was sent: the echo must be a prefix of it.
    expect: Vec<u8>,
    /// The stamped line's length: at least this much must come back.
    required: usize,
    /// Bytes of the echo received so far.
    got: usize,
    /// When the stamped line had come back whole.
    verified_at: Option<Instant>,
}

impl Cycle {
    fn new(due: Instant, expect: Vec<u8>, required: usize) -> Cycle {
        Cycle {
            due,
            expect,
            required,
            got: 0,
            verified_at: None,
        }
    }

    /// The server closed after echoing the stamped line, and then either
    /// nothing or the whole exit line.
    fn complete(&self) -> bool {
        self.got == self.required || self.got == self.expect.len()
    }
}

/// One thread's share of the churn.
pub struct Churn {
    /// Global client index of this thread's next connection.
    next_client: usize,
    /// Threads in the run (client indices step by this).
    threads: usize,
    /// Cycles under way at most (this thread's share of `--clients`).
    cap: usize,
    /// `--rate`: when each cycle is due.
    schedule: Option<Schedule>,
    /// Cycles that came due, and cycles started.
    due_count: u64,
    started: u64,
    /// The load phase's start: a time in the past, to ask for an immediate
    /// wakeup.
    t0: Instant,
    /// No new connect before this, after one failed at once.
    retry_at: Option<Instant>,
    /// The line every message starts with: `TOKEN ` (8 hex digits).
    token: String,
    exit_word: String,
}

impl Churn {
    /// Thread `thread` of `threads`, at most `cap` cycles at once, `rate`
    /// cycles a second over all threads (as fast as possible if `None`).
    pub fn new(
        thread: usize,
        threads: usize,
        cap: usize,
        rate: Option<f64>,
        token: u32,
        exit_word: &str,
    ) -> Churn {
        let schedule = rate.map(|rate| {
            Schedule::new(
                Duration::from_secs_f64(threads as f64 / rate),
                threads,
                vec![thread],
            )
        });
        Churn {
            next_client: thread,
            threads: threads.max(1),
            cap: cap.max(1),
            schedule,
            due_count: 0,
            started: 0,
            t0: Instant::now(),
            retry_at: None,
            token: format!("{token:08x} "),
            exit_word: exit_word.to_string(),
        }
    }

    /// Cycles are due that a free slot could start.
    fn can_start(&self, core: &Core<'_, Cycle>) -> bool {
        core.open_slots() < self.cap && (self.schedule.is_none() || self.started < self.due_count)
    }

    /// Cycle `n` of `client`, due at `due`: a stamped line, then the exit
    /// word's line (if any).
    fn cycle(&self, client: usize, n: u64, due: Instant) -> Cycle {
        let mut m = format!("{}{client} {n}\n", self.token).into_bytes();
        let required = m.len();
        if !self.exit_word.is_empty() {
            m.extend_from_slice(self.exit_word.as_bytes());
            m.push(b'\n');
        }
        Cycle::new(due, m, required)
    }

    /// Read the echo, then on to the server's FIN.
    fn read_reply(&mut self, core: &mut Core<'_, Cycle>, i: usize) {
        let mut buf = [0u8; 512];
        loop {
            let slot = &mut core.slots[i];
            let Some(stream) = slot.stream.as_mut() else {
                return;
            };
            match stream.read(&mut buf) {
                Ok(0) => return self.closed_by_server(core, i),
                Ok(n) => {
                    core.stats.bytes_received += n as u64;
                    let c = &mut slot.conn;
                    if c.verified_at.is_none() {
                        slot.full.feed(&buf[..n]);
                        if slot.full.may_be_full() {
                            // `! server full, ...`, not an echo: the close
                            // that follows counts as `full`.
                            continue;
                        }
                    }
                    let end = c.got + n;
                    if end > c.expect.len() || buf[..n] != c.expect[c.got..end] {
                        // Something other than our echo: not a cycle.
                        core.stats.verify_errors += 1;
                        return core.end(i);
                    }
                    c.got = end;
                    if c.got >= c.required && c.verified_at.is_none() {
                        c.verified_at = Some(Instant::now());
                        if self.exit_word.is_empty()
                            && let Some(s) = slot.stream.as_ref()
                        {
                            // No exit word: ask the server to close by
                            // closing our side (we keep the TIME_WAIT).
                            let _ = s.shutdown(std::net::Shutdown::Write);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return core.close(i, Why::Error(e)),
            }
        }
    }

    /// The server closed: a completed cycle if the echo verified, else a
    /// failed one (by cause: `full` if it said so, `closed` otherwise).
    fn closed_by_server(&mut self, core: &mut Core<'_, Cycle>, i: usize) {
        let c = &core.slots[i].conn;
        let Some(verified_at) = c.verified_at else {
            return core.close(i, Why::Eof);
        };
        if !c.complete() {
            // Part of the exit line, then FIN.
            core.stats.verify_errors += 1;
            return core.end(i);
        }
        let latency = verified_at.saturating_duration_since(c.due);
        let bytes = c.got as u64;
        core.session_up(i);
        core.answered(i);
        let stats = &mut core.stats;
        stats.messages += 1;
        stats.bytes += bytes;
        stats.record_latency_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        core.end(i);
    }
}

impl Scenario for Churn {
    type Conn = Cycle;

    fn new_conn(&mut self, _client: usize) -> Cycle {
        Cycle::new(self.t0, Vec::new(), 0)
    }

    fn on_connected(&mut self, core: &mut Core<'_, Cycle>, i: usize, ready: Ready) {
        let slot = &mut core.slots[i];
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        // A few dozen bytes: the socket takes them at once.
        match write_some(stream, &slot.conn.expect) {
            Ok(n) if n == slot.conn.expect.len() => core.stats.bytes_sent += n as u64,
            Ok(_) => core.close(i, Why::Error(io::ErrorKind::WriteZero.into())),
            Err(why) => core.close(i, why),
        }
        if ready.readable && core.slots[i].state != SlotState::Free {
            self.read_reply(core, i);
        }
    }

    fn on_ready(&mut self, core: &mut Core<'_, Cycle>, i: usize, ready: Ready) {
        if ready.readable {
            self.read_reply(core, i);
        }
    }

    fn on_load_start(&mut self, _core: &mut Core<'_, Cycle>, now: Instant) {
        self.t0 = now;
        if let Some(s) = &mut self.schedule {
            s.start(now);
        }
    }

    fn next_wakeup(&self, core: &Core<'_, Cycle>) -> Option<Instant> {
        let start_more = self
            .can_start(core)
            .then(|| self.retry_at.unwrap_or(self.t0));
        let next_due = self.schedule.as_ref().and_then(Schedule::next_due);
        match (start_more, next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_wakeup(&mut self, core: &mut Core<'_, Cycle>, now: Instant) {
        if let Some(s) = &mut self.schedule {
            while s.pop_due(now).is_some() {
                self.due_count += 1;
            }
        }
        if self.retry_at.is_some_and(|t| t > now) {
            return;
        }
        self.retry_at = None;
        while self.can_start(core) {
            let due = match &self.schedule {
                Some(s) => s.due_at(0, self.started),
                None => now,
            };
            let client = self.next_client;
            let cycle = self.cycle(client, self.started, due);
            self.started += 1;
            self.next_client += self.threads;
            if core.open_new(client, cycle, now).is_none() {
                self.retry_at = Some(now + RETRY_AFTER);
                break;
            }
        }
    }

    fn drained(&self, core: &Core<'_, Cycle>) -> bool {
        core.open_slots() == 0
    }

    fn finish(
        &mut self,
        core: &mut Core<'_, Cycle>,
        _events: &mut mio::Events,
    ) -> Result<(), super::Error> {
        core.stats.not_started = self.due_count.saturating_sub(self.started);
        Ok(())
    }
}
