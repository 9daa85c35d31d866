//! Integration tests of chat accounts (DESIGN.md "Accounts (chat)"): the
//! real `echochat serve` binary, real TCP sockets on loopback, real
//! Argon2id on the worker thread.
//!
//! Users connect from their own loopback addresses (`127.0.0.N`), because
//! both welcome-back and the lockout are per IP. Every test ends with
//! [`finish`]: the server is stopped with SIGTERM, every log line must be
//! well-formed, and nothing the server wrote — the log files, its stdout
//! and stderr, even the accounts and sessions files — may contain a
//! password or a session token used in the test.
//!
//! Time-based rules (the lockout, `--session-ttl`) are checked by asking
//! again until the answer changes, within a deadline, and then checking
//! how long that took — never by sleeping and hoping.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::common::*;

const ASK_AGAIN: &str = "* what is your name?";

/// Reads lines until `want`, skipping room notices (`* X joined`...);
/// fails after a few other lines.
#[track_caller]
fn until(u: &mut User, want: &str) {
    let mut skipped = Vec::new();
    loop {
        let line = u.line();
        if line == want {
            return;
        }
        skipped.push(line);
        assert!(skipped.len() < 8, "never got {want:?}; got {skipped:?}");
    }
}

/// Reads `* token TOKEN` and returns the token.
#[track_caller]
fn token(u: &mut User) -> String {
    let line = u.line();
    let token = line
        .strip_prefix("* token ")
        .unwrap_or_else(|| panic!("expected a token line, got {line:?}"));
    assert_eq!(token.len(), 32, "{line}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{line}"
    );
    token.to_string()
}

/// `/quit`, then the server closes.
fn quit(mut u: User) {
    u.send("/quit");
    let _ = read_to_eof(&mut u.s);
}

/// Connects from `127.0.0.{host}` and joins as the free name `name`.
#[track_caller]
fn joined(server: &Server, host: u8, name: &str) -> User {
    User::join(server, host, name, &mut [])
}

/// Registers `name` with `password` from `127.0.0.{host}`; returns the
/// user, still connected, and the token.
#[track_caller]
fn register(server: &Server, host: u8, name: &str, password: &str) -> (User, String) {
    let mut u = joined(server, host, name);
    u.send(&format!("/register {password}"));
    u.expect(&format!("* {name} is registered"));
    let token = token(&mut u);
    (u, token)
}

/// Logs in to `name` with `password` from `127.0.0.{host}`.
#[track_caller]
fn log_in(server: &Server, host: u8, name: &str, password: &str) -> (User, String) {
    let mut u = User::at_prompt(server, host);
    u.send(name);
    u.expect(&format!("* {name} is registered; password?"));
    u.send(password);
    u.expect(&format!("* hello, {name}"));
    let token = token(&mut u);
    (u, token)
}

/// The `auth` lines of the log, as `(conn, name, how, result)`.
fn auths(server: &Server) -> Vec<(String, String, String, String)> {
    server
        .events()
        .into_iter()
        .filter(|l| l.event == "auth")
        .map(|l| {
            let get = |k: &str| l.get(k).unwrap_or_default().to_string();
            assert_eq!(get("service"), "chat");
            (get("conn"), get("name"), get("how"), get("result"))
        })
        .collect()
}

#[track_caller]
fn wait_auth(server: &Server, name: &str, how: &str, result: &str) {
    wait_until(
        &format!("auth name={name} how={how} result={result}"),
        || {
            auths(server)
                .iter()
                .any(|(_, n, h, r)| n == name && h == how && r == result)
        },
    );
}

/// Stops the server, checks every log line parses, and that none of
/// `secrets` appears in anything it wrote.
#[track_caller]
fn finish(mut server: Server, secrets: &[&str]) {
    // Not `Server::finish`: the files written at the stop are checked too,
    // before the log directory goes with the `Server`.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let mut written = vec![
        ("stdout".to_string(), server.stdout_text()),
        ("stderr".to_string(), server.stderr_text()),
    ];
    parse_all(&server.log()); // every line well-formed
    collect_files(&server.log_dir(), &mut written);
    for secret in secrets {
        assert!(!secret.is_empty());
        for (what, text) in &written {
            assert!(
                !text.contains(secret),
                "{what} contains a secret ({secret}):\n{text}"
            );
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("log dir") {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

fn chat_server(args: &[&str]) -> Server {
    Server::builder()
        .no_echo()
        .args(args.iter().copied())
        .start()
}

#[test]
fn register_log_in_and_the_log_never_holds_a_secret() {
    let server = chat_server(&[]);
    let (alice, t1) = register(&server, 2, "alice", "first secret");
    quit(alice);
    let mut bob = joined(&server, 3, "bob");
    let (mut alice, t2) = log_in(&server, 4, "alice", "  first secret ");
    assert_ne!(t1, t2, "every login gets its own token");
    bob.expect("* alice joined");
    alice.send("hi");
    bob.expect("alice: hi");
    wait_auth(&server, "alice", "password", "ok");
    let seen = auths(&server);
    assert_eq!(seen[0].1, "alice");
    assert_eq!((&*seen[0].2, &*seen[0].3), ("register", "ok"));
    // The accounts file holds a PHC string (written off the loop, at most
    // once a second: wait for it); `finish` checks no secret is in it.
    wait_until("accounts.tsv written", || {
        std::fs::read_to_string(server.log_dir().join("accounts.tsv"))
            .is_ok_and(|t| t.starts_with("alice\t$argon2id$v=19$m=19456,t=2,p=1$"))
    });
    finish(server, &["first secret", &t1, &t2]);
}

#[test]
fn a_wrong_password_asks_the_name_again() {
    let server = chat_server(&[]);
    let (alice, t) = register(&server, 2, "alice", "right-password");
    quit(alice);
    let mut u = User::at_prompt(&server, 3);
    u.send("alice");
    u.expect("* alice is registered; password?");
    u.send("wrong-password");
    u.expect("! wrong password");
    u.expect(ASK_AGAIN);
    wait_auth(&server, "alice", "password", "wrong");
    u.send("carol");
    u.expect("* hello, carol");
    finish(server, &["right-password", "wrong-password", &t]);
}

#[test]
fn five_wrong_passwords_lock_the_name_for_one_second_then_two() {
    let server = chat_server(&[]);
    let (alice, t) = register(&server, 2, "alice", "right-password");
    quit(alice);
    let mut u = User::at_prompt(&server, 9);
    for _ in 0..5 {
        u.send("alice");
        u.expect("* alice is registered; password?");
        u.send("guess-guess");
        u.expect("! wrong password");
        u.expect(ASK_AGAIN);
    }
    let locked_at = Instant::now();
    // Another IP is not locked out.
    let mut other = User::at_prompt(&server, 10);
    other.send("alice");
    other.expect("* alice is registered; password?");
    // Ask until the lock ends; each refused try is not a failure.
    let mut refusals = 0;
    loop {
        u.send("alice");
        let line = u.line();
        if line == "* alice is registered; password?" {
            break;
        }
        assert_eq!(line, "! too many tries; wait 1s");
        u.expect(ASK_AGAIN);
        refusals += 1;
        assert!(
            locked_at.elapsed() < Duration::from_secs(5),
            "lock never ended"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let waited = locked_at.elapsed();
    assert!(refusals >= 1, "the sixth try was refused");
    assert!(
        waited >= Duration::from_millis(900),
        "locked for only {waited:?}"
    );
    wait_auth(&server, "alice", "password", "locked");
    // One more failure doubles the lock.
    u.send("guess-again");
    u.expect("! wrong password");
    u.expect(ASK_AGAIN);
    u.send("alice");
    u.expect("! too many tries; wait 2s");
    u.expect(ASK_AGAIN);
    finish(server, &["right-password", &t]);
}

#[test]
fn a_token_resumes_the_session_after_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.tsv");
    let accounts = accounts.to_str().unwrap();
    let server = chat_server(&["--accounts-file", accounts]);
    let (alice, token) = register(&server, 2, "alice", "restart-password");
    quit(alice);
    finish(server, &["restart-password", &token]);
    let sessions = std::fs::read_to_string(dir.path().join("sessions.tsv")).unwrap();
    assert!(sessions.ends_with("\talice\n"), "{sessions}");
    assert!(!sessions.contains(&token));

    let server = chat_server(&["--accounts-file", accounts]);
    let mut u = User::at_prompt(&server, 3);
    u.send(&format!("/token {token}"));
    u.expect("* hello, alice");
    wait_auth(&server, "alice", "token", "ok");
    // The password still works too, and the name is still protected.
    let mut v = User::at_prompt(&server, 4);
    v.send("Alice");
    v.expect("! the name Alice is taken");
    finish(server, &["restart-password", &token]);
}

#[test]
fn an_expired_token_is_refused() {
    let server = chat_server(&["--session-ttl", "1s"]);
    let started = Instant::now();
    let (alice, token) = register(&server, 2, "alice", "ttl-password");
    quit(alice);
    // Valid until a second has passed; asked again until it is not.
    loop {
        let mut u = User::at_prompt(&server, 3);
        u.send(&format!("/token {token}"));
        let line = u.line();
        if line == "! unknown or expired token" {
            u.expect(ASK_AGAIN);
            break;
        }
        assert_eq!(line, "* hello, alice");
        quit(u);
        assert!(started.elapsed() < Duration::from_secs(10), "never expired");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "expired after only {:?}",
        started.elapsed()
    );
    wait_auth(&server, "alice", "token", "expired");
    // An unknown token is refused the same way.
    let mut u = User::at_prompt(&server, 4);
    u.send("/token 0123456789abcdef0123456789abcdef");
    u.expect("! unknown or expired token");
    u.expect(ASK_AGAIN);
    finish(server, &["ttl-password", &token]);
}

#[test]
fn passwd_ends_every_token_and_logout_ends_one() {
    let server = chat_server(&[]);
    let (mut alice, t1) = register(&server, 2, "alice", "old-password");
    alice.send("/passwd old-password new-password");
    alice.expect("* password changed");
    let t2 = token(&mut alice);
    wait_auth(&server, "alice", "passwd", "ok");
    quit(alice);
    let mut u = User::at_prompt(&server, 3);
    u.send(&format!("/token {t1}"));
    u.expect("! unknown or expired token");
    u.expect(ASK_AGAIN);
    u.send(&format!("/token {t2}"));
    u.expect("* hello, alice");
    u.send("/logout");
    u.expect("* logged out");
    wait_auth(&server, "alice", "logout", "ok");
    u.send("/who");
    u.expect("* online: alice");
    quit(u);
    let mut v = User::at_prompt(&server, 4);
    v.send(&format!("/token {t2}"));
    v.expect("! unknown or expired token");
    v.expect(ASK_AGAIN);
    v.send("alice");
    v.expect("* alice is registered; password?");
    v.send("old-password");
    v.expect("! wrong password");
    v.expect(ASK_AGAIN);
    finish(server, &["old-password", "new-password", &t1, &t2]);
}

#[test]
fn registered_names_are_skipped_by_welcome_back_and_refused_to_nick() {
    let server = chat_server(&[]);
    let (alice, t) = register(&server, 20, "alice", "nat-password");
    quit(alice);
    // Same IP (a lab machine, a NAT): asked, not welcomed back.
    let mut again = User::at_prompt(&server, 20);
    again.send("dave");
    again.expect("* hello, dave");
    // An unregistered name is still welcomed back by IP.
    quit(joined(&server, 21, "bob"));
    let mut bob = User::connect(&server, 21);
    bob.expect("* welcome back, bob");
    bob.send("/nick alice");
    until(&mut bob, "! the name alice is registered to someone else");
    bob.send("/who");
    bob.expect("* online: bob, dave");
    finish(server, &["nat-password", &t]);
}

#[test]
fn a_connection_reset_while_its_hash_is_computed_is_forgotten() {
    let server = chat_server(&[]);
    let (alice, t) = register(&server, 2, "alice", "closing-password");
    quit(alice);
    // Queue other hashes ahead, so ours is surely still waiting when the
    // client vanishes.
    let mut ahead: Vec<User> = (0..4)
        .map(|i| joined(&server, 30 + i, &format!("r{i}")))
        .collect();
    let mut u = User::at_prompt(&server, 7);
    let conn = server.conn_of(&u.s).to_string();
    u.send("alice");
    u.expect("* alice is registered; password?");
    for (i, r) in ahead.iter_mut().enumerate() {
        r.send(&format!("/register password-r{i}"));
    }
    u.send("closing-password");
    // The server has read the password (its second `recv`) ...
    wait_until("the password read", || {
        server.count_events(|ev| ev.is("recv", "conn", &conn)) >= 2
    });
    // ... and now the client vanishes: a reset, not a polite FIN.
    let sock = Socket::from(u.s);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    drop(sock);
    server.wait_log("the reset user's disconnect", |ev| {
        ev.is("disconnect", "conn", &conn)
    });
    // The worker's queue is first in, first out: once a later job is
    // answered, ours was too — and dropped.
    for (i, r) in ahead.iter_mut().enumerate() {
        until(r, &format!("* r{i} is registered"));
    }
    let (late, t3) = log_in(&server, 8, "alice", "closing-password");
    quit(late);
    let log = server.log();
    for line in log.lines() {
        let parsed = parse_log_line(line).unwrap();
        if parsed.get("conn") == Some(&*conn) {
            assert!(
                !matches!(parsed.event.as_str(), "join" | "auth"),
                "the closed connection got in: {line}"
            );
        }
    }
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(" join ") && l.contains("name=alice"))
            .count(),
        2,
        "the first registration and the late login only"
    );
    finish(
        server,
        &["closing-password", "password-r0", "password-r3", &t, &t3],
    );
}

#[test]
fn the_chat_client_keeps_its_token_and_logs_in_by_itself() {
    let server = chat_server(&[]);
    let home = tempfile::tempdir().unwrap();
    let port = server.chat_addr().port().to_string();
    let client = |input: &str| {
        let mut child = Command::new(bin())
            .args(["chat", "--host", "127.0.0.1", "--port", &port])
            .env("XDG_CONFIG_HOME", home.path())
            // English messages whatever the developer's locale (--lang).
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the chat client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (out, err) = client("erin\n/register client-password\n");
    assert!(out.contains("* erin is registered\n"), "{out}");
    assert!(err.contains("saved the session token"), "{err}");
    let saved = std::fs::read_to_string(home.path().join("echochat/tokens.tsv")).unwrap();
    let (server_label, token) = saved.trim_end().split_once('\t').unwrap();
    assert_eq!(server_label, format!("127.0.0.1:{port}"));
    assert!(out.contains(&format!("* token {token}\n")));
    // Next time: no name, no password typed; the saved token does it.
    let (out, err) = client("/who\n");
    assert!(err.contains("offering the session token"), "{err}");
    assert!(out.contains("* hello, erin\n* online: erin\n"), "{out}");
    finish(server, &["client-password", token]);
}
