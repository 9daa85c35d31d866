//! Accepting: new connections from a listener's queue.
//!
//! A listener is readable when its `listen()` queue holds connections the
//! kernel has completed (the three-way handshake is done before `accept`
//! ever sees them). We take them until the queue is empty (`WouldBlock`),
//! give each a slab slot, a token and a `conn` id, and tell its service.
//! Past `--max-clients` the newcomer is told `! server full` and closed.
//! Running out of descriptors (`EMFILE`) pauses accepting until one of ours
//! closes, rather than retrying in a busy loop.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::Reactor;
use super::conn::{self, Conn};
use crate::event::{self, DisconnectReason, Event};
use crate::service::ConnKey;

/// What a client over `--max-clients` is told before it is closed.
pub const FULL_LINE: &[u8] = b"! server full, try again later\n";

/// Most connections accepted per listener event before the others get a
/// turn (a connect storm must not starve connected clients).
const ACCEPT_BUDGET: usize = 256;

impl Reactor {
    /// Accepts until the listen queue is empty (`WouldBlock`), or the budget
    /// is spent, or descriptors ran out.
    pub(super) fn accept_ready(&mut self, index: usize) {
        if self.accept_paused {
            // Out of descriptors: leave connections in the listen queue
            // until one of ours closes (see `close_conn`).
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(Some(listener)) = self.listeners.get_mut(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    let service = listener.service;
                    self.admit(stream, peer, service);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The queue is empty: whatever the episode was, it is
                    // over (this is when it ends, not at the first success,
                    // so a burst logs one error and one resume).
                    if std::mem::take(&mut listener.failing) {
                        event::record(&Event::AcceptResume {
                            service: self.services[listener.service].name(),
                        });
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let exhausted = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if !std::mem::replace(&mut listener.failing, true) {
                        event::record(&Event::AcceptError {
                            service: self.services[listener.service].name(),
                            error: e.to_string(),
                        });
                    }
                    if exhausted {
                        // Retrying now would fail the same way, in a busy
                        // loop. Wait for a close to free a descriptor.
                        self.accept_paused = true;
                        return;
                    }
                    // Other errors (e.g. the peer gave up already) concern
                    // one connection only: go on with the queue.
                }
            }
        }
        self.again_accepts.push(index);
    }

    /// Gives a new connection a slot, a token and an id, and tells its
    /// service — or, past `--max-clients` (or `--max-per-ip` from this
    /// address), tells the client and closes it.
    pub(super) fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, service: usize) {
        // Replies are small and must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        conn::enable_inq(&stream);
        let full = self.conns.len() >= self.config.max_clients || !self.admit_ip(peer);
        let entry = self.conns.vacant_entry();
        let key = ConnKey {
            slot: entry.key(),
            id: self.next_conn_id,
        };
        self.next_conn_id += 1;
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(key.slot), Interest::READABLE)
        {
            event::record(&Event::Warning {
                what: "register",
                error: e.to_string(),
            });
            return;
        }
        let conn = entry.insert(Conn::new(stream, key, service, peer, self.now));
        conn.counted_ip = !full && self.config.max_per_ip.is_some();
        let name = self.services[service].name();
        event::record(&Event::Accept {
            service: name,
            conn: key.id,
            slot: key.slot,
            peer,
        });
        if full {
            conn.out.push_copy(FULL_LINE, &mut self.pool);
            self.close_later(key, DisconnectReason::Full);
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            self.timers.schedule(self.now + idle, key);
        }
        self.services[service].on_open(key, peer, self.now, &mut self.fx);
        self.apply_effects();
    }

    /// Counts a connection from `peer`'s address against `--max-per-ip`;
    /// false (and nothing counted) when that address is at its limit.
    fn admit_ip(&mut self, peer: SocketAddr) -> bool {
        let Some(max) = self.config.max_per_ip else {
            return true;
        };
        let count = self.per_ip.entry(peer.ip()).or_insert(0);
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    /// Gives back `peer`'s place under `--max-per-ip` (at close).
    pub(super) fn release_ip(&mut self, peer: SocketAddr) {
        if let Some(count) = self.per_ip.get_mut(&peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
    }
}
