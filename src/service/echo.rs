//! The echo service (RFC 862): every byte received is sent back, in order,
//! unchanged — plus the course's exit word.
//!
//! A line that is exactly the exit word (`exit\n` or `exit\r\n`) closes the
//! connection after the bytes before it were echoed; the exit line itself is
//! not echoed. TCP may split the word across reads (`ex` now, `it\n` later),
//! so bytes at the start of a line that could still become the exit line are
//! *held back* until the line decides. Held bytes are always a prefix of
//! `WORD\r\n`, so the state is just a count — no buffer, no allocation.
//!
//! Backpressure: when the reactor reports that this connection's unsent
//! output passed `--max-backlog`, the service asks it to stop reading; the
//! kernel's receive buffer then fills and TCP's flow control makes the
//! client wait. Reading resumes when the output drains. Memory stays
//! bounded however fast a client sends and however slowly it reads.
//!
//! Read `chat.rs` next for a service with shared state between connections.

use std::net::SocketAddr;
use std::time::Instant;

use super::{ConnKey, Effects, Service, UdpKey};
use crate::event::DisconnectReason;

pub struct EchoService {
    /// The exit word; empty turns the feature off.
    exit_word: Vec<u8>,
    /// Per-connection matcher state, indexed by slab slot.
    conns: Vec<ExitMatcher>,
}

/// Where a connection stands in recognising the exit line.
#[derive(Debug, Clone, Copy, Default)]
struct ExitMatcher {
    /// The next byte starts a line (so it may begin the exit word).
    at_line_start: bool,
    /// How many bytes of `WORD\r\n` are held back (not echoed yet).
    held: usize,
}

/// What one byte does to a line that might be the exit line.
enum Step {
    /// It continues the exit word: hold it.
    Hold,
    /// It completes the exit line.
    Exit,
    /// It cannot be the exit line: release what is held.
    Mismatch,
}

impl ExitMatcher {
    fn matching(&self) -> bool {
        self.at_line_start || self.held > 0
    }

    fn step(&mut self, word: &[u8], b: u8) -> Step {
        let n = word.len();
        let next = match self.held {
            h if h < n && b == word[h] => Step::Hold,
            h if h == n && b == b'\r' => Step::Hold,
            h if (h == n || h == n + 1) && b == b'\n' => Step::Exit,
            _ => Step::Mismatch,
        };
        self.at_line_start = false;
        if let Step::Hold = next {
            self.held += 1;
        }
        next
    }

    /// Sends the held bytes back (they turned out not to be the exit line).
    fn release(&mut self, word: &[u8], key: ConnKey, fx: &mut Effects) {
        let from_word = self.held.min(word.len());
        fx.send(key, &word[..from_word]);
        if self.held > word.len() {
            fx.send(key, b"\r");
        }
        self.held = 0;
    }
}

impl EchoService {
    /// `exit_word` empty means no exit word.
    pub fn new(exit_word: &str) -> Self {
        EchoService {
            exit_word: exit_word.as_bytes().to_vec(),
            conns: Vec::new(),
        }
    }

    fn state(&mut self, key: ConnKey) -> &mut ExitMatcher {
        if key.slot >= self.conns.len() {
            self.conns.resize(key.slot + 1, ExitMatcher::default());
        }
        &mut self.conns[key.slot]
    }
}

impl Service for EchoService {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn on_open(&mut self, key: ConnKey, _peer: SocketAddr, _now: Instant, _fx: &mut Effects) {
        *self.state(key) = ExitMatcher {
            at_line_start: true,
            held: 0,
        };
    }

    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], _now: Instant, fx: &mut Effects) {
        if self.exit_word.is_empty() {
            fx.send_input(key, 0..bytes.len());
            return;
        }
        let mut st = *self.state(key);
        let word = &self.exit_word;
        // `bytes[run..i]` is a run waiting to be echoed as one send.
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !st.matching() {
                // Fast path: echo up to and including the next newline.
                match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(nl) => {
                        i += nl + 1;
                        st.at_line_start = true;
                    }
                    None => i = bytes.len(),
                }
                continue;
            }
            let starts_holding = st.held == 0;
            match st.step(word, bytes[i]) {
                Step::Hold => {
                    if starts_holding {
                        fx.send_input(key, run..i);
                    }
                    i += 1;
                    run = i;
                }
                Step::Exit => {
                    if starts_holding {
                        // "\n" alone cannot be the exit line unless the word
                        // is empty, which was handled above.
                        fx.send_input(key, run..i);
                    }
                    // Bytes after the exit line are never echoed.
                    *self.state(key) = ExitMatcher::default();
                    fx.close(key, DisconnectReason::Exit);
                    return;
                }
                Step::Mismatch => {
                    if !starts_holding {
                        st.release(word, key, fx);
                    }
                    // Re-read this byte on the fast path (it may be `\n`);
                    // it joins the run waiting to be echoed.
                }
            }
        }
        fx.send_input(key, run..bytes.len());
        *self.state(key) = st;
    }

    fn on_eof(&mut self, key: ConnKey, _now: Instant, fx: &mut Effects) {
        // An unterminated "exit" before FIN is not a line: echo it back.
        let word = self.exit_word.clone();
        let st = self.state(key);
        if st.held > 0 {
            st.release(&word, key, fx);
        }
        fx.close(key, DisconnectReason::Eof);
    }

    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects) {
        if over {
            fx.pause_reading(key);
        } else {
            fx.resume_reading(key);
        }
    }

    fn on_close(&mut self, key: ConnKey, _reason: DisconnectReason, _fx: &mut Effects) {
        *self.state(key) = ExitMatcher::default();
    }

    /// udp-echo: the same bytes back to the sender, as one datagram (an
    /// empty one too). No exit word: there is no connection to close.
    fn on_datagram(
        &mut self,
        via: UdpKey,
        peer: SocketAddr,
        bytes: &[u8],
        _now: Instant,
        fx: &mut Effects,
    ) {
        fx.send_input_to(via, peer, 0..bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Effect;

    const KEY: ConnKey = ConnKey { slot: 2, id: 9 };

    /// What the service did with a whole input fed in the given pieces.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        echoed: Vec<u8>,
        closed: Option<DisconnectReason>,
    }

    fn run(word: &str, pieces: &[&[u8]], eof: bool) -> Outcome {
        let mut svc = EchoService::new(word);
        let mut fx = Effects::new();
        let now = Instant::now();
        svc.on_open(KEY, "127.0.0.1:1".parse().unwrap(), now, &mut fx);
        let mut out = Outcome {
            echoed: Vec::new(),
            closed: None,
        };
        let collect = |fx: &mut Effects, out: &mut Outcome, input: &[u8]| {
            for e in fx.drain() {
                match e {
                    Effect::Send { to, bytes } => {
                        assert_eq!(to, KEY);
                        assert!(out.closed.is_none(), "sent after close");
                        out.echoed.extend_from_slice(bytes);
                    }
                    Effect::SendInput { to, range } => {
                        assert_eq!(to, KEY);
                        assert!(out.closed.is_none(), "sent after close");
                        out.echoed.extend_from_slice(&input[range]);
                    }
                    Effect::Close { to, reason } => {
                        assert_eq!(to, KEY);
                        out.closed = Some(reason);
                    }
                    other => panic!("unexpected effect {other:?}"),
                }
            }
        };
        for p in pieces {
            if out.closed.is_some() {
                break;
            }
            svc.on_recv(KEY, p, now, &mut fx);
            collect(&mut fx, &mut out, p);
        }
        if eof && out.closed.is_none() {
            svc.on_eof(KEY, now, &mut fx);
            collect(&mut fx, &mut out, &[]);
        }
        out
    }

    /// Feeds `input` split at every position (two pieces) and every
    /// single byte, and checks each gives the same outcome as one piece.
    fn check_all_splits(word: &str, input: &[u8], eof: bool, expected: Outcome) {
        assert_eq!(run(word, &[input], eof), expected, "whole input");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(word, &[a, b], eof), expected, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(word, &bytes, eof), expected, "byte by byte");
    }

    fn echoed(bytes: &[u8], closed: Option<DisconnectReason>) -> Outcome {
        Outcome {
            echoed: bytes.to_vec(),
            closed,
        }
    }

    #[test]
    fn echoes_binary_unchanged() {
        let all: Vec<u8> = (0..=255).collect();
        check_all_splits("exit", &all, false, echoed(&all, None));
        check_all_splits("", &all, false, echoed(&all, None));
    }

    #[test]
    fn exit_line_closes_after_echoing_what_came_before() {
        let exit = Some(DisconnectReason::Exit);
        check_all_splits(
            "exit",
            b"hello\nexit\nlost",
            false,
            echoed(b"hello\n", exit),
        );
        check_all_splits(
            "exit",
            b"hi\r\nexit\r\nlost\n",
            false,
            echoed(b"hi\r\n", exit),
        );
        check_all_splits("exit", b"exit\n", false, echoed(b"", exit));
        check_all_splits("bye", b"a\nbye\n", false, echoed(b"a\n", exit));
    }

    #[test]
    fn near_misses_are_echoed() {
        for input in [
            &b"exitx\n"[..],
            b"Exit\n",
            b" exit\n",
            b"exi\n",
            b"xexit\n",
            b"exit \n",
            b"exit\r\r\n",
            b"exit\rx\n",
            b"exexit\n",
            b"\n\nexi\n",
            b"line exit\n",
        ] {
            check_all_splits("exit", input, false, echoed(input, None));
        }
    }

    #[test]
    fn unterminated_word_at_eof_is_echoed() {
        let eof = Some(DisconnectReason::Eof);
        check_all_splits("exit", b"a\nexit", true, echoed(b"a\nexit", eof));
        check_all_splits("exit", b"exit\r", true, echoed(b"exit\r", eof));
    }

    #[test]
    fn empty_word_never_closes() {
        check_all_splits("", b"exit\n\n", false, echoed(b"exit\n\n", None));
    }

    #[test]
    fn backlog_pauses_and_resumes_reading() {
        let mut svc = EchoService::new("exit");
        let mut fx = Effects::new();
        svc.on_backlog(KEY, true, &mut fx);
        svc.on_backlog(KEY, false, &mut fx);
        let got: Vec<Effect> = fx.drain().collect();
        assert_eq!(
            got,
            vec![Effect::PauseReading(KEY), Effect::ResumeReading(KEY)]
        );
    }

    #[test]
    fn datagrams_go_back_whole_to_their_sender() {
        let mut svc = EchoService::new("exit");
        let mut fx = Effects::new();
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for input in [&b"exit\n"[..], b"", b"\x00\xff two\nlines\n"] {
            svc.on_datagram(UdpKey(1), peer, input, now, &mut fx);
            let got: Vec<Effect> = fx.drain().collect();
            assert_eq!(
                got,
                vec![Effect::SendInputTo {
                    via: UdpKey(1),
                    peer,
                    range: 0..input.len()
                }],
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_reused_slot_starts_fresh() {
        let mut svc = EchoService::new("exit");
        let mut fx = Effects::new();
        let now = Instant::now();
        let peer = "127.0.0.1:1".parse().unwrap();
        svc.on_open(KEY, peer, now, &mut fx);
        svc.on_recv(KEY, b"ex", now, &mut fx);
        svc.on_close(KEY, DisconnectReason::Reset, &mut fx);
        let next = ConnKey {
            slot: KEY.slot,
            id: 10,
        };
        svc.on_open(next, peer, now, &mut fx);
        let input = b"it\n";
        svc.on_recv(next, input, now, &mut fx);
        let sent: Vec<u8> = fx
            .drain()
            .filter_map(|e| match e {
                Effect::Send { to, bytes } if to == next => Some(bytes.to_vec()),
                Effect::SendInput { to, range } if to == next => Some(input[range].to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(sent, b"it\n");
    }
}
