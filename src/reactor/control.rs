//! The server's console (stdin): reading it without ever blocking the
//! loop, and what its lines mean. Signals, the other control source, are
//! in `stop.rs`.
//!
//! Reading: stdin is registered with `poll` like a socket, but it is *not*
//! switched to non-blocking mode, because a terminal's stdin is shared with
//! the shell that started us (O_NONBLOCK would leak into it). Instead,
//! before each `read` we ask `poll(2)` with a zero timeout whether data (or
//! end of input) is there, so the read can never block the reactor. Input
//! that epoll cannot watch (a regular file, `/dev/null`) is read at once,
//! since reading a file never waits.
//!
//! Meaning (DESIGN.md, "The server's console"): a line goes to every chat
//! user as `[server] text`; a lone `exit` stops the server; a line starting
//! with `/` is a command for the teacher, answered on the console only —
//! `/who`, `/kick NAME [reason]`, `/stats`, `/help` — and `//text` sends
//! `/text` to the room. [`parse_line`] says which, as plain data. `/stats`
//! and `/help` are the reactor's own (it keeps the counters, `status/`);
//! `/who` and `/kick` are about users, which only a service knows, so they
//! go through [`Service::on_console_command`].
//!
//! Answers are printed straight to stdout, not logged: like the
//! `listening on` lines they are the program's output for the teacher, so
//! `-q` (which only raises the console's log level) never hides them. What
//! a command *does* is logged as usual (a kick's `disconnect` says
//! `reason=kicked`).
//!
//! [`Service::on_console_command`]: crate::service::Service::on_console_command

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use mio::Registry;

use super::udp::UdpStats;
use super::{Reactor, token};
use crate::event::StopReason;
use crate::service::ConsoleCommand;
use crate::status::Status;
use crate::sys::{self, StdinMode};

/// Longest console line kept; the rest of a longer line is dropped.
const MAX_CONSOLE_LINE: usize = 4096;
/// At most this many reads per console event, so a flood of input cannot
/// starve the sockets (the rest is read next turn).
const MAX_READS_PER_EVENT: usize = 16;

pub struct Console {
    /// The partial line typed so far.
    partial: Vec<u8>,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// Still watching stdin (false after end of input).
    pub open: bool,
}

/// What a console read produced.
#[derive(Debug, Default)]
pub struct ConsoleInput {
    pub lines: Vec<String>,
    /// End of input (or an error): stop watching.
    pub closed: bool,
    /// The per-event read limit was reached with input still waiting:
    /// read again next turn (no new edge will come for it).
    pub more: bool,
}

impl Console {
    /// Starts watching stdin. Input epoll refuses (files, `/dev/null`) is
    /// read to the end right away and returned.
    pub fn start(registry: &Registry) -> (Console, ConsoleInput) {
        let mut console = Console {
            partial: Vec::new(),
            discarding: false,
            open: true,
        };
        match sys::register_stdin(registry, token::CONSOLE) {
            StdinMode::Registered => (console, ConsoleInput::default()),
            StdinMode::AlwaysReady => {
                // A regular file or /dev/null: always "ready", never blocks.
                let mut input = ConsoleInput::default();
                while !input.closed {
                    console.read_once(&mut input);
                }
                console.open = false;
                (console, input)
            }
            StdinMode::Closed => {
                // Closed or unusable stdin: nothing to watch.
                console.open = false;
                (console, ConsoleInput::default())
            }
        }
    }

    /// Reads what stdin has now, without ever blocking.
    pub fn read_ready(&mut self, registry: &Registry) -> ConsoleInput {
        let mut input = ConsoleInput::default();
        for _ in 0..MAX_READS_PER_EVENT {
            if input.closed || !sys::stdin_ready() {
                break;
            }
            self.read_once(&mut input);
        }
        input.more = !input.closed && sys::stdin_ready();
        if input.closed {
            sys::deregister_stdin(registry);
            self.open = false;
        }
        input
    }

    fn read_once(&mut self, input: &mut ConsoleInput) {
        let mut buf = [0u8; 4096];
        let n = match sys::read_stdin(&mut buf) {
            Ok(0) | Err(_) => {
                input.closed = true;
                return;
            }
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if !self.discarding {
                    let line = String::from_utf8_lossy(&self.partial);
                    input.lines.push(line.trim_end_matches('\r').to_string());
                }
                self.partial.clear();
                self.discarding = false;
            } else if self.partial.len() < MAX_CONSOLE_LINE {
                self.partial.push(b);
            } else {
                self.discarding = true;
            }
        }
    }
}

/// What one console line asks for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLine<'a> {
    /// Blank: nothing to do.
    Empty,
    /// A lone `exit`: stop the server gracefully.
    Exit,
    /// Text for the chat room, as `[server] text` (`//text` arrives here as
    /// `/text`).
    Say(&'a str),
    /// `/help`: the console's commands.
    Help,
    /// `/stats`: the reactor's counters.
    Stats,
    /// A command a service answers (`/who`, `/kick`).
    Service(ConsoleCommand<'a>),
    /// A known command typed wrongly: the usage line to print.
    Usage(&'static str),
    /// A `/word` the console does not know.
    Unknown(&'a str),
}

/// The console's commands, for `/help`.
const CONSOLE_HELP: &str = "\
console commands (answered here only; other lines go to the chat room):
  /who                 who is in the chat room: IP, connected for, idle for
  /kick NAME [reason]  disconnect a chat user, telling them why
  /stats               connections, bytes and messages per service; uptime
  /help                this list
  //text               send /text to the room (a line starting with /)
  exit                 stop the server (pending output gets --shutdown-grace)
";

const KICK_USAGE: &str = "usage: /kick NAME [reason]";

/// Reads one console line. Commands are matched without regard to ASCII
/// case, like chat's (`/WHO` works), and blanks around a command are
/// ignored; anything after `/who`, `/stats` or `/help` is ignored too.
pub fn parse_line(line: &str) -> ConsoleLine<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return ConsoleLine::Empty;
    }
    if trimmed == "exit" {
        return ConsoleLine::Exit;
    }
    if trimmed.starts_with("//") {
        // `//text`: the teacher means a line that starts with `/`.
        return ConsoleLine::Say(&trimmed[1..]);
    }
    let Some(command) = trimmed.strip_prefix('/') else {
        return ConsoleLine::Say(line);
    };
    let (word, rest) = match command.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (command, ""),
    };
    let is = |name: &str| word.eq_ignore_ascii_case(name);
    if is("who") {
        ConsoleLine::Service(ConsoleCommand::Who)
    } else if is("kick") {
        let (name, reason) = match rest.split_once(char::is_whitespace) {
            Some((n, r)) => (n, Some(r.trim()).filter(|r| !r.is_empty())),
            None => (rest, None),
        };
        if name.is_empty() {
            ConsoleLine::Usage(KICK_USAGE)
        } else {
            ConsoleLine::Service(ConsoleCommand::Kick { name, reason })
        }
    } else if is("stats") {
        ConsoleLine::Stats
    } else if is("help") {
        ConsoleLine::Help
    } else {
        ConsoleLine::Unknown(&trimmed[..word.len() + 1])
    }
}

impl Reactor {
    pub(super) fn console_ready(&mut self) {
        if !self.console.open {
            return;
        }
        let input = self.console.read_ready(self.poll.registry());
        self.handle_console_input(input);
    }

    pub(super) fn handle_console_input(&mut self, input: ConsoleInput) {
        for line in input.lines {
            self.console_line(&line);
        }
        self.again_console |= input.more;
    }

    /// Acts on one console line and prints its answer, if it has one.
    fn console_line(&mut self, line: &str) {
        let mut out = String::new();
        match parse_line(line) {
            ConsoleLine::Empty => {}
            ConsoleLine::Exit => self.request_stop(StopReason::Console),
            ConsoleLine::Say(text) => {
                for service in &mut self.services {
                    service.on_console_line(text, &mut self.fx);
                }
                self.apply_effects();
            }
            ConsoleLine::Help => out.push_str(CONSOLE_HELP),
            ConsoleLine::Stats => {
                // The services' own figures (messages, users) are asked
                // for only when someone reads them, as for the status page.
                for (stats, service) in self.status.services.iter_mut().zip(&self.services) {
                    stats.report = service.report();
                }
                write_stats(&mut out, &self.status, &self.udp_stats(), self.now);
            }
            ConsoleLine::Service(command) => self.service_command(command, &mut out),
            ConsoleLine::Usage(usage) => {
                out.push_str(usage);
                out.push('\n');
            }
            ConsoleLine::Unknown(word) => {
                let _ = writeln!(
                    out,
                    "unknown command {word}; /help lists the console's commands"
                );
            }
        }
        print_answer(&out);
    }

    /// `/who` and `/kick` go to the services; what none answered gets a
    /// line from the console itself.
    fn service_command(&mut self, command: ConsoleCommand<'_>, out: &mut String) {
        let mut answered = false;
        for index in 0..self.services.len() {
            if self.services[index].on_console_command(command, self.now, out, &mut self.fx) {
                answered = true;
            }
            self.apply_effects();
            if answered && matches!(command, ConsoleCommand::Kick { .. }) {
                break; // one user has that name: kicked once
            }
        }
        if answered {
            return;
        }
        match command {
            ConsoleCommand::Who => out.push_str("who: no service here has users (chat is off)\n"),
            ConsoleCommand::Kick { name, .. } => {
                let _ = writeln!(
                    out,
                    "kick: nobody named {name} is in the chat room; /who lists who is"
                );
            }
        }
    }
}

/// Prints a console answer. Best effort, like every console line: a closed
/// stdout (`| head`) must not stop the server.
fn print_answer(out: &str) {
    if out.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// A duration in whole seconds, as `humantime` writes it (`1h 2m 3s`):
/// milliseconds would only be noise on a projector.
pub fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

/// The `/stats` answer: the server's uptime and open connections, then one
/// line per service (connections open and accepted, bytes each way,
/// messages, closes by reason) and one per UDP twin (datagrams, bytes,
/// replies dropped).
pub fn write_stats(out: &mut String, status: &Status, udp: &[(&str, UdpStats)], now: Instant) {
    let _ = writeln!(
        out,
        "stats: up {}, {} connections open (--max-clients {}), {} loop turns",
        whole_seconds(status.uptime(now)),
        status.open(),
        status.max_clients,
        status.turns.turns,
    );
    for s in &status.services {
        let _ = write!(
            out,
            "  {:<8}  open {}  accepted {}  bytes in {} out {}  messages {}",
            s.name,
            s.open,
            s.accepted,
            s.bytes_in,
            s.bytes_out,
            s.messages(),
        );
        if let Some(users) = s.report.users {
            let _ = write!(out, "  users {users}");
        }
        if !s.disconnects.is_empty() {
            out.push_str("  closed:");
            for (i, (reason, n)) in s.disconnects.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(out, "{sep}{reason} {n}");
            }
        }
        out.push('\n');
    }
    for (name, u) in udp {
        let _ = writeln!(
            out,
            "  {:<8}  datagrams in {} out {}  bytes in {} out {}  dropped {}",
            name, u.datagrams_in, u.datagrams_out, u.bytes_in, u.bytes_out, u.dropped,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ConsoleCommand::{Kick, Who};

    #[test]
    fn lines_and_commands() {
        use ConsoleLine::*;
        let cases: &[(&str, ConsoleLine<'_>)] = &[
            ("", Empty),
            ("   ", Empty),
            ("exit", Exit),
            (" exit ", Exit),
            ("exit now", Say("exit now")),
            ("hello class", Say("hello class")),
            ("//who", Say("/who")),
            ("  //etc/passwd", Say("/etc/passwd")),
            ("/who", Service(Who)),
            ("/WHO everyone", Service(Who)),
            (" /who", Service(Who)),
            ("/stats", Stats),
            ("/help", Help),
            ("/kick", Usage(KICK_USAGE)),
            ("/kick   ", Usage(KICK_USAGE)),
            (
                "/kick bob",
                Service(Kick {
                    name: "bob",
                    reason: None,
                }),
            ),
            (
                "/Kick  bob   talks too much  ",
                Service(Kick {
                    name: "bob",
                    reason: Some("talks too much"),
                }),
            ),
            ("/nick x", Unknown("/nick")),
            ("/", Unknown("/")),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), *want, "{line:?}");
        }
    }

    #[test]
    fn help_names_every_command() {
        for word in [
            "/who",
            "/kick NAME [reason]",
            "/stats",
            "/help",
            "//text",
            "exit",
        ] {
            assert!(CONSOLE_HELP.contains(word), "{word}");
        }
    }

    #[test]
    fn stats_per_service_and_twin() {
        let mut status = Status::new(&["echo", "chat"], 100, 1 << 20);
        status.on_accept(0, 0);
        status.on_accept(0, 1);
        status.on_recv(0, 10);
        status.on_send(0, 10);
        status.on_close(0, 1, 2, "eof");
        status.on_accept(1, 1);
        status.services[1].report.users = Some(1);
        status.services[1].report.messages = Some(4);
        let udp = [(
            "udp-echo",
            UdpStats {
                datagrams_in: 3,
                datagrams_out: 2,
                bytes_in: 30,
                bytes_out: 20,
                dropped: 1,
            },
        )];
        let mut out = String::new();
        let now = status.started + Duration::from_millis(62_500);
        write_stats(&mut out, &status, &udp, now);
        assert_eq!(
            out,
            "stats: up 1m 2s, 2 connections open (--max-clients 100), 0 loop turns\n\
             \x20 echo      open 1  accepted 2  bytes in 10 out 10  messages 1  closed: eof 1\n\
             \x20 chat      open 1  accepted 1  bytes in 0 out 0  messages 4  users 1\n\
             \x20 udp-echo  datagrams in 3 out 2  bytes in 30 out 20  dropped 1\n"
        );
    }
}
