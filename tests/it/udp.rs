//! The UDP twins (DESIGN.md, "UDP echo and UDP chat", "Ports"): the real
//! `echochat serve` binary, real UDP sockets on loopback, and TCP chat users
//! in the same room as UDP members.
//!
//! Loopback loses no datagram at these rates, but nothing here assumes it
//! silently: every socket has a read timeout of [`DEADLINE`], so a missing
//! reply fails the test saying what never came, and server-side facts are
//! awaited in the log with a deadline. The clients' `--udp` mode is tested
//! in a pipe at the end.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// A UDP socket on loopback that fails a test instead of waiting forever.
fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// The next datagram (with its sender), or the test fails naming `what`.
#[track_caller]
fn recv(s: &UdpSocket, what: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    match s.recv_from(&mut buf) {
        Ok((n, from)) => (buf[..n].to_vec(), from),
        Err(e) => panic!("no datagram for {what}: {e}"),
    }
}

/// The next datagram as text; it must end with `\n` (removed).
#[track_caller]
fn recv_line(s: &UdpSocket, what: &str) -> String {
    let (bytes, _) = recv(s, what);
    let text = String::from_utf8(bytes).expect("UTF-8 datagram");
    text.strip_suffix('\n')
        .unwrap_or_else(|| panic!("datagram without \\n: {text:?}"))
        .to_string()
}

/// A UDP chat member: a socket that sends to udp-chat.
struct Member {
    s: UdpSocket,
    to: SocketAddr,
    name: &'static str,
}

impl Member {
    fn new(to: SocketAddr, name: &'static str) -> Member {
        Member {
            s: udp_socket(),
            to,
            name,
        }
    }

    /// Sends `/join NAME` and expects `* hello, NAME`.
    #[track_caller]
    fn join(to: SocketAddr, name: &'static str) -> Member {
        let m = Member::new(to, name);
        m.send(&format!("/join {name}"));
        m.expect(&format!("* hello, {name}"));
        m
    }

    fn send(&self, text: &str) {
        self.s.send_to(text.as_bytes(), self.to).unwrap();
    }

    #[track_caller]
    fn expect(&self, want: &str) {
        let got = recv_line(&self.s, want);
        assert_eq!(got, want, "{} got an unexpected datagram", self.name);
    }
}

/// A TCP chat user who joined as `name` (the first user from 127.0.0.1).
#[track_caller]
fn tcp_user(server: &Server, name: &str) -> TcpStream {
    let mut s = connect(server.chat_addr());
    assert_eq!(
        read_line(&mut s),
        "* welcome to echochat; what is your name?"
    );
    s.write_all(format!("{name}\n").as_bytes()).unwrap();
    assert_eq!(read_line(&mut s), format!("* hello, {name}"));
    s
}

#[test]
fn udp_echo_sends_the_exact_bytes_back_to_the_sender() {
    let server = Server::builder().no_chat().start();
    let to = server.addr("udp-echo");
    // The twin takes its TCP service's port number when it is free (a UDP
    // socket of another test could hold it: then a bind-retry says so).
    assert!(
        to == server.echo_addr() || server.log().contains("bind-retry service=udp-echo"),
        "udp-echo on {to}, echo on {}",
        server.echo_addr()
    );
    let s = udp_socket();
    let all: Vec<u8> = (0..=255).collect();
    let big = vec![b'x'; 60_000];
    for payload in [
        &b"hello\n"[..],
        b"",
        b"exit\n",
        &all,
        b"two\nlines\r\n",
        &big,
    ] {
        s.send_to(payload, to).unwrap();
        let (got, from) = recv(&s, "the echo");
        assert_eq!(from, to, "the reply comes from the server's UDP port");
        assert_eq!(got, payload, "{} bytes", payload.len());
    }
    // Each datagram is logged both ways, with the sender's address.
    let me = s.local_addr().unwrap().to_string();
    server.wait_log("an empty datagram logged out", |e| {
        e.is("datagram", "peer", &me) && e.get("bytes") == Some("0") && e.get("dir") == Some("out")
    });
    let log = server.finish();
    let lines: Vec<_> = log.into_iter().filter(|e| e.event == "datagram").collect();
    assert_eq!(lines.len(), 12, "{lines:?}");
    for e in &lines {
        assert_eq!(e.level, "DEBUG");
        assert_eq!(e.get("service"), Some("udp-echo"));
    }
}

#[test]
fn many_udp_echo_senders_at_once_each_get_their_own_replies() {
    let server = Server::builder().no_chat().start();
    let to = server.addr("udp-echo");
    let senders: Vec<_> = (0..16)
        .map(|i| {
            thread::spawn(move || {
                let s = udp_socket();
                for n in 0..50 {
                    let msg = format!("sender {i} message {n}");
                    s.send_to(msg.as_bytes(), to).unwrap();
                    let (got, _) = recv(&s, &msg);
                    assert_eq!(String::from_utf8(got).unwrap(), msg);
                }
            })
        })
        .collect();
    for t in senders {
        t.join().expect("a sender failed");
    }
    // Bursts without waiting: every reply still comes back (loopback, and
    // far below the socket buffer), each to its own sender.
    let a = udp_socket();
    let b = udp_socket();
    for n in 0..100 {
        a.send_to(format!("a{n}").as_bytes(), to).unwrap();
        b.send_to(format!("b{n}").as_bytes(), to).unwrap();
    }
    let mut got_a: Vec<String> = (0..100)
        .map(|_| String::from_utf8(recv(&a, "a's burst").0).unwrap())
        .collect();
    let mut got_b: Vec<String> = (0..100)
        .map(|_| String::from_utf8(recv(&b, "b's burst").0).unwrap())
        .collect();
    got_a.sort();
    got_b.sort();
    let mut want_a: Vec<String> = (0..100).map(|n| format!("a{n}")).collect();
    let mut want_b: Vec<String> = (0..100).map(|n| format!("b{n}")).collect();
    want_a.sort();
    want_b.sort();
    assert_eq!(got_a, want_a);
    assert_eq!(got_b, want_b);
    server.finish();
}

#[test]
fn udp_echo_over_ipv6() {
    let server = Server::builder().no_chat().args(["--host", "::1"]).start();
    let to = server.addr("udp-echo");
    assert!(to.is_ipv6(), "{to}");
    let s = UdpSocket::bind("[::1]:0").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.send_to(b"over v6", to).unwrap();
    assert_eq!(recv(&s, "the echo over IPv6").0, b"over v6");
    server.finish();
}

/// Holds a UDP socket on a port P whose TCP port is free, and P+1 free for
/// both (checked by binding and releasing).
fn udp_held_port_with_free_neighbours() -> (UdpSocket, u16) {
    for _ in 0..50 {
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        if p == u16::MAX {
            continue;
        }
        let tcp_free = std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        let next_free = std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok();
        if tcp_free && next_free {
            return (held, p);
        }
    }
    panic!("found no suitable port in 50 tries");
}

#[test]
fn a_taken_udp_port_moves_the_twin_to_the_next_port_of_the_range() {
    let (_held, p) = udp_held_port_with_free_neighbours();
    let server = Server::builder()
        .no_chat()
        .args(["--echo-ports", &format!("{p}-{}", p + 1)])
        .start();
    assert_eq!(server.echo_addr().port(), p, "TCP is not affected");
    let twin = server.addr("udp-echo");
    assert_eq!(twin.port(), p + 1);
    let retry = server.wait_log("bind-retry of udp-echo", |e| {
        e.is("bind-retry", "service", "udp-echo")
    });
    assert_eq!(retry.get("addr"), Some(format!("127.0.0.1:{p}").as_str()));
    let s = udp_socket();
    s.send_to(b"ok", twin).unwrap();
    assert_eq!(recv(&s, "echo on the next port").0, b"ok");
    // The announcements come in order, each twin after its service.
    let out = server.stdout_text();
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {out}"))
    };
    assert!(at("echo listening on") < at("udp-echo listening on"));
    server.finish();
}

#[test]
fn no_udp_and_no_echo_turn_the_twins_off() {
    let server = Server::builder().arg("--no-udp").start();
    let out = server.stdout_text();
    assert!(!out.contains("udp-"), "{out}");
    drop(server);
    let server = Server::builder().no_echo().start();
    server.addr("udp-chat");
    let out = server.stdout_text();
    assert!(!out.contains("udp-echo"), "{out}");
}

#[test]
fn udp_chat_strangers_must_join_first() {
    let server = Server::builder().no_echo().start();
    let to = server.addr("udp-chat");
    let m = Member::new(to, "stranger");
    m.send("hello?");
    m.expect("! send /join NAME first");
    m.send("/who");
    m.expect("! send /join NAME first");
    m.send("/join two words");
    m.expect("! a name may only hold letters, digits, _ and - (not U+0020)");
    m.send("/join bob\r\n");
    m.expect("* hello, bob");
    let me = m.s.local_addr().unwrap().to_string();
    let join = server.wait_log("join of bob", |e| e.event == "join");
    assert_eq!(join.get("service"), Some("udp-chat"));
    assert_eq!(join.get("peer"), Some(me.as_str()));
    assert_eq!(join.get("name"), Some("bob"));
    server.finish();
}

#[test]
fn udp_and_tcp_users_share_names_and_hear_each_other() {
    let server = Server::builder().no_echo().start();
    let to = server.addr("udp-chat");
    let mut alice = tcp_user(&server, "alice");
    // The name is taken across transports, whatever the case.
    let m = Member::new(to, "bob");
    m.send("/join ALICE");
    m.expect("! the name ALICE is taken");
    let bob = Member::join(to, "bob");
    assert_eq!(read_line(&mut alice), "* bob joined");
    let dan = Member::join(to, "dan");
    assert_eq!(read_line(&mut alice), "* dan joined");
    bob.expect("* dan joined");
    // UDP → TCP and UDP.
    bob.send("hi from udp\n");
    assert_eq!(read_line(&mut alice), "bob: hi from udp");
    dan.expect("bob: hi from udp");
    // TCP → UDP, one datagram per line.
    alice.write_all(b"hi from tcp\nsecond line\n").unwrap();
    bob.expect("alice: hi from tcp");
    bob.expect("alice: second line");
    dan.expect("alice: hi from tcp");
    dan.expect("alice: second line");
    // /who on both sides lists both kinds of user.
    alice.write_all(b"/who\n").unwrap();
    assert_eq!(read_line(&mut alice), "* online: alice, bob, dan");
    bob.send("/who");
    bob.expect("* online: alice, bob, dan");
    // A TCP user cannot take a UDP member's name either.
    alice.write_all(b"/nick Dan\n").unwrap();
    assert_eq!(read_line(&mut alice), "! the name Dan is taken");
    // /leave is announced both ways.
    bob.send("/leave");
    bob.expect("* bye, bob");
    assert_eq!(read_line(&mut alice), "* bob left");
    dan.expect("* bob left");
    bob.send("still here?");
    bob.expect("! send /join NAME first");
    // A TCP departure reaches UDP members.
    alice.write_all(b"/quit\n").unwrap();
    dan.expect("* alice left");
    let log = server.wait_log("bob's leave", |e| e.is("leave", "name", "bob"));
    assert_eq!(log.get("service"), Some("udp-chat"));
    assert_eq!(log.get("reason"), Some("leave"));
    server.finish();
}

#[test]
fn a_silent_udp_member_expires() {
    let server = Server::builder()
        .no_echo()
        .args(["--udp-member-timeout", "300ms"])
        .start();
    let to = server.addr("udp-chat");
    let mut alice = tcp_user(&server, "alice");
    let started = Instant::now();
    let bob = Member::join(to, "bob");
    assert_eq!(read_line(&mut alice), "* bob joined");
    // bob says nothing: the server drops him and tells him why.
    bob.expect("* disconnected: idle for 300ms");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "expired early"
    );
    assert_eq!(read_line(&mut alice), "* bob left");
    let leave = server.wait_log("bob's leave", |e| e.event == "leave");
    assert_eq!(leave.get("reason"), Some("idle"));
    bob.send("back");
    bob.expect("! send /join NAME first");
    server.finish();
}

#[test]
fn shutdown_tells_udp_members() {
    let mut server = Server::builder().no_echo().start();
    let to = server.addr("udp-chat");
    let bob = Member::join(to, "bob");
    server.signal(libc::SIGTERM);
    bob.expect("* server shutting down");
    assert_eq!(server.wait_exit().code(), Some(0));
    let log = server.log();
    let leave = parse_all(&log)
        .into_iter()
        .find(|e| e.event == "leave")
        .unwrap_or_else(|| panic!("no leave line: {log}"));
    assert_eq!(leave.get("reason"), Some("shutdown"));
}

// ---------------------------------------------------------------------------
// The clients over UDP, in a pipe
// ---------------------------------------------------------------------------

/// Runs `echochat ARGS` with `input` on stdin; returns (exit code, stdout,
/// stderr), failing the test if it does not exit within the deadline.
#[track_caller]
fn run_client(args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        // English messages whatever the developer's locale (--lang).
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let deadline = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "client did not exit in time; stderr={}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = writer.join();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn echo_client_over_udp_in_a_pipe() {
    let server = Server::builder().no_chat().start();
    let port = server.addr("udp-echo").port().to_string();
    let (code, out, err) = run_client(
        &["echo", "--udp", "--port", &port],
        b"hi\n\nsecond line\r\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "hi\n\nsecond line\n");
    assert!(err.contains("datagram"), "{err}");
}

#[test]
fn echo_client_over_udp_says_when_no_reply_comes() {
    // A UDP port nobody reads: hold it, so the kernel queues and drops
    // rather than answering "port unreachable".
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let (code, out, err) = run_client(&["echo", "--udp", "--port", &port], b"anyone?\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no reply"), "{err}");
    assert!(err.lines().last().unwrap().starts_with("error: "), "{err}");
}

#[test]
fn chat_client_over_udp_in_a_pipe() {
    let server = Server::builder().no_echo().start();
    let port = server.addr("udp-chat").port().to_string();
    let mut alice = tcp_user(&server, "alice");
    let (code, out, err) = run_client(&["chat", "--udp", "--port", &port], b"bob\nhello alice\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(read_line(&mut alice), "* bob joined");
    assert_eq!(read_line(&mut alice), "bob: hello alice");
    assert_eq!(read_line(&mut alice), "* bob left");
    assert!(out.starts_with("* hello, bob\n"), "{out}");
    assert!(out.ends_with("* bye, bob\n"), "{out}");
}

#[test]
fn chat_client_over_udp_asks_again_for_a_taken_name() {
    let server = Server::builder().no_echo().start();
    let port = server.addr("udp-chat").port().to_string();
    let mut alice = tcp_user(&server, "alice");
    let (code, out, err) = run_client(&["chat", "--udp", "--port", &port], b"alice\nbob\nhi\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("! the name alice is taken\n* hello, bob\n"),
        "{out}"
    );
    assert_eq!(read_line(&mut alice), "* bob joined");
    assert_eq!(read_line(&mut alice), "bob: hi");
}

#[test]
fn framed_is_for_echo_only() {
    let out = Command::new(bin())
        .args(["chat", "--framed"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
