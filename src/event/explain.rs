//! The `--explain` sentences: one plain English sentence per event, saying
//! what happened at the socket level, for a class watching the console.
//!
//! They live together here, one `match` arm per event, so that a translation
//! table (`--lang uk`, `--lang ru`) can be added beside them without
//! touching the events themselves. Each sentence stays within 100
//! characters with everyday values (a test below checks), so it fits one
//! line of a projector.

use super::{AuthHow, AuthResult, Direction, DisconnectReason, Event, PauseWhy, UdpLeaveReason};

/// The sentence for `event`, or `None` for the few events that need none.
pub(super) fn sentence(event: &Event) -> Option<String> {
    Some(match event {
        Event::Start { .. } => "the process started; no socket is open yet".to_string(),
        Event::Listen { service, .. } if service.starts_with("udp-") => {
            "socket() and bind() on UDP: no listen(), no accept(), no connections; datagrams just arrive"
                .to_string()
        }
        Event::Listen { addr, .. } => format!(
            "socket(), bind() and listen() worked: the kernel now queues handshakes on {addr}"
        ),
        Event::BindRetry { addr, .. } => {
            format!(
                "bind() to {addr} failed (port taken or not allowed), so the next port is tried"
            )
        }
        Event::Accept { peer, slot, .. } => {
            format!(
                "accept() returned a new socket for {peer}; its state lives in slab slot {slot}"
            )
        }
        Event::Recv {
            service: "frame",
            bytes,
            ..
        } => format!(
            "recv() gave {bytes} bytes: part of a message or parts of two; the length headers split them"
        ),
        Event::Recv { bytes, .. } => format!(
            "recv() copied {bytes} bytes from the socket's receive buffer; it never waits for more"
        ),
        Event::Send { bytes, .. } => format!(
            "send() copied {bytes} bytes into the kernel's send buffer; TCP delivers them from there"
        ),
        Event::Traffic { suppressed, .. } => format!(
            "over the recv/send line rate: {suppressed} lines were only counted; this line sums the second"
        ),
        Event::Pause {
            why: PauseWhy::Backlog,
            ..
        } => "the client is not reading its replies, so the server stops reading it (backpressure)"
            .to_string(),
        Event::Pause {
            why: PauseWhy::Rate,
            ..
        } => "this user sends faster than --chat-rate, so the server stops reading it for a while"
            .to_string(),
        Event::Resume { .. } => {
            "the reason to wait is gone, so the server reads this connection again".to_string()
        }
        Event::Disconnect { reason, .. } => disconnect(*reason).to_string(),
        Event::Request { status, .. } => {
            format!("an HTTP request head arrived on this connection; the server answered {status}")
        }
        Event::Join { name, .. } => {
            format!("{name} chose a free name and joined: from now on its lines go to the room")
        }
        Event::Leave { name, .. } => {
            format!("{name} left the room; the others were told before the socket closed")
        }
        Event::Nick { old, new, .. } => {
            format!("{old} is now called {new}; the others were told")
        }
        Event::Auth { how, result, .. } => match (how, result) {
            (_, AuthResult::Locked) => {
                "too many wrong passwords from this address: refused without hashing".to_string()
            }
            (AuthHow::Token, _) => {
                "the token was checked by its SHA-256 on the loop's thread: a microsecond".to_string()
            }
            (AuthHow::Logout, _) => "this session's token ended; the user stays in the room".to_string(),
            _ => "Argon2id ran on the worker thread while the loop served everyone; a Waker brought the answer"
                .to_string(),
        },
        Event::Datagram {
            dir: Direction::In,
            ..
        } => "recvfrom() gave one whole datagram and its sender: no connection, no accept, no byte stream"
            .to_string(),
        Event::Datagram {
            dir: Direction::Out,
            ..
        } => "sendto() sent one datagram: if it is lost, nobody resends it; datagrams may arrive out of order"
            .to_string(),
        Event::UdpJoin { .. } => {
            "a /join datagram made this address a member: UDP has no connection, only a known address"
                .to_string()
        }
        Event::UdpLeave {
            reason: UdpLeaveReason::Idle,
            ..
        } => "UDP has no FIN: a member is known gone only when it stays silent too long".to_string(),
        Event::UdpLeave { name, .. } => {
            format!("{name} left; no connection to close: the server forgets the address")
        }
        Event::Stop { .. } => {
            "the server closed its listening sockets and connections and is exiting".to_string()
        }
        Event::Rotate { file } => {
            format!(
                "the log file reached its limit: its lines moved to {file}; a fresh file goes on"
            )
        }
        Event::Reopen { file } => {
            format!("SIGUSR1 asked to reopen the log: lines now go to the file named {file}")
        }
        Event::LogError { lost, .. } => format!(
            "the log could not be written for a while; {lost} lines were lost, serving went on"
        ),
        Event::AcceptError { .. } => {
            "accept() failed (often: out of descriptors); the server waits for one, not spinning"
                .to_string()
        }
        Event::AcceptResume { .. } => {
            "a descriptor is free again, so the server accepts new connections again".to_string()
        }
        Event::Limit {
            max_clients,
            nofile,
            ..
        } => format!(
            "each connection needs a descriptor and only {nofile} are allowed: --max-clients {max_clients}"
        ),
        Event::Console { .. } => {
            "a line typed on the server's stdin, watched like a socket, went to every chat user"
                .to_string()
        }
        Event::Warning { .. } => return None,
    })
}

/// Why a connection ended, in a sentence.
fn disconnect(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Eof => {
            "recv() returned 0: the peer sent FIN, so after what it was owed the server closed too"
        }
        DisconnectReason::Reset => {
            "the peer reset the connection (TCP RST): it vanished without a goodbye"
        }
        DisconnectReason::Exit => {
            "the client asked to leave, so the server closed after sending what it was owed"
        }
        DisconnectReason::Idle => {
            "no bytes moved for the idle timeout, so the server closed it to free its descriptor"
        }
        DisconnectReason::Backlog => {
            "the client stopped reading and its unsent data passed --max-backlog, so it was dropped"
        }
        DisconnectReason::Full => {
            "the server already holds --max-clients connections, so this one was told so and closed"
        }
        DisconnectReason::Shutdown => "the server is stopping, so it closed this connection",
        DisconnectReason::Kicked => "the teacher removed this user from the server's console",
        DisconnectReason::BadFrame => {
            "the frame header announced more than --max-frame bytes: closed before reading them"
        }
        DisconnectReason::Done => "the HTTP answer was sent and the exchange is over",
        DisconnectReason::Error => "the socket reported an error, so the server closed it",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{AuthHow, AuthResult, Direction, StopReason};

    /// One of each event with everyday values (IPv6 peers, five-digit
    /// ports, a 12-character name).
    fn samples() -> Vec<Event> {
        let peer = "[::1]:51234".parse().unwrap();
        let name = "alexandra_01".to_string();
        let mut v = vec![
            Event::Start {
                version: "0.1.0",
                pid: 4_194_304,
            },
            Event::Listen {
                service: "chat",
                addr: peer,
            },
            Event::BindRetry {
                service: "chat",
                addr: peer,
                error: "x".into(),
            },
            Event::Accept {
                service: "chat",
                conn: 123_456,
                slot: 10_000,
                peer,
            },
            Event::Recv {
                service: "echo",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Send {
                service: "echo",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Traffic {
                service: "echo",
                recv: 1,
                send: 1,
                bytes_in: 1,
                bytes_out: 1,
                conns: 1,
                suppressed: 1_000_000,
            },
            Event::Pause {
                service: "echo",
                conn: 1,
                why: PauseWhy::Backlog,
            },
            Event::Pause {
                service: "chat",
                conn: 1,
                why: PauseWhy::Rate,
            },
            Event::Resume {
                service: "echo",
                conn: 1,
            },
            Event::Request {
                service: "http",
                conn: 1,
                method: "GET".into(),
                path: "/".into(),
                status: 404,
                bytes: 1,
            },
            Event::Join {
                service: "chat",
                conn: 1,
                name: name.clone(),
            },
            Event::Leave {
                service: "chat",
                conn: 1,
                name: name.clone(),
            },
            Event::Nick {
                service: "chat",
                conn: 1,
                old: name.clone(),
                new: name.clone(),
            },
            Event::Auth {
                service: "chat",
                conn: 1,
                name: name.clone(),
                how: AuthHow::Register,
                result: AuthResult::Expired,
            },
            Event::Datagram {
                service: "udp-echo",
                peer,
                bytes: 65_507,
                dir: Direction::In,
            },
            Event::Datagram {
                service: "udp-chat",
                peer,
                bytes: 65_507,
                dir: Direction::Out,
            },
            Event::UdpJoin {
                peer,
                name: name.clone(),
            },
            Event::UdpLeave {
                peer,
                name: "abcdefghijklmnopqrstuvwxyz012345".into(),
                reason: UdpLeaveReason::Leave,
            },
            Event::UdpLeave {
                peer,
                name,
                reason: UdpLeaveReason::Idle,
            },
            Event::Listen {
                service: "udp-chat",
                addr: peer,
            },
            Event::Recv {
                service: "frame",
                conn: 1,
                bytes: 16 << 20,
            },
            Event::Stop {
                reason: StopReason::Signal,
                uptime: Duration::ZERO,
            },
            Event::Rotate {
                file: "echochat.log.1".into(),
            },
            Event::Reopen {
                file: "echochat.log".into(),
            },
            Event::LogError {
                error: "x".into(),
                lost: 1_000_000,
            },
            Event::AcceptError {
                service: "echo",
                error: "x".into(),
            },
            Event::AcceptResume { service: "echo" },
            Event::Limit {
                requested: 10_000,
                max_clients: 1_000_000,
                nofile: 1_048_576,
            },
            Event::Console { text: "hi".into() },
        ];
        for reason in [
            DisconnectReason::Eof,
            DisconnectReason::Reset,
            DisconnectReason::Exit,
            DisconnectReason::Idle,
            DisconnectReason::Backlog,
            DisconnectReason::Full,
            DisconnectReason::Shutdown,
            DisconnectReason::BadFrame,
            DisconnectReason::Error,
        ] {
            v.push(Event::Disconnect {
                service: "echo",
                conn: 1,
                peer,
                reason,
                bytes_in: 0,
                bytes_out: 0,
                duration: Duration::ZERO,
            });
        }
        v
    }

    #[test]
    fn every_sentence_fits_a_projector_line() {
        for event in samples() {
            let s = sentence(&event).unwrap_or_else(|| panic!("{} has no sentence", event.name()));
            assert!(
                s.chars().count() <= 100,
                "{} sentence is {} chars: {s}",
                event.name(),
                s.chars().count()
            );
            assert!(!s.contains('\n'), "{s}");
        }
    }
}
