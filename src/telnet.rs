//! Telnet (RFC 854) in the byte stream: what a `telnet` client mixes into
//! what its user types, and how the chat service answers it.
//!
//! A `telnet` client is not a plain byte pipe. Byte 255 (IAC, "interpret as
//! command") starts a command: `IAC IP` when the user presses Ctrl-C,
//! `IAC DO TIMING-MARK` right after it (RFC 860: "tell me when you have
//! seen everything before this"; until the answer comes, Linux `telnet`
//! throws away everything the server sends), `IAC WILL X` / `IAC DO X` to
//! negotiate options such as `BINARY` (RFC 856: 8-bit data, which a UTF-8
//! user needs), `IAC SB ... IAC SE` for option parameters, and `IAC IAC`
//! for a literal byte 255. A server that takes those bytes for text breaks
//! the user's line (`! invalid UTF-8`) and, worse, never answers the timing
//! mark, so the user's `telnet` stays silent for good.
//!
//! Two layers, both pure (no sockets, no clock) and bounded (a
//! subnegotiation is never buffered; at most [`SB_MAX_BYTES`] of it are
//! skipped before the parser gives up on it):
//!
//! - [`Parser`]: a few bytes of state that split a stream into data and
//!   commands, across reads. The echo service uses it only to *look past*
//!   commands when it watches for the exit word: echo sends every byte back
//!   unchanged, commands included (RFC 862).
//! - [`TelnetFilter`]: the chat service's filter. It yields the data (what
//!   the user typed) and the reply bytes for the negotiation: `WILL
//!   TIMING-MARK` for every `DO TIMING-MARK`; `BINARY` agreed in both
//!   directions; every other option refused (`WONT`/`DONT`) once. It
//!   answers a request only when the answer changes something (RFC 1143's
//!   rule), so two programs can never bounce the same option back and forth
//!   forever. It never speaks first: a client that sends no IAC (`nc`)
//!   never sees a telnet command. Once the client has sent a whole command,
//!   the filter asks it to send `BINARY` (`DO BINARY`), once: Linux
//!   `telnet` never asks for that itself, and mangles the UTF-8 its user
//!   types without it (see `Negotiation::offer_binary`).
//!   Until the first IAC it costs one `memchr` per read and no memory.
//!
//! Read `codec.rs` next: the data this filter lets through goes to the
//! line decoder.

/// "Interpret as command": the byte that starts every telnet command.
pub const IAC: u8 = 255;
/// `IAC DONT X`: please stop doing option X (or: I refuse your offer).
pub const DONT: u8 = 254;
/// `IAC DO X`: please do option X (or: I accept your offer).
pub const DO: u8 = 253;
/// `IAC WONT X`: I will not do option X.
pub const WONT: u8 = 252;
/// `IAC WILL X`: I offer to do option X.
pub const WILL: u8 = 251;
/// `IAC SB X ... IAC SE`: parameters of option X.
pub const SB: u8 = 250;
/// End of a subnegotiation.
pub const SE: u8 = 240;
/// `IAC IP`: interrupt process (what Ctrl-C becomes).
pub const IP: u8 = 244;
/// `IAC NOP`: no operation.
pub const NOP: u8 = 241;
/// Option 0: 8-bit binary transmission (RFC 856).
pub const BINARY: u8 = 0;
/// Option 6: timing mark (RFC 860).
pub const TIMING_MARK: u8 = 6;

/// The longest subnegotiation skipped while waiting for its `IAC SE`. A
/// client that opens one and never closes it would otherwise make every
/// later byte vanish; past this many bytes the parser treats the
/// subnegotiation as over and reads data again. Real ones (a terminal
/// type, a window size) are a few dozen bytes, and this server refuses
/// every option that has them anyway.
pub const SB_MAX_BYTES: u16 = 512;

/// One of the four negotiation verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Will,
    Wont,
    Do,
    Dont,
}

impl Verb {
    fn from_byte(b: u8) -> Option<Verb> {
        match b {
            WILL => Some(Verb::Will),
            WONT => Some(Verb::Wont),
            DO => Some(Verb::Do),
            DONT => Some(Verb::Dont),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        match self {
            Verb::Will => WILL,
            Verb::Wont => WONT,
            Verb::Do => DO,
            Verb::Dont => DONT,
        }
    }
}

/// A telnet command found in the stream (data bytes are not commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `IAC WILL|WONT|DO|DONT option`.
    Negotiate { verb: Verb, option: u8 },
    /// `IAC SB option ... IAC SE` ended; its parameters were skipped, never
    /// stored. (One cut off at [`SB_MAX_BYTES`] is not reported.)
    Subnegotiation { option: u8 },
    /// Any other two-byte command (`IAC IP`, `IAC AYT`, `IAC NOP`, ...).
    Other(u8),
}

/// What one byte turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A data byte (for `IAC IAC`, the second byte: a literal 255).
    Data,
    /// Part of a command that is not finished yet.
    Pending,
    /// The last byte of a command.
    Command(Command),
}

/// Where the parser is inside a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Between commands: bytes are data.
    #[default]
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`: the option byte comes next.
    Verb(Verb),
    /// After `IAC SB`: the option byte comes next.
    SbOption,
    /// Inside a subnegotiation, `skipped` bytes so far.
    Sb { option: u8, skipped: u16 },
    /// Inside a subnegotiation, after an `IAC` (`SE` ends it, `IAC` is a
    /// literal 255 inside it).
    SbIac { option: u8, skipped: u16 },
}

/// Splits a byte stream into data and telnet commands, one byte at a time,
/// across reads; see the module docs. A few bytes, `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parser {
    state: State,
}

impl Parser {
    pub const fn new() -> Self {
        Parser { state: State::Data }
    }

    /// True between commands, when the next byte is data unless it is IAC.
    pub fn is_idle(&self) -> bool {
        self.state == State::Data
    }

    /// What `b` is, given everything before it.
    pub fn step(&mut self, b: u8) -> Step {
        let (next, step) = match self.state {
            State::Data if b == IAC => (State::Iac, Step::Pending),
            State::Data => (State::Data, Step::Data),
            State::Iac => match b {
                IAC => (State::Data, Step::Data),
                SB => (State::SbOption, Step::Pending),
                _ => match Verb::from_byte(b) {
                    Some(verb) => (State::Verb(verb), Step::Pending),
                    None => (State::Data, Step::Command(Command::Other(b))),
                },
            },
            State::Verb(verb) => (
                State::Data,
                Step::Command(Command::Negotiate { verb, option: b }),
            ),
            State::SbOption => (
                State::Sb {
                    option: b,
                    skipped: 0,
                },
                Step::Pending,
            ),
            State::Sb { skipped, .. } | State::SbIac { skipped, .. } if skipped >= SB_MAX_BYTES => {
                // Too long to be a real subnegotiation: give up on it, and
                // read this byte afresh as data (or the start of a command).
                self.state = State::Data;
                return self.step(b);
            }
            State::Sb { option, skipped } if b == IAC => (
                State::SbIac {
                    option,
                    skipped: skipped + 1,
                },
                Step::Pending,
            ),
            State::Sb { option, skipped } => (
                State::Sb {
                    option,
                    skipped: skipped + 1,
                },
                Step::Pending,
            ),
            State::SbIac { option, .. } if b == SE => (
                State::Data,
                Step::Command(Command::Subnegotiation { option }),
            ),
            // `IAC IAC` inside a subnegotiation is a parameter byte 255;
            // anything else after IAC is a protocol error, skipped alike.
            State::SbIac { option, skipped } => (
                State::Sb {
                    option,
                    skipped: skipped + 1,
                },
                Step::Pending,
            ),
        };
        self.state = next;
        step
    }

    /// Inside a subnegotiation, skips the bytes before the next IAC (at
    /// most up to [`SB_MAX_BYTES`]) at `memchr` speed, as `step` would
    /// have, and says how many it skipped; elsewhere skips nothing.
    pub fn skip_subnegotiation(&mut self, input: &[u8]) -> usize {
        let State::Sb { option, skipped } = self.state else {
            return 0;
        };
        let room = input
            .len()
            .min(usize::from(SB_MAX_BYTES - skipped.min(SB_MAX_BYTES)));
        let n = memchr::memchr(IAC, &input[..room]).unwrap_or(room);
        self.state = State::Sb {
            option,
            // `n <= SB_MAX_BYTES - skipped`, so this stays within u16.
            skipped: skipped + n as u16,
        };
        n
    }

    /// Splits `input` into runs of data (borrowed, never copied) and
    /// commands, in order. `IAC IAC` yields its second byte as a one-byte
    /// run.
    pub fn feed<'a>(&mut self, input: &'a [u8], mut on: impl FnMut(Token<'a>)) {
        let mut i = 0;
        while i < input.len() {
            if self.is_idle() {
                // Fast path: a run of data up to the next IAC.
                let end = memchr::memchr(IAC, &input[i..]).map_or(input.len(), |n| i + n);
                if end > i {
                    on(Token::Data(&input[i..end]));
                }
                i = end;
                if i == input.len() {
                    return;
                }
            }
            i += self.skip_subnegotiation(&input[i..]);
            let Some(&b) = input.get(i) else {
                return;
            };
            match self.step(b) {
                Step::Data => on(Token::Data(&input[i..i + 1])),
                Step::Pending => {}
                Step::Command(c) => on(Token::Command(c)),
            }
            i += 1;
        }
    }
}

/// A piece of parsed input: data, or a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    Data(&'a [u8]),
    Command(Command),
}

/// What the chat service does with a piece of input: hand data to the line
/// decoder, send a reply to this client only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// What the user typed, borrowed from the input.
    Data(&'a [u8]),
    /// Three bytes to send to this client (`IAC verb option`).
    Reply([u8; 3]),
}

/// Where one side of the `BINARY` option stands (RFC 1143 "Q method",
/// reduced to the states this server can reach: it never asks to turn
/// `BINARY` off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Q {
    #[default]
    No,
    Yes,
    /// We asked for it and wait for the answer (see
    /// `Negotiation::offer_binary`).
    WantYes,
}

/// The negotiation memory of a client that has spoken telnet.
#[derive(Debug, Clone, Default)]
struct Negotiation {
    parser: Parser,
    /// Whether the server sends binary (`WILL BINARY` agreed).
    binary_us: Q,
    /// Whether the client sends binary (`DO BINARY` agreed).
    binary_him: Q,
    /// Options the server already refused with `WONT` (bit per option):
    /// a repeated `DO X` is not answered again.
    refused_do: [u64; 4],
    /// Options the server already refused with `DONT`.
    refused_will: [u64; 4],
    /// The server has offered `BINARY` (it does so once, never again even
    /// if refused, so it cannot loop).
    offered_binary: bool,
}

/// The chat service's telnet filter; see the module docs.
///
/// Between reads it holds one pointer; the negotiation memory (about 80
/// bytes) is allocated the first time the client sends an IAC, so `nc`
/// users never pay for it.
#[derive(Debug, Clone, Default)]
pub struct TelnetFilter {
    negotiation: Option<Box<Negotiation>>,
}

impl TelnetFilter {
    /// A filter for a new connection. Allocates nothing.
    pub const fn new() -> Self {
        TelnetFilter { negotiation: None }
    }

    /// Whether the client has sent a telnet command (so the server may
    /// send it one).
    pub fn client_speaks_telnet(&self) -> bool {
        self.negotiation.is_some()
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.negotiation
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<Negotiation>())
    }

    /// Whether `BINARY` is agreed in both directions.
    pub fn is_binary(&self) -> bool {
        self.negotiation
            .as_ref()
            .is_some_and(|n| n.binary_us == Q::Yes && n.binary_him == Q::Yes)
    }

    /// Filters the bytes of one read: `on` gets the data runs (borrowed
    /// from `input`) and the replies, in order.
    pub fn feed<'a>(&mut self, mut input: &'a [u8], mut on: impl FnMut(Piece<'a>)) {
        let negotiation = match &mut self.negotiation {
            Some(n) => n,
            None => {
                // Not a telnet client (yet): one memchr, no state.
                let Some(at) = memchr::memchr(IAC, input) else {
                    if !input.is_empty() {
                        on(Piece::Data(input));
                    }
                    return;
                };
                if at > 0 {
                    on(Piece::Data(&input[..at]));
                }
                input = &input[at..];
                self.negotiation.insert(Box::default())
            }
        };
        let mut parser = negotiation.parser;
        parser.feed(input, |token| match token {
            Token::Data(d) => on(Piece::Data(d)),
            Token::Command(command) => {
                if let Command::Negotiate { verb, option } = command
                    && let Some(reply) = negotiation.answer(verb, option)
                {
                    on(Piece::Reply([IAC, reply.as_byte(), option]));
                }
                // IP, AYT, NOP, subnegotiations: removed, never relayed.
                // The client has spoken telnet: the server may now too.
                if !negotiation.offered_binary {
                    negotiation.offer_binary(|reply| on(Piece::Reply(reply)));
                }
            }
        });
        negotiation.parser = parser;
    }
}

impl Negotiation {
    /// The server's own request that the client send `BINARY` (`IAC DO
    /// BINARY`), once per connection, right after the client's first
    /// command, unless already agreed. Linux `telnet` does not ask for it
    /// by itself, and without it it reads what the user types seven bits at
    /// a time: 0x83, the second byte of Cyrillic `у`, is Ctrl-C (0x03) to
    /// it and becomes `IAC IP`; `я` and `ф` fare no better. Once it agrees
    /// it sends the user's UTF-8 as it is.
    ///
    /// The server does not offer `WILL BINARY` itself (it agrees when
    /// asked): Linux `telnet` shows the server's UTF-8 fine without it,
    /// while with it, it turns off its terminal's output processing, and
    /// every `\n` the server sends moves down without returning to the
    /// left margin.
    fn offer_binary(&mut self, mut send: impl FnMut([u8; 3])) {
        self.offered_binary = true;
        if self.binary_him == Q::No {
            self.binary_him = Q::WantYes;
            send([IAC, DO, BINARY]);
        }
    }

    /// The reply to `IAC verb option`, if one is due.
    fn answer(&mut self, verb: Verb, option: u8) -> Option<Verb> {
        match (verb, option) {
            // RFC 860: a timing mark is answered every time it is asked;
            // it is a question ("have you seen all I sent?"), not a state,
            // so answering it again cannot start a loop.
            (Verb::Do, TIMING_MARK) => Some(Verb::Will),
            (Verb::Do, BINARY) => agree(&mut self.binary_us, Verb::Will),
            (Verb::Will, BINARY) => agree(&mut self.binary_him, Verb::Do),
            (Verb::Dont, BINARY) => disagree(&mut self.binary_us, Verb::Wont),
            (Verb::Wont, BINARY) => disagree(&mut self.binary_him, Verb::Dont),
            (Verb::Do, _) => refuse(&mut self.refused_do, option, Verb::Wont),
            (Verb::Will, _) => refuse(&mut self.refused_will, option, Verb::Dont),
            // The option is off on our side already: nothing changes, so
            // nothing is said (RFC 854: do not acknowledge a request to
            // enter a mode one is already in).
            (Verb::Wont | Verb::Dont, _) => None,
        }
    }
}

/// The peer asks to turn `BINARY` on: agree unless it is on already (or
/// was our own request, which this answers).
fn agree(q: &mut Q, reply: Verb) -> Option<Verb> {
    match std::mem::replace(q, Q::Yes) {
        Q::No => Some(reply),
        Q::Yes | Q::WantYes => None,
    }
}

/// The peer turns `BINARY` off (or refuses our offer): acknowledge a change
/// from on, stay silent otherwise.
fn disagree(q: &mut Q, reply: Verb) -> Option<Verb> {
    match std::mem::replace(q, Q::No) {
        Q::Yes => Some(reply),
        Q::No | Q::WantYes => None,
    }
}

/// Refuses `option` the first time it is asked for.
fn refuse(refused: &mut [u64; 4], option: u8, reply: Verb) -> Option<Verb> {
    if bit(refused, option) {
        return None;
    }
    refused[usize::from(option / 64)] |= 1 << (option % 64);
    Some(reply)
}

fn bit(set: &[u64; 4], option: u8) -> bool {
    set[usize::from(option / 64)] & (1 << (option % 64)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Data and replies of `chunks` fed in order to one filter.
    fn filter(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut f = TelnetFilter::new();
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        for chunk in chunks {
            f.feed(chunk, |p| match p {
                Piece::Data(d) => data.extend_from_slice(d),
                Piece::Reply(r) => replies.extend_from_slice(&r),
            });
        }
        (data, replies)
    }

    /// Same result for the whole input, every two-piece split and byte by
    /// byte.
    #[track_caller]
    fn check_all_splits(input: &[u8], data: &[u8], replies: &[u8]) {
        let expected = (data.to_vec(), replies.to_vec());
        assert_eq!(filter(&[input]), expected, "whole");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(filter(&[a, b]), expected, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(filter(&bytes), expected, "byte by byte");
    }

    /// The server's own offer, after the client's first command.
    const OFFER: [u8; 3] = [IAC, DO, BINARY];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn plain_bytes_pass_untouched_and_nothing_is_said() {
        let all_but_iac: Vec<u8> = (0..255).collect();
        check_all_splits(&all_but_iac, &all_but_iac, b"");
        let mut f = TelnetFilter::new();
        f.feed(b"hello\r\n", |_| {});
        assert!(!f.client_speaks_telnet());
        assert_eq!(f.heap_bytes(), 0);
        // IAC IAC is data, not a command: still nothing said.
        check_all_splits(b"x\xff\xffy", b"x\xffy", b"");
    }

    #[test]
    fn ctrl_c_from_linux_telnet_is_removed_and_the_timing_mark_answered() {
        // What issue 9 captured: "ту", with IAC IP IAC DO TIMING-MARK where
        // the second byte of у should be. The answer, then BINARY offered.
        check_all_splits(
            b"\xd1\x82\xd1\xff\xf4\xff\xfd\x06\r\n",
            b"\xd1\x82\xd1\r\n",
            &cat(&[&OFFER, &[IAC, WILL, TIMING_MARK]]),
        );
        // Every Ctrl-C gets its answer, or telnet stays deaf; the offer is
        // made once.
        check_all_splits(
            b"\xff\xfd\x06a\xff\xfd\x06",
            b"a",
            &cat(&[&[IAC, WILL, TIMING_MARK], &OFFER, &[IAC, WILL, TIMING_MARK]]),
        );
    }

    #[test]
    fn binary_is_agreed_both_ways_once() {
        // The client asks first: agreed, and the other direction offered.
        check_all_splits(
            &[
                IAC, WILL, BINARY, IAC, DO, BINARY, IAC, WILL, BINARY, IAC, DO, BINARY,
            ],
            b"",
            &[IAC, DO, BINARY, IAC, WILL, BINARY],
        );
        let mut f = TelnetFilter::new();
        f.feed(&[IAC, WILL, BINARY, IAC, DO, BINARY], |_| {});
        assert!(f.is_binary());
        // Turning it off is acknowledged once, then on again is agreed.
        check_all_splits(
            &[
                IAC, DO, BINARY, IAC, DONT, BINARY, IAC, DONT, BINARY, IAC, DO, BINARY,
            ],
            b"",
            &[
                IAC, WILL, BINARY, IAC, DO, BINARY, IAC, WONT, BINARY, IAC, WILL, BINARY,
            ],
        );
    }

    #[test]
    fn other_options_are_refused_once() {
        // A PuTTY-like opening: WILL NAWS, WILL TSPEED, WILL TTYPE, WILL
        // NEW-ENVIRON, DO ECHO, WILL LINEMODE, DO SGA; then the same again.
        let putty = [
            IAC, WILL, 31, IAC, WILL, 32, IAC, WILL, 24, IAC, WILL, 39, IAC, DO, 1, IAC, WILL, 34,
            IAC, DO, 3,
        ];
        let refusals = [
            IAC, DONT, 31, IAC, DO, BINARY, IAC, DONT, 32, IAC, DONT, 24, IAC, DONT, 39, IAC, WONT,
            1, IAC, DONT, 34, IAC, WONT, 3,
        ];
        let mut twice = putty.to_vec();
        twice.extend_from_slice(&putty);
        twice.extend_from_slice(b"name\r\n");
        check_all_splits(&twice, b"name\r\n", &refusals);
        // WONT/DONT for an option that is off needs no answer (and a DONT
        // BINARY right after the offer is its refusal, not a change).
        check_all_splits(
            &[IAC, WONT, 31, IAC, DONT, 1, IAC, DONT, BINARY],
            b"",
            &OFFER,
        );
    }

    #[test]
    fn other_commands_and_subnegotiations_are_removed() {
        check_all_splits(
            b"a\xff\xf1b\xff\xf6c\xff\xfa\x18\x00xterm\xff\xff\xff\xf0d",
            b"abcd",
            &OFFER,
        );
    }

    #[test]
    fn an_unclosed_subnegotiation_is_given_up_on() {
        let mut input = vec![IAC, SB, 24];
        input.extend(std::iter::repeat_n(b'z', usize::from(SB_MAX_BYTES)));
        input.extend_from_slice(b"back\r\n");
        check_all_splits(&input, b"back\r\n", b"");
    }

    /// Replies of one `feed`.
    fn replies(f: &mut TelnetFilter, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        f.feed(input, |p| {
            if let Piece::Reply(r) = p {
                out.extend_from_slice(&r);
            }
        });
        out
    }

    #[test]
    fn binary_is_offered_once_after_the_first_command() {
        let mut f = TelnetFilter::new();
        assert_eq!(
            replies(&mut f, &[IAC, DO, TIMING_MARK]),
            cat(&[&[IAC, WILL, TIMING_MARK], &OFFER])
        );
        assert!(f.client_speaks_telnet());
        // The client's agreement is the answer: no reply to it. Its own
        // request for the other direction is agreed.
        assert_eq!(
            replies(&mut f, &[IAC, WILL, BINARY, IAC, DO, BINARY]),
            [IAC, WILL, BINARY]
        );
        assert!(f.is_binary());
        assert_eq!(replies(&mut f, &[IAC, IP]), b"", "not offered again");
        // A client that refuses is not answered, nor asked again.
        let mut g = TelnetFilter::new();
        assert_eq!(replies(&mut g, &[IAC, IP]), OFFER);
        assert_eq!(replies(&mut g, &[IAC, WONT, BINARY]), b"");
        assert!(!g.is_binary());
        assert_eq!(replies(&mut g, &[IAC, IP, IAC, NOP]), b"");
    }

    #[test]
    fn data_is_borrowed_not_copied() {
        let input = b"abc\xff\xf4def";
        let range = input.as_ptr_range();
        let mut f = TelnetFilter::new();
        f.feed(input, |p| {
            if let Piece::Data(d) = p {
                assert!(range.contains(&d.as_ptr()));
            }
        });
    }

    /// The parser alone, byte by byte, against `feed`.
    #[test]
    fn parser_steps_agree_with_feed() {
        let input = b"a\xff\xfd\x06b\xff\xffc\xff\xfa\x01\xff\xff\xff\xf0\xff\xf4";
        let mut p = Parser::new();
        let mut stepped = Vec::new();
        for &b in input {
            match p.step(b) {
                Step::Data => stepped.push(Token::Data(&[0][..])),
                Step::Pending => {}
                Step::Command(c) => stepped.push(Token::Command(c)),
            }
        }
        let mut fed = Vec::new();
        Parser::new().feed(input, |t| match t {
            // One marker per data byte, to compare with `step`.
            Token::Data(d) => fed.extend(std::iter::repeat_n(Token::Data(&[0][..]), d.len())),
            c => fed.push(c),
        });
        assert_eq!(fed, stepped);
        assert_eq!(
            stepped
                .iter()
                .filter(|t| matches!(t, Token::Command(_)))
                .collect::<Vec<_>>(),
            vec![
                &Token::Command(Command::Negotiate {
                    verb: Verb::Do,
                    option: TIMING_MARK
                }),
                &Token::Command(Command::Subnegotiation { option: 1 }),
                &Token::Command(Command::Other(IP)),
            ]
        );
    }

    fn telnet_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => Just(IAC),
            1 => Just(SB),
            1 => Just(SE),
            2 => WILL..=DONT,
            1 => Just(BINARY),
            1 => Just(TIMING_MARK),
            3 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..300)
    }

    proptest! {
        /// Any split of the same input gives the same data and replies, no
        /// reply without a command first, and hardly more reply bytes than
        /// input bytes (no amplification).
        #[test]
        fn any_split_gives_the_same_output(
            input in telnet_bytes(),
            cut1 in any::<prop::sample::Index>(),
            cut2 in any::<prop::sample::Index>(),
        ) {
            let whole = filter(&[&input]);
            let (mut a, mut b) = (cut1.index(input.len() + 1), cut2.index(input.len() + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            prop_assert_eq!(&filter(&[&input[..a], &input[a..b], &input[b..]]), &whole);
            // The offer (6 bytes) is the only reply bigger than its request.
            prop_assert!(whole.1.len() <= input.len() + OFFER.len());
            if !input.contains(&IAC) {
                prop_assert_eq!(&whole.0, &input);
                prop_assert!(whole.1.is_empty());
            }
            prop_assert!(whole.0.len() <= input.len());
        }
    }
}
