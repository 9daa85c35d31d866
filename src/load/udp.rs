//! `echochat load udp-echo`: datagrams at a fixed rate against the server's
//! udp-echo twin, every reply verified, and what UDP does not promise —
//! delivery, order, uniqueness — counted as `lost`, `reordered` and
//! `duplicated`.
//!
//! Each client is one UDP socket, `connect`ed to the server: the kernel
//! then delivers only the server's datagrams to it, and an ICMP "port
//! unreachable" (nothing listens there) comes back as `ECONNREFUSED` on
//! the next `recv`/`send`, so "no server" is told apart from "no reply".
//! There is no handshake and no ramp: the sockets are opened when the load
//! starts, and a socket that was refused before any reply counts as a
//! failed connect (`refused`), like a TCP client.
//!
//! **Open loop, always.** A closed-loop UDP client that waits for each
//! reply would stall for good at its first lost datagram. Datagram `k` of
//! each socket is due at a fixed time (`schedule.rs`, `--rate` datagrams a
//! second over all sockets) and goes out then, whether or not the replies
//! before it came back. Its latency is measured from that due time to its
//! reply. If the kernel will not take a datagram at once (`EAGAIN`), the
//! socket waits for WRITABLE and sends what came due meanwhile, late, and
//! still measured from when it was due.
//!
//! **Stamps.** Every datagram is an echo message (`echo.rs`'s
//! `fill_message`): `--size` bytes stamped with an id (this run's token
//! and the client's number) and its sequence number, 1, 2, 3, ... per
//! socket. A reply must have the size, the id of its socket, a number
//! already sent, and every byte of that message: otherwise it is a
//! verification error. A verified reply is then classified by
//! `arrivals.rs` (in order, late, copy) with 128 bytes per socket.
//!
//! **The end.** After the load, replies still in flight are awaited until
//! every datagram is answered, or nothing has come back for [`QUIET`], at
//! most the run's drain. Then `lost` = sent − received (unique verified
//! replies): a datagram the network (or a full socket buffer at either
//! end) dropped, and a reply too late for the drain, are both lost. How
//! many of those our own sockets dropped (their receive buffers were full:
//! the generator, not the server, was too slow) is read from the `drops`
//! column of `/proc/net/udp` before the sockets close.
//!
//! Read `worker.rs` for the loop, `echo.rs` for the TCP twin.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Interest, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::arrivals::{Arrival, Arrivals};
use super::connect::Target;
use super::echo::{STAMP_BYTES, fill_message, make_pattern, read_stamp};
use super::schedule::Schedule;
use super::stats::ConnectCause;
use super::worker::{Core, Ready, Scenario, Why};

/// The largest UDP payload over IPv4 (65,535 − 20 − 8): udp-echo answers
/// datagrams up to this size.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// The smallest `--size`: a datagram must hold its stamp.
pub const MIN_DATAGRAM_BYTES: usize = STAMP_BYTES;
/// Datagrams sent per wakeup at most. A generator that fell behind its
/// schedule must still go back to `poll` and read replies between sends:
/// otherwise its own receive buffers overflow and it reports loss that the
/// server did not cause, and the load phase overruns its end.
const SEND_BUDGET: usize = 256;
/// After the load, the drain ends once no reply has come for this long
/// (a lost datagram never comes; waiting the whole drain for it would only
/// make every lossy run longer).
pub const QUIET: Duration = Duration::from_millis(500);

/// One client: a connected UDP socket and what it sent and got back.
pub struct Sock {
    /// `None` once closed (refused, or an error).
    sock: Option<UdpSocket>,
    /// The id stamped into this socket's datagrams.
    id: u64,
    /// Datagrams that came due so far.
    due_count: u64,
    /// Sequence numbers used so far (sent, or refused with `ENOBUFS`); the
    /// next datagram is `seq + 1`.
    seq: u64,
    /// Datagrams the kernel took.
    sent: u64,
    /// Unique verified replies.
    received: u64,
    arrivals: Arrivals,
    /// The last send hit `EAGAIN`: wait for WRITABLE.
    blocked: bool,
}

impl Sock {
    fn new(id: u64) -> Sock {
        Sock {
            sock: None,
            id,
            due_count: 0,
            seq: 0,
            sent: 0,
            received: 0,
            arrivals: Arrivals::new(),
            blocked: false,
        }
    }

    /// Sent and not (yet) answered.
    fn outstanding(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

/// One thread's udp-echo scenario.
pub struct UdpEcho {
    size: usize,
    /// Random bytes every datagram is cut from (see `fill_message`).
    pattern: Vec<u8>,
    /// This run's token: the high bits of every socket's id, so a reply to
    /// an earlier run's datagram never verifies.
    token: u32,
    /// This thread's clients (global numbers); slot `i` is `ids[i]`.
    ids: Vec<usize>,
    schedule: Schedule,
    /// The datagram being sent, or the one a reply is compared with.
    out: Vec<u8>,
    /// Where replies are received: one byte more than any datagram, so a
    /// reply longer than `size` shows.
    inp: Vec<u8>,
    /// Datagrams sent and not answered, over this thread's open sockets.
    outstanding: u64,
    /// The last send or reply: the drain's quiet period runs from here.
    last_activity: Instant,
}

/// The id stamped into client `client`'s datagrams: the run's token above
/// the client's number (24 bits; the descriptor limit keeps clients far
/// below 16 million), 56 bits in all, as the stamp holds.
fn stamp_id(token: u32, client: usize) -> u64 {
    (u64::from(token) << 24) | (client as u64 & 0xFF_FFFF)
}

impl UdpEcho {
    /// `size`-byte datagrams, `rate` a second over `clients_total`
    /// sockets; `ids` are this thread's clients.
    pub fn new(size: usize, rate: f64, clients_total: usize, ids: Vec<usize>, token: u32) -> Self {
        let period = Duration::from_secs_f64(clients_total as f64 / rate);
        UdpEcho {
            size,
            pattern: make_pattern(size, 0xD5EED ^ size as u64),
            token,
            schedule: Schedule::new(period, clients_total, ids.clone()),
            ids,
            out: vec![0; size],
            inp: vec![0; MAX_DATAGRAM_BYTES + 1],
            outstanding: 0,
            last_activity: Instant::now(),
        }
    }

    /// Open this thread's sockets, each in the next slot.
    fn open_all(&mut self, core: &mut Core<'_, Sock>) {
        for &client in &self.ids {
            let i = core.next_slot();
            let mut conn = Sock::new(stamp_id(self.token, client));
            let opened = open(core.target, client).and_then(|mut s| {
                core.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(s)
            });
            match opened {
                Ok(s) => {
                    conn.sock = Some(s);
                    core.add_up(client, conn);
                }
                Err(e) => {
                    core.add_failed(client, conn, ConnectCause::of(&e));
                }
            }
        }
    }

    /// Send what has come due on socket `i`, until the kernel says wait.
    fn send_due(&mut self, core: &mut Core<'_, Sock>, i: usize) {
        loop {
            let slot = &mut core.slots[i];
            let c = &mut slot.conn;
            if c.blocked || c.seq >= c.due_count {
                return;
            }
            let Some(sock) = c.sock.as_ref() else {
                return;
            };
            let seq = c.seq + 1;
            fill_message(&mut self.out, &self.pattern, c.id, seq);
            match sock.send(&self.out) {
                Ok(n) => {
                    c.seq = seq;
                    c.sent += 1;
                    self.outstanding += 1;
                    core.stats.sent += 1;
                    core.stats.bytes_sent += n as u64;
                    self.last_activity = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.blocked = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The kernel had no buffer for it: dropped before it left,
                // so neither sent nor lost; its number is skipped.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    c.seq = seq;
                    core.stats.send_dropped += 1;
                }
                Err(e) => return self.close(core, i, e),
            }
        }
    }

    /// Read replies until the socket is empty (edge-triggered: no new edge
    /// comes for datagrams already queued).
    fn read_all(&mut self, core: &mut Core<'_, Sock>, i: usize) {
        loop {
            let Some(sock) = core.slots[i].conn.sock.as_ref() else {
                return;
            };
            match sock.recv(&mut self.inp) {
                Ok(n) => self.on_reply(core, i, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(core, i, e),
            }
        }
    }

    /// A reply of `n` bytes is in `self.inp`: verify it, classify it,
    /// count it.
    fn on_reply(&mut self, core: &mut Core<'_, Sock>, i: usize, n: usize) {
        let now = Instant::now();
        self.last_activity = now;
        core.stats.bytes_received += n as u64;
        let c = &mut core.slots[i].conn;
        let reply = &self.inp[..n];
        let seq = match read_stamp(reply) {
            Some((id, seq)) if n == self.size && id == c.id && (1..=c.seq).contains(&seq) => {
                fill_message(&mut self.out, &self.pattern, id, seq);
                (self.out[..] == *reply).then_some(seq)
            }
            _ => None,
        };
        let Some(seq) = seq else {
            core.stats.verify_errors += 1;
            return;
        };
        match c.arrivals.record(seq) {
            Arrival::InOrder => {}
            Arrival::Late | Arrival::TooOld => core.stats.reordered += 1,
            Arrival::Duplicate => {
                core.stats.duplicated += 1;
                return;
            }
        }
        c.received += 1;
        // A too-old copy may be counted as received twice; never below 0.
        self.outstanding = self.outstanding.saturating_sub(1);
        let due = self.schedule.due_at(i, seq - 1);
        let latency = now.saturating_duration_since(due);
        let stats = &mut core.stats;
        stats.messages += 1;
        stats.bytes += n as u64;
        stats.record_latency_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        core.answered(i);
    }

    /// Close socket `i` after error `e`. `ECONNREFUSED` is ICMP port
    /// unreachable: nothing listens there. Before any reply that is a
    /// failed connect (by cause), after one an io error (the core decides).
    fn close(&mut self, core: &mut Core<'_, Sock>, i: usize, e: io::Error) {
        let c = &mut core.slots[i].conn;
        c.sock = None;
        self.outstanding = self.outstanding.saturating_sub(c.outstanding());
        core.close(i, Why::Error(e));
    }
}

/// A non-blocking UDP socket for client `client`, bound (to the client's
/// source address if the preflight spread them) and connected to the
/// target.
fn open(target: &Target, client: usize) -> io::Result<UdpSocket> {
    let addr = target.addr;
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_nonblocking(true)?;
    let any = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let src = target.source_for(client).unwrap_or(any);
    sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    sock.connect(&SockAddr::from(addr))?;
    Ok(UdpSocket::from_std(sock.into()))
}

/// The inode of the socket behind descriptor `fd`: how `/proc/net/udp`
/// names it.
fn socket_inode(fd: RawFd) -> Option<u64> {
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|m| m.ino())
}

/// Datagrams the kernel dropped at the sockets `inodes` (their receive
/// buffers were full), summed from `/proc/net/udp` and `/proc/net/udp6`;
/// 0 where those cannot be read.
fn receive_drops(inodes: &HashSet<u64>) -> u64 {
    if inodes.is_empty() {
        return 0;
    }
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| drops_in_table(&table, inodes))
        .sum()
}

/// The `drops` of the rows of a `/proc/net/udp` table whose inode is in
/// `inodes`. Columns: sl, local, remote, st, tx:rx queue, tr:when,
/// retrnsmt, uid, timeout, inode, ref, pointer, drops.
fn drops_in_table(table: &str, inodes: &HashSet<u64>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            let drops: u64 = cols.get(12)?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
}

impl Scenario for UdpEcho {
    type Conn = Sock;

    /// Unused: there is no ramp; `open_all` makes the slots.
    fn new_conn(&mut self, client: usize) -> Sock {
        Sock::new(stamp_id(self.token, client))
    }

    /// Never called: nothing connects with TCP.
    fn on_connected(&mut self, _core: &mut Core<'_, Sock>, _i: usize, _ready: Ready) {}

    fn on_ready(&mut self, core: &mut Core<'_, Sock>, i: usize, ready: Ready) {
        if ready.readable {
            self.read_all(core, i);
        }
        if ready.writable {
            let c = &mut core.slots[i].conn;
            if c.blocked {
                c.blocked = false;
                self.send_due(core, i);
            }
        }
    }

    fn on_load_start(&mut self, core: &mut Core<'_, Sock>, _now: Instant) {
        self.open_all(core);
        // The schedule starts once the sockets exist, so opening them
        // (milliseconds for thousands) does not make the first datagrams
        // late.
        let now = Instant::now();
        self.schedule.start(now);
        self.last_activity = now;
    }

    fn next_wakeup(&self, _core: &Core<'_, Sock>) -> Option<Instant> {
        self.schedule.next_due()
    }

    /// Send what came due, at most [`SEND_BUDGET`] datagrams: the rest
    /// waits for the next turn, after the replies that came meanwhile were
    /// read.
    fn on_wakeup(&mut self, core: &mut Core<'_, Sock>, now: Instant) {
        for _ in 0..SEND_BUDGET {
            let Some((i, _round)) = self.schedule.pop_due(now) else {
                return;
            };
            let c = &mut core.slots[i].conn;
            if c.sock.is_none() {
                continue;
            }
            c.due_count += 1;
            self.send_due(core, i);
        }
    }

    fn drained(&self, _core: &Core<'_, Sock>) -> bool {
        self.outstanding == 0 || self.last_activity.elapsed() >= QUIET
    }

    fn finish(
        &mut self,
        core: &mut Core<'_, Sock>,
        _events: &mut mio::Events,
    ) -> Result<(), super::Error> {
        // Datagrams that came due before the load's end while the
        // generator was behind were never popped: count them as due.
        let load_end = core.load_end();
        while let Some((i, _round)) = self.schedule.pop_due(load_end) {
            let c = &mut core.slots[i].conn;
            if c.sock.is_some() {
                c.due_count += 1;
            }
        }
        let inodes: HashSet<u64> = core
            .slots
            .iter()
            .filter_map(|slot| slot.conn.sock.as_ref())
            .filter_map(|s| socket_inode(s.as_raw_fd()))
            .collect();
        let stats = &mut core.stats;
        stats.client_drops += receive_drops(&inodes);
        for slot in &mut core.slots {
            let c = &mut slot.conn;
            stats.lost += c.outstanding();
            stats.not_started += c.due_count.saturating_sub(c.seq);
            c.sock = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_for_our_sockets_only() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 2964: 0100007F:B481 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1471471 2 000000006793b40c 225585\n\
 3178: 0100007F:B557 0100007F:B481 01 00000000:00000000 00:00000000 00000000  1000        0 1473154 2 00000000729e314a 7\n";
        let ours: HashSet<u64> = [1_473_154].into();
        assert_eq!(drops_in_table(table, &ours), 7);
        assert_eq!(drops_in_table("garbage\nmore garbage", &ours), 0);
        // A real socket of ours is in the live table, with no drops.
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(s.as_raw_fd()).expect("a socket has an inode");
        let live = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(
            live.contains(&format!(" {inode} ")),
            "{inode} not in {live}"
        );
        assert_eq!(receive_drops(&[inode].into()), 0);
    }

    #[test]
    fn ids_keep_the_token_and_the_client_apart() {
        let a = stamp_id(0xFFFF_FFFF, 7);
        assert_eq!(a >> 24, 0xFFFF_FFFF);
        assert_eq!(a & 0xFF_FFFF, 7);
        assert!(a < 1 << 56, "fits the stamp");
        assert_ne!(stamp_id(1, 7), stamp_id(2, 7));
    }
}
