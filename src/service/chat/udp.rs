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
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{
    ChatRoom, INVALID_UTF8, Member, Stage, fold, has_visible, is_blank, push_all, push_clean,
    send_to_room,
};
use crate::event::{Event, UdpLeaveReason};
use crate::names::check_name;
use crate::service::{ConnKey, Effects, UdpKey};

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
    /// Folded name → member: uniqueness and `/msg` lookup.
    by_name: HashMap<Box<str>, SocketAddr>,
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

    pub(super) fn taken(&self, folded: &str) -> bool {
        self.by_name.contains_key(folded)
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_peer.values().map(|m| &*m.name)
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
        self.by_name.remove(&*fold(&member.name));
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

    /// Whether a (folded) name is held by anyone, over TCP or UDP.
    pub(super) fn name_taken(&self, folded: &str) -> bool {
        self.online.contains_key(folded) || self.udp.taken(folded)
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
        let folded = fold(name);
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
        let name = m.name.clone();
        if text.trim_matches(is_blank) == "exit" {
            self.udp_leave(peer, UdpLeaveReason::Leave, fx);
            return;
        }
        if !text.starts_with('/') {
            if has_visible(text) {
                self.scratch.clear();
                push_all(&mut self.scratch, &[&name, ": "]);
                push_clean(&mut self.scratch, text);
                self.scratch.push(b'\n');
                self.udp_broadcast(Some(peer), fx);
            }
            return;
        }
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
            self.scratch.clear();
            self.scratch.extend_from_slice(b"! unknown command ");
            push_clean(&mut self.scratch, command);
            self.scratch.extend_from_slice(b"; /help lists them\n");
            fx.send_to(via, peer, &self.scratch);
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
        let folded = fold(target);
        self.scratch.clear();
        push_all(&mut self.scratch, &["* ", from, " whispers: "]);
        push_clean(&mut self.scratch, text.trim_start_matches(is_blank));
        self.scratch.push(b'\n');
        if let Some(&to) = self.online.get(&folded) {
            fx.send(to, &self.scratch);
        } else if let Some(&to) = self.udp.by_name.get(&folded) {
            let via = self.udp.by_peer[&to].via;
            fx.send_to(via, to, &self.scratch);
        } else {
            return false;
        }
        true
    }

    /// Takes `peer` out of the room and tells everyone.
    fn udp_leave(&mut self, peer: SocketAddr, reason: UdpLeaveReason, fx: &mut Effects) {
        let Some(m) = self.udp.remove(peer) else {
            return;
        };
        let goodbye = match reason {
            UdpLeaveReason::Idle => {
                let idle = self.udp.timeout.unwrap_or_default();
                let idle = humantime::format_duration(idle).to_string();
                ["* disconnected: idle for ", &*idle].concat()
            }
            _ => ["* bye, ", &*m.name].concat(),
        };
        self.udp_reply(m.via, peer, &[&goodbye], fx);
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
