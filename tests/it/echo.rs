//! The echo service on real loopback sockets: exact binary echo, a large
//! stream in both directions at once, many concurrent clients, half-close
//! and idle timeout (DESIGN.md, "Echo protocol" and "Limits and bad input").
//!
//! Every test starts its own `echochat serve` on port 0 (see
//! `common/`); the exit word has its own module, `exit_word.rs`.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

fn echo_server() -> Server {
    Server::builder().no_chat().start()
}

/// Bytes from a small deterministic generator, different per `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// True if `data` holds a line that is exactly `exit` (it would close the
/// connection, so stream tests avoid such data).
fn has_exit_line(data: &[u8]) -> bool {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    lines.pop(); // the part after the last \n is not a line
    lines.iter().any(|l| *l == b"exit" || *l == b"exit\r")
}

#[test]
fn every_byte_value_comes_back_unchanged() {
    let server = echo_server();
    let mut s = connect(server.echo_addr());
    // All 256 values, NUL included, a few times over and in a shifted order,
    // so NUL, \r and \n sit at different positions.
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend((0..=255u8).rev());
    data.extend((0..=255u8).map(|b| b.wrapping_mul(7)));
    assert!(!has_exit_line(&data));
    s.write_all(&data).unwrap();
    assert_eq!(read_exact(&mut s, data.len()), data);
    // Nothing extra after it: the server adds no framing.
    let back = send_and_finish(&mut s, b"\0");
    assert_eq!(back, b"\0");
}

#[test]
fn one_mib_streamed_both_ways_at_once() {
    let server = echo_server();
    let s = connect(server.echo_addr());
    let data = pattern(1, 1 << 20);
    assert!(!has_exit_line(&data));
    let mut writer = s.try_clone().unwrap();
    let to_send = data.clone();
    // Writing and reading at the same time: a server that echoed only after
    // reading everything, or that blocked on a full send buffer, would
    // deadlock here (and the read timeout would fail the test).
    let w = thread::spawn(move || {
        for chunk in to_send.chunks(7919) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = s;
    let mut got = Vec::with_capacity(data.len());
    reader.read_to_end(&mut got).expect("read echo to EOF");
    w.join().unwrap();
    assert_eq!(got.len(), data.len(), "echoed byte count");
    assert!(got == data, "echoed bytes differ from those sent");
    let conn = server.conn_of(&reader);
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"), "{line}");
    assert_eq!(line.get("bytes_in"), Some("1048576"), "{line}");
    assert_eq!(line.get("bytes_out"), Some("1048576"), "{line}");
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_stream() {
    const CLIENTS: usize = 200;
    const THREADS: usize = 8;
    const ROUNDS: usize = 4;
    const MSG: usize = 1500;
    let server = echo_server();
    let addr = server.echo_addr();
    // All 200 connections are open at once before any traffic, and every
    // round writes to all of a thread's sockets before reading any, so the
    // server really holds 200 interleaved streams.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let ids: Vec<usize> = (t..CLIENTS).step_by(THREADS).collect();
                let mut socks: Vec<_> = ids.iter().map(|_| connect(addr)).collect();
                barrier.wait();
                let mut checked = 0;
                for round in 0..ROUNDS {
                    let msgs: Vec<Vec<u8>> = ids
                        .iter()
                        .map(|&id| pattern((id * ROUNDS + round) as u64 + 1000, MSG))
                        .collect();
                    for (s, m) in socks.iter_mut().zip(&msgs) {
                        s.write_all(m).unwrap();
                    }
                    for ((s, m), id) in socks.iter_mut().zip(&msgs).zip(&ids) {
                        let got = read_exact(s, MSG);
                        assert!(got == *m, "client {id} round {round}: wrong bytes");
                        checked += 1;
                    }
                }
                for s in &mut socks {
                    s.shutdown(Shutdown::Write).unwrap();
                    assert!(read_to_eof(s).is_empty(), "extra bytes after the echo");
                }
                checked
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, CLIENTS * ROUNDS);
    // Every one of them was a connection of its own in the log.
    wait_until("200 disconnects logged", || {
        server.count_events(|e| e.event == "disconnect") == CLIENTS
    });
    let conns: std::collections::HashSet<String> = server
        .events()
        .into_iter()
        .filter(|e| e.event == "accept")
        .filter_map(|e| e.get("conn").map(str::to_string))
        .collect();
    assert_eq!(conns.len(), CLIENTS, "distinct conn ids");
}

#[test]
fn half_close_still_gets_everything_back_then_eof() {
    let server = echo_server();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let data = pattern(7, 64 * 1024);
    assert!(!has_exit_line(&data));
    // After our FIN the server must keep sending what it owes, then close.
    let back = send_and_finish(&mut s, &data);
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes after half-close differ");
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("eof"), "{line}");
    assert_eq!(line.get("bytes_out"), Some("65536"), "{line}");
}

#[test]
fn idle_connection_is_closed_after_the_idle_timeout() {
    let server = Server::builder()
        .no_chat()
        .args(["--idle-timeout", "300ms"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    s.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut s, 1), b"x");
    let quiet_since = Instant::now();
    // The read timeout (DEADLINE) bounds the wait; EOF must come first.
    let rest = read_to_eof(&mut s);
    let waited = quiet_since.elapsed();
    assert!(rest.is_empty(), "unexpected bytes {rest:?}");
    // Not a speed check: closing well before the timeout would be a bug.
    assert!(
        waited >= Duration::from_millis(200),
        "closed after only {waited:?} of silence"
    );
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("idle"), "{line}");
}

#[test]
fn traffic_keeps_a_connection_alive_past_the_idle_timeout() {
    let server = Server::builder()
        .no_chat()
        .args(["--idle-timeout", "300ms"])
        .start();
    let mut s = connect(server.echo_addr());
    let start = Instant::now();
    // A byte every 100 ms for ~0.6 s: never idle for 300 ms.
    let mut i = 0u8;
    while start.elapsed() < Duration::from_millis(600) {
        s.write_all(&[b'a' + i % 26]).unwrap();
        assert_eq!(read_exact(&mut s, 1), [b'a' + i % 26]);
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let back = send_and_finish(&mut s, b"end");
    assert_eq!(back, b"end");
}

#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("note: skipping ipv6_loopback: this machine has no ::1");
        return;
    }
    let server = Server::builder().no_chat().args(["--host", "::1"]).start();
    let addr = server.echo_addr();
    assert!(addr.is_ipv6());
    let want = format!("echo listening on [::1]:{}", addr.port());
    assert!(
        server.stdout_text().contains(&want),
        "stdout lacks {want:?}: {}",
        server.stdout_text()
    );
    let mut s = connect(addr);
    let back = send_and_finish(&mut s, b"hello over v6\n");
    assert_eq!(back, b"hello over v6\n");
}

#[test]
fn abrupt_close_is_reason_reset_and_harms_no_one_else() {
    let server = echo_server();
    let mut other = connect(server.echo_addr());
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    s.write_all(b"a").unwrap();
    assert_eq!(read_exact(&mut s, 1), b"a");
    // SO_LINGER with a zero timeout makes close(2) send RST instead of FIN.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("reset"), "{line}");
    assert_eq!(send_and_finish(&mut other, b"fine\n"), b"fine\n");
}
