//! Integration tests of the chat service: the real `echochat serve` binary,
//! real TCP sockets on loopback, one server per test (port 0, its own temp
//! log dir and names file).
//!
//! Each test user connects from its own loopback address (`127.0.0.N`; see
//! `common/users.rs`): chat remembers names by client IP.
//!
//! Nothing here sleeps and hopes. A user's next line is read with the read
//! timeout `connect` sets, so a missing line fails the test; "nothing else
//! arrived" is shown by a `/who` round trip (the reply must be the very next
//! line); server-side facts are awaited in the log (`wait_log`). Most tests
//! end with `server.finish()`, which stops the server with SIGTERM and
//! checks that every line of its log is well-formed logfmt.
//!
//! Read `common/` for the harness, and `src/service/chat.rs` for the
//! choices made where DESIGN.md is silent.

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use crate::common::*;

const ASK_AGAIN: &str = "* what is your name?";
const SHUTTING_DOWN: &str = "* server shutting down";

/// Waits until the log shows `bytes` received in total on connection `conn`.
/// The names file once it holds every line of `want`: the server saves it
/// off the hot path, at most once a second, so a test waits for it.
#[track_caller]
fn wait_names(path: &std::path::Path, want: &[&str]) -> String {
    let mut text = String::new();
    wait_until(&format!("{want:?} in the names file"), || {
        text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        want.iter().all(|w| text.lines().any(|l| l == *w))
    });
    text
}

#[track_caller]
fn wait_received(server: &Server, conn: u64, bytes: usize) {
    let conn = conn.to_string();
    wait_until(&format!("conn {conn} to receive {bytes} bytes"), || {
        let total: usize = server
            .events()
            .iter()
            .filter(|e| e.is("recv", "conn", &conn))
            .filter_map(|e| e.get("bytes")?.parse::<usize>().ok())
            .sum();
        total >= bytes
    });
}

/// The `disconnect` line of a user's connection.
#[track_caller]
fn wait_disconnect_of(server: &Server, u: &User) -> LogLine {
    server.wait_disconnect(server.conn_of(&u.s))
}

// ---------------------------------------------------------------------------
// Rule 1: greeting, names, welcome back
// ---------------------------------------------------------------------------

#[test]
fn name_rules_bad_or_taken_names_ask_again_then_hello() {
    let server = Server::builder().no_echo().start();
    let mut alice = User::join(&server, 2, "alice", &mut []);
    let mut u = User::at_prompt(&server, 3);
    let too_long = "n".repeat(33);
    for bad in [
        " ",
        "two words",
        "bang!",
        "dot.ted",
        too_long.as_str(),
        "esc\x1b[31m",
        "c1\u{9b}x",
        "tab\tinside",
    ] {
        u.send(bad);
        let err = u.expect_prefix("! ");
        assert!(err.len() > 2, "the error says why: {err:?}");
        u.expect(ASK_AGAIN);
    }
    // Taken, whatever the case.
    for taken in ["alice", "ALICE", "Alice"] {
        u.send(taken);
        u.expect_prefix("! ");
        u.expect(ASK_AGAIN);
    }
    // 32 characters of letters, digits, `_` and `-` is fine.
    let longest = format!("{}_-9", "b".repeat(29));
    assert_eq!(longest.chars().count(), 32);
    u.send(&longest);
    u.expect(&format!("* hello, {longest}"));
    alice.expect(&format!("* {longest} joined"));
    // The room saw nothing of the failed attempts.
    assert_eq!(alice.who(), format!("* online: alice, {longest}"));
    // The name is remembered for the IP.
    wait_names(
        &server.log_dir().join("names.tsv"),
        &["127.0.0.2\talice", &format!("127.0.0.3\t{longest}")],
    );
    server.finish();
}

#[test]
fn lone_exit_at_the_name_prompt_disconnects() {
    let server = Server::builder().no_echo().start();
    let mut u = User::at_prompt(&server, 2);
    u.send("exit");
    u.expect_eof();
    let line = wait_disconnect_of(&server, &u);
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
    // `exit` with more around it is a (bad) name candidate, not a quit.
    let mut v = User::at_prompt(&server, 3);
    v.send("exit now");
    v.expect_prefix("! ");
    v.expect(ASK_AGAIN);
    v.send("exit");
    v.expect_eof();
    server.finish();
}

#[test]
fn welcome_back_by_ip_only_when_the_remembered_name_is_free() {
    let server = Server::builder().no_echo().start();
    let mut bob = User::join(&server, 3, "bob", &mut []);
    let mut alice = User::join(&server, 2, "alice", &mut [&mut bob]);
    alice.send("/quit");
    alice.expect("* bye, alice");
    alice.expect_eof();
    bob.expect("* alice left");

    // Same IP, name free: welcomed back and in the room at once.
    let mut alice = User::connect(&server, 2);
    alice.name = "alice".into();
    alice.expect("* welcome back, alice");
    alice.expect("* not alice? type /nick NEWNAME");
    bob.expect("* alice joined");
    bob.send("hi alice");
    alice.expect("bob: hi alice");

    // Same IP again while `alice` is online: the name is taken, so asked.
    let mut twin = User::at_prompt(&server, 2);
    twin.send("alice2");
    twin.expect("* hello, alice2");
    bob.expect("* alice2 joined");
    alice.expect("* alice2 joined");

    // Remembered name taken by someone on another IP: asked too.
    let mut carol = User::join(&server, 4, "carol", &mut [&mut bob, &mut alice, &mut twin]);
    carol.send("exit");
    carol.expect("* bye, carol");
    carol.expect_eof();
    bob.expect("* carol left");
    bob.send("/nick carol");
    bob.expect("* you are now carol");
    let mut again = User::at_prompt(&server, 4);
    again.send("dave");
    again.expect("* hello, dave");
    assert_eq!(again.who(), "* online: alice, alice2, carol, dave");
    server.finish();
}

// ---------------------------------------------------------------------------
// Rules 2–4: join, messages, commands, leaving
// ---------------------------------------------------------------------------

#[test]
fn messages_go_to_every_other_user_only() {
    let server = Server::builder().no_echo().start();
    let [mut a, mut b, mut c] = room(&server, ["ann", "ben", "cy"]);
    a.send("hello room");
    b.expect("ann: hello room");
    c.expect("ann: hello room");
    c.send("x=1 \"quoted\" back\\slash and: colons");
    a.expect("cy: x=1 \"quoted\" back\\slash and: colons");
    b.expect("cy: x=1 \"quoted\" back\\slash and: colons");
    // The senders got no copy: their next line is the /who reply.
    assert_eq!(a.who(), "* online: ann, ben, cy");
    assert_eq!(c.who(), "* online: ann, ben, cy");
    assert_eq!(b.who(), "* online: ann, ben, cy");
    server.finish();
}

#[test]
fn nick_who_msg_and_help() {
    let server = Server::builder().no_echo().start();
    let [mut bob, mut al, mut cy] = room(&server, ["bob", "Alice", "carol"]);

    // /who: everyone, the asker included, sorted without regard to case.
    assert_eq!(bob.who(), "* online: Alice, bob, carol");

    // /nick: the others see `* OLD is now NEW`.
    bob.send("/nick Bobby");
    bob.expect("* you are now Bobby");
    al.expect("* bob is now Bobby");
    cy.expect("* bob is now Bobby");
    assert_eq!(cy.who(), "* online: Alice, Bobby, carol");
    // A bad or taken new name is an error and changes nothing.
    for bad in [
        "/nick two words",
        "/nick bang!",
        "/nick ALICE",
        "/nick carol",
    ] {
        bob.send(bad);
        bob.expect_prefix("! ");
    }
    bob.send(&format!("/nick {}", "x".repeat(33)));
    bob.expect_prefix("! ");
    assert_eq!(bob.who(), "* online: Alice, Bobby, carol");
    wait_names(&server.log_dir().join("names.tsv"), &["127.0.0.2\tBobby"]);

    // /msg: only the recipient hears it (name matched without case).
    al.send("/msg carol psst, the answer is 42");
    cy.expect("* Alice whispers: psst, the answer is 42");
    al.send("/msg BOBBY hi");
    bob.expect("* Alice whispers: hi");
    assert_eq!(al.who(), "* online: Alice, Bobby, carol");
    assert_eq!(cy.who(), "* online: Alice, Bobby, carol");
    assert_eq!(bob.who(), "* online: Alice, Bobby, carol");
    // /msg to nobody, or without text, is an error.
    al.send("/msg nobody hello");
    al.expect_prefix("! ");
    al.send("/msg carol");
    al.expect_prefix("! ");

    // /help: `* ` lines naming every command.
    cy.send("/help");
    cy.send("/who");
    let mut help = Vec::new();
    loop {
        let line = cy.line();
        if line.starts_with("* online: ") {
            break;
        }
        assert!(line.starts_with("* "), "help line {line:?}");
        help.push(line);
    }
    let help = help.join("\n");
    for cmd in ["/nick", "/who", "/msg", "/help", "/quit"] {
        assert!(help.contains(cmd), "/help does not mention {cmd}: {help}");
    }
    // Nobody else heard any of it.
    assert_eq!(bob.who(), "* online: Alice, Bobby, carol");
    assert_eq!(al.who(), "* online: Alice, Bobby, carol");

    let events = server.finish();
    let nick = events
        .iter()
        .find(|e| e.event == "nick")
        .expect("nick event");
    assert_eq!(nick.get("old"), Some("bob"), "{nick}");
    assert_eq!(nick.get("new"), Some("Bobby"), "{nick}");
}

#[test]
fn quit_and_exit_leave_the_room() {
    let server = Server::builder().no_echo().start();
    let [mut a, mut b, mut c, mut d] = room(&server, ["ann", "ben", "cy", "dee"]);

    b.send("/quit");
    b.expect("* bye, ben");
    b.expect_eof();
    a.expect("* ben left");
    c.expect("* ben left");
    d.expect("* ben left");

    c.send("exit");
    c.expect("* bye, cy");
    c.expect_eof();
    a.expect("* cy left");
    d.expect("* cy left");

    // Closing the socket (FIN) leaves too.
    d.s.shutdown(std::net::Shutdown::Write).unwrap();
    d.expect_eof();
    a.expect("* dee left");
    assert_eq!(a.who(), "* online: ann");

    for (u, reason) in [(&b, "exit"), (&c, "exit"), (&d, "eof")] {
        let line = wait_disconnect_of(&server, u);
        assert_eq!(line.get("reason"), Some(reason), "{line}");
    }
    let events = server.finish();
    let leaves: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "leave")
        .filter_map(|e| e.get("name"))
        .collect();
    assert_eq!(leaves, ["ben", "cy", "dee", "ann"]);
}

// ---------------------------------------------------------------------------
// Rule 5: errors leave the connection open
// ---------------------------------------------------------------------------

#[test]
fn unknown_command_and_invalid_utf8_are_errors_and_the_connection_stays() {
    let server = Server::builder().no_echo().start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);

    a.send("/dance now");
    a.expect_prefix("! ");
    a.send_raw(b"caf\xc3 \xfe broken\n");
    a.expect_prefix("! ");
    // A line that is valid again goes through.
    a.send("still here");
    b.expect("ann: still here");
    assert_eq!(b.who(), "* online: ann, ben");
    assert_eq!(a.who(), "* online: ann, ben");

    // At the name prompt, invalid UTF-8 is an error and the question again.
    let mut c = User::at_prompt(&server, 4);
    c.send_raw(b"\xfe\xfd\n");
    c.expect_prefix("! ");
    c.expect(ASK_AGAIN);
    c.send("cy");
    c.expect("* hello, cy");
    server.finish();
}

#[test]
fn too_long_line_is_rejected_and_discarded_up_to_its_end() {
    let server = Server::builder()
        .no_echo()
        .args(["--max-line", "64"])
        .start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);
    let conn = server.conn_of(&a.s);

    // Exactly 64 bytes (terminator not counted) is fine, with \n or \r\n.
    let max = "m".repeat(64);
    a.send(&max);
    b.expect(&format!("ann: {max}"));
    a.send_raw(format!("{max}\r\n").as_bytes());
    b.expect(&format!("ann: {max}"));

    // 65 bytes is one error; the next line is fine again.
    a.send(&"L".repeat(65));
    a.expect_prefix("! ");
    a.send("short one");
    b.expect("ann: short one");

    // A long line whose end arrives in a later read: the error comes once,
    // and nothing of the tail (not even a command in it) is acted on.
    let mut sent = "ann\n".len() + (64 + 1) + (64 + 2) + (65 + 1) + "short one\n".len();
    let head = "H".repeat(200);
    a.send_raw(head.as_bytes());
    sent += head.len();
    wait_received(&server, conn, sent);
    let tail = " tail /quit /nick evil must not appear\nafter it\n";
    a.send_raw(tail.as_bytes());
    a.expect_prefix("! ");
    b.expect("ann: after it");
    assert_eq!(a.who(), "* online: ann, ben");
    assert_eq!(b.who(), "* online: ann, ben");

    // At the name prompt: the error, then the question again.
    let mut c = User::at_prompt(&server, 4);
    c.send(&"n".repeat(100));
    c.expect_prefix("! ");
    c.expect(ASK_AGAIN);
    c.send("cy");
    c.expect("* hello, cy");
    server.finish();
}

// ---------------------------------------------------------------------------
// Rule 6: control characters
// ---------------------------------------------------------------------------

#[test]
fn control_characters_are_removed_before_relaying() {
    let mut server = Server::builder().no_echo().start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);

    // ESC sequences (CSI, OSC), BEL, VT, FF, US, and C1 (U+009B CSI,
    // U+0085 NEL); tab is kept. (BS, DEL and CR edit and end lines:
    // tests/telnet.rs.)
    a.send("\x1b[31mred\x1b[0m \x1b]0;owned\x07title back\x0bspace cr\x0cin del\x1f c1\u{9b}2J\u{85}nel tab\tkept");
    b.expect("ann: [31mred[0m ]0;ownedtitle backspace crin del c12Jnel tab\tkept");
    a.send("/msg ben \x1b[2J\x1b[Hwiped?");
    b.expect("* ann whispers: [2J[Hwiped?");
    server.console("\x1b[5mblink\u{9b}0m");
    a.expect("[server] [5mblink0m");
    b.expect("[server] [5mblink0m");

    // Control characters are invalid in names.
    b.send("/nick be\x1bn");
    b.expect_prefix("! ");
    let mut c = User::at_prompt(&server, 4);
    c.send("c\u{85}y");
    c.expect_prefix("! ");
    c.expect(ASK_AGAIN);
    c.send("cy\x07");
    c.expect_prefix("! ");
    c.expect(ASK_AGAIN);
    assert_eq!(a.who(), "* online: ann, ben");
    server.finish();
}

// ---------------------------------------------------------------------------
// Rule 7 and stopping: console, shutdown notice
// ---------------------------------------------------------------------------

#[test]
fn console_lines_go_to_every_user_and_console_exit_stops() {
    let mut server = Server::builder().no_echo().start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);
    server.console("hello class, lab starts now");
    a.expect("[server] hello class, lab starts now");
    b.expect("[server] hello class, lab starts now");
    // `exit` with more around it is just an announcement.
    server.console("exit soon");
    a.expect("[server] exit soon");
    b.expect("[server] exit soon");

    server.console("exit");
    for u in [&mut a, &mut b] {
        u.expect(SHUTTING_DOWN);
        u.expect_eof();
    }
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    let events = parse_all(&std::fs::read_to_string(server.log_path()).unwrap());
    let stop = events
        .iter()
        .find(|e| e.event == "stop")
        .expect("stop line");
    assert_eq!(stop.get("reason"), Some("console"), "{stop}");
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "console")
        .filter_map(|e| e.get("text"))
        .collect();
    assert!(texts.contains(&"hello class, lab starts now"), "{texts:?}");
}

#[test]
fn sigterm_sends_the_shutdown_notice_then_closes() {
    let server = Server::builder().no_echo().start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);
    // Someone still at the name prompt is told as well (chat.rs's choice).
    let mut c = User::at_prompt(&server, 4);
    server.signal(libc::SIGTERM);
    for u in [&mut a, &mut b, &mut c] {
        u.expect(SHUTTING_DOWN);
        u.expect_eof();
    }
    let peers = [a.peer(), b.peer(), c.peer()];
    let events = server.finish();
    for peer in peers {
        let line = events
            .iter()
            .find(|e| e.is("disconnect", "peer", &peer))
            .unwrap_or_else(|| panic!("no disconnect for {peer}"));
        assert_eq!(line.get("reason"), Some("shutdown"), "{line}");
    }
    // Leaving during a stop is not announced: nobody got `* X left` (the
    // EOF checks above would have failed on any extra line).
}

// ---------------------------------------------------------------------------
// CRLF clients
// ---------------------------------------------------------------------------

#[test]
fn crlf_clients_work_like_lf_clients() {
    let server = Server::builder().no_echo().start();
    let mut lf = User::join(&server, 2, "lf", &mut []);
    let mut crlf = User::at_prompt(&server, 3);
    crlf.send_raw(b"bad name\r\n");
    crlf.expect_prefix("! ");
    crlf.expect(ASK_AGAIN);
    crlf.send_raw(b"carl\r\n");
    crlf.expect("* hello, carl");
    lf.expect("* carl joined");

    crlf.send_raw(b"hi there\r\n");
    lf.expect("carl: hi there");
    lf.send("hi carl");
    crlf.expect("lf: hi carl");
    crlf.send_raw(b"/msg lf secret\r\n");
    lf.expect("* carl whispers: secret");
    crlf.send_raw(b"/who\r\n");
    crlf.expect("* online: carl, lf");
    crlf.send_raw(b"/nick carlos\r\n");
    crlf.expect("* you are now carlos");
    lf.expect("* carl is now carlos");
    crlf.send_raw(b"exit\r\n");
    crlf.expect("* bye, carlos");
    crlf.expect_eof();
    lf.expect("* carlos left");
    assert_eq!(lf.who(), "* online: lf");

    // `exit\r\n` at the name prompt, and `/quit\r\n` in the room.
    let mut p = User::at_prompt(&server, 4);
    p.send_raw(b"exit\r\n");
    p.expect_eof();
    let mut q = User::at_prompt(&server, 5);
    q.send_raw(b"quin\r\n");
    q.expect("* hello, quin");
    lf.expect("* quin joined");
    q.send_raw(b"/quit\r\n");
    q.expect("* bye, quin");
    q.expect_eof();
    lf.expect("* quin left");
    let names = wait_names(&server.log_dir().join("names.tsv"), &["127.0.0.5\tquin"]);
    assert!(
        !names.contains('\r'),
        "a CR reached the names file: {names:?}"
    );
    server.finish();
}

// ---------------------------------------------------------------------------
// The names file
// ---------------------------------------------------------------------------

#[test]
fn names_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.tsv");
    let names_arg = names.to_str().unwrap().to_string();

    let server = Server::builder()
        .no_echo()
        .args(["--names-file", &names_arg])
        .start();
    let mut a = User::join(&server, 20, "alice", &mut []);
    let _b = User::join(&server, 21, "bob", &mut [&mut a]);
    a.send("/nick alicia");
    a.expect("* you are now alicia");
    // Saved off the hot path: the stop writes the last snapshot.
    server.finish();
    let text = std::fs::read_to_string(&names).unwrap();
    assert_eq!(
        text, "127.0.0.21\tbob\n127.0.0.20\talicia\n",
        "recency order"
    );
    // Written atomically: no temporary file left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("names.tsv")]);

    let server = Server::builder()
        .no_echo()
        .args(["--names-file", &names_arg])
        .start();
    let mut a = User::connect(&server, 20);
    a.expect("* welcome back, alicia");
    a.expect("* not alicia? type /nick NEWNAME");
    let mut b = User::connect(&server, 21);
    b.expect("* welcome back, bob");
    b.expect("* not bob? type /nick NEWNAME");
    a.expect("* bob joined");
    let mut c = User::at_prompt(&server, 22);
    c.send("cy");
    c.expect("* hello, cy");
    a.expect("* cy joined");
    b.expect("* cy joined");
    assert_eq!(a.who(), "* online: alicia, bob, cy");
    server.finish();
}

#[test]
fn damaged_names_file_lines_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // A hostile path too: the warning names the file, so its `=`, quotes,
    // ESC, CR and newline must not forge a key or a line in the log.
    let names = dir
        .path()
        .join("names reason=exit \"q\" \x1b[31m\r\n2026-01-01T00:00:00.000Z INFO  stop reason=console.tsv");
    let mut content = b"127.0.0.30\tcarol\n\
this line has no tab\n\
not-an-ip\tdave\n\
127.0.0.31\tbad name!\n"
        .to_vec();
    content.extend_from_slice(b"127.0.0.32\t\xff\xfe\n127.0.0.33\tdan\n");
    std::fs::write(&names, &content).unwrap();

    let server = Server::builder()
        .no_echo()
        .arg("--names-file")
        .arg(names.to_str().unwrap())
        .start();
    let mut carol = User::connect(&server, 30);
    carol.expect("* welcome back, carol");
    carol.expect("* not carol? type /nick NEWNAME");
    let mut dan = User::connect(&server, 33);
    dan.expect("* welcome back, dan");
    dan.expect("* not dan? type /nick NEWNAME");
    carol.expect("* dan joined");
    // The damaged lines gave nobody a name.
    for host in [31, 32] {
        let mut u = User::at_prompt(&server, host);
        u.send("exit");
        u.expect_eof();
    }
    // Still works, and saving goes on.
    let mut eve = User::join(&server, 34, "eve", &mut [&mut carol, &mut dan]);
    eve.send("hello");
    carol.expect("eve: hello");
    dan.expect("eve: hello");
    wait_names(
        &names,
        &["127.0.0.30\tcarol", "127.0.0.33\tdan", "127.0.0.34\teve"],
    );

    let parsed = server.finish();
    let warnings: Vec<&LogLine> = parsed.iter().filter(|l| l.event == "warning").collect();
    assert_eq!(
        warnings.len(),
        1,
        "one summary warning for all damaged lines: {warnings:?}"
    );
    let error = warnings[0].get("error").unwrap();
    assert!(
        error.ends_with(
            "4 damaged lines skipped (first: line 2, no tab between the IP and the name)"
        ),
        "{error}"
    );
    for w in &warnings {
        assert_eq!(w.level, "WARN");
        assert_eq!(w.keys(), ["what", "error"], "{w:?}");
        assert!(
            w.get("error").unwrap().contains("reason=exit \"q\""),
            "{w:?}"
        );
    }
    let stops: Vec<&LogLine> = parsed.iter().filter(|l| l.event == "stop").collect();
    assert_eq!(stops.len(), 1, "a forged stop line: {stops:?}");
}

// ---------------------------------------------------------------------------
// Many users, slow users
// ---------------------------------------------------------------------------

#[test]
fn fifty_users_each_receive_every_line_of_a_burst_in_order() {
    const USERS: usize = 50;
    const LINES: usize = 20;
    let server = Server::builder().no_echo().start();
    let mut users: Vec<User> = Vec::new();
    for i in 0..USERS {
        // Joined lines pile up for earlier users; their readers skip them.
        users.push(User::join(
            &server,
            10 + i as u8,
            &format!("u{i:02}"),
            &mut [],
        ));
    }
    let start = Arc::new(Barrier::new(USERS));
    let handles: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(me, user)| {
            let start = start.clone();
            thread::spawn(move || {
                let mut writer = user.s.try_clone().unwrap();
                let mut reader = BufReader::new(user.s);
                start.wait();
                for k in 0..LINES {
                    writer
                        .write_all(format!("line {k} from u{me:02}\n").as_bytes())
                        .unwrap();
                }
                // next[j]: the line number expected next from user j.
                let mut next = vec![0usize; USERS];
                let mut got = 0;
                let mut line = String::new();
                while got < (USERS - 1) * LINES {
                    line.clear();
                    let n = reader
                        .read_line(&mut line)
                        .unwrap_or_else(|e| panic!("u{me:02} after {got} lines: {e}"));
                    assert!(n > 0, "u{me:02}: EOF after {got} lines");
                    let line = line.trim_end_matches('\n');
                    if line.starts_with("* u") && line.ends_with(" joined") {
                        continue;
                    }
                    let (from, text) = line.split_once(": ").expect("a message line");
                    let j: usize = from[1..].parse().expect("sender number");
                    assert_ne!(j, me, "u{me:02} got its own line back");
                    assert_eq!(text, format!("line {} from {from}", next[j]), "u{me:02}");
                    next[j] += 1;
                    got += 1;
                }
                assert!(
                    next.iter()
                        .enumerate()
                        .all(|(j, &n)| n == if j == me { 0 } else { LINES })
                );
                got
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("a user thread failed"), (USERS - 1) * LINES);
    }
    let events = server.finish();
    assert!(
        !events.iter().any(|e| e.get("reason") == Some("backlog")),
        "nobody here is slow"
    );
}

#[test]
fn a_user_who_never_reads_is_dropped_for_backlog_and_the_room_flows_on() {
    const BATCH: usize = 8;
    const MAX_LINES: usize = 20_000; // 40 MB at most: the loop is bounded
    let server = Server::builder()
        .no_echo()
        .args(["--max-backlog", "16KiB"])
        .start();
    let [mut talker, mut listener] = room(&server, ["talker", "listener"]);
    // The slow user joins (reads its hello) and then never reads again; a
    // small receive buffer makes its kernel queues fill sooner.
    let mut slow = User {
        s: connect_from(server.chat_addr(), 4, Some(4096)),
        name: "slow".into(),
    };
    slow.expect(GREETING);
    slow.send("slow");
    slow.expect("* hello, slow");
    talker.expect("* slow joined");
    listener.expect("* slow joined");
    let slow_peer = slow.peer();

    // The listener reads in its own thread, checking order, and counts.
    let received = Arc::new(AtomicUsize::new(0));
    let reader = {
        let received = received.clone();
        let stream = listener.s.try_clone().unwrap();
        thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut next = 0usize;
            let mut saw_left = false;
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line).expect("listener read");
                assert!(n > 0, "listener: EOF after {next} lines");
                let line = line.trim_end_matches('\n');
                if line == "* slow left" {
                    saw_left = true;
                    continue;
                }
                if line == "talker: after" {
                    return (next, saw_left);
                }
                let rest = line
                    .strip_prefix("talker: ")
                    .unwrap_or_else(|| panic!("listener got {line:?}"));
                let (seq, pad) = rest.split_once(' ').expect("seq and padding");
                assert_eq!(seq.parse::<usize>().unwrap(), next, "listener order");
                assert_eq!(pad.len(), 2000);
                next += 1;
                received.store(next, Ordering::Release);
            }
        })
    };

    let pad = "p".repeat(2000);
    let is_backlog = |e: &LogLine| e.is("disconnect", "reason", "backlog");
    let mut sent = 0;
    let started = Instant::now();
    while server.count_events(is_backlog) == 0 {
        assert!(
            sent < MAX_LINES,
            "no backlog disconnect after {sent} lines of 2 KB"
        );
        let mut batch = String::new();
        for _ in 0..BATCH {
            batch.push_str(&format!("{sent} {pad}\n"));
            sent += 1;
        }
        talker.send_raw(batch.as_bytes());
        // Pace the talker by the listener, so only the slow user falls behind.
        wait_until("the listener to keep up", || {
            received.load(Ordering::Acquire) >= sent
        });
    }
    eprintln!(
        "backlog disconnect after {sent} lines ({} KB) in {:?}",
        sent * 2,
        started.elapsed()
    );
    let line = server.wait_log("the backlog disconnect", is_backlog);
    assert_eq!(line.get("peer"), Some(&*slow_peer), "{line}");
    assert_eq!(line.get("service"), Some("chat"), "{line}");

    // The others keep receiving, and hear that slow left.
    talker.expect("* slow left");
    talker.send("after");
    let (got, saw_left) = reader.join().expect("listener thread");
    assert_eq!(got, sent, "the listener got every line");
    assert!(saw_left, "the listener heard `* slow left`");
    assert_eq!(talker.who(), "* online: listener, talker");
    drop(slow);
    server.finish();
}

// ---------------------------------------------------------------------------
// Hostile text and the log
// ---------------------------------------------------------------------------

#[test]
fn hostile_text_and_names_cannot_forge_log_lines_or_keys() {
    let mut server = Server::builder().no_echo().start();
    let [mut a, mut b] = room(&server, ["ann", "ben"]);
    let hostile = "x reason=exit conn=999 \"quoted\\\" \x1b[31m cr\r end";

    // As chat text, a whisper, a command, a name candidate and a new name.
    // (Typed, a CR ends the line, so VT stands in for it there.)
    let typed = &hostile.replace('\r', "\x0b");
    a.send(typed);
    b.expect("ann: x reason=exit conn=999 \"quoted\\\" [31m cr end");
    a.send(&format!("/msg ben {typed}"));
    b.expect("* ann whispers: x reason=exit conn=999 \"quoted\\\" [31m cr end");
    a.send(&format!("/nick {typed}"));
    a.expect_prefix("! ");
    a.send(&format!("/{typed}"));
    a.expect_prefix("! ");
    let mut c = User::at_prompt(&server, 4);
    for name in [
        "x=y",
        "\"q\"",
        "a\x0bb",
        "\x1b[31m",
        "n\x0b2026-01-01T00:00:00.000Z INFO  stop reason=console",
    ] {
        c.send(name);
        c.expect_prefix("! ");
        c.expect(ASK_AGAIN);
    }
    // On the console, where the text is logged (also without a space, so
    // only the `=` itself forces the quotes).
    server.console(hostile);
    a.expect("[server] x reason=exit conn=999 \"quoted\\\" [31m cr end");
    b.expect("[server] x reason=exit conn=999 \"quoted\\\" [31m cr end");
    server.console("conn=999");
    a.expect("[server] conn=999");
    b.expect("[server] conn=999");
    c.send("exit");
    c.expect_eof();

    let parsed = server.finish();
    let console: Vec<&LogLine> = parsed.iter().filter(|l| l.event == "console").collect();
    assert_eq!(console.len(), 2, "{console:?}");
    for (line, text) in console.iter().zip([hostile, "conn=999"]) {
        assert_eq!(line.keys(), ["text"]);
        assert_eq!(line.get("text"), Some(text));
    }
    // No event got a key it does not have: `reason` only on disconnect and
    // stop, `conn=999` nowhere.
    for l in &parsed {
        if l.get("reason").is_some() {
            assert!(["disconnect", "stop"].contains(&l.event.as_str()), "{l:?}");
        }
        assert_ne!(l.get("conn"), Some("999"), "{l:?}");
    }
    assert_eq!(parsed.iter().filter(|l| l.event == "stop").count(), 1);
}
