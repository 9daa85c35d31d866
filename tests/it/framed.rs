//! The framed echo service (DESIGN.md, "Framed echo (TCP)"): each message
//! is a 4-byte big-endian length and that many bytes, answered with the
//! same message framed the same way, however TCP splits or joins it. The
//! real `echochat serve` binary on loopback; `--read-chunk 1` makes the
//! server read one byte per `recv`, so every frame really is taken apart at
//! every byte on the server's side.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    payloads.iter().flat_map(|p| frame(p)).collect()
}

/// A server with only the framed echo service, and its address.
fn frame_server(extra: &[&str]) -> (Server, SocketAddr) {
    let server = Server::builder()
        .no_chat()
        .args(extra.iter().copied())
        .start();
    let addr = server.addr("frame");
    (server, addr)
}

#[test]
fn frames_read_one_byte_at_a_time_come_back_whole() {
    let (server, addr) = frame_server(&["--read-chunk", "1"]);
    let input = frames(&[b"hello", b"", b"two\nlines", &[0xff, 0, 0, 0, 1]]);
    // One write: the server still takes it one byte per recv.
    let mut s = connect(addr);
    s.write_all(&input).unwrap();
    assert_eq!(read_exact(&mut s, input.len()), input);
    // And written one byte at a time, too.
    let mut t = connect(addr);
    for b in &input {
        t.write_all(&[*b]).unwrap();
    }
    assert_eq!(read_exact(&mut t, input.len()), input);
    let conn = server.conn_of(&s);
    drop(s);
    drop(t);
    server.wait_disconnect(conn);
    let log = server.finish();
    let c = conn.to_string();
    let recvs: Vec<_> = log
        .into_iter()
        .filter(|e| e.event == "recv" && e.get("conn") == Some(c.as_str()))
        .collect();
    assert_eq!(recvs.len(), input.len(), "one recv per byte");
    assert!(recvs.iter().all(|e| e.get("service") == Some("frame")));
}

#[test]
fn several_frames_in_one_write_and_a_large_one() {
    let (server, addr) = frame_server(&[]);
    let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize * 7]).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let input = frames(&refs);
    let mut s = connect(addr);
    s.write_all(&input).unwrap();
    assert_eq!(read_exact(&mut s, input.len()), input);
    // 300 KB: many reads on the server's side (1 KiB each), one message.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let input = frame(&big);
    let writer = {
        let mut w = s.try_clone().unwrap();
        let input = input.clone();
        thread::spawn(move || w.write_all(&input).unwrap())
    };
    assert_eq!(read_exact(&mut s, input.len()), input);
    writer.join().unwrap();
    // FIN between frames: a clean eof.
    let conn = server.conn_of(&s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"));
    server.finish();
}

#[test]
fn empty_messages_are_echoed() {
    let (server, addr) = frame_server(&["--max-frame", "0"]);
    let input = frames(&[b"", b"", b""]);
    let mut s = connect(addr);
    s.write_all(&input).unwrap();
    assert_eq!(read_exact(&mut s, 12), input);
    // With --max-frame 0, one byte is already too long.
    s.write_all(&frame(b"x")).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    server.finish();
}

#[test]
fn an_oversize_length_closes_with_bad_frame_before_the_payload_comes() {
    let (server, addr) = frame_server(&["--max-frame", "16"]);
    let mut s = connect(addr);
    let good = frame(b"sixteen bytes ok");
    let mut input = good.clone();
    input.extend_from_slice(&17u32.to_be_bytes());
    // Only the header is sent: the server must not wait for 17 bytes that
    // never come (the read timeout would fail this test).
    s.write_all(&input).unwrap();
    let started = Instant::now();
    assert_eq!(read_to_eof(&mut s), good, "earlier messages are answered");
    assert!(started.elapsed() < DEADLINE);
    let conn = server.conn_of(&s);
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("bad-frame"), "{line}");
    assert_eq!(
        line.get("bytes_in"),
        Some(input.len().to_string().as_str()),
        "{line}"
    );
    assert_eq!(line.get("bytes_out"), Some(good.len().to_string().as_str()));
    // The largest possible length, at the default --max-frame (1 MiB).
    let mut t = connect(server.addr("frame"));
    t.write_all(&[0xff; 4]).unwrap();
    assert!(read_to_eof(&mut t).is_empty());
    let conn = server.conn_of(&t);
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("bad-frame"));
    server.finish();
}

#[test]
fn no_frame_turns_it_off_and_all_off_is_a_usage_error() {
    let server = Server::builder().no_chat().arg("--no-frame").start();
    assert!(!server.stdout_text().contains("frame listening"));
    drop(server);
    let out = Server::builder()
        .no_echo()
        .no_chat()
        .args(["--no-frame", "--no-http"])
        .run_to_exit();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Framed echo alone is a valid server.
    let server = Server::builder().no_echo().no_chat().start();
    let addr = server.addr("frame");
    let mut s = connect(addr);
    s.write_all(&frame(b"alone")).unwrap();
    assert_eq!(read_exact(&mut s, 9), frame(b"alone"));
    let out = server.stdout_text();
    assert!(!out.contains("echo listening"), "{out}");
}

#[test]
fn echo_client_with_framed_in_a_pipe() {
    let (server, addr) = frame_server(&["--read-chunk", "3"]);
    let port = addr.port().to_string();
    let mut child = Command::new(bin())
        .args(["echo", "--framed", "--port", &port])
        // English messages whatever the developer's locale (--lang).
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hi\n\na longer line, read in pieces\r\n")
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "client did not exit");
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(out.stdout, b"hi\n\na longer line, read in pieces\n");
    assert!(err.contains("header"), "{err}");
    let log = server.finish();
    assert!(
        log.iter().any(|e| e.is("disconnect", "reason", "eof")),
        "{log:?}"
    );
}
