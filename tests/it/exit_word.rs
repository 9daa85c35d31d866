//! The echo service's exit word on real sockets (DESIGN.md, "Echo
//! protocol"): a line that is exactly `exit` (`\n` or `\r\n`, case-
//! sensitive) closes the connection with `reason=exit` after the bytes
//! before it were echoed, the exit line itself is not echoed, and the word
//! may arrive split across reads. Near-misses are plain data.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use crate::common::*;

fn server_with(args: &[&str]) -> Server {
    Server::builder()
        .no_chat()
        .args(args.iter().copied())
        .start()
}

/// Writes `data`, expects `echoed` back and then EOF (the server closed),
/// and returns the connection's `disconnect` line.
#[track_caller]
fn expect_close(server: &Server, data: &[u8], echoed: &[u8]) -> LogLine {
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    s.write_all(data).unwrap();
    // We do not half-close: EOF can only come from the server deciding.
    let back = read_to_eof(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&back),
        String::from_utf8_lossy(echoed),
        "echoed before the close"
    );
    server.wait_disconnect(conn)
}

/// Writes `data`, expects exactly it back, and checks the connection is
/// still open (a later line is still echoed).
#[track_caller]
fn expect_echo_and_open(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_exact(s, data.len())),
        String::from_utf8_lossy(data),
        "echo of {data:?}"
    );
    s.write_all(b"still here\n").unwrap();
    assert_eq!(
        read_line(s),
        "still here",
        "connection closed after {data:?}"
    );
}

#[test]
fn exit_lf_closes_after_echoing_what_came_before() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"hello\nexit\n", b"hello\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
    assert_eq!(line.get("bytes_out"), Some("6"), "{line}");
}

#[test]
fn exit_crlf_closes_too() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"abc\r\nexit\r\n", b"abc\r\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

#[test]
fn exit_as_the_very_first_line() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"exit\n", b"");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

#[test]
fn bytes_after_the_exit_line_are_not_echoed() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"one\nexit\ntwo\n", b"one\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

/// Splits the exit line at every position into two writes; before the
/// second write, waits until the server logged a `recv` of the first part,
/// so the word really arrives in two reads.
#[test]
fn exit_word_split_across_two_reads() {
    let server = server_with(&[]);
    let cases: [(&[u8], &[u8]); 4] = [
        (b"data\nex", b"it\n"),
        (b"e", b"xit\r\n"),
        (b"exit", b"\n"),
        (b"exit\r", b"\n"),
    ];
    for (first, second) in cases {
        let mut s = connect(server.echo_addr());
        let conn = server.conn_of(&s);
        s.write_all(first).unwrap();
        let c = conn.to_string();
        let n = first.len().to_string();
        server.wait_log(&format!("recv of the first part on conn {conn}"), |e| {
            e.is("recv", "conn", &c) && e.get("bytes") == Some(&n)
        });
        // Bytes before the undecided line must not wait for it.
        let before_line = &first[..first.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
        if !before_line.is_empty() {
            assert_eq!(read_exact(&mut s, before_line.len()), before_line);
        }
        s.write_all(second).unwrap();
        let rest = read_to_eof(&mut s);
        assert!(
            rest.is_empty(),
            "split {first:?}+{second:?}: exit line was echoed: {rest:?}"
        );
        let line = server.wait_disconnect(conn);
        assert_eq!(line.get("reason"), Some("exit"), "{line}");
    }
}

#[test]
fn near_misses_are_echoed_and_do_not_close() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    for miss in [
        &b"exitx\n"[..],
        b"Exit\n",
        b"EXIT\n",
        b" exit\n",
        b"exi\n",
        b"xexit\n",
        b"exit \n",
        b"ex\nit\n",
        b"exit\rx\n",
        b"exit\r\r\n",
        b"exit\0\n",
    ] {
        expect_echo_and_open(&mut s, miss);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"), "{line}");
}

/// A near-miss split across reads: the held-back bytes must come back once
/// the line turns out not to be the exit line.
#[test]
fn held_back_prefix_is_released_when_the_line_is_not_exit() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    s.write_all(b"exi").unwrap();
    let c = conn.to_string();
    server.wait_log("recv of exi", |e| e.is("recv", "conn", &c));
    s.write_all(b"sting\n").unwrap();
    assert_eq!(read_line(&mut s), "existing");
}

/// `exit` without a line end, then EOF, is not a line: it is echoed and the
/// connection ends as any half-close does.
#[test]
fn unterminated_exit_at_eof_is_echoed() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let back = send_and_finish(&mut s, b"exit");
    assert_eq!(String::from_utf8_lossy(&back), "exit");
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"), "{line}");
}

#[test]
fn empty_exit_word_turns_the_feature_off() {
    let server = server_with(&["--exit-word", ""]);
    let mut s = connect(server.echo_addr());
    expect_echo_and_open(&mut s, b"exit\n");
    expect_echo_and_open(&mut s, b"exit\r\n");
    expect_echo_and_open(&mut s, b"\n");
}

#[test]
fn custom_exit_word() {
    let server = server_with(&["--exit-word", "bye"]);
    let mut s = connect(server.echo_addr());
    expect_echo_and_open(&mut s, b"exit\n");
    expect_echo_and_open(&mut s, b"byebye\n");
    drop(s);
    let line = expect_close(&server, b"hi\nbye\n", b"hi\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}
