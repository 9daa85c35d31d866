//! udp-chat: the same room, reached by datagrams instead of a connection.
//!
//! UDP members are users like any other: their names are unique among TCP
//! and UDP users together, they are in `/who`, and what anyone says reaches
//! everyone, whichever transport each uses. What differs is what UDP lacks:
//!
//! - **No connection**, so a member is only an address (`peer`) the room
//!   remembers after `/join NAME`. Any datagram from an unknown address
//!   other than `/join` gets `! send /join NAME first`, and nothing is
//!   stored for it (a flood of strangers costs no memory).
//! - **No FIN**, so nobody knows when a member has gone: `/leave` says so,
//!   and a member silent for `--udp-member-timeout` is dropped (its last
//!   datagram is `* disconnected: idle for DURATION`). Expiry uses a
//!   min-heap checked lazily, like the reactor's idle timers: a datagram
//!   only moves `last_heard`; an entry that comes due is checked against it
//!   and pushed again if the member spoke since.
//! - **No stream**: each datagram is one line (a trailing `\n` or `\r\n` is
//!   dropped; the server's datagrams end with `\n`), so no line decoder is
//!   needed, and a lost datagram is simply lost.
//!
//! Choices where the contract is silent: a member may use `/who`, `/msg`,
//! `/help`, and `/leave` (`/quit` and a lone `exit` too) and gets
//! `* bye, NAME`; `/nick` is TCP-only (`/leave`, then `/join NEW`); a UDP
//! name is not written to the names file (a source address is easily
//! forged); empty datagrams from a member are ignored but count as not
//! silent. The members are capped (`set_udp_limits`), since each costs
//! memory and anyone may `/join`.
//!
//! This is a child module of `chat.rs` so that it can use the room's own
//! maps and helpers; the TCP side calls in at a few marked places (name
//! uniqueness, broadcasts, `/who`, `/msg`, shutdown).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{ChatRoom, INVALID_UTF8, Member, Stage, WhoRow, is_blank, push_all, send_to_room};
use crate::event::{Event, UdpLeaveReason};
use crate::names::{check_name, name_key};
use crate::service::{ConnKey, Effects, UdpKey};
use crate::text::{has_visible, push_filtered};

/// `--udp-member-timeout`'s default.
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Members kept at most unless the shell says otherwise.
const DEFAULT_MAX_MEMBERS: usize = 10_000;

const JOIN_FIRST: &[u8] = b"! send /join NAME first\n";
const FULL: &[u8] = b"! server full, try again later\n";
const SHUTTING_DOWN: &[u8] = b"* server shutting down\n";
/// `/help` over UDP, one datagram a line.
const HELP: &[&str] = &[
    "* commands (UDP):",
    "* /who            list who is online",
    "* /msg NAME text  send text to one user only",
    "* /help           this list",
    "* /leave          leave the chat (or /quit, exit)",
    "* any other line goes to everyone else",
];

/// The UDP members of the room.
#[derive(Debug)]
pub(super) struct UdpMembers {
    by_peer: HashMap<SocketAddr, UdpMember>,
    /// Name key (`names::name_key`) → member: uniqueness and `/msg` lookup.
    by_name: HashMap<String, SocketAddr>,
    /// `(deadline, member id, peer)`, earliest first; lazy (see the module
    /// docs). The id tells a member from an earlier one at the same address.
    expiry: BinaryHeap<Reverse<(Instant, u64, SocketAddr)>>,
    /// `--udp-member-timeout`; `None`: members never expire.
    timeout: Option<Duration>,
    max_members: usize,
    next_id: u64,
}

#[derive(Debug)]
struct UdpMember {
    name: Box<str>,
    /// The socket it joined through: where its datagrams are sent from.
    via: UdpKey,
    /// When it joined (the console's `/who`).
    joined: Instant,
    last_heard: Instant,
    id: u64,
}

impl Default for UdpMembers {
    fn default() -> Self {
        UdpMembers {
            by_peer: HashMap::new(),
            by_name: HashMap::new(),
            expiry: BinaryHeap::new(),
            timeout: Some(DEFAULT_MEMBER_TIMEOUT),
            max_members: DEFAULT_MAX_MEMBERS,
            next_id: 0,
        }
    }
}

impl UdpMembers {
    pub(super) fn len(&self) -> usize {
        self.by_peer.len()
    }

    pub(super) fn taken(&self, key: &str) -> bool {
        self.by_name.contains_key(key)
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_peer.values().map(|m| &*m.name)
    }

    /// The members as rows of the console's `/who`.
    pub(super) fn who_rows(&self) -> impl Iterator<Item = WhoRow<'_>> {
        self.by_peer.iter().map(|(peer, m)| WhoRow {
            name: &m.name,
            ip: peer.ip().to_canonical(),
            transport: "udp",
            since: m.joined,
            last_heard: m.last_heard,
        })
    }

    /// One datagram with `line` to every member but `except`.
    pub(super) fn send_all(&self, except: Option<SocketAddr>, line: &[u8], fx: &mut Effects) {
        for (&peer, m) in &self.by_peer {
            if Some(peer) != except {
                fx.send_to(m.via, peer, line);
            }
        }
    }

    fn remove(&mut self, peer: SocketAddr) -> Option<UdpMember> {
        let member = self.by_peer.remove(&peer)?;
        self.by_name.remove(&*name_key(&member.name));
        Some(member)
    }
}

impl ChatRoom {
    /// `--udp-member-timeout` (`None`: never), and the most UDP members
    /// kept at once (the shell passes `--max-clients`).
    pub fn set_udp_limits(&mut self, member_timeout: Option<Duration>, max_members: usize) {
        self.udp.timeout = member_timeout;
        self.udp.max_members = max_members.max(1);
    }

    /// UDP members in the room.
    pub fn udp_members(&self) -> usize {
        self.udp.len()
    }

    /// Whether a name key (`names::name_key`) is held by anyone, over TCP
    /// or UDP.
    pub(super) fn name_taken(&self, key: &str) -> bool {
        self.online.contains_key(key) || self.udp.taken(key)
    }

    /// One datagram from `peer`; see the module docs.
    pub(super) fn udp_datagram(
        &mut self,
        via: UdpKey,
        peer: SocketAddr,
        bytes: &[u8],
        now: Instant,
        fx: &mut Effects,
    ) {
        let known = match self.udp.by_peer.get_mut(&peer) {
            Some(m) => {
                m.last_heard = now;
                true
            }
            None => false,
        };
        self.messages += 1;
        let line = strip_line_end(bytes);
        if line.len() > self.max_line_bytes {
            let max = self.max_line_bytes.to_string();
            self.udp_reply(
                via,
                peer,
                &["! line too long (over ", &max, " bytes), ignored"],
                fx,
            );
            return;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            fx.send_to(via, peer, INVALID_UTF8);
            return;
        };
        if known {
            self.udp_member_line(peer, text, fx);
            return;
        }
        let (command, rest) = split_command(text);
        if command.eq_ignore_ascii_case("/join") {
            self.udp_join(via, peer, rest, now, fx);
        } else {
            fx.send_to(via, peer, JOIN_FIRST);
        }
    }

    fn udp_join(
        &mut self,
        via: UdpKey,
        peer: SocketAddr,
        name: &str,
        now: Instant,
        fx: &mut Effects,
    ) {
        if let Err(e) = check_name(name) {
            self.udp_reply(via, peer, &["! ", &e.to_string()], fx);
            return;
        }
        let folded = name_key(name);
        if self.name_taken(&folded) {
            self.udp_reply(via, peer, &["! the name ", name, " is taken"], fx);
            return;
        }
        if self.udp.len() >= self.udp.max_members {
            fx.send_to(via, peer, FULL);
            return;
        }
        let id = self.udp.next_id;
        self.udp.next_id += 1;
        self.udp.by_name.insert(folded, peer);
        self.udp.by_peer.insert(
            peer,
            UdpMember {
                name: name.into(),
                via,
                joined: now,
                last_heard: now,
                id,
            },
        );
        if let Some(timeout) = self.udp.timeout {
            self.schedule_expiry(now + timeout, id, peer);
        }
        self.udp_reply(via, peer, &["* hello, ", name], fx);
        self.scratch.clear();
        push_all(&mut self.scratch, &["* ", name, " joined\n"]);
        self.udp_broadcast(Some(peer), fx);
        fx.record(Event::UdpJoin {
            peer,
            name: name.to_string(),
        });
    }

    fn schedule_expiry(&mut self, at: Instant, id: u64, peer: SocketAddr) {
        let udp = &mut self.udp;
        if let Some(timeout) = udp.timeout
            && udp.expiry.len() > 2 * udp.by_peer.len() + 1024
        {
            // Mostly entries of members who left: keep the heap bounded by
            // the members there are (a /join, /leave storm must not grow it).
            udp.expiry = udp
                .by_peer
                .iter()
                .map(|(&p, m)| Reverse((m.last_heard + timeout, m.id, p)))
                .collect();
        }
        udp.expiry.push(Reverse((at, id, peer)));
    }

    /// A line from a joined member.
    fn udp_member_line(&mut self, peer: SocketAddr, text: &str, fx: &mut Effects) {
        let Some(m) = self.udp.by_peer.get(&peer) else {
            return;
        };
        let via = m.via;
        if text.trim_matches(is_blank) == "exit" {
            self.udp_leave(peer, UdpLeaveReason::Leave, fx);
            return;
        }
        if !text.starts_with('/') {
            // The hot path: formatted once, no allocation but the shared
            // buffer for TCP receivers.
            if has_visible(text) {
                self.scratch.clear();
                push_all(&mut self.scratch, &[&m.name, ": "]);
                push_filtered(&mut self.scratch, text);
                self.scratch.push(b'\n');
                self.udp_broadcast(Some(peer), fx);
            }
            return;
        }
        let name = m.name.clone();
        let (command, rest) = split_command(text);
        let is = |word: &str| command.eq_ignore_ascii_case(word);
        if is("/leave") || is("/quit") {
            self.udp_leave(peer, UdpLeaveReason::Leave, fx);
        } else if is("/who") {
            self.format_who();
            fx.send_to(via, peer, &self.scratch);
        } else if is("/msg") {
            self.udp_whisper(via, peer, &name, rest, fx);
        } else if is("/help") {
            for line in HELP {
                self.udp_reply(via, peer, &[line], fx);
            }
        } else if is("/join") {
            self.udp_reply(
                via,
                peer,
                &["! you are already ", &name, "; send /leave first"],
                fx,
            );
        } else if is("/nick") {
            fx.send_to(
                via,
                peer,
                b"! /nick works over TCP only; /leave, then /join NEW\n",
            );
        } else {
            fx.send_to(via, peer, self.unknown_command(command));
        }
    }

    /// `/msg NAME text` from a UDP member, to a TCP or UDP user.
    fn udp_whisper(
        &mut self,
        via: UdpKey,
        peer: SocketAddr,
        from: &str,
        rest: &str,
        fx: &mut Effects,
    ) {
        let (target, text) = rest.split_once(is_blank).unwrap_or((rest, ""));
        if target.is_empty() || !has_visible(text) {
            fx.send_to(via, peer, b"! usage: /msg NAME text\n");
            return;
        }
        if check_name(target).is_err() {
            fx.send_to(via, peer, b"! no such user\n");
            return;
        }
        if !self.deliver_whisper(from, target, text, fx) {
            self.udp_reply(via, peer, &["! no such user: ", target], fx);
        }
    }

    /// `/msg` from TCP user `key` to a UDP member: the TCP side's hook,
    /// called when no TCP user has the name. False if no UDP member has it.
    pub(super) fn whisper_udp(
        &mut self,
        key: ConnKey,
        target: &str,
        text: &str,
        fx: &mut Effects,
    ) -> bool {
        let Some(Member {
            stage: Stage::Joined { name },
            ..
        }) = self.members.get(&key)
        else {
            return false;
        };
        let from = name.clone();
        self.deliver_whisper(&from, target, text, fx)
    }

    /// `* FROM whispers: text` to the user named `target`, TCP or UDP.
    fn deliver_whisper(&mut self, from: &str, target: &str, text: &str, fx: &mut Effects) -> bool {
        let folded = name_key(target);
        self.scratch.clear();
        push_all(&mut self.scratch, &["* ", from, " whispers: "]);
        push_filtered(&mut self.scratch, text.trim_start_matches(is_blank));
        self.scratch.push(b'\n');
        if let Some(&to) = self.online.get(folded.as_str()) {
            fx.send(to, &self.scratch);
        } else if let Some(&to) = self.udp.by_name.get(folded.as_str()) {
            let via = self.udp.by_peer[&to].via;
            fx.send_to(via, to, &self.scratch);
        } else {
            return false;
        }
        true
    }

    /// Takes `peer` out of the room and tells everyone: `* bye, NAME` or
    /// the idle line to the member, `* NAME left` to the others.
    fn udp_leave(&mut self, peer: SocketAddr, reason: UdpLeaveReason, fx: &mut Effects) {
        let goodbye = match (reason, self.udp.by_peer.get(&peer)) {
            (_, None) => return,
            (UdpLeaveReason::Idle, Some(_)) => {
                let idle = self.udp.timeout.unwrap_or_default();
                let idle = humantime::format_duration(idle).to_string();
                ["* disconnected: idle for ", &*idle, "\n"].concat()
            }
            (_, Some(m)) => ["* bye, ", &*m.name, "\n"].concat(),
        };
        self.udp_depart(peer, goodbye.as_bytes(), reason, fx);
    }

    /// The console's `/kick` for the member whose name key is `folded`,
    /// with the goodbye line already in `self.scratch`. False if no member
    /// has that name.
    pub(super) fn udp_kick(&mut self, folded: &str, out: &mut String, fx: &mut Effects) -> bool {
        let Some(&peer) = self.udp.by_name.get(folded) else {
            return false;
        };
        if let Some(m) = self.udp.by_peer.get(&peer) {
            let _ = writeln!(out, "kicked {} ({}, udp)", m.name, peer.ip().to_canonical());
        }
        let goodbye = std::mem::take(&mut self.scratch);
        self.udp_depart(peer, &goodbye, UdpLeaveReason::Kicked, fx);
        true
    }

    /// Forgets `peer` after sending it `goodbye` (one line, `\n`
    /// included), tells the others, and logs the leave.
    fn udp_depart(
        &mut self,
        peer: SocketAddr,
        goodbye: &[u8],
        reason: UdpLeaveReason,
        fx: &mut Effects,
    ) {
        let Some(m) = self.udp.remove(peer) else {
            return;
        };
        fx.send_to(m.via, peer, goodbye);
        self.scratch.clear();
        push_all(&mut self.scratch, &["* ", &m.name, " left\n"]);
        self.udp_broadcast(None, fx);
        fx.record(Event::UdpLeave {
            peer,
            name: m.name.into(),
            reason,
        });
    }

    /// The earliest expiry entry (maybe of a member who spoke since).
    pub(super) fn udp_deadline(&self) -> Option<Instant> {
        self.udp.expiry.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Drops members silent for `--udp-member-timeout` at `now`.
    pub(super) fn udp_expire(&mut self, now: Instant, fx: &mut Effects) {
        let Some(timeout) = self.udp.timeout else {
            return;
        };
        while let Some(&Reverse((at, id, peer))) = self.udp.expiry.peek() {
            if at > now {
                return;
            }
            self.udp.expiry.pop();
            let Some(m) = self.udp.by_peer.get(&peer).filter(|m| m.id == id) else {
                continue; // left already; a later member has its own entry
            };
            let due = m.last_heard + timeout;
            if due <= now {
                self.udp_leave(peer, UdpLeaveReason::Idle, fx);
            } else {
                self.udp.expiry.push(Reverse((due, id, peer)));
            }
        }
    }

    /// A graceful stop: tell every member, and log each one's leave.
    pub(super) fn udp_shutdown(&mut self, fx: &mut Effects) {
        self.udp.send_all(None, SHUTTING_DOWN, fx);
        for (peer, m) in self.udp.by_peer.drain() {
            fx.record(Event::UdpLeave {
                peer,
                name: m.name.into(),
                reason: UdpLeaveReason::Shutdown,
            });
        }
        self.udp.by_name.clear();
        self.udp.expiry.clear();
    }

    /// `self.scratch` (one line, `\n` included) to every TCP user and every
    /// UDP member but `except`.
    fn udp_broadcast(&mut self, except: Option<SocketAddr>, fx: &mut Effects) {
        send_to_room(&self.online, None, &self.scratch, fx);
        self.udp.send_all(except, &self.scratch, fx);
    }

    /// One datagram (`parts` joined, plus `\n`) to `peer`.
    fn udp_reply(&mut self, via: UdpKey, peer: SocketAddr, parts: &[&str], fx: &mut Effects) {
        self.scratch.clear();
        push_all(&mut self.scratch, parts);
        self.scratch.push(b'\n');
        fx.send_to(via, peer, &self.scratch);
    }
}

/// A datagram without its one trailing `\n` or `\r\n`.
fn strip_line_end(bytes: &[u8]) -> &[u8] {
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if line.len() < bytes.len() {
        line.strip_suffix(b"\r").unwrap_or(line)
    } else {
        line
    }
}

/// `/cmd rest` → (`/cmd`, `rest` trimmed of blanks).
fn split_command(text: &str) -> (&str, &str) {
    let text = text.trim_matches(is_blank);
    match text.split_once(is_blank) {
        Some((c, r)) => (c, r.trim_matches(is_blank)),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    //! TCP users and UDP members in one room, driven in memory: the harness
    //! plays the reactor (it applies effects, keeps each TCP connection's
    //! bytes and each UDP peer's datagrams, and calls `on_close`).

    use super::*;
    use crate::names::Names;
    use crate::service::chat::ChatConfig;
    use crate::service::rate::RateLimit;
    use crate::service::{Effect, Service};

    const VIA: UdpKey = UdpKey(0);

    struct Harness {
        chat: ChatRoom,
        fx: Effects,
        now: Instant,
        next_id: u64,
        tcp_out: HashMap<ConnKey, Vec<u8>>,
        datagrams: HashMap<SocketAddr, Vec<Vec<u8>>>,
        events: Vec<Event>,
    }

    impl Harness {
        fn new() -> Harness {
            let mut chat = ChatRoom::new(
                ChatConfig {
                    max_line_bytes: 64,
                    rate: RateLimit {
                        per_second: 1e9,
                        burst: 1e9,
                    },
                },
                Names::new(100),
            );
            chat.set_udp_limits(Some(Duration::from_secs(60)), 3);
            Harness {
                chat,
                fx: Effects::new(),
                now: Instant::now(),
                next_id: 0,
                tcp_out: HashMap::new(),
                datagrams: HashMap::new(),
                events: Vec::new(),
            }
        }

        fn pump(&mut self) {
            loop {
                let mut closing = Vec::new();
                for effect in self.fx.drain() {
                    match effect {
                        Effect::Send { to, bytes } => {
                            self.tcp_out.entry(to).or_default().extend_from_slice(bytes)
                        }
                        Effect::SendShared { to, bytes } => self
                            .tcp_out
                            .entry(to)
                            .or_default()
                            .extend_from_slice(&bytes),
                        Effect::SendTo { via, peer, bytes } => {
                            assert_eq!(via, VIA);
                            assert!(bytes.ends_with(b"\n"), "{bytes:?}");
                            self.datagrams.entry(peer).or_default().push(bytes.to_vec());
                        }
                        Effect::Close { to, reason } => closing.push((to, reason)),
                        Effect::Record(e) => self.events.push(e),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                if closing.is_empty() {
                    return;
                }
                for (key, reason) in closing {
                    self.chat.on_close(key, reason, &mut self.fx);
                }
            }
        }

        /// A TCP user from `ip` who chose `name`; its output cleared.
        /// The usual room: TCP user `alice`, then UDP members `names` from
        /// `peer(1)`, `peer(2)`, ...; every greeting and join notice read
        /// and the events so far cleared.
        fn alice_and_udp(names: &[&str]) -> (Harness, ConnKey, Vec<SocketAddr>) {
            let mut h = Harness::new();
            let alice = h.tcp("10.0.0.1", "alice");
            let peers: Vec<SocketAddr> = (1..=names.len() as u16).map(peer).collect();
            for (p, name) in peers.iter().zip(names) {
                h.udp(*p, format!("/join {name}").as_bytes());
            }
            for p in &peers {
                h.got(*p);
            }
            h.tcp_lines(alice);
            h.events.clear();
            (h, alice, peers)
        }

        fn tcp(&mut self, ip: &str, name: &str) -> ConnKey {
            self.next_id += 1;
            let key = ConnKey {
                slot: self.next_id as usize,
                id: self.next_id,
            };
            let peer = SocketAddr::new(ip.parse().unwrap(), 40_000);
            self.chat.on_open(key, peer, self.now, &mut self.fx);
            self.tcp_send(key, format!("{name}\n").as_bytes());
            self.tcp_lines(key);
            self.events.clear();
            key
        }

        fn tcp_send(&mut self, key: ConnKey, bytes: &[u8]) {
            self.chat.on_recv(key, bytes, self.now, &mut self.fx);
            self.pump();
        }

        fn tcp_lines(&mut self, key: ConnKey) -> Vec<String> {
            let bytes = self.tcp_out.remove(&key).unwrap_or_default();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }

        fn udp(&mut self, peer: SocketAddr, bytes: &[u8]) {
            self.chat
                .on_datagram(VIA, peer, bytes, self.now, &mut self.fx);
            self.pump();
        }

        /// The datagrams `peer` got since the last call, `\n` removed.
        fn got(&mut self, peer: SocketAddr) -> Vec<String> {
            self.datagrams
                .remove(&peer)
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    String::from_utf8(d)
                        .unwrap()
                        .trim_end_matches('\n')
                        .to_string()
                })
                .collect()
        }

        /// Moves time on and fires the room's deadline if it is due.
        fn advance(&mut self, by: Duration) {
            self.now += by;
            if self.chat.next_deadline().is_some_and(|at| at <= self.now) {
                self.chat.on_timer(self.now, &mut self.fx);
                self.pump();
            }
        }
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn strangers_must_join_first_and_cost_nothing() {
        let mut h = Harness::new();
        let p = peer(1);
        for first in [&b"hello\n"[..], b"", b"/who", b"/leave\r\n", b"\xff"] {
            h.udp(p, first);
            let got = h.got(p);
            assert!(
                got.len() == 1 && got[0].starts_with("! "),
                "{first:?}: {got:?}"
            );
        }
        assert_eq!(h.chat.udp_members(), 0);
        assert_eq!(h.chat.next_deadline(), None, "no state for strangers");
        assert!(h.events.is_empty());
    }

    #[test]
    fn join_rules_are_the_tcp_rules_and_names_are_shared() {
        let mut h = Harness::new();
        let alice = h.tcp("10.0.0.1", "Alice");
        let (p, q) = (peer(1), peer(2));
        h.udp(p, b"/join two words\n");
        assert_eq!(
            h.got(p),
            strs(&["! a name may only hold letters, digits, _ and - (not U+0020)"])
        );
        h.udp(p, b"/join\n");
        assert_eq!(h.got(p), strs(&["! a name has 1 to 32 characters"]));
        h.udp(p, b"/join ALICE\n");
        assert_eq!(h.got(p), strs(&["! the name ALICE is taken"]));
        h.udp(p, b"/JOIN bob\r\n");
        assert_eq!(h.got(p), strs(&["* hello, bob"]));
        assert_eq!(h.tcp_lines(alice), strs(&["* bob joined"]));
        assert_eq!(
            h.events,
            vec![Event::UdpJoin {
                peer: p,
                name: "bob".into()
            }]
        );
        // UDP names block TCP joins and /nick, and other UDP joins.
        h.udp(q, b"/join Bob");
        assert_eq!(h.got(q), strs(&["! the name Bob is taken"]));
        h.tcp_send(alice, b"/nick BOB\n");
        assert_eq!(h.tcp_lines(alice), strs(&["! the name BOB is taken"]));
        let carol = ConnKey { slot: 90, id: 90 };
        h.chat
            .on_open(carol, "10.0.0.3:1".parse().unwrap(), h.now, &mut h.fx);
        h.pump();
        h.tcp_lines(carol);
        h.tcp_send(carol, b"bob\n");
        assert_eq!(
            h.tcp_lines(carol),
            strs(&["! the name bob is taken", "* what is your name?"])
        );
        // Joining twice from one address is refused.
        h.udp(p, b"/join other");
        assert_eq!(
            h.got(p),
            strs(&["! you are already bob; send /leave first"])
        );
    }

    #[test]
    fn lines_relay_both_ways() {
        let mut h = Harness::new();
        let alice = h.tcp("10.0.0.1", "alice");
        let carol = h.tcp("10.0.0.3", "carol");
        let (p, q) = (peer(1), peer(2));
        h.udp(p, b"/join bob");
        h.udp(q, b"/join dan");
        h.tcp_lines(alice);
        h.tcp_lines(carol);
        h.got(p);
        h.got(q);
        h.udp(p, "hi \x1b[31mall ✓\r\n".as_bytes());
        assert_eq!(h.tcp_lines(alice), strs(&["bob: hi [31mall ✓"]));
        assert_eq!(h.tcp_lines(carol), strs(&["bob: hi [31mall ✓"]));
        assert_eq!(h.got(q), strs(&["bob: hi [31mall ✓"]));
        assert!(h.got(p).is_empty(), "no copy for the sender");
        h.tcp_send(alice, b"hello bob\nand dan\n");
        assert_eq!(h.got(p), strs(&["alice: hello bob", "alice: and dan"]));
        assert_eq!(h.got(q), strs(&["alice: hello bob", "alice: and dan"]));
        assert_eq!(
            h.tcp_lines(carol),
            strs(&["alice: hello bob", "alice: and dan"])
        );
        // Empty and blank datagrams are ignored.
        h.udp(p, b"\n");
        h.udp(p, b"  ");
        assert!(h.tcp_lines(alice).is_empty());
        // The console reaches UDP members too.
        h.chat.on_console_line("class ends", &mut h.fx);
        h.pump();
        assert_eq!(h.got(q), strs(&["[server] class ends"]));
    }

    #[test]
    fn one_tcp_user_and_one_udp_member_hear_each_other() {
        let (mut h, alice, peers) = Harness::alice_and_udp(&["bob"]);
        let p = peers[0];
        h.tcp_send(alice, b"just us\n");
        assert_eq!(h.got(p), strs(&["alice: just us"]));
        h.udp(p, b"yes");
        assert_eq!(h.tcp_lines(alice), strs(&["bob: yes"]));
    }

    #[test]
    fn who_msg_and_help() {
        let (mut h, alice, peers) = Harness::alice_and_udp(&["Bob", "dan"]);
        let (p, q) = (peers[0], peers[1]);
        h.udp(p, b"/who");
        assert_eq!(h.got(p), strs(&["* online: alice, Bob, dan"]));
        h.tcp_send(alice, b"/who\n");
        assert_eq!(h.tcp_lines(alice), strs(&["* online: alice, Bob, dan"]));
        h.udp(p, b"/msg alice psst");
        assert_eq!(h.tcp_lines(alice), strs(&["* Bob whispers: psst"]));
        h.udp(p, b"/msg DAN hey there");
        assert_eq!(h.got(q), strs(&["* Bob whispers: hey there"]));
        h.tcp_send(alice, b"/msg bob back\n");
        assert_eq!(h.got(p), strs(&["* alice whispers: back"]));
        h.udp(p, b"/msg nobody hi");
        assert_eq!(h.got(p), strs(&["! no such user: nobody"]));
        h.udp(p, b"/msg dan");
        assert_eq!(h.got(p), strs(&["! usage: /msg NAME text"]));
        h.udp(p, b"/help");
        let help = h.got(p);
        assert!(help.len() > 3 && help.iter().all(|l| l.starts_with("* ")));
        assert!(help.iter().any(|l| l.contains("/leave")));
        h.udp(p, b"/nick x");
        assert_eq!(
            h.got(p),
            strs(&["! /nick works over TCP only; /leave, then /join NEW"])
        );
        h.udp(p, b"/dance");
        assert_eq!(
            h.got(p),
            strs(&["! unknown command /dance; /help lists them"])
        );
        assert!(h.got(q).is_empty() && h.tcp_lines(alice).is_empty());
    }

    #[test]
    fn leave_and_departures_are_announced_both_ways() {
        let (mut h, alice, peers) = Harness::alice_and_udp(&["bob", "dan"]);
        let (p, q) = (peers[0], peers[1]);
        h.udp(p, b"/leave\n");
        assert_eq!(h.got(p), strs(&["* bye, bob"]));
        assert_eq!(h.got(q), strs(&["* bob left"]));
        assert_eq!(h.tcp_lines(alice), strs(&["* bob left"]));
        assert_eq!(
            h.events,
            vec![Event::UdpLeave {
                peer: p,
                name: "bob".into(),
                reason: UdpLeaveReason::Leave
            }]
        );
        // A stranger again; the name is free again.
        h.udp(p, b"hi");
        assert_eq!(h.got(p), strs(&["! send /join NAME first"]));
        h.udp(peer(3), b"/join bob");
        assert_eq!(h.got(peer(3)), strs(&["* hello, bob"]));
        // A TCP user leaving reaches UDP members.
        assert_eq!(h.got(q), strs(&["* bob joined"]));
        h.tcp_send(alice, b"/quit\n");
        assert_eq!(h.got(q), strs(&["* alice left"]));
        // `exit` alone is /leave too.
        h.udp(q, b"exit\n");
        assert_eq!(h.got(q), strs(&["* bye, dan"]));
        assert_eq!(h.chat.udp_members(), 1);
    }

    #[test]
    fn the_console_sees_and_kicks_udp_members_too() {
        use crate::service::ConsoleCommand;
        let mut h = Harness::new();
        let t0 = h.now;
        let alice = h.tcp("10.0.0.1", "alice");
        let p = peer(1);
        h.now = t0 + Duration::from_secs(5);
        h.udp(p, b"/join bob");
        h.now = t0 + Duration::from_secs(20);
        h.udp(p, b"hello");
        h.now = t0 + Duration::from_secs(50);
        h.got(p);
        h.tcp_lines(alice);
        h.events.clear();
        let mut out = String::new();
        let now = h.now;
        assert!(
            h.chat
                .on_console_command(ConsoleCommand::Who, now, &mut out, &mut h.fx)
        );
        assert_eq!(
            out,
            "who: 2 users in the chat room\n\
             \x20 alice  10.0.0.1   tcp  connected 50s  idle 50s\n\
             \x20 bob    127.0.0.1  udp  connected 45s  idle 30s\n"
        );
        out.clear();
        let kick = ConsoleCommand::Kick {
            name: "Bob",
            reason: Some("too loud"),
        };
        assert!(h.chat.on_console_command(kick, now, &mut out, &mut h.fx));
        h.pump();
        assert_eq!(out, "kicked bob (127.0.0.1, udp)\n");
        assert_eq!(h.got(p), strs(&["* kicked by the server: too loud"]));
        assert_eq!(h.tcp_lines(alice), strs(&["* bob left"]));
        assert_eq!(
            h.events,
            vec![Event::UdpLeave {
                peer: p,
                name: "bob".into(),
                reason: UdpLeaveReason::Kicked
            }]
        );
        assert_eq!(h.chat.udp_members(), 0);
        // Gone: a second kick finds nobody.
        assert!(!h.chat.on_console_command(kick, now, &mut out, &mut h.fx));
    }

    #[test]
    fn silent_members_expire_and_speaking_keeps_them() {
        let (mut h, alice, peers) = Harness::alice_and_udp(&["bob", "dan"]);
        let (p, q) = (peers[0], peers[1]);
        h.advance(Duration::from_secs(40));
        h.udp(q, b""); // an empty datagram counts as not silent
        h.advance(Duration::from_secs(25));
        assert_eq!(h.got(p), strs(&["* disconnected: idle for 1m"]));
        assert_eq!(h.got(q), strs(&["* bob left"]));
        assert_eq!(h.tcp_lines(alice), strs(&["* bob left"]));
        assert_eq!(
            h.events,
            vec![Event::UdpLeave {
                peer: p,
                name: "bob".into(),
                reason: UdpLeaveReason::Idle
            }]
        );
        assert_eq!(h.chat.udp_members(), 1);
        // dan spoke at 40 s: due at 100 s, not before.
        assert!(h.chat.next_deadline().is_some_and(|at| at > h.now));
        h.advance(Duration::from_secs(34));
        assert_eq!(h.chat.udp_members(), 1);
        h.advance(Duration::from_secs(2));
        assert_eq!(h.chat.udp_members(), 0);
        assert_eq!(h.chat.next_deadline(), None);
    }

    #[test]
    fn rejoining_at_one_address_keeps_one_timer() {
        let mut h = Harness::new();
        let p = peer(1);
        for _ in 0..3000 {
            h.udp(p, b"/join bob");
            h.udp(p, b"/leave");
        }
        h.udp(p, b"/join bob");
        // One member: the heap is rebuilt before it passes 2 x 1 + 1024.
        assert!(
            h.chat.udp.expiry.len() <= 1027,
            "{}",
            h.chat.udp.expiry.len()
        );
        h.advance(Duration::from_secs(61));
        assert_eq!(h.chat.udp_members(), 0);
    }

    #[test]
    fn members_are_capped() {
        let mut h = Harness::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            h.udp(peer(i as u16 + 1), format!("/join {name}").as_bytes());
        }
        h.udp(peer(9), b"/join d");
        assert_eq!(h.got(peer(9)), strs(&["! server full, try again later"]));
        assert_eq!(h.chat.udp_members(), 3);
    }

    #[test]
    fn bad_datagrams_get_one_error_line() {
        let mut h = Harness::new();
        let p = peer(1);
        h.udp(p, b"/join bob");
        h.got(p);
        h.udp(p, &[b'x'; 65]);
        assert_eq!(
            h.got(p),
            strs(&["! line too long (over 64 bytes), ignored"])
        );
        let mut exact = vec![b'x'; 64];
        exact.extend_from_slice(b"\r\n");
        h.udp(p, &exact);
        assert!(h.got(p).is_empty(), "64 bytes plus CRLF is fine");
        h.udp(p, b"\xc3\n");
        assert_eq!(h.got(p), strs(&["! invalid UTF-8, line ignored"]));
    }

    #[test]
    fn shutdown_tells_members_and_logs_their_leave() {
        let mut h = Harness::new();
        let p = peer(1);
        h.udp(p, b"/join bob");
        h.got(p);
        h.events.clear();
        h.chat.on_shutdown(&mut h.fx);
        h.pump();
        assert_eq!(h.got(p), strs(&["* server shutting down"]));
        assert_eq!(
            h.events,
            vec![Event::UdpLeave {
                peer: p,
                name: "bob".into(),
                reason: UdpLeaveReason::Shutdown
            }]
        );
        assert_eq!(h.chat.udp_members(), 0);
        assert_eq!(h.chat.next_deadline(), None);
    }

    #[test]
    fn line_ends() {
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a\r"), b"a\r");
        assert_eq!(strip_line_end(b"a\n\n"), b"a\n");
        assert_eq!(strip_line_end(b""), b"");
        assert_eq!(split_command(" /msg  bob  hi "), ("/msg", "bob  hi"));
    }
}
