//! A real class (DESIGN.md, chat rules 1 and 7, "The server's console",
//! "Ports"): the goodbye lines a user gets before the server closes it,
//! the welcome-back hint, the teacher's console commands, and the
//! `reachable at` lines of a server that listens on every interface.
//!
//! The console tests run the server with `-q`: the answers are the
//! program's output, like the `listening on` lines, so the quiet flag must
//! not hide them (and without log lines on stdout they are easy to find).

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::common::*;

/// A chat server whose console answers are the only thing on stdout.
fn quiet_chat() -> Server {
    Server::builder()
        .no_echo()
        .args(["-q", "--no-frame"])
        .start()
}

/// Types `line` on the console, then waits until what the server printed
/// after it satisfies `done`, and returns those lines.
#[track_caller]
fn ask(server: &mut Server, line: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let before = server.stdout_text().lines().count();
    server.console(line);
    let mut answer = Vec::new();
    wait_until(&format!("the console's answer to {line:?}"), || {
        answer = server
            .stdout_text()
            .lines()
            .skip(before)
            .map(str::to_string)
            .collect();
        done(&answer)
    });
    answer
}

/// `ask` until a line starting with `prefix` was printed.
#[track_caller]
fn ask_until(server: &mut Server, line: &str, prefix: &str) -> Vec<String> {
    ask(server, line, |lines| {
        lines.iter().any(|l| l.starts_with(prefix))
    })
}

/// The `reason` of the disconnect of user `u`.
#[track_caller]
fn reason_of(server: &Server, u: &User) -> String {
    let conn = server.conn_of(&u.s);
    let line = server.wait_disconnect(conn);
    line.get("reason").unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------
// Rule 7: goodbye lines
// ---------------------------------------------------------------------------

#[test]
fn quit_and_exit_say_bye_before_the_close() {
    let server = Server::builder().no_echo().start();
    let [mut ann, mut ben, mut cy] = room(&server, ["ann", "ben", "cy"]);
    ann.send("/quit");
    ann.expect("* bye, ann");
    ann.expect_eof();
    ben.expect("* ann left");
    ben.send("exit");
    ben.expect("* bye, ben");
    ben.expect_eof();
    cy.expect("* ann left");
    cy.expect("* ben left");
    assert_eq!(reason_of(&server, &ann), "exit");
    assert_eq!(reason_of(&server, &ben), "exit");
    // At the name prompt there is no NAME to say bye to: `exit` is quiet.
    let mut shy = User::at_prompt(&server, 9);
    shy.send("exit");
    shy.expect_eof();
    server.finish();
}

#[test]
fn idle_users_are_told_why_they_were_closed() {
    let server = Server::builder()
        .no_echo()
        .args(["--idle-timeout", "1s"])
        .start();
    let [mut ann] = room(&server, ["ann"]);
    let mut waiting = User::at_prompt(&server, 9);
    // Nobody types for a second: both get the line, then EOF.
    ann.expect("* disconnected: idle for 1s");
    ann.expect_eof();
    waiting.expect("* disconnected: idle for 1s");
    waiting.expect_eof();
    assert_eq!(reason_of(&server, &ann), "idle");
    assert_eq!(reason_of(&server, &waiting), "idle");
    server.wait_log("ann's leave", |e| e.is("leave", "name", "ann"));
    server.finish();
}

#[test]
fn shutdown_is_announced_to_every_user() {
    let mut server = Server::builder().no_echo().start();
    let [mut ann] = room(&server, ["ann"]);
    server.console("exit");
    ann.expect("* server shutting down");
    ann.expect_eof();
    assert_eq!(server.wait_exit().code(), Some(0));
    assert_eq!(reason_of(&server, &ann), "shutdown");
}

// ---------------------------------------------------------------------------
// Rule 1: the welcome-back hint
// ---------------------------------------------------------------------------

#[test]
fn welcome_back_comes_with_a_way_out() {
    let server = Server::builder().no_echo().start();
    let [mut ann, mut ben] = room(&server, ["ann", "ben"]);
    ann.send("/quit");
    ann.expect("* bye, ann");
    ben.expect("* ann left");
    // Someone else at ann's machine: greeted as ann, told how to change.
    let mut zoe = User::connect(&server, 2);
    zoe.expect("* welcome back, ann");
    zoe.expect("* not ann? type /nick NEWNAME");
    ben.expect("* ann joined");
    zoe.send("/nick zoe");
    zoe.expect("* you are now zoe");
    ben.expect("* ann is now zoe");
    assert_eq!(ben.who(), "* online: ben, zoe");
    server.finish();
}

// ---------------------------------------------------------------------------
// The teacher's console
// ---------------------------------------------------------------------------

#[test]
fn console_who_lists_every_user_with_ip_and_times() {
    let mut server = quiet_chat();
    let [mut ann, mut ben] = room(&server, ["ann", "ben"]);
    // A UDP member is a user too.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(DEADLINE)).unwrap();
    udp.send_to(b"/join cat\n", server.addr("udp-chat"))
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"* hello, cat\n");
    ann.expect("* cat joined");
    ben.expect("* cat joined");
    let _waiting = User::at_prompt(&server, 9);

    let answer = ask(&mut server, "/who", |lines| {
        lines.iter().any(|l| l.contains("name prompt"))
    });
    assert_eq!(answer[0], "who: 3 users in the chat room", "{answer:#?}");
    let rows: Vec<Vec<&str>> = answer[1..4]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (row, (name, ip, transport)) in rows.iter().zip([
        ("ann", "127.0.0.2", "tcp"),
        ("ben", "127.0.0.3", "tcp"),
        ("cat", "127.0.0.1", "udp"),
    ]) {
        // NAME IP TRANSPORT connected DURATION... idle DURATION...
        assert_eq!(&row[..4], [name, ip, transport, "connected"], "{answer:#?}");
        let idle = row.iter().position(|w| *w == "idle").expect("an idle time");
        for word in &row[4..] {
            if *word != "idle" {
                assert!(
                    humantime::parse_duration(word).is_ok(),
                    "{word:?} is not a duration: {answer:#?}"
                );
            }
        }
        assert!(idle > 4 && idle + 1 < row.len(), "{answer:#?}");
    }
    assert_eq!(answer[4], "  (and 1 connection at the name prompt)");
    // Answered on the console only: the users got nothing.
    ann.send("/who");
    ann.expect("* online: ann, ben, cat");
    server.finish();
}

#[test]
fn console_kick_says_why_and_logs_reason_kicked() {
    let mut server = quiet_chat();
    let [mut ann, mut ben, mut cy] = room(&server, ["ann", "ben", "cy"]);

    let answer = ask_until(&mut server, "/kick ANN  please stop spamming", "kicked");
    assert_eq!(answer, ["kicked ann (127.0.0.2, tcp)"]);
    ann.expect("* kicked by the server: please stop spamming");
    ann.expect_eof();
    ben.expect("* ann left");
    cy.expect("* ann left");
    assert_eq!(reason_of(&server, &ann), "kicked");

    ask_until(&mut server, "/kick ben", "kicked");
    ben.expect("* kicked by the server");
    ben.expect_eof();
    cy.expect("* ben left");
    assert_eq!(reason_of(&server, &ben), "kicked");

    let answer = ask_until(&mut server, "/kick nobody", "kick:");
    assert_eq!(
        answer,
        ["kick: nobody named nobody is in the chat room; /who lists who is"]
    );
    let answer = ask_until(&mut server, "/kick", "usage");
    assert_eq!(answer, ["usage: /kick NAME [reason]"]);
    // cy heard nothing of the failed kicks.
    assert_eq!(cy.who(), "* online: cy");
    server.finish();
}

#[test]
fn console_stats_counts_per_service() {
    let mut server = Server::builder().args(["-q", "--no-frame"]).start();
    let mut echo = connect(server.echo_addr());
    echo.write_all(b"hello").unwrap();
    assert_eq!(read_exact(&mut echo, 5), b"hello");
    let [mut ann, mut ben] = room(&server, ["ann", "ben"]);
    ann.send("hi");
    ben.expect("ann: hi");

    let answer = ask(&mut server, "/stats", |lines| {
        lines.iter().any(|l| l.trim_start().starts_with("udp-chat"))
    });
    assert!(answer[0].starts_with("stats: up "), "{answer:#?}");
    assert!(answer[0].contains(" 3 connections open"), "{answer:#?}");
    let row = |service: &str| -> String {
        answer
            .iter()
            .find(|l| l.split_whitespace().next() == Some(service))
            .unwrap_or_else(|| panic!("no {service} row: {answer:#?}"))
            .clone()
    };
    assert!(
        row("echo").contains("open 1  accepted 1  bytes in 5 out 5"),
        "{answer:#?}"
    );
    // ann's and ben's names, and ann's "hi": three lines.
    let chat = row("chat");
    assert!(chat.contains("open 2  accepted 2"), "{chat}");
    assert!(chat.contains("messages 3  users 2"), "{chat}");
    assert!(row("http").contains("open 0"), "{answer:#?}");
    assert!(
        row("udp-echo").contains("datagrams in 0 out 0"),
        "{answer:#?}"
    );
    server.finish();
}

#[test]
fn console_help_escapes_and_unknown_commands() {
    let mut server = quiet_chat();
    let [mut ann] = room(&server, ["ann"]);
    let help = ask(&mut server, "/help", |lines| {
        lines.iter().any(|l| l.trim_start().starts_with("exit"))
    });
    for command in ["/who", "/kick NAME [reason]", "/stats", "/help", "//text"] {
        assert!(
            help.iter().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from {help:#?}"
        );
    }
    let answer = ask_until(&mut server, "/frobnicate now", "unknown");
    assert_eq!(
        answer,
        ["unknown command /frobnicate; /help lists the console's commands"]
    );
    // `//text` is how the teacher says a line that starts with `/`; the
    // commands before it reached nobody.
    server.console("//who is here?");
    ann.expect("[server] /who is here?");
    server.console("plain words");
    ann.expect("[server] plain words");
    server.finish();
}

// ---------------------------------------------------------------------------
// Ports: `reachable at`
// ---------------------------------------------------------------------------

/// This machine's IPv4 addresses another machine could use.
fn non_loopback_v4() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::new();
    for ip in if_addrs::get_if_addrs()
        .expect("getifaddrs")
        .iter()
        .map(|i| i.ip())
    {
        if ip.is_ipv4() && !ip.is_loopback() && !v.contains(&ip) {
            v.push(ip);
        }
    }
    v
}

#[test]
fn unspecified_host_prints_reachable_addresses() {
    let server = Server::builder().args(["--host", "0.0.0.0"]).start();
    wait_until("every listening line", || {
        server.stdout_text().contains("frame listening on")
    });
    let stdout = server.stdout_text();
    let lines: Vec<&str> = stdout.lines().collect();
    let here = non_loopback_v4();
    if here.is_empty() {
        println!("note: no non-loopback IPv4 address here; only the format is checked");
    }
    for service in ["echo", "udp-echo", "chat", "udp-chat", "frame"] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{service} listening on 0.0.0.0:")))
            .unwrap_or_else(|| panic!("no {service} line: {stdout}"));
        let port: u16 = lines[at].rsplit(':').next().unwrap().parse().unwrap();
        let prefix = format!("  {service} reachable at ");
        let reachable: Vec<SocketAddr> = lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with(&prefix))
            .map(|l| l[prefix.len()..].parse().expect("IP:PORT"))
            .collect();
        let want: Vec<SocketAddr> = here.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
        assert_eq!(reachable, want, "{stdout}");
    }
    // The status page stays on loopback: no extra line for it.
    let http = lines
        .iter()
        .position(|l| l.starts_with("http listening on 127.0.0.1:"))
        .expect("http line");
    assert!(!lines[http + 1].contains("reachable"), "{stdout}");
    // And the server is reachable where it said, on loopback too.
    let echo = server.echo_addr();
    let mut s = connect(SocketAddr::from(([127, 0, 0, 1], echo.port())));
    s.write_all(b"here\n").unwrap();
    assert_eq!(read_line(&mut s), "here");
    server.finish();
}

#[test]
fn loopback_host_prints_no_reachable_lines() {
    let server = Server::builder().args(["-q"]).start();
    wait_until("every listening line", || {
        server.stdout_text().contains("frame listening on")
    });
    assert!(
        !server.stdout_text().contains("reachable at"),
        "{}",
        server.stdout_text()
    );
    server.finish();
}
