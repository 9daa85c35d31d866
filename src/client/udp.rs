//! The clients over UDP: `echochat echo --udp` and `echochat chat --udp`.
//!
//! What the class should notice, and what these messages say on stderr:
//! there is no handshake (`connect()` on a UDP socket only records the
//! server's address, so `send` needs none and replies from anyone else are
//! filtered out), each line goes out as **one datagram** and comes back as
//! one (no stream to split or join), and nothing is resent: a datagram that
//! is lost is lost, so the client waits for a reply only so long.
//!
//! One thing a connected UDP socket does report: if the server's host
//! answers "nothing listens on that port" (an ICMP port unreachable), the
//! next `recv` fails with `ECONNREFUSED`, and the client says so.
//!
//! `echo --udp` is blocking and lock-step (send a line, wait up to
//! [`REPLY_WAIT`] for its echo): the simplest correct program. `chat --udp`
//! must print room lines while the user types, so it runs a small event
//! loop over stdin and the socket, like `session.rs` does for TCP.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::messages::{Msg, Tell};
use super::session::printable;
use super::stdin::read_bounded_line;
use super::{Error, Lesson, Target, describe};
use crate::sys::{self, StdinMode};

/// How long `echo --udp` waits for each reply before calling it lost.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);
/// How long `chat --udp` waits for the answer to `/join` or `/leave`.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// A member silent this long sends an empty datagram: the server drops
/// members it has not heard from for `--udp-member-timeout` (5 minutes by
/// default), since no connection tells it they are still there.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// The largest UDP payload over IPv4; a longer line cannot be one datagram.
const MAX_DATAGRAM: usize = 65_507;

/// What to check when nothing comes back over UDP.
const UDP_HINT: &str = "is 'echochat serve' running there without --no-udp? (UDP reports no error when a datagram is lost)";

const SOCKET: Token = Token(0);
const STDIN: Token = Token(1);

/// Binds a UDP socket of the target's family and `connect`s it to the
/// first address the target resolves to.
fn open(target: &Target, tell: Tell) -> Result<(std::net::UdpSocket, SocketAddr), Error> {
    let addr = target.resolve()?[0];
    let any: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io_err = |what| move |err| Error::Io { what, err };
    let socket = std::net::UdpSocket::bind(any).map_err(io_err("opening a UDP socket"))?;
    socket.connect(addr).map_err(|err| Error::Connect {
        target: target.label(),
        why: describe(&err),
        hint: "check the host and port",
    })?;
    let local = socket
        .local_addr()
        .map_err(io_err("reading our own address"))?;
    tell.say(Msg::UdpOpened { local, peer: addr });
    Ok((socket, addr))
}

/// The error for an ICMP "port unreachable" reported by `recv`.
fn refused(target: &Target) -> Error {
    Error::Connect {
        target: target.label(),
        why: "the host says nothing listens on that UDP port (ICMP port unreachable)".into(),
        hint: "is 'echochat serve' running there, without --no-udp?",
    }
}

/// Runs `echochat echo --udp`.
pub(super) fn run_echo(target: &Target, interactive: bool, lesson: Lesson) -> Result<(), Error> {
    let tell = lesson.tell;
    let (socket, peer) = open(target, tell)?;
    if interactive {
        tell.say(Msg::UdpHintEcho);
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let (mut sent, mut replies) = (0u64, 0u64);
    let mut buf = vec![0; MAX_DATAGRAM + 1];
    loop {
        let too_long =
            read_bounded_line(&mut stdin, &mut line, MAX_DATAGRAM).map_err(|err| Error::Io {
                what: "reading stdin",
                err,
            })?;
        let Some(too_long) = too_long else {
            break; // end of input
        };
        if too_long {
            tell.say(Msg::DatagramTooLong { max: MAX_DATAGRAM });
            continue;
        }
        if line == b"exit" {
            tell.say(Msg::UdpExit);
            break;
        }
        send(&socket, &line, "sending the datagram")?;
        sent += 1;
        tell.say(Msg::UdpSent {
            n: line.len() as u64,
        });
        if wait_echo(&socket, &line, &mut buf, target, lesson)? {
            replies += 1;
        } else {
            tell.say(Msg::UdpNoReply {
                secs: REPLY_WAIT.as_secs(),
            });
        }
    }
    tell.say(Msg::UdpDone { sent, replies });
    if sent > 0 && replies == 0 {
        return Err(Error::NoReply {
            peer,
            what: "to any datagram",
            hint: UDP_HINT,
        });
    }
    Ok(())
}

/// Waits up to [`REPLY_WAIT`] for the echo of `line`, printing it. Other
/// datagrams (a late echo of an earlier line) are reported and skipped.
/// A slow reader (`--read-delay`) sleeps before each `recv`: lock-step,
/// there is nothing else to do meanwhile, and over UDP nothing slows the
/// server down — what does not fit the socket's buffer is dropped.
fn wait_echo(
    socket: &std::net::UdpSocket,
    line: &[u8],
    buf: &mut [u8],
    target: &Target,
    lesson: Lesson,
) -> Result<bool, Error> {
    let tell = lesson.tell;
    let deadline = Instant::now() + REPLY_WAIT + lesson.read_delay.unwrap_or_default();
    loop {
        if let Some(delay) = lesson.read_delay {
            std::thread::sleep(delay);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let _ = socket.set_read_timeout(Some(left));
        match socket.recv(buf) {
            Ok(n) if &buf[..n] == line => {
                tell.say(Msg::UdpReceived { n: n as u64 });
                let mut out = io::stdout().lock();
                out.write_all(&buf[..n])
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
                    .map_err(|err| Error::Io {
                        what: "writing to stdout",
                        err,
                    })?;
                return Ok(true);
            }
            Ok(n) => tell.say(Msg::UdpIgnored { n: n as u64 }),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused(target)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(Error::Io {
                    what: "receiving from the server",
                    err,
                });
            }
        }
    }
}

fn send(socket: &std::net::UdpSocket, bytes: &[u8], what: &'static str) -> Result<(), Error> {
    loop {
        match socket.send(bytes) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Error::Io { what, err }),
        }
    }
}

/// Where `chat --udp` stands with the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The next line typed is a name.
    Naming,
    /// `/join NAME` went out; waiting for `* hello` or `! reason`.
    Joining { until: Instant },
    /// In the room: lines go out as they are.
    Joined,
    /// `/leave` went out; waiting for `* bye`.
    Leaving { until: Instant },
}

/// Runs `echochat chat --udp`.
pub(super) fn run_chat(target: &Target, interactive: bool, lesson: Lesson) -> Result<(), Error> {
    let (socket, peer) = open(target, lesson.tell)?;
    socket.set_nonblocking(true).map_err(|err| Error::Io {
        what: "making the socket non-blocking",
        err,
    })?;
    let mut chat = Chat {
        target,
        peer,
        interactive,
        sock: UdpSocket::from_std(socket),
        poll: Poll::new().map_err(|err| Error::Io {
            what: "creating the event loop (epoll)",
            err,
        })?,
        stdin_mode: StdinMode::Closed,
        stage: Stage::Naming,
        typed: Vec::new(),
        lines: VecDeque::new(),
        discarding: false,
        input_ended: false,
        last_sent: Instant::now(),
        next_read: Instant::now(),
        more_to_read: false,
        lesson,
        buf: vec![0; MAX_DATAGRAM + 1],
    };
    chat.poll
        .registry()
        .register(&mut chat.sock, SOCKET, Interest::READABLE)
        .map_err(|err| Error::Io {
            what: "registering the socket",
            err,
        })?;
    chat.stdin_mode = sys::register_stdin(chat.poll.registry(), STDIN);
    if chat.stdin_mode == StdinMode::Closed {
        chat.input_ended = true;
    }
    if interactive {
        lesson.tell.say(Msg::UdpChatHint);
        chat.ask_name();
    }
    chat.run()
}

struct Chat<'a> {
    target: &'a Target,
    peer: SocketAddr,
    interactive: bool,
    sock: UdpSocket,
    poll: Poll,
    stdin_mode: StdinMode,
    stage: Stage,
    /// Stdin bytes not yet split into lines (no `\n` seen yet).
    typed: Vec<u8>,
    /// Whole lines typed and not sent yet (held while an answer is awaited).
    lines: VecDeque<Vec<u8>>,
    /// The line being typed passed [`MAX_DATAGRAM`]: drop it to its end.
    discarding: bool,
    input_ended: bool,
    last_sent: Instant,
    /// `--read-delay`: the socket is not read before this...
    next_read: Instant,
    /// ... and a datagram may be waiting (epoll will not say it again).
    more_to_read: bool,
    lesson: Lesson,
    buf: Vec<u8>,
}

impl Chat<'_> {
    fn run(mut self) -> Result<(), Error> {
        let mut events = Events::with_capacity(8);
        loop {
            let timeout = self.poll_timeout();
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Io {
                    what: "waiting for events (epoll)",
                    err,
                });
            }
            if self.read_socket()? {
                return Ok(());
            }
            self.read_stdin()?;
            if self.act()? {
                return Ok(());
            }
        }
    }

    /// Sleep until input, or the deadline of an awaited answer, or the
    /// next keepalive; not at all for a stdin that is always ready.
    fn poll_timeout(&self) -> Option<Duration> {
        if self.wants_stdin() && self.stdin_mode == StdinMode::AlwaysReady {
            return Some(Duration::ZERO);
        }
        let mut at = match self.stage {
            Stage::Joining { until } | Stage::Leaving { until } => Some(until),
            Stage::Joined => Some(self.last_sent + KEEPALIVE),
            Stage::Naming => None,
        };
        if self.more_to_read {
            at = Some(at.map_or(self.next_read, |a| a.min(self.next_read)));
        }
        at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Stdin is read only while its lines can be used: not while an answer
    /// is awaited (the next line's meaning depends on it), and with a
    /// bounded backlog of lines.
    fn wants_stdin(&self) -> bool {
        !self.input_ended
            && self.lines.len() < 64
            && matches!(self.stage, Stage::Naming | Stage::Joined)
    }

    /// Prints every datagram that came; returns true when the session is
    /// over (the goodbye came, or the server dropped us).
    fn read_socket(&mut self) -> Result<bool, Error> {
        let mut budget = usize::MAX;
        if let Some(delay) = self.lesson.read_delay {
            // A slow reader: one datagram per delay. The rest wait in the
            // socket's receive buffer, and what does not fit is dropped.
            let now = Instant::now();
            self.more_to_read = true;
            if now < self.next_read {
                return Ok(false);
            }
            self.next_read = now + delay;
            budget = 1;
        }
        for _ in 0..budget {
            match self.sock.recv(&mut self.buf) {
                Ok(n) => {
                    let data = self.buf[..n].to_vec();
                    print_datagram(&data)?;
                    if self.on_datagram(&data) {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.more_to_read = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(refused(self.target));
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "receiving from the server",
                        err,
                    });
                }
            }
        }
        Ok(false)
    }

    /// What a datagram from the server means for where we stand.
    fn on_datagram(&mut self, data: &[u8]) -> bool {
        let starts = |p: &[u8]| data.starts_with(p);
        let tell = self.lesson.tell;
        match self.stage {
            Stage::Joining { .. } if starts(b"* hello, ") => {
                self.stage = Stage::Joined;
                tell.say(Msg::UdpJoined);
            }
            Stage::Joining { .. } if starts(b"! ") => {
                self.stage = Stage::Naming;
                self.ask_name();
            }
            Stage::Leaving { .. } if starts(b"* bye, ") => {
                tell.say(Msg::UdpLeft);
                return true;
            }
            Stage::Joined if starts(b"! send /join NAME first") => {
                tell.say(Msg::UdpForgotten);
                self.stage = Stage::Naming;
                self.ask_name();
            }
            _ if starts(b"* disconnected: ") || starts(b"* server shutting down") => {
                tell.say(Msg::UdpDropped);
                return true;
            }
            _ => {}
        }
        false
    }

    fn ask_name(&self) {
        if self.interactive {
            let tell = self.lesson.tell;
            tell.ask(Msg::PromptName.text(tell.lang));
        }
    }

    /// Reads what stdin has, without blocking, and splits it into lines.
    fn read_stdin(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 4096];
        while self.wants_stdin() && sys::stdin_ready() {
            let n = sys::read_stdin(&mut chunk).map_err(|err| Error::Io {
                what: "reading stdin",
                err,
            })?;
            if n == 0 {
                self.input_ended = true;
                if self.stdin_mode == StdinMode::Registered {
                    sys::deregister_stdin(self.poll.registry());
                }
                if !self.typed.is_empty() {
                    // A last line typed without Enter still counts.
                    let last = std::mem::take(&mut self.typed);
                    self.push_line(last);
                }
                break;
            }
            self.split_lines(&chunk[..n]);
        }
        Ok(())
    }

    fn split_lines(&mut self, mut data: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            let (head, rest) = (&data[..i], &data[i + 1..]);
            if !std::mem::take(&mut self.discarding) {
                let mut line = std::mem::take(&mut self.typed);
                line.extend_from_slice(head);
                self.push_line(line);
            }
            self.typed.clear();
            data = rest;
        }
        if !self.discarding {
            self.typed.extend_from_slice(data);
            if self.typed.len() > MAX_DATAGRAM {
                self.lesson
                    .tell
                    .say(Msg::DatagramTooLong { max: MAX_DATAGRAM });
                self.typed = Vec::new();
                self.discarding = true;
            }
        }
    }

    fn push_line(&mut self, mut line: Vec<u8>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.lines.push_back(line);
    }

    /// Sends what the stage allows, and handles deadlines; returns true
    /// when the session is over.
    fn act(&mut self) -> Result<bool, Error> {
        let now = Instant::now();
        let tell = self.lesson.tell;
        match self.stage {
            Stage::Naming => {
                if let Some(line) = self.lines.pop_front() {
                    let name = String::from_utf8_lossy(&line);
                    let name = name.trim();
                    // `/join NAME` typed in full is sent as it is.
                    let join = if name.starts_with('/') {
                        name.to_string()
                    } else {
                        format!("/join {name}")
                    };
                    self.send(join.as_bytes())?;
                    self.stage = Stage::Joining {
                        until: now + ANSWER_WAIT,
                    };
                } else if self.input_ended {
                    tell.say(Msg::UdpEndBeforeJoin);
                    return Ok(true);
                }
            }
            Stage::Joining { until } if now >= until => {
                return Err(Error::NoReply {
                    peer: self.peer,
                    what: "to /join",
                    hint: UDP_HINT,
                });
            }
            Stage::Joined => {
                while let Some(line) = self.lines.pop_front() {
                    if matches!(&line[..], b"exit" | b"/quit" | b"/leave") {
                        self.lines.clear();
                        self.input_ended = true;
                        break;
                    }
                    self.send(&line)?;
                }
                if self.input_ended && self.lines.is_empty() {
                    tell.say(Msg::UdpLeaving);
                    self.send(b"/leave")?;
                    self.stage = Stage::Leaving {
                        until: now + ANSWER_WAIT,
                    };
                } else if now >= self.last_sent + KEEPALIVE {
                    tell.say(Msg::UdpKeepalive);
                    self.send(b"")?;
                }
            }
            Stage::Leaving { until } if now >= until => {
                tell.say(Msg::UdpNoGoodbye);
                return Ok(true);
            }
            Stage::Joining { .. } | Stage::Leaving { .. } => {}
        }
        Ok(false)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        loop {
            match self.sock.send(bytes) {
                Ok(_) => {
                    self.last_sent = Instant::now();
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The socket's send buffer is full: a datagram that cannot
                // go now is lost, as on the wire.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.lesson.tell.say(Msg::UdpSendBufferFull);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(refused(self.target));
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "sending to the server",
                        err,
                    });
                }
            }
        }
    }
}

/// One room line: text for a terminal, control characters dropped, one
/// `\n` at its end.
fn print_datagram(data: &[u8]) -> Result<(), Error> {
    let mut text = printable(data);
    if text.last() != Some(&b'\n') {
        text.push(b'\n');
    }
    let mut out = io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|err| Error::Io {
            what: "writing to stdout",
            err,
        })
}
