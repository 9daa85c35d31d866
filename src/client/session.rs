//! One client session: a small event loop over two sources, stdin and the
//! socket — the server's reactor seen from the client side.
//!
//! A blocking client must choose what to wait on: blocked in `read(stdin)`
//! it cannot print a chat line that arrives meanwhile, and blocked in
//! `recv` it cannot notice what the user types. Like the server, this loop
//! asks the kernel instead: one `mio::Poll` (epoll) watches both, and each
//! turn handles whatever is ready:
//!
//! 1. wait for readiness (a hint, never a promise);
//! 2. socket readable: read until `WouldBlock`, print what came (stdout);
//!    a 0-byte read is the server's FIN;
//! 3. stdin: read what is there without blocking (see `stdin.rs`), watch
//!    for `exit`/`/quit`, queue the bytes for the socket;
//! 4. write the queue at once; ask for `WRITABLE` only while bytes remain
//!    (the kernel's send buffer was full);
//! 5. when input is over and the queue is empty, half-close: `shutdown`
//!    sends our FIN, and we keep reading until the server's FIN (a bounded
//!    wait), so nothing the server still sends is lost. With `--reset` we
//!    abort instead: `SO_LINGER` 0 and `close()` send RST, not FIN.
//!
//! Messages come in the order things happened: "end of input" is said once
//! the bytes typed before it have been sent, not when stdin's end is read.
//!
//! `--read-delay` makes a slow reader without blocking the loop: the socket
//! is read once (at most [`SLOW_READ_BYTES`]) per delay, and `poll` sleeps
//! until the next read is due; stdin and writes go on meanwhile, so the
//! server sees a client that sends but does not read (backpressure).
//!
//! Memory is bounded: at most `MAX_PENDING` bytes wait for the socket, and
//! stdin is not read while the queue is full — so a fast file on stdin and
//! a slow server meet TCP flow control instead of filling memory.
//!
//! The echo client sends bytes as they are (binary-safe) and prints the
//! reply as it comes, however TCP splits or joins it. The chat client sends
//! lines and prints room lines, with control characters removed.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::account::{self, Notice, ServerLines, TokenStore};
use super::messages::{Msg, Why};
use super::{ClientKind, Error, Lesson, SLOW_READ_BYTES};
use crate::sys::{self, StdinMode};

/// With `--reset`, how long chat waits after its last line before the RST,
/// so the server reads the lines first (loopback needs far less).
const CHAT_RESET_WAIT: Duration = Duration::from_millis(300);

/// The socket's token in the client's `Poll`.
const SOCKET: Token = Token(0);
/// Stdin's token (only when `epoll` accepts it: a terminal or a pipe).
const STDIN: Token = Token(1);
/// Bytes per `read` call, from stdin or the socket.
const READ_CHUNK: usize = 16 * 1024;
/// Stdin bytes that may wait for the socket before we stop reading stdin.
const MAX_PENDING: usize = 64 * 1024;
/// Socket reads per turn, so a flood from the server cannot starve stdin;
/// the rest is read next turn.
const MAX_READS_PER_TURN: usize = 64;
/// How long we wait for the server to close after we finished sending. For
/// echo it is a silence limit (it restarts whenever data arrives, since the
/// server may still be echoing a large input); for chat it is a total.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where the user's input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Still reading stdin.
    Open,
    /// The user typed this quit word; nothing after it is sent.
    Quit(&'static str),
    /// Stdin reached its end (Ctrl-D, end of a pipe or file).
    Ended,
}

/// Whether the connection goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    /// The server's FIN arrived (a read returned 0).
    Closed,
}

/// Runs one session on a connected socket until the server closes it (or,
/// with `--reset`, until we abort it).
pub(super) fn run(
    stream: std::net::TcpStream,
    service: ClientKind,
    interactive: bool,
    server: &str,
    lesson: Lesson,
) -> Result<(), Error> {
    let io_err = |what| move |err| Error::Io { what, err };
    let peer = stream
        .peer_addr()
        .map_err(io_err("reading the server's address"))?;
    let local = stream
        .local_addr()
        .map_err(io_err("reading our own address"))?;
    // Small lines should leave at once rather than wait for Nagle's
    // algorithm to batch them: a person is watching.
    let _ = stream.set_nodelay(true);
    // The loop never blocks on the socket: a read or write that cannot
    // proceed returns WouldBlock, and epoll says when to try again.
    stream
        .set_nonblocking(true)
        .map_err(io_err("making the socket non-blocking"))?;
    let mut sock = TcpStream::from_std(stream);
    let poll = Poll::new().map_err(io_err("creating the event loop (epoll)"))?;
    poll.registry()
        .register(&mut sock, SOCKET, Interest::READABLE)
        .map_err(io_err("registering the socket"))?;
    let stdin_mode = sys::register_stdin(poll.registry(), STDIN);

    let tell = lesson.tell;
    tell.say(Msg::Connected { peer, local });
    if interactive {
        tell.say(match service {
            ClientKind::Echo => Msg::HintEcho,
            ClientKind::Chat => Msg::HintChat,
        });
    }

    let mut session = Session {
        service,
        peer,
        poll,
        sock,
        stdin_mode,
        input: Input::Open,
        pending: Vec::with_capacity(READ_CHUNK),
        watch: LineWatch::default(),
        buf: vec![0; READ_CHUNK].into_boxed_slice(),
        want_writable: false,
        more_to_read: false,
        half_closed: false,
        close_deadline: None,
        next_read: Instant::now(),
        end_told: false,
        lesson,
        sent_total: 0,
        received_total: 0,
        explained_send: false,
        explained_recv: false,
        interactive,
        server_lines: ServerLines::default(),
        tokens: match service {
            ClientKind::Chat => TokenStore::for_server(server),
            ClientKind::Echo => None,
        },
        offered_token: false,
    };
    session.offer_saved_token();
    if stdin_mode == StdinMode::Closed {
        tell.say(Msg::StdinClosed);
        session.end_of_input();
    }
    session.run()
}

struct Session {
    service: ClientKind,
    peer: SocketAddr,
    poll: Poll,
    sock: TcpStream,
    stdin_mode: StdinMode,
    input: Input,
    /// Bytes read from stdin that the socket has not taken yet (the kernel's
    /// send buffer was full); at most `MAX_PENDING` plus a final `exit\n`.
    pending: Vec<u8>,
    /// Spots a quit word at the start of a typed line.
    watch: LineWatch,
    /// One read buffer for both sources; each read finishes with it first.
    buf: Box<[u8]>,
    /// Whether the socket is registered for WRITABLE (only while `pending`
    /// is not empty: asking otherwise would wake us for nothing).
    want_writable: bool,
    /// The last turn stopped reading the socket at `MAX_READS_PER_TURN`;
    /// edge-triggered epoll will not say it again, so we must come back.
    more_to_read: bool,
    /// We sent our FIN (`shutdown(Write)`).
    half_closed: bool,
    /// When we give up waiting for the server's FIN (or, with `--reset`,
    /// for the echo of what we sent).
    close_deadline: Option<Instant>,
    /// `--read-delay`: the socket is not read before this.
    next_read: Instant,
    /// "End of input" was said (after the bytes typed before it went out).
    end_told: bool,
    lesson: Lesson,
    sent_total: u64,
    received_total: u64,
    /// The first "sent"/"received" message explains itself; later ones are
    /// short (echo) or not said at all (chat: a room line is not a lesson
    /// in byte counts, and the totals come at the end).
    explained_send: bool,
    explained_recv: bool,
    /// Stdin is a terminal: a password is read from it with echo off.
    interactive: bool,
    /// Chat: the server's lines, watched for tokens and password prompts.
    server_lines: ServerLines,
    /// Chat: where this server's session token is kept.
    tokens: Option<TokenStore>,
    /// We sent a saved token at connect.
    offered_token: bool,
}

impl Session {
    /// Chat: a token saved for this server goes out first, so the name
    /// prompt logs us in by itself (`/token TOKEN`), like a cookie.
    fn offer_saved_token(&mut self) {
        let Some(token) = self.tokens.as_ref().and_then(TokenStore::load) else {
            return;
        };
        self.pending.extend_from_slice(b"/token ");
        self.pending.extend_from_slice(token.as_bytes());
        self.pending.push(b'\n');
        self.offered_token = true;
        self.lesson.tell.say(Msg::OfferToken);
    }

    /// Acts on a server line the client watches for (chat only).
    fn on_notice(&mut self, notice: Notice) {
        let tell = self.lesson.tell;
        match notice {
            Notice::Token(token) => {
                let Some(store) = &self.tokens else {
                    return;
                };
                match store.save(&token) {
                    Ok(()) => tell.say(Msg::TokenSaved {
                        path: store.path().display().to_string(),
                    }),
                    Err(e) => tell.say(Msg::TokenNotSaved {
                        error: e.to_string(),
                    }),
                }
            }
            Notice::TokenRefused if self.offered_token => {
                self.offered_token = false;
                if let Some(store) = &self.tokens {
                    let _ = store.forget();
                }
                tell.say(Msg::TokenRefused);
            }
            Notice::TokenRefused => {}
            Notice::PasswordAsked(name) => {
                // From a pipe the password is just the next line of input.
                if !self.interactive || self.input != Input::Open {
                    return;
                }
                match account::read_password(&name, tell.lang) {
                    Ok(password) => {
                        self.pending
                            .extend_from_slice(password.trim_end().as_bytes());
                        self.pending.push(b'\n');
                    }
                    Err(e) => tell.say(Msg::PasswordUnread {
                        error: e.to_string(),
                    }),
                }
            }
        }
    }

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
            // A STDIN event needs no handling of its own: read_stdin asks
            // poll(2) whether a read would block, every turn.
            let socket_ready = self.more_to_read || events.iter().any(|e| e.token() == SOCKET);
            if socket_ready && self.read_socket()? == Flow::Closed {
                return self.finish();
            }
            self.read_stdin()?;
            if self.write_socket()? == Flow::Closed {
                return self.finish();
            }
            // Said only now, so it comes after "sent N bytes" of the
            // bytes typed before the end; chat's `exit` goes out after it.
            if self.tell_end_when_sent() && self.write_socket()? == Flow::Closed {
                return self.finish();
            }
            let overdue = self
                .close_deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
            if self.lesson.reset {
                if self.ready_to_abort(overdue) {
                    return self.abort();
                }
            } else {
                self.half_close_when_done();
                if overdue {
                    return Err(Error::NoClose {
                        peer: self.peer,
                        waited: self.close_wait(),
                    });
                }
            }
            self.update_interest()?;
        }
    }

    /// How long `poll` may sleep: not at all while there is work it would
    /// not be woken for (a file on stdin, an unfinished socket drain),
    /// until the close deadline while we wait for the server's FIN, and
    /// otherwise until something happens.
    fn poll_timeout(&self) -> Option<Duration> {
        if self.wants_stdin() && self.stdin_mode == StdinMode::AlwaysReady {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut wake = self.close_deadline;
        if self.more_to_read {
            // Without --read-delay, `next_read` is already past: at once.
            wake = Some(wake.map_or(self.next_read, |w| w.min(self.next_read)));
        }
        wake.map(|at| at.saturating_duration_since(now))
    }

    /// How long we wait for the server after we finished sending: a slow
    /// reader needs its delay on top, or it would give up between reads.
    fn close_wait(&self) -> Duration {
        CLOSE_WAIT + self.lesson.read_delay.unwrap_or_default()
    }

    fn wants_stdin(&self) -> bool {
        self.input == Input::Open && self.pending.len() < MAX_PENDING
    }

    /// Reads the socket until `WouldBlock` (or the per-turn cap) and prints
    /// what came. A 0-byte read means the server sent FIN: it will send
    /// nothing more.
    fn read_socket(&mut self) -> Result<Flow, Error> {
        self.more_to_read = false;
        let (reads, size) = match self.lesson.read_delay {
            // A slow reader: one small read per delay, then come back.
            Some(delay) => {
                let now = Instant::now();
                if now < self.next_read {
                    self.more_to_read = true;
                    return Ok(Flow::Open);
                }
                self.next_read = now + delay;
                (1, SLOW_READ_BYTES)
            }
            None => (MAX_READS_PER_TURN, self.buf.len()),
        };
        for _ in 0..reads {
            match self.sock.read(&mut self.buf[..size]) {
                Ok(0) => return Ok(Flow::Closed),
                Ok(n) => {
                    self.received_total += n as u64;
                    let first = !self.explained_recv;
                    self.explained_recv = true;
                    if first || self.service == ClientKind::Echo {
                        self.lesson.tell.say(Msg::Received { n: n as u64, first });
                    }
                    print_payload(self.service, &self.buf[..n])?;
                    if self.service == ClientKind::Chat {
                        for notice in self.server_lines.feed(&self.buf[..n]) {
                            self.on_notice(notice);
                        }
                    }
                    if self.service == ClientKind::Echo && self.close_deadline.is_some() {
                        // The echo server is still working through our
                        // input: silence, not total time, means it is stuck.
                        self.close_deadline = Some(Instant::now() + self.close_wait());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flow::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Error::Reset { peer: self.peer });
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "reading from the server",
                        err,
                    });
                }
            }
        }
        self.more_to_read = true;
        Ok(Flow::Open)
    }

    /// Reads stdin while a read would not block and the queue has room.
    fn read_stdin(&mut self) -> Result<(), Error> {
        while self.wants_stdin() {
            if !sys::stdin_ready() {
                break;
            }
            let room = (MAX_PENDING - self.pending.len()).min(READ_CHUNK);
            let n = sys::read_stdin(&mut self.buf[..room]).map_err(|err| Error::Io {
                what: "reading stdin",
                err,
            })?;
            if n == 0 {
                self.end_of_input();
                break;
            }
            let data = &self.buf[..n];
            match self.watch.find_quit(data, self.service.quit_words()) {
                None => self.pending.extend_from_slice(data),
                Some((end, word)) => {
                    // The quit line itself is sent: the server knows it
                    // too, and ends the session on its side.
                    // With --reset the quit line is not sent: the point is
                    // to leave without asking, and the server must see RST.
                    let keep = if self.lesson.reset {
                        end - quit_line_len(&data[..end], word)
                    } else {
                        end
                    };
                    self.pending.extend_from_slice(&data[..keep]);
                    self.input = Input::Quit(word);
                    self.stop_watching_stdin();
                    let tell = self.lesson.tell;
                    tell.say(if self.lesson.reset {
                        Msg::QuitTypedReset { word }
                    } else {
                        Msg::QuitTyped { word }
                    });
                    if end < n {
                        tell.say(Msg::IgnoredAfterQuit {
                            n: (n - end) as u64,
                            word,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Stdin is over. What is said about it, and chat's `exit`, wait until
    /// the bytes typed before the end are sent ([`Session::tell_end_when_sent`]).
    fn end_of_input(&mut self) {
        self.input = Input::Ended;
        self.stop_watching_stdin();
        if self.service == ClientKind::Chat && !self.watch.at_line_start() {
            // Finish a last line typed without Enter: it is a message,
            // and `exit` must be a line of its own.
            self.pending.push(b'\n');
        }
    }

    /// Once input has ended and what was typed is sent: say so. Echo just
    /// stops sending; chat also sends `exit`, which leaves the room once
    /// joined and disconnects at the name prompt (not with `--reset`: the
    /// connection is aborted instead). Returns whether anything was queued.
    fn tell_end_when_sent(&mut self) -> bool {
        if self.input != Input::Ended || self.end_told || !self.pending.is_empty() {
            return false;
        }
        self.end_told = true;
        let tell = self.lesson.tell;
        if self.service == ClientKind::Chat && !self.lesson.reset {
            tell.say(Msg::EndOfInputChat);
            self.pending.extend_from_slice(b"exit\n");
            return true;
        }
        tell.say(Msg::EndOfInput);
        false
    }

    fn stop_watching_stdin(&mut self) {
        if self.stdin_mode == StdinMode::Registered {
            sys::deregister_stdin(self.poll.registry());
        }
    }

    /// Writes the queue now (write first, ask for WRITABLE only if the
    /// kernel's send buffer is full).
    fn write_socket(&mut self) -> Result<Flow, Error> {
        while !self.pending.is_empty() {
            match self.sock.write(&self.pending) {
                Ok(0) => {
                    return Err(Error::Io {
                        what: "writing to the server",
                        err: io::ErrorKind::WriteZero.into(),
                    });
                }
                Ok(n) => {
                    self.pending.drain(..n);
                    self.sent_total += n as u64;
                    let first = !self.explained_send;
                    self.explained_send = true;
                    if first || self.service == ClientKind::Echo {
                        self.lesson.tell.say(Msg::Sent { n: n as u64, first });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    // The server is gone. What it sent before going may
                    // still be in our receive buffer: print that first.
                    self.pending.clear();
                    return match self.read_socket()? {
                        Flow::Closed => Ok(Flow::Closed),
                        Flow::Open => Err(Error::Reset { peer: self.peer }),
                    };
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "writing to the server",
                        err,
                    });
                }
            }
        }
        Ok(Flow::Open)
    }

    /// Input is over and all of it is sent: send our FIN, keep reading.
    fn half_close_when_done(&mut self) {
        if self.half_closed || self.input == Input::Open || !self.pending.is_empty() {
            return;
        }
        // NotConnected only means the server already closed; its FIN is
        // in our receive buffer and the next read reports it.
        let _ = self.sock.shutdown(Shutdown::Write);
        self.half_closed = true;
        self.close_deadline = Some(Instant::now() + self.close_wait());
        self.lesson.tell.say(Msg::HalfClosed);
    }

    /// `--reset`: input is over and sent. Echo first reads back what it is
    /// owed (so a pipe still prints its echo), within the usual wait. Chat
    /// owes nothing we can count, so it waits a moment: a RST that arrives
    /// before the server has read our last lines makes the kernel throw
    /// them away unread. Then it is time to abort.
    fn ready_to_abort(&mut self, overdue: bool) -> bool {
        if self.input == Input::Open || !self.pending.is_empty() {
            return false;
        }
        let echo = self.service == ClientKind::Echo;
        let owed = !echo || self.received_total < self.sent_total;
        if !owed || overdue {
            return true;
        }
        if self.close_deadline.is_none() {
            let wait = if echo {
                self.close_wait()
            } else {
                CHAT_RESET_WAIT
            };
            self.close_deadline = Some(Instant::now() + wait);
        }
        false
    }

    /// `--reset`: `SO_LINGER` with a zero timeout makes `close()` drop
    /// what is unsent and send RST instead of FIN, so the server's next
    /// `recv` fails with `ECONNRESET` (`reason=reset`).
    fn abort(self) -> Result<(), Error> {
        socket2::SockRef::from(&self.sock)
            .set_linger(Some(Duration::ZERO))
            .map_err(|err| Error::Io {
                what: "setting SO_LINGER for --reset",
                err,
            })?;
        let (sent, received) = (self.sent_total, self.received_total);
        let tell = self.lesson.tell;
        // Dropping the session closes the socket: RST goes out now.
        drop(self);
        tell.say(Msg::ResetClose { sent, received });
        Ok(())
    }

    fn update_interest(&mut self) -> Result<(), Error> {
        let want = !self.pending.is_empty();
        if want == self.want_writable {
            return Ok(());
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.poll
            .registry()
            .reregister(&mut self.sock, SOCKET, interest)
            .map_err(|err| Error::Io {
                what: "updating the socket's interest",
                err,
            })?;
        self.want_writable = want;
        Ok(())
    }

    /// The server closed the connection: say why the session ended.
    fn finish(self) -> Result<(), Error> {
        let why = match self.input {
            Input::Quit(word) => Why::Typed(word),
            Input::Ended => Why::EndOfInput,
            Input::Open => Why::Server,
        };
        self.lesson.tell.say(Msg::Disconnected {
            why,
            sent: self.sent_total,
            received: self.received_total,
        });
        Ok(())
    }
}

/// The length of the quit line at the end of `data` (`exit\n` or
/// `exit\r\n`), which ends just past its `\n`.
fn quit_line_len(data: &[u8], word: &str) -> usize {
    let crlf = data.ends_with(b"\r\n");
    let len = word.len() + if crlf { 2 } else { 1 };
    len.min(data.len())
}

/// Prints what the server sent. Echo output is the payload, byte for byte.
/// Chat lines are text for a terminal: control characters are dropped, so
/// a server (echochat strips them already, another might not) cannot send
/// escape sequences that drive the user's terminal.
fn print_payload(service: ClientKind, data: &[u8]) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    let result = match service {
        ClientKind::Echo => out.write_all(data),
        ClientKind::Chat => out.write_all(&printable(data)),
    };
    result.and_then(|()| out.flush()).map_err(|err| Error::Io {
        what: "writing to stdout",
        err,
    })
}

/// Drops C0 control bytes other than tab and newline, and DEL.
pub(super) fn printable(data: &[u8]) -> Vec<u8> {
    data.iter()
        .copied()
        .filter(|&b| b == b'\n' || b == b'\t' || (b >= 0x20 && b != 0x7f))
        .collect()
}

/// Watches the typed byte stream for a line that is exactly a quit word
/// (`exit\n` or `exit\r\n`), wherever reads split it. Only the first few
/// bytes of each line are kept, so any input runs through it in constant
/// memory.
#[derive(Debug, Default)]
struct LineWatch {
    /// The start of the current line (enough for the longest word + `\r`).
    head: [u8; 8],
    len: usize,
    /// The current line is longer than `head`: it cannot be a quit word.
    long: bool,
}

impl LineWatch {
    fn at_line_start(&self) -> bool {
        self.len == 0 && !self.long
    }

    /// Feeds `data`; returns the offset just past the first quit line's
    /// `\n`, and the word.
    fn find_quit(&mut self, data: &[u8], words: &[&'static str]) -> Option<(usize, &'static str)> {
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                let line = &self.head[..self.len];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let hit = if self.long {
                    None
                } else {
                    words.iter().find(|w| w.as_bytes() == line)
                };
                self.len = 0;
                self.long = false;
                if let Some(word) = hit {
                    return Some((i + 1, word));
                }
            } else if self.len < self.head.len() {
                self.head[self.len] = b;
                self.len += 1;
            } else {
                self.long = true;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: &[&str] = &["exit", "/quit"];

    /// Feeds `input` split at `at`; returns the offset in `input` just past
    /// the quit line, if any.
    fn quit_at(input: &[u8], at: usize) -> Option<(usize, &'static str)> {
        let mut w = LineWatch::default();
        if let Some(hit) = w.find_quit(&input[..at], WORDS) {
            return Some(hit);
        }
        w.find_quit(&input[at..], WORDS)
            .map(|(end, word)| (at + end, word))
    }

    #[test]
    fn quit_words_are_found_at_every_split() {
        type Case = (&'static [u8], Option<(usize, &'static str)>);
        let cases: &[Case] = &[
            (b"hi\nexit\nmore\n", Some((8, "exit"))),
            (b"exit\r\n", Some((6, "exit"))),
            (b"/quit\n", Some((6, "/quit"))),
            (b"exits\nexit now\n xit\nEXIT\n", None),
            (b"say exit\n", None),
            (b"exit", None),
            (b"0123456789exit\n", None),
            (b"\n\nexit\n", Some((7, "exit"))),
        ];
        for &(input, want) in cases {
            for at in 0..=input.len() {
                assert_eq!(quit_at(input, at), want, "{input:?} split at {at}");
            }
        }
    }

    #[test]
    fn long_lines_are_never_quit_words() {
        let mut w = LineWatch::default();
        let mut long = vec![b'x'; 100_000];
        long.extend_from_slice(b"exit\n");
        assert_eq!(w.find_quit(&long, WORDS), None);
        assert!(w.at_line_start());
        assert_eq!(w.find_quit(b"exit\n", WORDS), Some((5, "exit")));
    }

    #[test]
    fn line_start_is_tracked() {
        let mut w = LineWatch::default();
        assert!(w.at_line_start());
        w.find_quit(b"hello", WORDS);
        assert!(!w.at_line_start());
        w.find_quit(b" there\n", WORDS);
        assert!(w.at_line_start());
    }

    #[test]
    fn chat_output_has_no_control_characters() {
        assert_eq!(
            printable(b"a\x1b[31mb\tc\r\n\x07\x7f\xc3\xa9\n"),
            b"a[31mb\tc\n\xc3\xa9\n"
        );
    }
}
