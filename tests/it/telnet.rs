//! Telnet and keyboards on real sockets (DESIGN.md, "Chat protocol": line
//! endings, backspace/DEL, the Telnet paragraph; issue 9, items 1 and 2).
//!
//! Each test plays a client byte for byte as the real program behaves:
//! Linux `telnet` (line at a time, `IAC IP IAC DO TIMING-MARK` on Ctrl-C,
//! 0x83 of Cyrillic `у` turned into that same sequence until BINARY is
//! agreed), and character-at-a-time clients (Windows `telnet`, PuTTY: one
//! key per packet, `\r\0` or a lone `\r` for Enter, backspace or DEL for
//! typos). Beside them sits an `nc`-style user, who must never see a
//! telnet command. The bytes were taken from a real session through a
//! logging proxy (see `src/telnet.rs`).
//!
//! Waits have deadlines: every read has the read timeout `connect` sets;
//! "nothing else came" is shown by a `/who` round trip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use crate::common::{DEADLINE, Server, read_exact, read_line};
use socket2::{Domain, SockAddr, Socket, Type};

const GREETING: &str = "* welcome to echochat; what is your name?";

const IAC: u8 = 255;
const WILL: u8 = 251;
const DO: u8 = 253;
const WONT: u8 = 252;
const DONT: u8 = 254;
const IP: u8 = 244;
const BINARY: u8 = 0;
const TIMING_MARK: u8 = 6;
/// Ctrl-C in Linux telnet: interrupt, then "tell me when you are done".
const CTRL_C: [u8; 5] = [IAC, IP, IAC, DO, TIMING_MARK];

fn server() -> Server {
    Server::builder().no_echo().start()
}

/// A connection from `127.0.0.{host}` (chat remembers names by IP, so each
/// user has its own).
fn connect_from(addr: SocketAddr, host: u8) -> TcpStream {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    sock.bind(&SockAddr::from(local)).expect("bind source");
    sock.connect(&SockAddr::from(addr)).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// An `nc`-style user: joins with a plain `name\n`.
fn nc_user(server: &Server, host: u8, name: &str) -> TcpStream {
    let mut s = connect_from(server.chat_addr(), host);
    assert_eq!(read_line(&mut s), GREETING);
    s.write_all(format!("{name}\n").as_bytes()).unwrap();
    assert_eq!(read_line(&mut s), format!("* hello, {name}"));
    s
}

/// Sends `/who` and expects its answer as the very next line: whatever
/// arrived before it would fail the comparison.
#[track_caller]
fn expect_who(s: &mut TcpStream, names: &str) {
    s.write_all(b"/who\n").unwrap();
    assert_eq!(read_line(s), format!("* online: {names}"));
}

/// Writes each slice as its own packet, as a client that sends a key as
/// it is pressed does (`TCP_NODELAY` is set; whether the server reads them
/// one by one or together, the answer must be the same).
fn type_keys(s: &mut TcpStream, keys: &[&[u8]]) {
    for key in keys {
        s.write_all(key).unwrap();
    }
}

#[test]
fn ctrl_c_is_removed_and_its_timing_mark_answered() {
    let server = server();
    let mut nc = nc_user(&server, 2, "watcher");
    let mut tn = connect_from(server.chat_addr(), 3);
    assert_eq!(read_line(&mut tn), GREETING);
    tn.write_all(b"olena\r\n").unwrap();
    assert_eq!(read_line(&mut tn), "* hello, olena");
    assert_eq!(read_line(&mut nc), "* olena joined");
    // Ctrl-C typed in the middle of a line, then the rest of the line.
    tn.write_all(b"hel").unwrap();
    tn.write_all(&CTRL_C).unwrap();
    tn.write_all(b"lo\r\n").unwrap();
    // First command from this client: the server asks it for BINARY once,
    // and answers the timing mark (or telnet would discard all output).
    assert_eq!(
        read_exact(&mut tn, 6),
        [IAC, DO, BINARY, IAC, WILL, TIMING_MARK]
    );
    assert_eq!(read_line(&mut nc), "olena: hello", "commands never relayed");
    // Every further Ctrl-C is answered again, and the room keeps working.
    for _ in 0..3 {
        tn.write_all(&CTRL_C).unwrap();
        assert_eq!(read_exact(&mut tn, 3), [IAC, WILL, TIMING_MARK]);
    }
    expect_who(&mut tn, "olena, watcher");
    expect_who(&mut nc, "olena, watcher");
}

#[test]
fn binary_is_agreed_in_both_directions_and_other_options_refused() {
    let server = server();
    let mut tn = connect_from(server.chat_addr(), 3);
    assert_eq!(read_line(&mut tn), GREETING);
    // A client that asks for BINARY both ways (and for ECHO and NAWS).
    tn.write_all(&[
        IAC, DO, BINARY, IAC, WILL, BINARY, IAC, DO, 1, IAC, WILL, 31,
    ])
    .unwrap();
    assert_eq!(
        read_exact(&mut tn, 12),
        [
            IAC, WILL, BINARY, // agreed: the server sends binary
            IAC, DO, BINARY, // agreed: the client sends binary
            IAC, WONT, 1, // no server echo
            IAC, DONT, 31, // no window size
        ]
    );
    // Asking again changes nothing, so nothing is said: the next bytes are
    // the `/who` answer.
    tn.write_all(&[
        IAC, DO, BINARY, IAC, WILL, BINARY, IAC, DO, 1, IAC, WILL, 31,
    ])
    .unwrap();
    tn.write_all("Олена\n/who\n".as_bytes()).unwrap();
    assert_eq!(read_line(&mut tn), "* hello, Олена");
    assert_eq!(read_line(&mut tn), "* online: Олена");
}

/// Linux telnet before BINARY: a line with `у` arrives with `IAC IP IAC DO
/// TIMING-MARK` in place of 0x83 (issue 9). That line is lost (the client
/// really sent no `у`), but the client is asked for BINARY, and once it
/// agrees, Cyrillic names and messages pass and are relayed.
#[test]
fn cyrillic_from_a_telnet_client_joins_and_is_relayed() {
    let server = server();
    let mut nc = nc_user(&server, 2, "watcher");
    let mut tn = connect_from(server.chat_addr(), 3);
    assert_eq!(read_line(&mut tn), GREETING);
    let mut mangled = "привіт ".as_bytes().to_vec();
    mangled.extend_from_slice(&[0xd1]);
    mangled.extend_from_slice(&CTRL_C);
    mangled.extend_from_slice("сім\r\n".as_bytes());
    tn.write_all(&mangled).unwrap();
    assert_eq!(
        read_exact(&mut tn, 6),
        [IAC, DO, BINARY, IAC, WILL, TIMING_MARK]
    );
    assert_eq!(read_line(&mut tn), "! invalid UTF-8, line ignored");
    assert_eq!(read_line(&mut tn), "* what is your name?");
    // telnet agrees, then sends UTF-8 as typed, lines ending in `\n`.
    tn.write_all(&[IAC, WILL, BINARY]).unwrap();
    tn.write_all("Олена\n".as_bytes()).unwrap();
    assert_eq!(read_line(&mut tn), "* hello, Олена");
    assert_eq!(read_line(&mut nc), "* Олена joined");
    tn.write_all("як у вас справи? Марія, Катя, Єва, фото, я\n".as_bytes())
        .unwrap();
    assert_eq!(
        read_line(&mut nc),
        "Олена: як у вас справи? Марія, Катя, Єва, фото, я"
    );
    expect_who(&mut tn, "watcher, Олена");
    // The nc user saw no telnet byte at all: every line above was UTF-8
    // text (read_line would have failed), and the `/who` reply came next.
    expect_who(&mut nc, "watcher, Олена");
}

#[test]
fn backspace_and_del_edit_the_line_being_typed() {
    let server = server();
    let mut nc = nc_user(&server, 2, "watcher");
    let mut putty = connect_from(server.chat_addr(), 3);
    assert_eq!(read_line(&mut putty), GREETING);
    // "hel", x, backspace, "lo", Enter: the screen showed "hello".
    type_keys(
        &mut putty,
        &[b"h", b"e", b"l", b"x", b"\x08", b"l", b"o", b"\r\n"],
    );
    assert_eq!(read_line(&mut putty), "* hello, hello");
    assert_eq!(read_line(&mut nc), "* hello joined");
    // DEL, and a Cyrillic letter (two bytes) erased by one key.
    type_keys(
        &mut putty,
        &[
            b"hi typox",
            b"\x7f",
            b"o ",
            "ж".as_bytes(),
            b"\x08",
            "ок".as_bytes(),
            b"\r\n",
        ],
    );
    assert_eq!(read_line(&mut nc), "hello: hi typoo ок");
    // Erasing everything leaves an empty line: ignored.
    type_keys(&mut putty, &[b"ab", b"\x08\x08", b"\r\n"]);
    expect_who(&mut nc, "hello, watcher");
}

#[test]
fn bare_returns_end_lines() {
    let server = server();
    let mut nc = nc_user(&server, 2, "watcher");
    let mut win = connect_from(server.chat_addr(), 3);
    assert_eq!(read_line(&mut win), GREETING);
    // Windows telnet: one key per packet, Enter as `\r\0`.
    type_keys(&mut win, &[b"w", b"i", b"n", b"\r", b"\0"]);
    assert_eq!(read_line(&mut win), "* hello, win");
    type_keys(&mut win, &[b"o", b"n", b"e", b"\r", b"\0"]);
    assert_eq!(read_line(&mut nc), "* win joined");
    assert_eq!(read_line(&mut nc), "win: one");
    // A raw terminal: a lone `\r`, answered before any further byte comes.
    win.write_all(b"two\r").unwrap();
    assert_eq!(read_line(&mut nc), "win: two");
    // `\r\n`, `\r\0` and `\r` mixed, split anywhere: no empty or extra line.
    win.write_all(b"three\r").unwrap();
    win.write_all(b"\nfour\r\0five\r\r\n").unwrap();
    assert_eq!(read_line(&mut nc), "win: three");
    assert_eq!(read_line(&mut nc), "win: four");
    assert_eq!(read_line(&mut nc), "win: five");
    expect_who(&mut nc, "watcher, win");
    expect_who(&mut win, "watcher, win");
}

/// An `nc` user, who sends no IAC, never receives a telnet command: not at
/// connect, not after lines, commands or a help text.
#[test]
fn a_client_that_never_sends_iac_never_receives_one() {
    let server = server();
    let mut nc = nc_user(&server, 2, "plain");
    nc.write_all(b"hello\r\nsecond line\n/help\n").unwrap();
    let mut seen = Vec::new();
    nc.write_all(b"/who\n").unwrap();
    loop {
        let mut b = [0u8; 1];
        nc.read_exact(&mut b).unwrap();
        seen.push(b[0]);
        if seen.ends_with(b"* online: plain\n") {
            break;
        }
    }
    assert!(!seen.contains(&IAC), "{seen:?}");
}
