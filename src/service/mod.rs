//! Services: the protocols, kept apart from the sockets.
//!
//! A service never touches a socket. The reactor tells it what happened — a
//! connection opened, bytes arrived, the peer sent FIN, the unsent output
//! crossed the backlog limit, the connection closed, a console line, a stop —
//! and the service answers by pushing [`Effect`]s into an [`Effects`] buffer:
//! send these bytes to that connection, close that one for this reason, stop
//! or resume reading it, record this event. The reactor applies them.
//!
//! So the protocol rules are plain functions of their input, unit-tested
//! with byte slices and no network (see the tests in `echo.rs` and
//! `chat.rs`), and a new service plugs into the reactor by implementing
//! [`Service`] — the loop does not change.
//!
//! Read `echo.rs` next for the smallest service.

use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::Done;
use crate::event::{DisconnectReason, Event};
use crate::status::{ServiceReport, StatusView};

pub mod chat;
pub mod echo;
pub mod frame;
pub mod http;
pub mod rate;

/// Names one connection: `slot` is the slab key (reused after a close) and
/// `id` is the log's `conn` (never reused). The reactor checks both before
/// applying an effect, so a late effect for a closed connection can never
/// reach the next connection that gets the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub slot: usize,
    pub id: u64,
}

/// Names one of the reactor's UDP sockets (a service's UDP twin). A
/// datagram arrives with the key of the socket it came in on, and a reply
/// names the socket to send it from: UDP has no connection to answer on,
/// only a socket and the sender's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpKey(pub usize);

/// A command typed on the server's console that a service answers (the
/// console itself is `reactor/control.rs`). Plain data, so a service's
/// answer is unit-tested like the rest of its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleCommand<'a> {
    /// `/who`: every user with IP, connected time and idle time.
    Who,
    /// `/kick NAME [reason]`: the user is told why and closed
    /// (`reason=kicked`).
    Kick {
        name: &'a str,
        reason: Option<&'a str>,
    },
}

/// What a service asks the reactor to do, as read back from [`Effects`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<'a> {
    /// Queue these bytes for the connection (copied by the reactor).
    Send { to: ConnKey, bytes: &'a [u8] },
    /// Send back part of the input of this `on_recv` call, by range: the
    /// reactor writes it straight from its read buffer, with no copy (what
    /// echo does with almost every byte).
    SendInput { to: ConnKey, range: Range<usize> },
    /// Queue a buffer shared by many receivers (a chat broadcast line is
    /// formatted once; every receiver holds a reference, not a copy).
    SendShared { to: ConnKey, bytes: Rc<[u8]> },
    /// Close the connection. If `reason.flushes_output()`, queued output is
    /// sent first (reading stops at once).
    Close {
        to: ConnKey,
        reason: DisconnectReason,
    },
    /// Stop reading the connection (backpressure): the kernel's receive
    /// buffer fills and TCP flow control slows the sender down.
    PauseReading(ConnKey),
    /// Read the connection again.
    ResumeReading(ConnKey),
    /// Write a lifecycle event to the log.
    Record(Event),
    /// Send one datagram carrying `bytes` (which may be empty) to `peer`
    /// from the UDP socket `via`, now; one the kernel will not take at once
    /// is dropped and counted, never queued.
    SendTo {
        via: UdpKey,
        peer: SocketAddr,
        bytes: &'a [u8],
    },
    /// [`Effect::SendTo`] with part of the input of this `on_datagram`
    /// call, by range (udp-echo's reply, with no copy).
    SendInputTo {
        via: UdpKey,
        peer: SocketAddr,
        range: Range<usize>,
    },
}

/// The stored form of an effect: sent bytes live in one arena that is
/// reused between calls, so steady-state echo allocates nothing.
#[derive(Debug)]
enum Op {
    Send {
        to: ConnKey,
        range: Range<usize>,
    },
    /// A range of the current `on_recv` input, not of the arena.
    SendInput {
        to: ConnKey,
        range: Range<usize>,
    },
    SendShared {
        to: ConnKey,
        bytes: Rc<[u8]>,
    },
    Close {
        to: ConnKey,
        reason: DisconnectReason,
    },
    PauseReading(ConnKey),
    ResumeReading(ConnKey),
    Record(Event),
    SendTo {
        via: UdpKey,
        peer: SocketAddr,
        range: Range<usize>,
    },
    SendInputTo {
        via: UdpKey,
        peer: SocketAddr,
        range: Range<usize>,
    },
}

/// A reusable buffer of effects. Services push into it; the reactor drains
/// it after each call and applies the effects in order.
#[derive(Debug, Default)]
pub struct Effects {
    ops: Vec<Op>,
    arena: Vec<u8>,
}

impl Effects {
    pub fn new() -> Self {
        Self::default()
    }

    /// Send a copy of `bytes` to `to`. Consecutive sends to the same
    /// connection are merged, so the reactor queues one chunk.
    pub fn send(&mut self, to: ConnKey, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.ops.is_empty() {
            // Everything pushed before was drained: its bytes are dead.
            self.arena.clear();
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        let end = self.arena.len();
        if let Some(Op::Send { to: last_to, range }) = self.ops.last_mut()
            && *last_to == to
            && range.end == start
        {
            range.end = end;
            return;
        }
        self.ops.push(Op::Send {
            to,
            range: start..end,
        });
    }

    /// Send `input[range]` to `to`, where `input` is the `bytes` of the
    /// current `on_recv` call. Only valid inside `on_recv`.
    pub fn send_input(&mut self, to: ConnKey, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        if let Some(Op::SendInput {
            to: last_to,
            range: last,
        }) = self.ops.last_mut()
            && *last_to == to
            && last.end == range.start
        {
            last.end = range.end;
            return;
        }
        self.ops.push(Op::SendInput { to, range });
    }

    /// Send a shared buffer (a broadcast line) to `to` without copying it.
    pub fn send_shared(&mut self, to: ConnKey, bytes: &Rc<[u8]>) {
        self.ops.push(Op::SendShared {
            to,
            bytes: Rc::clone(bytes),
        });
    }

    pub fn close(&mut self, to: ConnKey, reason: DisconnectReason) {
        self.ops.push(Op::Close { to, reason });
    }

    pub fn pause_reading(&mut self, to: ConnKey) {
        self.ops.push(Op::PauseReading(to));
    }

    pub fn resume_reading(&mut self, to: ConnKey) {
        self.ops.push(Op::ResumeReading(to));
    }

    pub fn record(&mut self, event: Event) {
        self.ops.push(Op::Record(event));
    }

    /// Send one datagram with a copy of `bytes` (empty is a valid
    /// datagram) to `peer` from the UDP socket `via`. Never merged with
    /// another: each call is one datagram.
    pub fn send_to(&mut self, via: UdpKey, peer: SocketAddr, bytes: &[u8]) {
        if self.ops.is_empty() {
            self.arena.clear();
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.ops.push(Op::SendTo {
            via,
            peer,
            range: start..self.arena.len(),
        });
    }

    /// Send `input[range]` as one datagram (empty included), where `input`
    /// is the `bytes` of the current `on_datagram` call. Only valid there.
    pub fn send_input_to(&mut self, via: UdpKey, peer: SocketAddr, range: Range<usize>) {
        self.ops.push(Op::SendInputTo { via, peer, range });
    }

    /// Yields the effects in the order they were pushed and leaves the
    /// buffer empty (keeping its capacity for the next call).
    pub fn drain(&mut self) -> impl Iterator<Item = Effect<'_>> {
        let arena = &self.arena;
        let ops = &mut self.ops;
        ops.drain(..).map(move |op| match op {
            Op::Send { to, range } => Effect::Send {
                to,
                bytes: &arena[range],
            },
            Op::SendInput { to, range } => Effect::SendInput { to, range },
            Op::SendShared { to, bytes } => Effect::SendShared { to, bytes },
            Op::Close { to, reason } => Effect::Close { to, reason },
            Op::PauseReading(k) => Effect::PauseReading(k),
            Op::ResumeReading(k) => Effect::ResumeReading(k),
            Op::Record(e) => Effect::Record(e),
            Op::SendTo { via, peer, range } => Effect::SendTo {
                via,
                peer,
                bytes: &arena[range],
            },
            Op::SendInputTo { via, peer, range } => Effect::SendInputTo { via, peer, range },
        })
    }
}

/// A protocol plugged into the reactor. Every method gets `now` where time
/// matters (passed in, never read inside, so tests control it) and pushes
/// its answers into `fx`.
pub trait Service {
    /// The `service=` value in the log (`echo`, `chat`).
    fn name(&self) -> &'static str;

    /// A connection was accepted.
    fn on_open(&mut self, key: ConnKey, peer: SocketAddr, now: Instant, fx: &mut Effects);

    /// Bytes arrived (one `recv`, at most `--read-chunk` bytes).
    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], now: Instant, fx: &mut Effects);

    /// The peer sent FIN: it will send nothing more, but may still read.
    fn on_eof(&mut self, key: ConnKey, now: Instant, fx: &mut Effects);

    /// The connection's unsent output crossed the `--max-backlog` limit:
    /// `over` is true when it went above, false when it drained back.
    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects);

    /// The connection is gone (the reactor already closed the socket); tell
    /// others if the protocol needs to, and forget its state.
    fn on_close(&mut self, key: ConnKey, reason: DisconnectReason, fx: &mut Effects);

    /// A line typed on the server's console for the chat room (not
    /// `exit`, which stops the server, nor a `/command`: see
    /// [`Service::on_console_command`]).
    fn on_console_line(&mut self, _line: &str, _fx: &mut Effects) {}

    /// A teacher's command from the server's console that needs a service
    /// (`/who`, `/kick`; the reactor answers `/stats` and `/help` itself).
    /// A service that can answer writes its answer into `out` (whole lines,
    /// each ending `\n`; the reactor prints them on the console), pushes
    /// any effects, and returns true. It returns false when the command is
    /// not its business (`/kick` of a name it does not hold), so the reactor
    /// can say that nobody answered.
    fn on_console_command(
        &mut self,
        _command: ConsoleCommand<'_>,
        _now: Instant,
        _out: &mut String,
        _fx: &mut Effects,
    ) -> bool {
        false
    }

    /// A graceful stop began: say goodbye while output can still be sent.
    fn on_shutdown(&mut self, _fx: &mut Effects) {}

    /// A datagram arrived on this service's UDP twin (`via`) from `peer`:
    /// one whole message, possibly empty. No connection exists; answers go
    /// out as [`Effect::SendTo`]. Services without a twin never get this.
    fn on_datagram(
        &mut self,
        _via: UdpKey,
        _peer: SocketAddr,
        _bytes: &[u8],
        _now: Instant,
        _fx: &mut Effects,
    ) {
    }

    /// The connection has been silent for `--idle-timeout` (`idle`). By
    /// default it is closed (`reason=idle`); a service may first say why
    /// (chat's `* disconnected: idle for 2h`), then close it.
    fn on_idle(&mut self, key: ConnKey, _idle: Duration, fx: &mut Effects) {
        fx.close(key, DisconnectReason::Idle);
    }

    /// Most bytes the reactor reads from one connection per readiness
    /// event before it serves the others (the rest is read next turn);
    /// `None` for the reactor's default (64 KiB). A service whose every
    /// line can cost work for every other user (chat: a `/nick` notifies
    /// the whole room) keeps this small, so one fast sender cannot make a
    /// turn long for everyone.
    fn read_budget(&self) -> Option<usize> {
        None
    }

    /// The earliest time this service wants [`Service::on_timer`] called
    /// (a paused user's allowance refills, a UDP member expires). The
    /// reactor sleeps no longer than that. Asked once per turn, so it must
    /// be cheap: keep a heap or a sorted queue, not a scan.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// The deadline from [`Service::next_deadline`] has come (it may be
    /// called early or late; act on what is due at `now`).
    fn on_timer(&mut self, _now: Instant, _fx: &mut Effects) {}

    /// Whether state the service keeps in a file (chat's names) changed
    /// since the last [`Service::take_snapshot`]. Asked every turn, so it
    /// must be cheap: a flag.
    fn snapshot_pending(&self) -> bool {
        false
    }

    /// The file's new content, if it changed since the last call. The
    /// reactor asks at most once a second and hands the bytes to a
    /// background saver (`persist.rs`): a service never does file IO.
    fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        None
    }

    /// What a client is sent when the server refuses it (`--max-clients`,
    /// `--max-per-ip`) just before it is closed: chat's `! server full`
    /// line, or for HTTP a `503` response.
    fn refusal(&self) -> &'static [u8] {
        crate::reactor::FULL_LINE
    }

    /// Figures only the service knows (users, messages...), for the status
    /// page and `/metrics`. Asked only when someone reads them.
    fn report(&self) -> ServiceReport {
        ServiceReport::default()
    }

    /// Whether [`Service::on_tick`] has work this turn. Asked once per
    /// turn, so it must be cheap (the status page answers "no" with one
    /// atomic load while nobody watches).
    fn wants_tick(&self) -> bool {
        false
    }

    /// The end of a turn, with read access to the server's own state
    /// (counters, the connection table) lent for this call: the status
    /// page answers its requests here.
    fn on_tick(&mut self, _view: &StatusView<'_>, _fx: &mut Effects) {}
    /// The answer to a job this service sent to the worker thread
    /// (`auth/worker.rs`). The reactor calls it only while `done.key` is
    /// still a live connection of this service: an answer for a closed
    /// connection is dropped like any stale effect.
    fn on_job_done(&mut self, _done: Done, _now: Instant, _fx: &mut Effects) {}

    /// The loop has ended: hand over what must survive the process (chat's
    /// account files go to the writer thread, which the shell then joins).
    fn on_stop(&mut self, _now: Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_never_merged_and_may_be_empty() {
        let mut fx = Effects::new();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        fx.send_to(UdpKey(0), peer, b"a");
        fx.send_to(UdpKey(0), peer, b"b");
        fx.send_to(UdpKey(0), peer, b"");
        fx.send_input_to(UdpKey(1), peer, 0..0);
        let got: Vec<Effect> = fx.drain().collect();
        assert_eq!(
            got,
            vec![
                Effect::SendTo {
                    via: UdpKey(0),
                    peer,
                    bytes: b"a"
                },
                Effect::SendTo {
                    via: UdpKey(0),
                    peer,
                    bytes: b"b"
                },
                Effect::SendTo {
                    via: UdpKey(0),
                    peer,
                    bytes: b""
                },
                Effect::SendInputTo {
                    via: UdpKey(1),
                    peer,
                    range: 0..0
                },
            ]
        );
    }
}
