//! Control sources: signals and the server's console (stdin), both read as
//! ordinary events of the loop.
//!
//! Signals: a signal handler may do almost nothing safely, so
//! `signal-hook-mio` has the handler write a byte into a pipe that `poll`
//! watches. The signal then arrives as a readiness event like any socket's.
//!
//! Console: stdin is registered with `poll` too, but it is *not* switched to
//! non-blocking mode, because a terminal's stdin is shared with the shell
//! that started us (O_NONBLOCK would leak into it). Instead, before each
//! `read` we ask `poll(2)` with a zero timeout whether data (or end of
//! input) is there, so the read can never block the reactor. Input that
//! epoll cannot watch (a regular file, `/dev/null`) is read at once, since
//! reading a file never waits.

use mio::Registry;

use super::token;
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
