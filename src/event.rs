//! Lifecycle events: every event of the contract is one variant of [`Event`],
//! defined once here with its name, level, logfmt fields and `--explain`
//! sentence.
//!
//! The reactor (and a service, through its effects) builds an `Event` and
//! hands it to [`record`]; nothing else writes lifecycle lines. So the format
//! and level of an event cannot drift between call sites, and tests can
//! compare events by value. `logging/` decides where the line goes (the
//! rotating file, the console) and stamps it with the time and level.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::logging::logfmt::Value;

/// The `log` target of lifecycle lines. The file and console dispatchers
/// accept it; `--explain` sentences use [`EXPLAIN_TARGET`] instead, which
/// only the console shows.
pub const EVENT_TARGET: &str = "echochat::event";
/// The `log` target of the plain-language sentence after an event.
pub const EXPLAIN_TARGET: &str = "echochat::explain";

/// Why a connection ended; the `reason` key of `disconnect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The peer sent FIN (a 0-byte read) and everything owed was sent.
    Eof,
    /// The peer reset the connection (RST, `ECONNRESET`/`EPIPE`).
    Reset,
    /// The client asked: the exit word, `exit` or `/quit`.
    Exit,
    /// No traffic for `--idle-timeout`.
    Idle,
    /// The client did not read and its unsent output passed `--max-backlog`.
    Backlog,
    /// Refused: the server already holds `--max-clients` connections.
    Full,
    /// The server is stopping.
    Shutdown,
    /// The teacher removed the user (`/kick` on the console).
    Kicked,
    /// A framed-echo length over `--max-frame`.
    BadFrame,
    /// The server finished an HTTP exchange (no keep-alive).
    Done,
    /// Any other socket error.
    Error,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Eof => "eof",
            DisconnectReason::Reset => "reset",
            DisconnectReason::Exit => "exit",
            DisconnectReason::Idle => "idle",
            DisconnectReason::Backlog => "backlog",
            DisconnectReason::Full => "full",
            DisconnectReason::Shutdown => "shutdown",
            DisconnectReason::Kicked => "kicked",
            DisconnectReason::BadFrame => "bad-frame",
            DisconnectReason::Done => "done",
            DisconnectReason::Error => "error",
        }
    }

    /// Whether output still queued is worth waiting for before closing.
    /// A client that asked to leave, or sent FIN, still gets every byte it
    /// is owed; one dropped for not reading (or reset) does not.
    pub fn flushes_output(self) -> bool {
        matches!(
            self,
            DisconnectReason::Eof
                | DisconnectReason::Exit
                | DisconnectReason::Full
                | DisconnectReason::Idle
                | DisconnectReason::Kicked
                | DisconnectReason::Done
                | DisconnectReason::Shutdown
                | DisconnectReason::BadFrame
        )
    }

    fn explain(self) -> &'static str {
        match self {
            DisconnectReason::Eof => {
                "recv() returned 0 bytes: the peer sent FIN (closed its side), so after sending what it was owed the server closed its socket too"
            }
            DisconnectReason::Reset => {
                "the peer reset the connection (TCP RST): it vanished without a goodbye, so the server dropped its socket"
            }
            DisconnectReason::Exit => {
                "the client asked to leave, so the server closed the socket after sending what it was owed"
            }
            DisconnectReason::Idle => {
                "no bytes moved in either direction for the idle timeout, so the server closed the socket to free its descriptor"
            }
            DisconnectReason::Backlog => {
                "the client stopped reading and its unsent data passed the backlog limit, so the server dropped it instead of buffering without end"
            }
            DisconnectReason::Full => {
                "the server already holds --max-clients connections, so this one was told so and closed"
            }
            DisconnectReason::Shutdown => "the server is stopping, so it closed this connection",
            DisconnectReason::Kicked => "the teacher removed this user from the console",
            DisconnectReason::BadFrame => {
                "the frame header announced more than --max-frame bytes, so the server closed before reading them"
            }
            DisconnectReason::Done => "the HTTP answer was sent and the exchange is over",
            DisconnectReason::Error => "the socket reported an error, so the server closed it",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the server stopped reading a connection; the `why` key of `pause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseWhy {
    /// Its unsent output passed `--max-backlog` (echo backpressure).
    Backlog,
    /// A chat user over `--chat-rate`/`--chat-burst`.
    Rate,
}

impl PauseWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseWhy::Backlog => "backlog",
            PauseWhy::Rate => "rate",
        }
    }
}

/// Why the server stopped; the `reason` key of `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Console,
    Error,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Signal => "signal",
            StopReason::Console => "console",
            StopReason::Error => "error",
        }
    }
}

/// Which way a datagram went; the `dir` key of `datagram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }
}

/// Why a UDP chat member left; the `reason` key of its `leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpLeaveReason {
    /// It sent `/leave` (or `/quit`, `exit`).
    Leave,
    /// Silent for `--udp-member-timeout`.
    Idle,
    /// The server is stopping.
    Shutdown,
}

impl UdpLeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UdpLeaveReason::Leave => "leave",
            UdpLeaveReason::Idle => "idle",
            UdpLeaveReason::Shutdown => "shutdown",
        }
    }
}

/// One lifecycle event with its typed fields.
///
/// `service` is the service's name (`echo`, `chat`); `conn` is unique for
/// the life of the process; `slot` is the slab key, which is reused.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        version: &'static str,
        pid: u32,
    },
    Listen {
        service: &'static str,
        addr: SocketAddr,
    },
    BindRetry {
        service: &'static str,
        addr: SocketAddr,
        error: String,
    },
    Accept {
        service: &'static str,
        conn: u64,
        slot: usize,
        peer: SocketAddr,
    },
    Recv {
        service: &'static str,
        conn: u64,
        bytes: usize,
    },
    Send {
        service: &'static str,
        conn: u64,
        bytes: usize,
    },
    /// The server stopped reading a connection.
    Pause {
        service: &'static str,
        conn: u64,
        why: PauseWhy,
    },
    /// The server reads the connection again.
    Resume {
        service: &'static str,
        conn: u64,
    },
    Disconnect {
        service: &'static str,
        conn: u64,
        peer: SocketAddr,
        reason: DisconnectReason,
        bytes_in: u64,
        bytes_out: u64,
        duration: Duration,
    },
    Stop {
        reason: StopReason,
        uptime: Duration,
    },
    Rotate {
        file: String,
    },
    AcceptError {
        service: &'static str,
        error: String,
    },
    /// Accepting works again after an `accept-error` episode.
    AcceptResume {
        service: &'static str,
    },
    /// `--max-clients` was lowered to fit the descriptor limit.
    Limit {
        requested: usize,
        max_clients: usize,
        nofile: u64,
    },
    /// Chat: a user chose a name (or was welcomed back) and joined the room.
    Join {
        conn: u64,
        name: String,
    },
    /// Chat: `/nick`.
    Nick {
        conn: u64,
        old: String,
        new: String,
    },
    /// Chat: a user left the room.
    Leave {
        conn: u64,
        name: String,
    },
    /// A line typed on the server's console (sent to chat as `[server] ...`).
    Console {
        text: String,
    },
    /// Something went wrong that the server survives (names file, stdin...).
    Warning {
        what: &'static str,
        error: String,
    },
    /// One datagram received or sent by a UDP twin (`udp-echo`, `udp-chat`).
    Datagram {
        service: &'static str,
        peer: SocketAddr,
        bytes: usize,
        dir: Dir,
    },
    /// udp-chat: a peer joined the room with `/join NAME`.
    UdpJoin {
        peer: SocketAddr,
        name: String,
    },
    /// udp-chat: a member left the room.
    UdpLeave {
        peer: SocketAddr,
        name: String,
        reason: UdpLeaveReason,
    },
}

impl Event {
    /// The event's name, the first word after the level.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start { .. } => "start",
            Event::Listen { .. } => "listen",
            Event::BindRetry { .. } => "bind-retry",
            Event::Accept { .. } => "accept",
            Event::Recv { .. } => "recv",
            Event::Send { .. } => "send",
            Event::Pause { .. } => "pause",
            Event::Resume { .. } => "resume",
            Event::Disconnect { .. } => "disconnect",
            Event::Stop { .. } => "stop",
            Event::Rotate { .. } => "rotate",
            Event::AcceptError { .. } => "accept-error",
            Event::AcceptResume { .. } => "accept-resume",
            Event::Limit { .. } => "limit",
            Event::Join { .. } => "join",
            Event::Nick { .. } => "nick",
            Event::Leave { .. } => "leave",
            Event::Console { .. } => "console",
            Event::Warning { .. } => "warning",
            Event::Datagram { .. } => "datagram",
            Event::UdpJoin { .. } => "join",
            Event::UdpLeave { .. } => "leave",
        }
    }

    pub fn level(&self) -> log::Level {
        match self {
            Event::Recv { .. } | Event::Send { .. } | Event::Datagram { .. } => log::Level::Debug,
            Event::BindRetry { .. }
            | Event::AcceptError { .. }
            | Event::Limit { .. }
            | Event::Warning { .. } => log::Level::Warn,
            _ => log::Level::Info,
        }
    }

    /// `name key=value ...`: the line without its timestamp and level.
    pub fn logfmt(&self) -> Logfmt<'_> {
        Logfmt(self)
    }

    /// One plain sentence about what happened at the socket level, for
    /// `--explain` (a class watching the console).
    pub fn explain(&self) -> Option<String> {
        Some(match self {
            Event::Start { .. } => {
                "the process started; no socket is open yet".to_string()
            }
            Event::Listen { service, .. } if service.starts_with("udp-") => {
                "socket() and bind() on UDP: no listen(), no accept(), no connections; datagrams just arrive".to_string()
            }
            Event::Listen { service, addr } => format!(
                "socket(), bind() and listen() succeeded: the kernel now completes TCP handshakes on {addr} and queues them for the {service} service to accept()"
            ),
            Event::BindRetry { addr, .. } => format!(
                "bind() to {addr} failed because another socket already owns that port (or it is not allowed), so the next port of the range is tried"
            ),
            Event::Accept { peer, slot, .. } => format!(
                "accept() took a finished handshake from the listen queue and returned a new socket for {peer}; its state lives in slab slot {slot}"
            ),
            Event::Recv { service: "frame", bytes, .. } => format!(
                "recv() gave {bytes} bytes: part of a message or parts of two; the length headers split them"
            ),
            Event::Pause { why: PauseWhy::Backlog, .. } => {
                "its replies are piling up unread, so the server stops reading it; TCP slows the sender".to_string()
            }
            Event::Pause { why: PauseWhy::Rate, .. } => {
                "this user sends faster than --chat-rate, so the server stops reading it for a moment".to_string()
            }
            Event::Resume { .. } => {
                "the reason to wait is gone, so the server reads this socket again".to_string()
            }
            Event::Recv { bytes, .. } => format!(
                "recv() copied {bytes} bytes that were waiting in the socket's receive buffer; it never waits, so one slow client cannot stall the others"
            ),
            Event::Send { bytes, .. } => format!(
                "send() copied {bytes} bytes into the kernel's send buffer; TCP delivers them from there while the server moves on"
            ),
            Event::Disconnect { reason, .. } => reason.explain().to_string(),
            Event::Stop { .. } => {
                "the server closed its listening sockets and connections and is exiting".to_string()
            }
            Event::Rotate { file } => format!(
                "the log file reached its limit: its lines moved to {file} and a fresh file began under the same name"
            ),
            Event::AcceptError { .. } => {
                "accept() failed, usually because the process ran out of file descriptors; the server stops accepting until one frees up instead of spinning".to_string()
            }
            Event::AcceptResume { .. } => {
                "a descriptor is free again, so the server accepts new connections again".to_string()
            }
            Event::Limit { max_clients, nofile, .. } => format!(
                "every connection needs a file descriptor and this process may open only {nofile}, so --max-clients was lowered to {max_clients}"
            ),
            Event::Join { name, .. } => format!(
                "the connection sent a free name ({name}); from now on its lines are relayed to the room"
            ),
            Event::Leave { name, .. } => format!(
                "{name} left the room; the others were told before the socket closed"
            ),
            Event::Console { .. } => {
                "a line typed on the server's stdin, which the loop watches like one more socket, went to every chat user".to_string()
            }
            Event::Datagram { dir: Dir::In, .. } => {
                "recvfrom() gave one whole datagram and its sender: no connection, no accept, no byte stream".to_string()
            }
            Event::Datagram { dir: Dir::Out, .. } => {
                "sendto() sent one datagram: if it is lost, nobody resends it; datagrams may arrive out of order".to_string()
            }
            Event::UdpJoin { .. } => {
                "a /join datagram made this address a member: UDP has no connection, only a known address".to_string()
            }
            Event::UdpLeave { reason: UdpLeaveReason::Idle, .. } => {
                "UDP has no FIN: a member is known gone only when it stays silent too long".to_string()
            }
            _ => return None,
        })
    }
}

/// Displays an event as `name key=value ...`, escaping every value that
/// could carry spaces, quotes or control bytes (see `logging/logfmt.rs`).
pub struct Logfmt<'a>(&'a Event);

impl fmt::Display for Logfmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())?;
        match self.0 {
            Event::Start { version, pid } => write!(f, " version={version} pid={pid}"),
            Event::Listen { service, addr } => write!(f, " service={service} addr={addr}"),
            Event::BindRetry {
                service,
                addr,
                error,
            } => write!(f, " service={service} addr={addr} error={}", Value(error)),
            Event::Accept {
                service,
                conn,
                slot,
                peer,
            } => write!(f, " service={service} conn={conn} slot={slot} peer={peer}"),
            Event::Pause { service, conn, why } => {
                write!(f, " service={service} conn={conn} why={}", why.as_str())
            }
            Event::Resume { service, conn } => write!(f, " service={service} conn={conn}"),
            Event::Recv {
                service,
                conn,
                bytes,
            }
            | Event::Send {
                service,
                conn,
                bytes,
            } => {
                // The per-message lines at `debug`: written piece by piece,
                // numbers through `itoa`, to keep the hot path cheap.
                let mut num = itoa::Buffer::new();
                f.write_str(" service=")?;
                f.write_str(service)?;
                f.write_str(" conn=")?;
                f.write_str(num.format(*conn))?;
                f.write_str(" bytes=")?;
                f.write_str(num.format(*bytes))
            }
            Event::Disconnect {
                service,
                conn,
                peer,
                reason,
                bytes_in,
                bytes_out,
                duration,
            } => write!(
                f,
                " service={service} conn={conn} peer={peer} reason={reason} bytes_in={bytes_in} bytes_out={bytes_out} duration={}",
                Seconds(*duration)
            ),
            Event::Stop { reason, uptime } => {
                write!(f, " reason={} uptime={}", reason.as_str(), Seconds(*uptime))
            }
            Event::Rotate { file } => write!(f, " file={}", Value(file)),
            Event::AcceptError { service, error } => {
                write!(f, " service={service} error={}", Value(error))
            }
            Event::AcceptResume { service } => write!(f, " service={service}"),
            Event::Limit {
                requested,
                max_clients,
                nofile,
            } => write!(
                f,
                " requested={requested} max_clients={max_clients} nofile={nofile}"
            ),
            Event::Join { conn, name } | Event::Leave { conn, name } => {
                write!(f, " service=chat conn={conn} name={}", Value(name))
            }
            Event::Nick { conn, old, new } => write!(
                f,
                " service=chat conn={conn} old={} new={}",
                Value(old),
                Value(new)
            ),
            Event::Console { text } => write!(f, " text={}", Value(text)),
            Event::Warning { what, error } => {
                write!(f, " what={what} error={}", Value(error))
            }
            Event::Datagram {
                service,
                peer,
                bytes,
                dir,
            } => write!(
                f,
                " service={service} peer={peer} bytes={bytes} dir={}",
                dir.as_str()
            ),
            Event::UdpJoin { peer, name } => {
                write!(f, " service=udp-chat peer={peer} name={}", Value(name))
            }
            Event::UdpLeave { peer, name, reason } => write!(
                f,
                " service=udp-chat peer={peer} name={} reason={}",
                Value(name),
                reason.as_str()
            ),
        }
    }
}

/// A duration as seconds with milliseconds (`12.345s`): one token, no
/// spaces, easy to sort and sum.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}

/// Whether `--explain` is on. Checked before asking `log` whether an
/// explain line is wanted, because that question walks fern's dispatch
/// chains — once per event, including every recv and send.
static EXPLAIN: AtomicBool = AtomicBool::new(false);

/// Turns the `--explain` sentences on or off (set once by `logging::init`).
pub fn set_explain(on: bool) {
    EXPLAIN.store(on, Ordering::Relaxed);
}

/// Writes one lifecycle event: to the log file and the console, each at its
/// own level, and with `--explain` a plain sentence after it on the console.
/// This is the only place lifecycle lines are produced.
pub fn record(event: &Event) {
    let level = event.level();
    // `log!` itself skips a level no output wants; no separate check.
    log::log!(target: EVENT_TARGET, level, "{}", event.logfmt());
    if EXPLAIN.load(Ordering::Relaxed)
        && log::log_enabled!(target: EXPLAIN_TARGET, level)
        && let Some(sentence) = event.explain()
    {
        log::log!(target: EXPLAIN_TARGET, level, "{sentence}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(e: &Event) -> String {
        e.logfmt().to_string()
    }

    #[test]
    fn contract_examples() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().unwrap();
        assert_eq!(
            line(&Event::Accept {
                service: "echo",
                conn: 17,
                slot: 3,
                peer
            }),
            "accept service=echo conn=17 slot=3 peer=127.0.0.1:51234"
        );
        assert_eq!(
            line(&Event::Recv {
                service: "echo",
                conn: 17,
                bytes: 1024
            }),
            "recv service=echo conn=17 bytes=1024"
        );
        assert_eq!(
            line(&Event::Disconnect {
                service: "echo",
                conn: 17,
                peer,
                reason: DisconnectReason::Eof,
                bytes_in: 5,
                bytes_out: 5,
                duration: Duration::from_millis(1_234),
            }),
            "disconnect service=echo conn=17 peer=127.0.0.1:51234 reason=eof bytes_in=5 bytes_out=5 duration=1.234s"
        );
        assert_eq!(
            line(&Event::Stop {
                reason: StopReason::Signal,
                uptime: Duration::from_millis(61_005)
            }),
            "stop reason=signal uptime=61.005s"
        );
    }

    #[test]
    fn levels_follow_the_contract() {
        let recv = Event::Recv {
            service: "echo",
            conn: 1,
            bytes: 1,
        };
        assert_eq!(recv.level(), log::Level::Debug);
        let retry = Event::BindRetry {
            service: "echo",
            addr: "127.0.0.1:1".parse().unwrap(),
            error: "x".into(),
        };
        assert_eq!(retry.level(), log::Level::Warn);
        assert_eq!(Event::Rotate { file: "a".into() }.level(), log::Level::Info);
    }

    #[test]
    fn datagram_and_udp_chat_lines() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let d = Event::Datagram {
            service: "udp-echo",
            peer,
            bytes: 0,
            dir: Dir::Out,
        };
        assert_eq!(d.level(), log::Level::Debug);
        assert_eq!(
            line(&d),
            "datagram service=udp-echo peer=127.0.0.1:5000 bytes=0 dir=out"
        );
        let j = Event::UdpJoin {
            peer,
            name: "bob".into(),
        };
        assert_eq!(
            line(&j),
            "join service=udp-chat peer=127.0.0.1:5000 name=bob"
        );
        let l = Event::UdpLeave {
            peer,
            name: "bob".into(),
            reason: UdpLeaveReason::Idle,
        };
        assert_eq!(
            line(&l),
            "leave service=udp-chat peer=127.0.0.1:5000 name=bob reason=idle"
        );
        assert_eq!(DisconnectReason::BadFrame.as_str(), "bad-frame");
    }

    /// The sentences about datagrams and frames say what differs from TCP
    /// in at most 100 characters.
    #[test]
    fn udp_and_frame_explanations_are_short() {
        let peer: SocketAddr = "[ffff::1]:65535".parse().unwrap();
        let events = [
            Event::Datagram {
                service: "udp-chat",
                peer,
                bytes: 65_507,
                dir: Dir::In,
            },
            Event::Datagram {
                service: "udp-chat",
                peer,
                bytes: 65_507,
                dir: Dir::Out,
            },
            Event::UdpJoin {
                peer,
                name: "abcdefghijklmnopqrstuvwxyz012345".into(),
            },
            Event::UdpLeave {
                peer,
                name: "x".into(),
                reason: UdpLeaveReason::Idle,
            },
            Event::Listen {
                service: "udp-echo",
                addr: peer,
            },
            Event::Recv {
                service: "frame",
                conn: 1,
                bytes: 16 << 20,
            },
        ];
        for e in &events {
            let s = e.explain().unwrap();
            assert!(s.chars().count() <= 100, "{} chars: {s}", s.chars().count());
        }
        let s = DisconnectReason::BadFrame.explain();
        assert!(s.chars().count() <= 100, "{s}");
    }

    #[test]
    fn hostile_names_cannot_forge_keys_or_lines() {
        let e = Event::Nick {
            conn: 3,
            old: "a".into(),
            new: "x reason=exit\n2026 INFO stop".into(),
        };
        let l = line(&e);
        assert!(!l.contains('\n'));
        assert_eq!(
            l,
            "nick service=chat conn=3 old=a new=\"x reason=exit\\n2026 INFO stop\""
        );
    }
}
