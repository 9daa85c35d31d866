//! The echo service (RFC 862): every byte received is sent back, in order,
//! unchanged — plus the course's exit word.
//!
//! **Nothing is held back.** Every byte is echoed in the turn it is read, so
//! a client that sends one key at a time and does not echo locally (Windows
//! `telnet`, PuTTY) sees each key at once. The bytes of one read go back as
//! one range of the reactor's own read buffer (`Effects::send_input`): no
//! copy, whatever the exit word is doing.
//!
//! **The exit word.** A line that is exactly the word (`exit\n` or
//! `exit\r\n`) is echoed like any other line, then the connection closes
//! (`reason=exit`); bytes after it in the same read are discarded, and
//! nothing more is read. The word may arrive split across reads, one key at
//! a time, so each connection keeps a few bytes of state: how much of
//! `WORD\r` the current line has matched so far. Telnet commands inside the
//! line are set aside while matching (a `telnet` user who pressed Ctrl-C
//! sent `IAC IP IAC DO TIMING-MARK` before typing `exit`), by the same
//! `telnet::Parser` the chat service uses — but here they are still echoed,
//! as every byte is. A `\n` byte always ends a line (a client that is
//! typing never sends one inside a telnet command), so once a line cannot
//! be the exit line any more, the scan jumps with one `memchr` to its end:
//! a long line costs about what reading it did.
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
use crate::event::{DisconnectReason, Event, PauseWhy};
use crate::telnet::{self, Step};

pub struct EchoService {
    /// The exit word; empty turns the feature off.
    exit_word: Vec<u8>,
    /// Per-connection watcher state, indexed by slab slot.
    conns: Vec<ExitWatch>,
}

/// Where a connection stands in recognising the exit line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ExitWatch {
    /// Inside a telnet command or not (its bytes are not part of the line).
    telnet: telnet::Parser,
    /// How much of the current line matches the exit line so far.
    line: LineMatch,
}

/// How much of `WORD\r\n` the data of the current line has matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineMatch {
    /// The line so far is the first `n` bytes of the word (0: a new line).
    Word(usize),
    /// The line so far is the word and a `\r`.
    WordCr,
    /// The line cannot be the exit line: wait for its `\n`.
    Other,
}

impl Default for LineMatch {
    /// A new connection is at the start of a line.
    fn default() -> Self {
        LineMatch::Word(0)
    }
}

impl LineMatch {
    /// The state after data byte `b`, or `None` if `b` completed the exit
    /// line. `word` is not empty.
    fn next(self, word: &[u8], b: u8) -> Option<LineMatch> {
        if b == b'\n' {
            return match self {
                LineMatch::Word(n) if n == word.len() => None,
                LineMatch::WordCr => None,
                _ => Some(LineMatch::Word(0)),
            };
        }
        Some(match self {
            LineMatch::Word(n) if n < word.len() && word[n] == b => LineMatch::Word(n + 1),
            LineMatch::Word(n) if n == word.len() && b == b'\r' => LineMatch::WordCr,
            _ => LineMatch::Other,
        })
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

    fn state(&mut self, key: ConnKey) -> &mut ExitWatch {
        if key.slot >= self.conns.len() {
            self.conns.resize(key.slot + 1, ExitWatch::default());
        }
        &mut self.conns[key.slot]
    }
}

/// Where the exit line ends in `bytes` (the index of its `\n`), if it ends
/// in this read; `st` is updated to the state after the bytes scanned.
fn find_exit_line(st: &mut ExitWatch, word: &[u8], bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        if st.line == LineMatch::Other {
            // Nothing to match until the line ends: one memchr, however
            // long the line and whatever telnet bytes are in it.
            i += memchr::memchr(b'\n', &bytes[i..])? + 1;
            *st = ExitWatch::default();
            continue;
        }
        let b = bytes[i];
        if b == b'\n' {
            // A `\n` byte always ends the line, even one that would be the
            // option of a broken command: a client typing never sends one
            // inside a command, and a line must not be able to hide its end.
            match st.line.next(word, b) {
                Some(_) => *st = ExitWatch::default(),
                None => return Some(i),
            }
        } else if st.telnet.step(b) == Step::Data {
            // `next` with a byte other than `\n` always gives a state.
            st.line = st.line.next(word, b).unwrap_or(LineMatch::Other);
        }
        i += 1;
    }
    None
}

impl Service for EchoService {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn on_open(&mut self, key: ConnKey, _peer: SocketAddr, _now: Instant, _fx: &mut Effects) {
        *self.state(key) = ExitWatch::default();
    }

    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], _now: Instant, fx: &mut Effects) {
        if self.exit_word.is_empty() {
            fx.send_input(key, 0..bytes.len());
            return;
        }
        let mut st = *self.state(key);
        let word = &self.exit_word;
        match find_exit_line(&mut st, word, bytes) {
            None => {
                fx.send_input(key, 0..bytes.len());
                *self.state(key) = st;
            }
            Some(newline) => {
                // The exit line is echoed like any other; what follows it
                // is not, and the close stops reading.
                fx.send_input(key, 0..newline + 1);
                fx.close(key, DisconnectReason::Exit);
                *self.state(key) = ExitWatch::default();
            }
        }
    }

    fn on_eof(&mut self, key: ConnKey, _now: Instant, fx: &mut Effects) {
        // Nothing is ever held back, so nothing is owed: an unterminated
        // "exit" before FIN was echoed when it arrived, and is not a line.
        fx.close(key, DisconnectReason::Eof);
    }

    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects) {
        // Backpressure: stop reading a client that does not read its
        // replies. Its bytes then wait in the kernel, its receive window
        // closes, and TCP itself slows the sender; no memory grows here.
        if over {
            fx.pause_reading(key);
            fx.record(Event::Pause {
                service: self.name(),
                conn: key.id,
                why: PauseWhy::Backlog,
            });
        } else {
            fx.resume_reading(key);
            fx.record(Event::Resume {
                service: self.name(),
                conn: key.id,
            });
        }
    }

    fn on_close(&mut self, key: ConnKey, _reason: DisconnectReason, _fx: &mut Effects) {
        *self.state(key) = ExitWatch::default();
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
    use proptest::prelude::*;

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
            let before = out.echoed.len();
            svc.on_recv(KEY, p, now, &mut fx);
            collect(&mut fx, &mut out, p);
            if out.closed.is_none() {
                // Nothing held back: all of this read went back at once.
                assert_eq!(&out.echoed[before..], *p, "held back");
            }
        }
        if eof && out.closed.is_none() {
            svc.on_eof(KEY, now, &mut fx);
            collect(&mut fx, &mut out, &[]);
        }
        out
    }

    /// Feeds `input` split at every position (two pieces) and every
    /// single byte, and checks each gives the same outcome as one piece.
    #[track_caller]
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

    const EXIT: Option<DisconnectReason> = Some(DisconnectReason::Exit);

    #[test]
    fn echoes_binary_unchanged() {
        let all: Vec<u8> = (0..=255).collect();
        check_all_splits("exit", &all, false, echoed(&all, None));
        check_all_splits("", &all, false, echoed(&all, None));
    }

    #[test]
    fn exit_line_is_echoed_then_closes() {
        check_all_splits(
            "exit",
            b"hello\nexit\nlost",
            false,
            echoed(b"hello\nexit\n", EXIT),
        );
        check_all_splits(
            "exit",
            b"hi\r\nexit\r\nlost\n",
            false,
            echoed(b"hi\r\nexit\r\n", EXIT),
        );
        check_all_splits("exit", b"exit\n", false, echoed(b"exit\n", EXIT));
        check_all_splits("bye", b"a\nbye\n", false, echoed(b"a\nbye\n", EXIT));
    }

    #[test]
    fn telnet_commands_in_the_exit_line_are_set_aside() {
        // Ctrl-C in Linux telnet, then `exit` (issue 9: it took two).
        let ctrl_c_exit = b"\xff\xf4\xff\xfd\x06exit\r\nlost";
        check_all_splits(
            "exit",
            ctrl_c_exit,
            false,
            echoed(&ctrl_c_exit[..ctrl_c_exit.len() - 4], EXIT),
        );
        for input in [
            &b"ex\xff\xf1it\n"[..],
            b"exit\xff\xfa\x18\x00xterm\xff\xf0\r\n",
            b"\xff\xfb\x00\xff\xfd\x00exit\xff\xf4\n",
        ] {
            check_all_splits("exit", input, false, echoed(input, EXIT));
        }
        // A literal 255 (IAC IAC) is data.
        for input in [&b"e\xff\xffxit\n"[..], b"exit\xff\xff\n", b"exit\xff\xfd"] {
            check_all_splits("exit", input, false, echoed(input, None));
        }
        // A `\n` ends the line even inside a broken command.
        check_all_splits(
            "exit",
            b"exit\xff\xfd\n",
            false,
            echoed(b"exit\xff\xfd\n", EXIT),
        );
        check_all_splits(
            "exit",
            b"x\xff\xfa\nexit\n",
            false,
            echoed(b"x\xff\xfa\nexit\n", EXIT),
        );
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
            b"exit\0\n",
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
            vec![
                Effect::PauseReading(KEY),
                Effect::Record(Event::Pause {
                    service: "echo",
                    conn: KEY.id,
                    why: PauseWhy::Backlog
                }),
                Effect::ResumeReading(KEY),
                Effect::Record(Event::Resume {
                    service: "echo",
                    conn: KEY.id
                }),
            ]
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
    fn one_read_is_one_zero_copy_send() {
        let mut svc = EchoService::new("exit");
        let mut fx = Effects::new();
        let now = Instant::now();
        svc.on_open(KEY, "127.0.0.1:1".parse().unwrap(), now, &mut fx);
        let input = b"e\nex\nexi\n\xff\xf4x\nexit!\n";
        svc.on_recv(KEY, input, now, &mut fx);
        let got: Vec<Effect> = fx.drain().collect();
        assert_eq!(
            got,
            vec![Effect::SendInput {
                to: KEY,
                range: 0..input.len()
            }]
        );
    }

    #[test]
    fn a_reused_slot_starts_fresh() {
        let mut svc = EchoService::new("exit");
        let mut fx = Effects::new();
        let now = Instant::now();
        let peer = "127.0.0.1:1".parse().unwrap();
        svc.on_open(KEY, peer, now, &mut fx);
        svc.on_recv(KEY, b"ex\xff", now, &mut fx);
        svc.on_close(KEY, DisconnectReason::Reset, &mut fx);
        let next = ConnKey {
            slot: KEY.slot,
            id: 10,
        };
        fx.drain().for_each(drop);
        svc.on_open(next, peer, now, &mut fx);
        svc.on_recv(next, b"it\n", now, &mut fx);
        let got: Vec<Effect> = fx.drain().collect();
        assert_eq!(
            got,
            vec![Effect::SendInput {
                to: next,
                range: 0..3
            }],
            "not the end of the old connection's exit line"
        );
    }

    /// The exit rule written the slow way: a line ends at each `\n` byte;
    /// its telnet commands are set aside; the exit line is `WORD` or
    /// `WORD\r`. Returns how many bytes are echoed and whether it closes.
    fn reference(word: &[u8], input: &[u8]) -> (usize, bool) {
        let mut end = 0;
        for raw in input.split_inclusive(|&b| b == b'\n') {
            end += raw.len();
            let Some(raw) = raw.strip_suffix(b"\n") else {
                break; // not a line yet
            };
            let mut parser = telnet::Parser::new();
            let line: Vec<u8> = raw
                .iter()
                .copied()
                .filter(|&b| parser.step(b) == Step::Data)
                .collect();
            if line == word || line.strip_suffix(b"\r") == Some(word) {
                return (end, true);
            }
        }
        (input.len(), false)
    }

    fn echo_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'e'),
            Just(b'x'),
            Just(b'i'),
            Just(b't'),
            Just(b'\n'),
            Just(b'\r'),
            Just(0xffu8),
            Just(0xfdu8),
            Just(0xfau8),
            Just(0xf0u8),
            any::<u8>(),
        ];
        let lines = prop_oneof![
            Just(b"exit\n".to_vec()),
            Just(b"exit\r\n".to_vec()),
            Just(b"\xff\xf4\xff\xfd\x06".to_vec()),
            proptest::collection::vec(byte, 0..12),
        ];
        proptest::collection::vec(lines, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_echo(
            input in echo_bytes(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let (n, closes) = reference(b"exit", &input);
            let expected = echoed(&input[..n], closes.then_some(DisconnectReason::Exit));
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for c in at {
                pieces.push(&input[from..c]);
                from = c;
            }
            pieces.push(&input[from..]);
            prop_assert_eq!(run("exit", &[&input], false), expected);
            let split = run("exit", &pieces, false);
            prop_assert_eq!(split, run("exit", &[&input], false));
        }
    }
}
