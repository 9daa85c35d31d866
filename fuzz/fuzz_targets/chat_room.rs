//! The chat room fed arbitrary bytes: several users, UDP members, slow
//! readers, resets, accounts (with the worker thread's answers), time and
//! a shutdown, in any order. The pretend reactor
//! and every check are the chat property tests' own
//! (`src/service/chat/proptests/sim.rs`, read its docs): whole filtered
//! lines only, no forged line, names unique by their key, nothing sent
//! after a close, no queue over `--max-backlog` left open, no spinning
//! timer. Here libFuzzer picks the steps, for as long as one likes.
//!
//! The input is read as a setup (four bytes), then steps: one byte says
//! which (its low four bits) and for whom (its high four bits), and the
//! bytes after it say the rest (see `decode`). Typed lines come raw or from
//! a small table of names and commands, so the fuzzer reaches `/nick`
//! races and look-alike names without having to guess them; the
//! dictionary `fuzz/dicts/chat_room.dict` helps it with the raw ones.
//! `FUZZ_SHOW=1` prints the session a replayed input decodes to.

#![no_main]

use libfuzzer_sys::fuzz_target;

// `sim.rs` names the library as `crate::...` (it is compiled inside the
// library too); these make those paths resolve here.
use echochat::{auth, event, names, service, telnet};

#[allow(dead_code)] // the property tests use parts the target does not
#[path = "../../src/service/chat/proptests/sim.rs"]
mod sim;

use echochat::service::rate::RateLimit;
use sim::{Setup, Sim, Step};
use std::time::Duration;

/// Look-alikes, case, invalid names: what makes `/nick` and joins collide.
const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "\u{430}lice",
    "bob",
    "\u{ff42}\u{ff4f}\u{ff42}",
    "K",
    "\u{212a}",
    "\u{131}",
    "I",
    "x\u{202e}y",
    "\u{3164}",
    "a b",
];

/// Lines to type; `{}` is a name from `NAMES`.
const LINES: &[&str] = &[
    "{}\n",
    "/nick {}\n",
    "/msg {} hi \u{1b}[2J\u{202e}\n",
    "/who\n",
    "/help\n",
    "/quit\n",
    "exit\n",
    "hello \u{2028} {}\r\n",
    // Accounts: `sim::PASSWORDS`, and the last token the room gave out.
    "correct.horse\n",
    "/register correct.horse\n",
    "/passwd correct.horse battery.staple\n",
    "/token {token}\n",
    "/logout\n",
];

/// What a `telnet` client mixes in: DO TIMING-MARK, WILL BINARY, a
/// subnegotiation, a literal 255.
const TELNET: &[&[u8]] = &[
    &[255, 253, 6],
    &[255, 251, 0],
    &[255, 250, 24, 0, b'x', 255, 240],
    &[255, 255],
];

/// Reads the input front to back; out of bytes, every read is 0.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// A length byte, then that many bytes (fewer at the end).
    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte()).min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken.to_vec()
    }

    /// A line from `LINES` with a name from `NAMES`.
    fn line(&mut self) -> Vec<u8> {
        let line = LINES[usize::from(self.byte()) % LINES.len()];
        let name = NAMES[usize::from(self.byte()) % NAMES.len()];
        line.replace("{}", name).into_bytes()
    }

    fn telnet(&mut self) -> Vec<u8> {
        TELNET[usize::from(self.byte()) % TELNET.len()].to_vec()
    }
}

fn decode(data: &[u8]) -> (Setup, Vec<Step>) {
    let mut input = Input(data);
    let (a, b, c, d) = (input.byte(), input.byte(), input.byte(), input.byte());
    let setup = Setup {
        max_line_bytes: [8, 64, 4096][usize::from(a % 3)],
        max_backlog: 200 + usize::from(b) * 16,
        rate: if c & 1 == 0 {
            Setup::roomy().rate
        } else {
            RateLimit {
                per_second: 2.0,
                burst: 3.0,
            }
        },
        udp_timeout: (c & 2 != 0).then(|| Duration::from_millis(1000 + u64::from(d) * 20)),
        udp_max_members: 1 + usize::from(c >> 2) % 3,
        accounts: c & 0x80 != 0,
    };
    let mut steps = Vec::new();
    while !input.0.is_empty() {
        let op = input.byte();
        let who = usize::from(op >> 4);
        let peer = op >> 4;
        steps.push(match op & 15 {
            0 => Step::Connect { ip: peer },
            1..=4 => Step::Recv {
                conn: who,
                bytes: input.bytes(),
            },
            5 => Step::Work {
                jobs: input.byte() % 4,
            },
            6 => Step::Recv {
                conn: who,
                bytes: input.line(),
            },
            7 => Step::Recv {
                conn: who,
                bytes: input.telnet(),
            },
            8 => Step::Eof { conn: who },
            9 => Step::Reset { conn: who },
            10 => Step::Slow { conn: who },
            11 => Step::Datagram {
                peer,
                bytes: input.bytes(),
            },
            12 => {
                let name = NAMES[usize::from(input.byte()) % NAMES.len()];
                Step::Datagram {
                    peer,
                    bytes: format!("/join {name}\n").into_bytes(),
                }
            }
            13 => Step::Console(String::from_utf8_lossy(&input.bytes()).into_owned()),
            14 => Step::Wait {
                ms: u32::from(input.byte()) * 20,
            },
            _ if who == 0 => Step::Shutdown,
            _ => Step::Connect { ip: peer },
        });
    }
    (setup, steps)
}

fuzz_target!(|data: &[u8]| {
    let (setup, steps) = decode(data);
    // Replaying a crash: `FUZZ_SHOW=1 cargo fuzz run ... chat_room CRASH`
    // prints the session as steps.
    if std::env::var_os("FUZZ_SHOW").is_some() {
        eprintln!("{setup:#?}\n{steps:#?}");
    }
    Sim::new(setup).run(&steps);
});
