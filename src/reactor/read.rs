//! Reading: bytes in, handed to the connection's service.
//!
//! With edge-triggered readiness a socket is reported once when data
//! arrives, so the reader must drain it — read until `WouldBlock` (or until
//! the kernel says nothing is left) — or it may never be woken for the
//! rest. A budget per event keeps one busy client from starving the others;
//! work it cuts short is picked up next turn (`again_reads`).

use std::io;

use super::effects::reason_for;
use super::{Reactor, conn};

/// Least bytes read from one connection per event before moving on (one
/// busy client must not starve the others); at least one `--read-chunk`.
const READ_BUDGET: usize = 64 * 1024;

impl Reactor {
    pub(super) fn conn_ready(&mut self, slot: usize, read_closed: bool) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.out.is_empty() {
            // Possibly writable again: try the queued output this turn.
            conn.queue_flush(&mut self.dirty);
        }
        self.read_conn(slot, read_closed);
    }

    /// Reads until the socket is drained (or the budget is spent), handing
    /// each chunk to the service and applying its effects at once.
    ///
    /// Drained means `WouldBlock` — or, on Linux, the kernel's word that no
    /// byte is left after this read (`TCP_INQ`, see `conn::recv_chunk`), or
    /// a read shorter than asked: the receive queue was then empty, and
    /// data arriving later raises a new edge. The exception is a FIN that
    /// already arrived (`read_closed`): no new edge will come for it, so
    /// read on until `recv` returns 0.
    pub(super) fn read_conn(&mut self, slot: usize, read_closed: bool) {
        if self.conns.get(slot).is_some_and(|c| c.lingering()) {
            self.discard_until_eof(slot);
            return;
        }
        let chunk = self.config.read_chunk;
        let Some(service) = self.conns.get(slot).map(|c| c.service) else {
            return;
        };
        let mut budget = self.services[service]
            .read_budget()
            .unwrap_or(READ_BUDGET)
            .max(chunk);
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if !conn.wants_read() {
                return;
            }
            let key = conn.key;
            let service = conn.service;
            match conn::recv_chunk(&mut conn.stream, &mut self.read_buf[..chunk]) {
                Ok((0, _)) => {
                    // recv() == 0: the peer sent FIN. It may still read.
                    self.turn.reads += 1;
                    conn.peer_closed = true;
                    self.services[service].on_eof(key, self.now, &mut self.fx);
                    self.apply_effects();
                    return;
                }
                Ok((n, queued)) => {
                    conn.note_received(n, self.services[service].name(), self.now);
                    self.status.on_recv(service, n);
                    self.turn.reads += 1;
                    self.services[service].on_recv(
                        key,
                        &self.read_buf[..n],
                        self.now,
                        &mut self.fx,
                    );
                    // Lend the read buffer to the effects, so echo's reply
                    // is written straight from it (taking a Vec is a move).
                    let input = std::mem::take(&mut self.read_buf);
                    self.apply_effects_with_input(&input[..n]);
                    self.read_buf = input;
                    let drained = match queued {
                        Some(left) => left == 0,
                        None => n < chunk && cfg!(target_os = "linux"),
                    };
                    if drained && !read_closed {
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.again_reads.push(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_later(key, reason_for(&e));
                    return;
                }
            }
        }
    }

    /// A lingering connection (our FIN sent at a graceful stop): read and
    /// drop what the client still sends until its own FIN, then close.
    fn discard_until_eof(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let chunk = self.read_buf.len();
        for _ in 0..READ_BUDGET / chunk.max(1) + 1 {
            match conn::recv_chunk(&mut conn.stream, &mut self.read_buf[..chunk]) {
                Ok((0, _)) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // EOF or an error: nothing more will be read. (A budget spent on a
        // client still sending ends its linger too; the grace is for
        // replies, not for uploads.)
        conn.peer_closed = true;
        let key = conn.key;
        self.closing.push(key);
    }
}
