//! Property tests of the chat room: random users, random bytes, and the
//! room's rules checked after every step.
//!
//! The unit tests in `chat.rs` show the rules one example at a time; these
//! throw generated sessions at the room — joins under look-alike names,
//! `/nick` races, whispers, telnet commands, invalid UTF-8, control and
//! bidi characters, over-long lines, UDP members, clients that stop
//! reading, resets, rate limits, accounts (registering, passwords, tokens,
//! lines typed while a hash is out), a shutdown — and check what must hold
//! whatever happens. The pretend reactor and the checks are in `sim.rs`
//! (read its docs for the list); the `chat_room` fuzz target runs the same
//! checks on bytes from libFuzzer for as long as one likes.
//!
//! Two properties:
//! - **any split**: each `recv` cut into smaller reads (in the same turn,
//!   as the reactor reads a socket until it is empty) gives every user
//!   exactly the same bytes and the log the same events (TCP may deliver
//!   a line in any number of pieces; `\r\n` and telnet commands included);
//! - **invariants**: for any sequence of steps, the checks of `sim.rs`
//!   hold, and the room's private maps agree with each other.
//!
//! `PROPTEST_CASES=5000 cargo test --lib proptests` runs more cases than
//! the default (kept small so `cargo test` stays quick).

mod sim;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{ChatRoom, Stage};
use crate::names::name_key;
use crate::service::rate::RateLimit;
use crate::telnet::{BINARY, DO, IAC, IP, SB, SE, TIMING_MARK, WILL};
use sim::{Setup, Sim, Step};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 128;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Names that collide: case, look-alikes from other scripts, fullwidth
/// forms, Kelvin sign, dotless i; and names that must be refused.
const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "\u{430}lice", // Cyrillic а
    "bob",
    "\u{ff42}\u{ff4f}\u{ff42}", // fullwidth ｂｏｂ
    "K",
    "\u{212a}", // KELVIN SIGN
    "\u{131}",  // dotless ı
    "I",
    "Олена_2-я",
    "x\u{202e}y",
    "\u{3164}",
    "a b",
    "a\u{301}\u{301}\u{301}",
    "thirty-three-characters-long-name",
];

/// What a user of accounts types (see `sim::PASSWORDS`; `{token}` is the
/// last token the room gave anyone).
const ACCOUNT_LINES: &[&str] = &[
    "correct.horse",
    "battery.staple",
    "/register correct.horse",
    "/passwd correct.horse battery.staple",
    "/passwd battery.staple correct.horse",
    "/token {token}",
    "/logout",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "[a-c]{1,3}",
    ]
}

/// Text with everything the filter must take out, and what it must keep.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::char::range('a', 'e'),
        1 => prop::sample::select(vec![
            ' ', '\t', ':', '/', '*', '!', '\x1b', '\x07', '\x7f', '\u{85}', '\u{9b}',
            '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{2028}',
            '\u{2029}', 'й', '🙂', '\u{301}', '\u{3000}', '\u{feff}',
        ]),
    ];
    prop::collection::vec(c, 0..12).prop_map(String::from_iter)
}

/// One line's content: what a user would type, and what an attacker would.
fn typed() -> impl Strategy<Value = Vec<u8>> {
    let command = prop::sample::select(vec![
        "/who",
        "/WHO",
        "/help",
        "/quit",
        "exit",
        "/frob",
        "/nick",
        "/msg",
        "/register short",
        "/token 00",
    ]);
    let account = prop::sample::select(ACCOUNT_LINES);
    prop_oneof![
        3 => name().prop_map(String::into_bytes),
        3 => text().prop_map(String::into_bytes),
        2 => name().prop_map(|n| format!("/nick {n}").into_bytes()),
        2 => (name(), text()).prop_map(|(n, t)| format!("/msg {n} {t}").into_bytes()),
        2 => command.prop_map(|c| c.as_bytes().to_vec()),
        3 => account.prop_map(|c| c.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..16),
        1 => prop::sample::select(vec![
            vec![0xc3, 0x28], vec![0x80], vec![0xe2, 0x80], vec![0xed, 0xa0, 0x80], vec![0xc0, 0xaf],
        ]),
        1 => (60usize..80).prop_map(|n| vec![b'x'; n]),
    ]
}

/// Telnet commands a `telnet` client mixes in.
fn telnet() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![IAC, DO, TIMING_MARK],
        vec![IAC, WILL, BINARY],
        vec![IAC, DO, BINARY],
        vec![IAC, WILL, 24],
        vec![IAC, SB, 24, 0, b'x', IAC, SE],
        vec![IAC, SB, 31, 0],
        vec![IAC, IAC],
        vec![IAC, IP],
        vec![IAC],
    ])
}

fn ending() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![&b"\n"[..], b"\r\n", b"\r", b"\r\0", b"\x08\n", b""])
}

/// What one `recv` holds: a few pieces of lines and telnet commands.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        5 => (typed(), ending()).prop_map(|(mut t, e)| {
            t.extend_from_slice(e);
            t
        }),
        1 => telnet(),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|v| v.concat())
}

fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => name().prop_map(|n| format!("/join {n}\n").into_bytes()),
        3 => typed(),
        1 => Just(b"/leave".to_vec()),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let conn = 0usize..8;
    prop_oneof![
        3 => (0u8..5).prop_map(|ip| Step::Connect { ip }),
        12 => (conn.clone(), bytes()).prop_map(|(conn, bytes)| Step::Recv { conn, bytes }),
        // One whole line that moves a session on: a free name, or a step
        // of registering and logging in (rare among random lines).
        4 => (conn.clone(), prop::sample::select(ACCOUNT_LINES).prop_union(
            prop::sample::select(&["alice", "bob", "carol"][..]),
        ))
            .prop_map(|(conn, line)| Step::Recv {
                conn,
                bytes: format!("{line}\n").into_bytes(),
            }),
        1 => conn.clone().prop_map(|conn| Step::Eof { conn }),
        1 => conn.clone().prop_map(|conn| Step::Reset { conn }),
        // Idle: chat says `* disconnected: idle for ...` and leaves the
        // room before the close, so that notice is the user's last line.
        1 => conn.clone().prop_map(|conn| Step::Idle { conn }),
        2 => conn.prop_map(|conn| Step::Slow { conn }),
        2 => (0u8..3, datagram()).prop_map(|(peer, bytes)| Step::Datagram { peer, bytes }),
        1 => text().prop_map(Step::Console),
        2 => (0u32..3000).prop_map(|ms| Step::Wait { ms }),
        3 => (1u8..4).prop_map(|jobs| Step::Work { jobs }),
    ]
}

/// Steps of sessions about accounts: joining, registering, logging in
/// with a password or a token, changing it, typing while a hash is out,
/// leaving meanwhile.
fn account_step() -> impl Strategy<Value = Step> {
    let conn = 0usize..3;
    let line = prop_oneof![
        // The password at the prompt must come next to be tried at all.
        3 => Just("correct.horse"),
        3 => prop::sample::select(ACCOUNT_LINES),
        3 => prop::sample::select(&["alice", "bob", "hello"][..]),
        1 => Just("/quit"),
    ];
    prop_oneof![
        2 => (0u8..3).prop_map(|ip| Step::Connect { ip }),
        8 => (conn.clone(), line).prop_map(|(conn, line)| Step::Recv {
            conn,
            bytes: format!("{line}\n").into_bytes(),
        }),
        1 => (conn.clone(), bytes()).prop_map(|(conn, bytes)| Step::Recv { conn, bytes }),
        4 => (1u8..3).prop_map(|jobs| Step::Work { jobs }),
        1 => (0u32..70_000).prop_map(|ms| Step::Wait { ms }),
        1 => conn.clone().prop_map(|conn| Step::Eof { conn }),
        1 => conn.clone().prop_map(|conn| Step::Reset { conn }),
        1 => conn.prop_map(|conn| Step::Slow { conn }),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    let rate = prop_oneof![
        Just(Setup::roomy().rate),
        Just(RateLimit {
            per_second: 2.0,
            burst: 3.0
        }),
    ];
    (
        prop::sample::select(vec![8usize, 64, 4096]),
        200usize..3000,
        rate,
        prop::option::of(1000u64..5000),
        1usize..4,
        any::<bool>(),
    )
        .prop_map(
            |(max_line, backlog, rate, udp_ms, udp_max, accounts)| Setup {
                max_line_bytes: max_line,
                max_backlog: backlog,
                rate,
                udp_timeout: udp_ms.map(std::time::Duration::from_millis),
                udp_max_members: udp_max,
                accounts,
            },
        )
}

/// What `sim.rs` cannot see from outside: the room's maps agree, and
/// per-connection buffers stay within their limits.
fn check_internals(chat: &ChatRoom, max_line_bytes: usize) {
    for (key, conn) in &chat.online {
        let Some(member) = chat.members.get(conn) else {
            panic!("{key:?} online for a connection the room forgot");
        };
        let Stage::Joined { name } = &member.stage else {
            panic!("{key:?} online for a member at {:?}", member.stage);
        };
        assert_eq!(&*name_key(name), &**key, "online under another key");
    }
    let joined = chat
        .members
        .values()
        .filter(|m| matches!(m.stage, Stage::Joined { .. }))
        .count();
    assert_eq!(joined, chat.online.len(), "joined members not online");
    for member in chat.members.values() {
        assert!(member.decoder.buffered_bytes() <= max_line_bytes);
        assert!(member.telnet.heap_bytes() <= 256, "telnet state grew");
    }
    assert!(chat.names.len() <= 8, "names memory over its bound");
}

/// `bytes` cut at `cuts` (positions in any order, repeats allowed).
fn split(bytes: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for c in at {
        pieces.push(bytes[from..c].to_vec());
        from = c;
    }
    pieces.push(bytes[from..].to_vec());
    pieces
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_gives_the_same_room(
        script in prop::collection::vec(
            (0usize..4, bytes(), prop::collection::vec(any::<Index>(), 0..4)),
            1..24,
        ),
        eof in prop::option::of(0usize..4),
    ) {
        let connect = (0u8..4).map(|ip| Step::Connect { ip });
        let mut whole: Vec<Step> = connect.clone().collect();
        let mut cut: Vec<Step> = connect.collect();
        for (conn, bytes, cuts) in &script {
            // A `{token}` cut in two would no longer be one.
            let bytes = sim::replace(bytes, b"{token}", b"0");
            whole.push(Step::Recv { conn: *conn, bytes: bytes.clone() });
            cut.push(Step::Reads { conn: *conn, pieces: split(&bytes, cuts) });
        }
        if let Some(conn) = eof {
            whole.push(Step::Eof { conn });
            cut.push(Step::Eof { conn });
        }
        let mut a = Sim::new(Setup::roomy());
        a.run(&whole);
        let mut b = Sim::new(Setup::roomy());
        b.run(&cut);
        prop_assert_eq!(a.transcript(), b.transcript());
    }

    #[test]
    fn the_room_keeps_its_rules(
        setup in setup(),
        mut steps in prop::collection::vec(step(), 1..80),
        shutdown in any::<bool>(),
    ) {
        if shutdown {
            steps.push(Step::Shutdown);
        }
        let max_line = setup.max_line_bytes;
        let mut sim = Sim::new(setup);
        for step in &steps {
            sim.step(step);
            check_internals(&sim.chat, max_line);
        }
    }

    #[test]
    fn accounts_keep_the_rules(
        mut setup in setup(),
        steps in prop::collection::vec(account_step(), 1..80),
    ) {
        setup.accounts = true;
        setup.max_line_bytes = 4096;
        setup.rate = Setup::roomy().rate; // a paused user stalls the story
        let mut sim = Sim::new(setup);
        for step in &steps {
            sim.step(step);
            check_internals(&sim.chat, 4096);
        }
    }
}

/// Found by the `chat_room` fuzz target: a token (or a password, whose
/// answer comes back later) logged in under a name a UDP member had
/// taken meanwhile, and two users were called `alice`.
#[test]
fn a_login_cannot_take_a_udp_members_name() {
    let recv = |conn, line: &str| Step::Recv {
        conn,
        bytes: format!("{line}\n").into_bytes(),
    };
    let udp_alice = Step::Datagram {
        peer: 0,
        bytes: b"/join alice\n".to_vec(),
    };
    let mut setup = Setup::roomy();
    setup.accounts = true;
    let registered = [
        Step::Connect { ip: 0 },
        recv(0, "alice"),
        recv(0, "/register correct.horse"),
        Step::Work { jobs: 1 },
        Step::Reset { conn: 0 }, // alice is free again, and registered
        Step::Connect { ip: 1 },
    ];
    // By token: the name is checked when the token is given.
    let mut sim = Sim::new(setup.clone());
    sim.run(&registered);
    sim.run(&[udp_alice.clone(), recv(0, "/token {token}")]);
    assert_eq!(sim.chat.online(), 0, "alice over TCP beside alice over UDP");
    // By password: the name was free when asked, taken when the hash
    // came back.
    let mut sim = Sim::new(setup);
    sim.run(&registered);
    sim.run(&[recv(0, "alice"), recv(0, "correct.horse"), udp_alice]);
    sim.step(&Step::Work { jobs: 1 });
    assert_eq!(sim.chat.online(), 0, "alice over TCP beside alice over UDP");
}

/// Found by the `chat_room` fuzz target: the answer to a job came back
/// for a user the room had just dropped for backlog (the reactor hands
/// over every waiting answer while the connection is still closing), and
/// the room answered it, or could have let it join again.
#[test]
fn an_answer_for_a_dropped_user_is_ignored() {
    let recv = |line: &str| Step::Recv {
        conn: 0,
        bytes: format!("{line}\n").into_bytes(),
    };
    let mut setup = Setup::roomy();
    setup.accounts = true;
    setup.max_backlog = 200;
    let mut sim = Sim::new(setup);
    sim.run(&[
        Step::Connect { ip: 0 },
        recv("I"),
        recv("/register correct.horse"),
        Step::Slow { conn: 0 },
        // Held until the first answer; then it starts the second job.
        recv("/passwd correct.horse battery.staple"),
        // `* Alice joined` brings the slow reader near its limit.
        Step::Datagram {
            peer: 1,
            bytes: b"/join Alice\n".to_vec(),
        },
        // Both answers in one turn: the first drops the user for backlog.
        Step::Work { jobs: 2 },
    ]);
    assert_eq!(sim.chat.connections(), 0);
}
