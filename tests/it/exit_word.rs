//! The echo service's exit word on real sockets (DESIGN.md, "Echo
//! protocol"): a line that is exactly `exit` (`\n` or `\r\n`, case-
//! sensitive, telnet commands in it set aside) is echoed like any other
//! line, then the connection closes with `reason=exit`; bytes after it are
//! not echoed; the word may arrive split across reads, one key at a time.
//! Nothing is ever held back: each key comes back before the next is sent.
//! Near-misses are plain data.

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
    let line = expect_close(&server, b"hello\nexit\n", b"hello\nexit\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
    assert_eq!(line.get("bytes_out"), Some("11"), "{line}");
}

#[test]
fn exit_crlf_closes_too() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"abc\r\nexit\r\n", b"abc\r\nexit\r\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

#[test]
fn exit_as_the_very_first_line() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"exit\n", b"exit\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

#[test]
fn bytes_after_the_exit_line_are_not_echoed() {
    let server = server_with(&[]);
    let line = expect_close(&server, b"one\nexit\ntwo\n", b"one\nexit\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}

/// Splits the exit line into two writes; before the second write, waits
/// until the first came back (so the word really arrives in two reads, and
/// nothing of it was held back).
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
        assert_eq!(read_exact(&mut s, first.len()), first, "held back");
        s.write_all(second).unwrap();
        let rest = read_to_eof(&mut s);
        assert_eq!(rest, second, "split {first:?}+{second:?}");
        let line = server.wait_disconnect(conn);
        assert_eq!(line.get("reason"), Some("exit"), "{line}");
    }
}

/// A character-at-a-time client (Windows telnet, no local echo): each key
/// must come back before the next is typed, or the user sees nothing.
/// `e`, `ex`, `exi` used to wait for the next key (issue 9).
#[test]
fn each_key_is_echoed_before_the_next_is_sent() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    for key in b"hi\r\nexi\r\nexit\r\n".chunks(1) {
        s.write_all(key).unwrap();
        assert_eq!(read_exact(&mut s, 1), key, "key {:?}", key[0] as char);
    }
    // The last key ended the exit line: it was echoed, then the close.
    assert!(read_to_eof(&mut s).is_empty());
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
    assert_eq!(line.get("bytes_out"), Some("15"), "{line}");
}

/// Linux telnet after Ctrl-C: `IAC IP IAC DO TIMING-MARK`, then the user
/// types `exit`. The commands are echoed (every byte is) but set aside when
/// matching, so the first `exit` closes (issue 9: it took two).
#[test]
fn exit_after_ctrl_c_from_telnet_closes_at_once() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let ctrl_c = [0xff, 0xf4, 0xff, 0xfd, 0x06];
    s.write_all(&ctrl_c).unwrap();
    assert_eq!(read_exact(&mut s, ctrl_c.len()), ctrl_c);
    s.write_all(b"exit\r\n").unwrap();
    assert_eq!(read_to_eof(&mut s), b"exit\r\n");
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
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

/// A near-miss split across reads comes back at once, piece by piece.
#[test]
fn a_near_miss_split_across_reads_is_echoed_piece_by_piece() {
    let server = server_with(&[]);
    let mut s = connect(server.echo_addr());
    s.write_all(b"exi").unwrap();
    assert_eq!(read_exact(&mut s, 3), b"exi");
    s.write_all(b"sting\n").unwrap();
    assert_eq!(read_line(&mut s), "sting");
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
    let line = expect_close(&server, b"hi\nbye\n", b"hi\nbye\n");
    assert_eq!(line.get("reason"), Some("exit"), "{line}");
}
