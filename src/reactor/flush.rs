//! Writing and closing, at the end of each turn.
//!
//! Output a service queued during the turn is written here, once per
//! connection: until it is all sent or the kernel's send buffer is full
//! (`WouldBlock`). Only then does the connection ask `poll` for WRITABLE —
//! asking with nothing to send would wake the loop for nothing. Crossing
//! `--max-backlog` is reported to the service (echo pauses reading; chat
//! cuts a receiver that does not read). Connections marked for closing
//! are closed here, in one place, and logged.

use std::io::{self, Read};

use mio::Token;
use mio::net::TcpStream;

use super::conn::Conn;
use super::effects::reason_for;
use super::{Reactor, live_mut};
use crate::event::{self, DisconnectReason, Event};
use crate::service::ConnKey;

impl Reactor {
    /// Step 5: write queued output, recompute interest, close what was
    /// marked. Closing can queue output for others (chat's "left" notice),
    /// so this repeats until nothing is left to do; each connection closes
    /// once, so it ends.
    pub(super) fn flush_and_close(&mut self) {
        while !self.dirty.is_empty() || !self.closing.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            self.burst_flushes += dirty.len();
            for key in dirty.drain(..) {
                self.flush_conn(key);
            }
            if self.dirty.is_empty() {
                self.dirty = reuse(dirty, self.conns.len());
            }
            let mut closing = std::mem::take(&mut self.closing);
            for key in closing.drain(..) {
                if self.live(key).is_some_and(Conn::ready_to_close) {
                    self.close_conn(key);
                }
            }
            if self.closing.is_empty() {
                self.closing = reuse(closing, self.conns.len());
            }
        }
    }

    /// Writes one connection's queued output, then settles what follows
    /// from how much is left: the backlog report and the poll interest.
    pub(super) fn flush_conn(&mut self, key: ConnKey) {
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        conn.flush_queued = false;
        self.write_queued(key);
        self.check_backlog(key);
        self.update_interest(key);
    }

    /// Writes queued output until it is all sent or the kernel's send
    /// buffer is full (`WouldBlock`).
    pub(super) fn write_queued(&mut self, key: ConnKey) {
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        let service = conn.service;
        let name = self.services[service].name();
        while !conn.out.is_empty() {
            match conn.out.write_to(&mut conn.stream, &mut self.pool) {
                Ok(0) => break,
                Ok(n) => {
                    conn.note_sent(n, name, self.now);
                    self.status.on_send(service, n);
                    self.turn.writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.out.clear();
                    conn.mark_closing(reason_for(&e));
                    break;
                }
            }
        }
    }

    /// Tells the service when the unsent output (with its bookkeeping)
    /// crosses `--max-backlog`, and when it has drained to half of it.
    /// Called the moment output is queued as well as after each write, so
    /// echo stops reading within one read of passing the limit. Reporting
    /// the way down only at half the limit keeps a client near the line
    /// from flapping.
    pub(super) fn check_backlog(&mut self, key: ConnKey) {
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        let unsent = conn.out.cost();
        let max = self.config.max_backlog;
        let over = if !conn.over_backlog && unsent > max {
            true
        } else if conn.over_backlog && unsent <= max / 2 {
            false
        } else {
            return;
        };
        conn.over_backlog = over;
        let service = conn.service;
        self.services[service].on_backlog(key, over, &mut self.fx);
        self.apply_effects();
    }

    /// Registers the interest the connection's state calls for (see
    /// `Conn::interest`), and queues it for closing once it is ready.
    fn update_interest(&mut self, key: ConnKey) {
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        if conn.wants_fin() {
            // shutdown(SHUT_WR): the client reads everything, then EOF.
            if conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
                conn.peer_closed = true; // nothing more can be exchanged
            }
            conn.fin_sent = true;
        }
        let wanted = conn.interest();
        if wanted != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key.slot), wanted)
            {
                Ok(()) => conn.registered = wanted,
                Err(_) => conn.mark_closing(DisconnectReason::Error),
            }
        }
        if conn.ready_to_close() {
            self.closing.push(key);
        }
    }

    /// Closes, deregisters and logs one connection, then tells its service.
    pub(super) fn close_conn(&mut self, key: ConnKey) {
        if self.live(key).is_none() {
            return;
        }
        let mut conn = self.conns.remove(key.slot);
        let reason = conn.closing.unwrap_or(DisconnectReason::Error);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if reason.flushes_output() {
            discard_unread(&mut conn.stream);
        }
        let service = conn.service;
        if conn.counted_ip {
            self.release_ip(conn.peer);
        }
        event::record(&Event::Disconnect {
            service: self.services[service].name(),
            conn: key.id,
            peer: conn.peer,
            reason,
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
            duration: self.now.duration_since(conn.opened),
        });
        drop(conn); // close(2): the descriptor is free again
        self.status
            .on_close(service, key.slot, key.id, reason.as_str());
        self.turn.closes += 1;
        self.services[service].on_close(key, reason, &mut self.fx);
        self.apply_effects();
        if std::mem::take(&mut self.accept_paused) {
            // A descriptor is free: accept what waited in the listen queues.
            self.again_accepts.extend(0..self.listeners.len());
        }
    }
}

/// Reads and drops what the peer sent that nobody will read. Closing a
/// socket with unread data makes the kernel send RST instead of FIN, and a
/// RST can destroy replies still on their way to the client.
fn discard_unread(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// An emptied work list, kept for the next turn so a steady load allocates
/// nothing — unless a burst grew it far beyond the connections there are,
/// in which case its memory goes back (it would otherwise stay at the
/// burst's size for the life of the process).
fn reuse(mut list: Vec<ConnKey>, conns: usize) -> Vec<ConnKey> {
    if list.capacity() > 1024 && list.capacity() > 4 * conns {
        list.shrink_to(conns.max(64));
    }
    list
}
