//! UDP twins: datagram sockets in the same `Poll` as the TCP connections.
//!
//! A UDP socket has no listen queue, no `accept` and no connections: one
//! bound socket receives every client's datagrams, each a whole message
//! with its sender's address (`recvfrom`), and answers go out from the same
//! socket to an address (`sendto`). So a twin needs no slab slot and no
//! output queue; it is read like a TCP connection — drained until
//! `WouldBlock`, under a per-turn budget so a flood cannot starve the
//! others (work cut short is retried next turn) — and each datagram goes to
//! its service's [`Service::on_datagram`](crate::service::Service::on_datagram).
//!
//! Replies are sent at once. One the kernel will not take (`WouldBlock`: the
//! socket's send buffer is full; `ENOBUFS`; any other error) is **dropped
//! and counted**, never queued: UDP promises no delivery, and a queue would
//! only let a flood of requests grow the server's memory. Nothing here
//! allocates per datagram: one receive buffer serves every twin, and the
//! reply is sent straight from it.
//!
//! With no connection, no FIN says a client is gone: udp-chat drops members
//! silent for `--udp-member-timeout` through the services' own deadlines
//! (`Service::next_deadline`, fired in `timers.rs`). Read
//! `service/chat/udp.rs` next.

use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::net::UdpSocket;

use super::{Reactor, token};
use crate::event::{self, Direction, Event};
use crate::service::UdpKey;

/// Datagrams read from one twin per turn before the others get a turn.
const UDP_BUDGET: usize = 256;

/// The largest UDP payload over IPv4 (65535 minus the IP and UDP headers):
/// a buffer this big never truncates a datagram.
const MAX_DATAGRAM: usize = 65_507;

/// Room for this many UDP twins (one per service that has one).
pub const MAX_UDP: usize = token::MAX_UDP;

/// Counters of one twin, for the status page and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Replies the kernel did not take at once (`WouldBlock`, `ENOBUFS`,
    /// another error), dropped rather than queued.
    pub dropped: u64,
}

/// One UDP socket and the service its datagrams go to.
struct Twin {
    socket: UdpSocket,
    /// Index of the service (in the reactor's list), shared with its TCP
    /// listener: one service, two transports.
    service: usize,
    /// The `service=` of its log lines (`udp-echo`, `udp-chat`).
    name: &'static str,
    stats: UdpStats,
}

/// The reactor's UDP state: the twins (`None` once closed by a stop), one
/// receive buffer for all, and the twins a budget cut short.
#[derive(Default)]
pub struct UdpTwins {
    twins: Vec<Option<Twin>>,
    /// Allocated when the first twin is added.
    buf: Vec<u8>,
    again: Vec<usize>,
}

impl UdpTwins {
    /// Twins whose reading a budget cut short (poll must not sleep).
    pub(super) fn has_work(&self) -> bool {
        !self.again.is_empty()
    }
}

impl Reactor {
    /// Adds a bound UDP socket as the twin of service `service` (its index
    /// in the list given to [`Reactor::new`]), logging as `name`. Returns
    /// its key; [`Reactor::udp_addr`] gives its address for the
    /// announcement.
    ///
    /// # Errors
    /// More than [`MAX_UDP`] twins, or registering with `poll` failed.
    pub fn add_udp(
        &mut self,
        mut socket: UdpSocket,
        service: usize,
        name: &'static str,
    ) -> io::Result<UdpKey> {
        let index = self.udp.twins.len();
        if index >= MAX_UDP {
            return Err(io::Error::other(format!("more than {MAX_UDP} UDP sockets")));
        }
        if service >= self.services.len() {
            return Err(io::Error::other(format!("no service {service} for {name}")));
        }
        self.poll
            .registry()
            .register(&mut socket, token::udp(index), Interest::READABLE)?;
        self.udp.twins.push(Some(Twin {
            socket,
            service,
            name,
            stats: UdpStats::default(),
        }));
        if self.udp.buf.is_empty() {
            self.udp.buf = vec![0; MAX_DATAGRAM];
        }
        Ok(UdpKey(index))
    }

    /// The address twin `key` is bound to.
    pub fn udp_addr(&self, key: UdpKey) -> Option<SocketAddr> {
        self.udp
            .twins
            .get(key.0)?
            .as_ref()?
            .socket
            .local_addr()
            .ok()
    }

    /// Each twin's name and counters (for the status page).
    /// Adds each twin's dropped replies to its service's report (the
    /// status page's and `/metrics`' `udp_datagrams_dropped`).
    pub(super) fn report_udp(&self, reports: &mut [crate::status::ServiceStats]) {
        for twin in self.udp.twins.iter().flatten() {
            if let Some(stats) = reports.get_mut(twin.service) {
                let dropped = stats.report.datagrams_dropped.unwrap_or(0);
                stats.report.datagrams_dropped = Some(dropped + twin.stats.dropped);
            }
        }
    }

    pub fn udp_stats(&self) -> Vec<(&'static str, UdpStats)> {
        self.udp
            .twins
            .iter()
            .flatten()
            .map(|t| (t.name, t.stats))
            .collect()
    }

    /// A twin is readable: read datagrams until `WouldBlock` or the budget
    /// is spent, handing each to the service and applying its answer at
    /// once (so the reply is sent straight from the receive buffer).
    pub(super) fn udp_ready(&mut self, index: usize) {
        let mut buf = std::mem::take(&mut self.udp.buf);
        let mut failed = false;
        for _ in 0..UDP_BUDGET {
            let Some(Some(twin)) = self.udp.twins.get_mut(index) else {
                break;
            };
            match twin.socket.recv_from(&mut buf) {
                Ok((n, peer)) => {
                    twin.stats.datagrams_in += 1;
                    twin.stats.bytes_in += n as u64;
                    event::record(&Event::Datagram {
                        service: twin.name,
                        peer,
                        bytes: n,
                        dir: Direction::In,
                    });
                    let service = twin.service;
                    self.services[service].on_datagram(
                        UdpKey(index),
                        peer,
                        &buf[..n],
                        self.now,
                        &mut self.fx,
                    );
                    self.apply_effects_with_input(&buf[..n]);
                    failed = false;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.udp.buf = buf;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An error the kernel had queued on the socket (an ICMP
                // report) is cleared by the call that returns it, so read
                // on; a second in a row would repeat forever: wait for the
                // next event instead of spinning.
                Err(_) if failed => break,
                Err(_) => failed = true,
            }
        }
        if failed {
            self.udp.buf = buf;
            return;
        }
        self.udp.buf = buf;
        if self.udp.twins.get(index).is_some_and(Option::is_some) {
            // Edge-triggered: no new event will say the rest is waiting.
            self.udp.again.push(index);
        }
    }

    /// Sends one datagram now, or drops and counts it.
    pub(super) fn send_datagram(&mut self, via: UdpKey, peer: SocketAddr, bytes: &[u8]) {
        let Some(Some(twin)) = self.udp.twins.get_mut(via.0) else {
            return; // closed by a stop: nothing to send from
        };
        loop {
            match twin.socket.send_to(bytes, peer) {
                Ok(n) => {
                    twin.stats.datagrams_out += 1;
                    twin.stats.bytes_out += n as u64;
                    event::record(&Event::Datagram {
                        service: twin.name,
                        peer,
                        bytes: n,
                        dir: Direction::Out,
                    });
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The send buffer is full (WouldBlock), the kernel is
                    // short of buffers (ENOBUFS), or the peer cannot be
                    // reached: UDP promises nothing, so neither do we.
                    twin.stats.dropped += 1;
                    return;
                }
            }
        }
    }

    /// Reads the twins a budget cut short last turn.
    pub(super) fn retry_udp(&mut self) {
        for index in std::mem::take(&mut self.udp.again) {
            self.udp_ready(index);
        }
    }

    /// Closes the twins (a graceful stop): no more datagrams are read, and
    /// replies that would go out later are dropped.
    pub(super) fn close_udp(&mut self) {
        for twin in self.udp.twins.iter_mut() {
            if let Some(mut t) = twin.take() {
                let _ = self.poll.registry().deregister(&mut t.socket);
            }
        }
        self.udp.again.clear();
    }
}
