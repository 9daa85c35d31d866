//! Effects: applying what a service answered.
//!
//! A service never touches a socket; it returns effects (send these bytes,
//! close that connection, pause reading it). Each names a connection by
//! `ConnKey`, and an effect for a connection that is gone — or whose slot
//! now holds another — is dropped here: that is what the `id` in the key
//! is for. Sending is "write first": with nothing queued ahead, the bytes
//! go to the kernel at once and only the rest is queued.

use std::io::{self, Write};
use std::time::Instant;

use super::conn::Conn;
use super::{Reactor, live_mut};
use crate::event::{self, DisconnectReason};
use crate::service::{ConnKey, Effect};

impl Reactor {
    /// Applies what the last service call asked for. Effects naming a
    /// connection that is gone (or whose slot now holds another) are
    /// dropped: that is what the `id` in `ConnKey` is for.
    pub(super) fn apply_effects(&mut self) {
        self.apply_effects_with_input(&[]);
    }

    /// [`Reactor::apply_effects`] after `on_recv`, whose `input` the
    /// service may send back by range (`Effect::SendInput`).
    pub(super) fn apply_effects_with_input(&mut self, input: &[u8]) {
        let mut fx = std::mem::take(&mut self.fx);
        for effect in fx.drain() {
            match effect {
                Effect::Send { to, bytes } => self.send_bytes(to, bytes),
                Effect::SendInput { to, range } => match input.get(range) {
                    Some(bytes) => self.send_bytes(to, bytes),
                    None => debug_assert!(false, "SendInput outside on_recv"),
                },
                Effect::SendShared { to, bytes } => {
                    if let Some(conn) = live_mut(&mut self.conns, to)
                        && accepts_output(conn)
                    {
                        conn.out.push_shared(bytes);
                        conn.queue_flush(&mut self.dirty);
                        self.queued_output(to);
                    }
                }
                Effect::Close { to, reason } => self.close_later(to, reason),
                Effect::PauseReading(to) => {
                    if let Some(conn) = live_mut(&mut self.conns, to) {
                        conn.reading = false;
                        conn.queue_flush(&mut self.dirty);
                    }
                }
                Effect::ResumeReading(to) => {
                    if let Some(conn) = live_mut(&mut self.conns, to)
                        && !conn.reading
                    {
                        conn.reading = true;
                        // Data may have waited while we did not read; no
                        // new edge will announce it.
                        self.again_reads.push(to);
                        conn.queue_flush(&mut self.dirty);
                    }
                }
                Effect::Record(event) => {
                    // Chat names for the status page come from these.
                    self.status.on_event(&event);
                    event::record(&event);
                }
                Effect::SendTo { via, peer, bytes } => self.send_datagram(via, peer, bytes),
                Effect::SendInputTo { via, peer, range } => match input.get(range) {
                    Some(bytes) => self.send_datagram(via, peer, bytes),
                    None => debug_assert!(false, "SendInputTo outside on_datagram"),
                },
            }
        }
        self.fx = fx;
        // Only now, with the whole answer applied, is the service told of
        // a backlog it caused. Told in the middle, its reaction (chat drops
        // the slow reader: `* bob left`) would reach the others before the
        // rest of what it had already answered (`* alice is now bob`,
        // `bob: hi`). The sends in between were queued: one answer's worth.
        for key in std::mem::take(&mut self.backlog_due) {
            self.check_backlog(key);
        }
    }

    /// Write first: with nothing queued ahead, hand the bytes to the
    /// kernel now; queue only what it did not take (and then wait for
    /// WRITABLE).
    pub(super) fn send_bytes(&mut self, to: ConnKey, bytes: &[u8]) {
        let Some(conn) = live_mut(&mut self.conns, to) else {
            return;
        };
        if !accepts_output(conn) {
            return;
        }
        let service = conn.service;
        let name = self.services[service].name();
        let sent = if conn.out.is_empty() {
            write_now(conn, bytes, name, self.now)
        } else {
            0
        };
        if sent > 0 {
            self.status.on_send(service, sent);
            self.turn.writes += 1;
        }
        if conn.closing.is_some_and(|r| !r.flushes_output()) {
            self.closing.push(to);
        } else if sent < bytes.len() {
            conn.out.push_copy(&bytes[sent..], &mut self.pool);
            conn.queue_flush(&mut self.dirty);
            self.queued_output(to);
        }
    }

    /// Output was just queued for `key`. Output is normally written at the
    /// end of the turn (one `writev` for all of a turn's lines); but if the
    /// queue has passed `--max-backlog`, write now, and if it is still over,
    /// tell the service as soon as its current answer is applied, so that
    /// echo is paused before its next read, not after a whole read budget.
    fn queued_output(&mut self, key: ConnKey) {
        let max = self.config.max_backlog;
        let over = |c: &Conn| !c.over_backlog && c.out.cost() > max;
        if self.live(key).is_some_and(over) {
            self.write_queued(key);
            if self.live(key).is_some_and(over) && self.backlog_due.last() != Some(&key) {
                self.backlog_due.push(key);
            }
        }
    }

    /// The one way to close a connection: mark it with its reason now, and
    /// let the end of the turn close it (after its output is sent, for
    /// reasons that flush). Closing in two steps means no code path has to
    /// wonder whether the connection it holds still exists.
    pub(super) fn close_later(&mut self, key: ConnKey, reason: DisconnectReason) {
        if let Some(conn) = live_mut(&mut self.conns, key) {
            conn.mark_closing(reason);
            conn.queue_flush(&mut self.dirty);
            self.closing.push(key);
        }
    }
}

/// Writes `bytes` straight to the socket; returns how many the kernel
/// took. A failed socket is marked for closing (its output is dropped).
fn write_now(conn: &mut Conn, bytes: &[u8], service: &'static str, now: Instant) -> usize {
    loop {
        match conn.stream.write(bytes) {
            Ok(n) => {
                if n > 0 {
                    conn.note_sent(n, service, now);
                }
                return n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                conn.mark_closing(reason_for(&e));
                return 0;
            }
        }
    }
}

/// Output is still accepted for a connection unless it is being dropped.
fn accepts_output(conn: &Conn) -> bool {
    conn.closing.is_none_or(DisconnectReason::flushes_output)
}

/// The disconnect reason a socket error stands for.
pub(super) fn reason_for(e: &io::Error) -> DisconnectReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => DisconnectReason::Reset,
        _ => DisconnectReason::Error,
    }
}
