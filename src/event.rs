//! Lifecycle events: every event of the contract is one variant of [`Event`],
//! defined once here with its name, level and logfmt fields; its `--explain`
//! sentence is in `event/explain.rs` (one place, so a translation table can
//! sit beside it).
//!
//! The reactor (and a service, through its effects) builds an `Event` and
//! hands it to [`record`]; nothing else writes lifecycle lines. So the format
//! and level of an event cannot drift between call sites, and tests can
//! compare events by value.
//!
//! `record` hands the line to the `log` facade; `logging/` is the backend
//! behind it (the rotating file, the console), and it depends on this module,
//! never the other way round. Before a `recv`, `send` or `datagram` reaches
//! the facade, the traffic cap in `event/traffic.rs` decides whether it is
//! written one by one or only counted (`--log-traffic-rate`). Read that next.

mod explain;
pub mod traffic;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::logfmt::Value;
pub use traffic::{traffic_deadline, traffic_tick};

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
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// What an account command did; the `how` key of `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHow {
    Register,
    Password,
    Token,
    Logout,
    Passwd,
}

impl AuthHow {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthHow::Register => "register",
            AuthHow::Password => "password",
            AuthHow::Token => "token",
            AuthHow::Logout => "logout",
            AuthHow::Passwd => "passwd",
        }
    }
}

/// How an account command ended; the `result` key of `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Ok,
    Wrong,
    Locked,
    Expired,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Ok => "ok",
            AuthResult::Wrong => "wrong",
            AuthResult::Locked => "locked",
            AuthResult::Expired => "expired",
        }
    }
}

/// Which way a datagram went; the `dir` key of `datagram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
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
    /// The teacher's `/kick` on the server's console.
    Kicked,
}

impl UdpLeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UdpLeaveReason::Leave => "leave",
            UdpLeaveReason::Idle => "idle",
            UdpLeaveReason::Shutdown => "shutdown",
            UdpLeaveReason::Kicked => "kicked",
        }
    }
}

/// One lifecycle event with its typed fields.
///
/// `service` is the service's name (`echo`, `chat`, `udp-echo`, ...);
/// `conn` is unique for the life of the process; `slot` is the slab key,
/// which is reused.
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
    /// One `recv()` that returned bytes (under the traffic cap).
    Recv {
        service: &'static str,
        conn: u64,
        bytes: usize,
    },
    /// One `send()` that the kernel took bytes from (under the traffic cap).
    Send {
        service: &'static str,
        conn: u64,
        bytes: usize,
    },
    /// One second of a service's recv/send (and datagram) events, written
    /// when some of them were over `--log-traffic-rate` (see `traffic.rs`).
    Traffic {
        service: &'static str,
        recv: u64,
        send: u64,
        bytes_in: u64,
        bytes_out: u64,
        conns: u64,
        suppressed: u64,
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
    /// One HTTP exchange of the status page; `bytes` is the body's length.
    Request {
        service: &'static str,
        conn: u64,
        method: String,
        path: String,
        status: u16,
        bytes: u64,
    },
    /// Chat: a user chose a name (or was welcomed back) and joined the room.
    Join {
        service: &'static str,
        conn: u64,
        name: String,
    },
    /// Chat: a user left the room.
    Leave {
        service: &'static str,
        conn: u64,
        name: String,
    },
    /// Chat: `/nick`.
    Nick {
        service: &'static str,
        conn: u64,
        old: String,
        new: String,
    },
    /// Chat accounts: a register, login, token, logout or password change.
    /// Never carries a password, a token or a hash.
    Auth {
        service: &'static str,
        conn: u64,
        name: String,
        how: AuthHow,
        result: AuthResult,
    },
    /// One UDP datagram in or out (under the traffic cap).
    Datagram {
        service: &'static str,
        peer: SocketAddr,
        bytes: usize,
        dir: Direction,
    },
    /// udp-chat: a peer joined the room with `/join NAME` (`join
    /// service=udp-chat peer=... name=...`: no connection, so no `conn`).
    UdpJoin {
        peer: SocketAddr,
        name: String,
    },
    /// udp-chat: a member left the room, and why.
    UdpLeave {
        peer: SocketAddr,
        name: String,
        reason: UdpLeaveReason,
    },
    Stop {
        reason: StopReason,
        uptime: Duration,
    },
    /// The log file rotated; `file` is where the old content went.
    Rotate {
        file: String,
    },
    /// `SIGUSR1`: the log file was reopened (the first line of that file).
    Reopen {
        file: String,
    },
    /// The log could not be written for a while (disk full, no
    /// descriptors, directory removed); written once it works again.
    LogError {
        error: String,
        lost: u64,
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
    /// A line typed on the server's console (sent to chat as `[server] ...`).
    Console {
        text: String,
    },
    /// Something went wrong that the server survives (names file, stdin...).
    Warning {
        what: &'static str,
        error: String,
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
            Event::Traffic { .. } => "traffic",
            Event::Pause { .. } => "pause",
            Event::Resume { .. } => "resume",
            Event::Disconnect { .. } => "disconnect",
            Event::Request { .. } => "request",
            Event::Join { .. } => "join",
            Event::Leave { .. } => "leave",
            Event::Nick { .. } => "nick",
            Event::Auth { .. } => "auth",
            Event::Datagram { .. } => "datagram",
            Event::UdpJoin { .. } => "join",
            Event::UdpLeave { .. } => "leave",
            Event::Stop { .. } => "stop",
            Event::Rotate { .. } => "rotate",
            Event::Reopen { .. } => "reopen",
            Event::LogError { .. } => "log-error",
            Event::AcceptError { .. } => "accept-error",
            Event::AcceptResume { .. } => "accept-resume",
            Event::Limit { .. } => "limit",
            Event::Console { .. } => "console",
            Event::Warning { .. } => "warning",
        }
    }

    pub fn level(&self) -> log::Level {
        match self {
            Event::Recv { .. }
            | Event::Send { .. }
            | Event::Traffic { .. }
            | Event::Request { .. }
            | Event::Datagram { .. } => log::Level::Debug,
            Event::BindRetry { .. }
            | Event::AcceptError { .. }
            | Event::LogError { .. }
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
    /// `--explain` (a class watching the console). See `event/explain.rs`.
    pub fn explain(&self) -> Option<String> {
        explain::sentence(self)
    }
}

/// Displays an event as `name key=value ...`, escaping every value that
/// could carry spaces, quotes or control bytes (see `logfmt.rs`).
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
            Event::Traffic {
                service,
                recv,
                send,
                bytes_in,
                bytes_out,
                conns,
                suppressed,
            } => write!(
                f,
                " service={service} recv={recv} send={send} bytes_in={bytes_in} bytes_out={bytes_out} conns={conns} suppressed={suppressed}"
            ),
            Event::Pause { service, conn, why } => {
                write!(f, " service={service} conn={conn} why={}", why.as_str())
            }
            Event::Resume { service, conn } => write!(f, " service={service} conn={conn}"),
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
            Event::Request {
                service,
                conn,
                method,
                path,
                status,
                bytes,
            } => write!(
                f,
                " service={service} conn={conn} method={} path={} status={status} bytes={bytes}",
                Value(method),
                Value(path)
            ),
            Event::Join {
                service,
                conn,
                name,
            }
            | Event::Leave {
                service,
                conn,
                name,
            } => write!(f, " service={service} conn={conn} name={}", Value(name)),
            Event::Nick {
                service,
                conn,
                old,
                new,
            } => write!(
                f,
                " service={service} conn={conn} old={} new={}",
                Value(old),
                Value(new)
            ),
            Event::Auth {
                service,
                conn,
                name,
                how,
                result,
            } => write!(
                f,
                " service={service} conn={conn} name={} how={} result={}",
                Value(name),
                how.as_str(),
                result.as_str()
            ),
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
            Event::Stop { reason, uptime } => {
                write!(f, " reason={} uptime={}", reason.as_str(), Seconds(*uptime))
            }
            Event::Rotate { file } | Event::Reopen { file } => write!(f, " file={}", Value(file)),
            Event::LogError { error, lost } => write!(f, " error={} lost={lost}", Value(error)),
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
            Event::Console { text } => write!(f, " text={}", Value(text)),
            Event::Warning { what, error } => {
                write!(f, " what={what} error={}", Value(error))
            }
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

/// Whether `--explain` is on (the log backend asks, for the events it
/// writes itself: `rotate`, `reopen`, `log-error`).
pub fn explaining() -> bool {
    EXPLAIN.load(Ordering::Relaxed)
}

/// Writes one lifecycle event: to the log file and the console, each at its
/// own level, and with `--explain` a plain sentence after it on the console.
/// This is the only door from the program into the log.
///
/// `recv`, `send` and `datagram` pass the traffic cap first: past
/// `--log-traffic-rate` a second they are only counted, and
/// [`traffic_tick`] writes the sums. `stop` first writes the sums still
/// pending, so the last second of traffic is not lost and `stop` stays the
/// last line.
pub fn record(event: &Event) {
    let admitted = match event {
        Event::Recv {
            service,
            conn,
            bytes,
        } => traffic::admit(service, *conn, traffic::Way::In, *bytes),
        Event::Send {
            service,
            conn,
            bytes,
        } => traffic::admit(service, *conn, traffic::Way::Out, *bytes),
        Event::Datagram {
            service,
            peer,
            bytes,
            dir,
        } => {
            let way = match dir {
                Direction::In => traffic::Way::In,
                Direction::Out => traffic::Way::Out,
            };
            traffic::admit(service, traffic::peer_key(peer), way, *bytes)
        }
        Event::Stop { .. } => {
            traffic::finish();
            true
        }
        _ => true,
    };
    if admitted {
        write(event);
    }
}

/// Hands an event to the `log` facade (no cap): the line, then with
/// `--explain` its sentence.
fn write(event: &Event) {
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

    fn peer() -> SocketAddr {
        "127.0.0.1:51234".parse().unwrap()
    }

    #[test]
    fn contract_examples() {
        let peer = peer();
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
    fn the_new_events_carry_the_contract_keys() {
        let cases = [
            (
                Event::Traffic {
                    service: "echo",
                    recv: 10,
                    send: 9,
                    bytes_in: 10240,
                    bytes_out: 9216,
                    conns: 3,
                    suppressed: 7,
                },
                "traffic service=echo recv=10 send=9 bytes_in=10240 bytes_out=9216 conns=3 suppressed=7",
                log::Level::Debug,
            ),
            (
                Event::Pause {
                    service: "echo",
                    conn: 4,
                    why: PauseWhy::Backlog,
                },
                "pause service=echo conn=4 why=backlog",
                log::Level::Info,
            ),
            (
                Event::Resume {
                    service: "chat",
                    conn: 4,
                },
                "resume service=chat conn=4",
                log::Level::Info,
            ),
            (
                Event::Request {
                    service: "http",
                    conn: 8,
                    method: "GET".into(),
                    path: "/api/conns?limit=5".into(),
                    status: 200,
                    bytes: 512,
                },
                "request service=http conn=8 method=GET path=\"/api/conns?limit=5\" status=200 bytes=512",
                log::Level::Debug,
            ),
            (
                Event::Auth {
                    service: "chat",
                    conn: 2,
                    name: "alice".into(),
                    how: AuthHow::Password,
                    result: AuthResult::Wrong,
                },
                "auth service=chat conn=2 name=alice how=password result=wrong",
                log::Level::Info,
            ),
            (
                Event::Datagram {
                    service: "udp-echo",
                    peer: peer(),
                    bytes: 12,
                    dir: Direction::Out,
                },
                "datagram service=udp-echo peer=127.0.0.1:51234 bytes=12 dir=out",
                log::Level::Debug,
            ),
            (
                Event::Reopen {
                    file: "echochat.log".into(),
                },
                "reopen file=echochat.log",
                log::Level::Info,
            ),
            (
                Event::LogError {
                    error: "No space left on device (os error 28)".into(),
                    lost: 12,
                },
                "log-error error=\"No space left on device (os error 28)\" lost=12",
                log::Level::Warn,
            ),
            (
                Event::Join {
                    service: "chat",
                    conn: 5,
                    name: "bob".into(),
                },
                "join service=chat conn=5 name=bob",
                log::Level::Info,
            ),
        ];
        for (event, want, level) in cases {
            assert_eq!(line(&event), want);
            assert_eq!(event.level(), level, "{want}");
            assert!(
                event.explain().is_some(),
                "{want} has no --explain sentence"
            );
        }
    }

    #[test]
    fn udp_chat_join_and_leave_lines() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let j = Event::UdpJoin {
            peer,
            name: "bob".into(),
        };
        assert_eq!(j.level(), log::Level::Info);
        assert_eq!(
            j.logfmt().to_string(),
            "join service=udp-chat peer=127.0.0.1:5000 name=bob"
        );
        let l = Event::UdpLeave {
            peer,
            name: "bob".into(),
            reason: UdpLeaveReason::Idle,
        };
        assert_eq!(
            l.logfmt().to_string(),
            "leave service=udp-chat peer=127.0.0.1:5000 name=bob reason=idle"
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
    fn hostile_names_cannot_forge_keys_or_lines() {
        let e = Event::Nick {
            service: "chat",
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
