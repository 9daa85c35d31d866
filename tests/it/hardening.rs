//! Hostile clients and faults (issue "Hardening"): memory bounded by the
//! limits, backpressure enforced at once, a graceful stop that ends every
//! connection with FIN, the signals the contract lists, and bad values as
//! usage errors. Real server processes, real sockets on loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use libc::{SIGHUP, SIGQUIT, SIGTERM, SIGUSR1};

const MIB: u64 = 1 << 20;

/// A client socket with a small receive buffer, set before connecting, so
/// the kernel holds little on our side and the server's queue does the
/// holding.
fn small_rcvbuf_connect(addr: std::net::SocketAddr, rcvbuf: usize) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    sock.connect(&addr.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_nodelay(true).unwrap();
    s
}

/// Issue item 1: a client that sends flat out and reads slowly. Before the
/// fix, sent bytes stayed in the half-sent front chunk and server RSS grew
/// by ~15 MB/s for as long as the client kept going.
#[test]
fn a_slow_reading_echo_client_cannot_grow_server_memory() {
    let server = Server::builder().no_chat().start();
    let idle = server.rss_bytes();
    let mut s = small_rcvbuf_connect(server.echo_addr(), 4096);
    s.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sink = vec![0u8; 4096];
    let mut peak = idle;
    let started = Instant::now();
    let mut last_read = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match s.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("write: {e}"),
        }
        if last_read.elapsed() >= Duration::from_micros(200) {
            let _ = s.read(&mut sink);
            last_read = Instant::now();
        }
        peak = peak.max(server.rss_bytes());
        thread::sleep(Duration::from_micros(100));
    }
    // One connection: --max-backlog (1 MiB) plus a fixed 32 MiB.
    let bound = idle + MIB + 32 * MIB;
    assert!(
        peak < bound,
        "server RSS peaked at {} MiB (idle {} MiB, bound {} MiB)",
        peak / MIB,
        idle / MIB,
        bound / MIB
    );
}

/// Issue item 2: with a client that never reads, echo stops reading the
/// moment its unsent output passes --max-backlog. What it holds unsent when
/// the client goes (bytes_in - bytes_out of the disconnect line) is at most
/// the limit plus one read.
#[test]
fn echo_backpressure_stops_within_one_read_of_the_limit() {
    let server = Server::builder()
        .no_chat()
        .args(["--max-backlog", "64KiB"])
        .start();
    let mut s = small_rcvbuf_connect(server.echo_addr(), 4096);
    let conn = server.conn_of(&s);
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'y'; 1024];
    let mut sent = 0usize;
    // Until the kernel's buffers on both sides are full too: a write that
    // stays blocked for 0.5 s. Bounded: 64 MiB at most.
    while sent < 64 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(sent < 64 << 20, "the server never stopped reading");
    drop(s);
    let line = server.wait_disconnect(conn);
    let bytes_in: usize = line.get("bytes_in").unwrap().parse().unwrap();
    let bytes_out: usize = line.get("bytes_out").unwrap().parse().unwrap();
    let unsent = bytes_in - bytes_out;
    assert!(
        unsent <= 64 * 1024 + 1024,
        "server held {unsent} bytes unsent with --max-backlog 64KiB: {}",
        line.text
    );
}

/// Issue item 3: one flooder and a room of readers, some of which never
/// read. Memory stays within --max-backlog per connection plus a fixed
/// amount, and goes back down when everyone leaves.
#[test]
fn a_chat_flood_is_bounded_by_the_backlog_and_memory_returns() {
    const READERS: usize = 12;
    const DEAF: usize = 4;
    let server = Server::builder()
        .no_echo()
        .args([
            "--max-backlog",
            "256KiB",
            "--chat-rate",
            "1000000",
            "--chat-burst",
            "1000000",
        ])
        .start();
    let idle = server.rss_bytes();
    let join = |name: &str| {
        let mut s = small_rcvbuf_connect(server.chat_addr(), 4096);
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        read_line(&mut s); // the name question
        s.write_all(format!("{name}\n").as_bytes()).unwrap();
        loop {
            if read_line(&mut s).starts_with("* hello") {
                break;
            }
        }
        s
    };
    let mut readers = Vec::new();
    for i in 0..READERS {
        let s = join(&format!("r{i}"));
        readers.push(s);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for s in readers.drain(DEAF..) {
        let stop = stop.clone();
        threads.push(thread::spawn(move || {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 16384];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    _ => continue,
                }
            }
        }));
    }
    let mut flooder = join("flooder");
    flooder
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let lines = "x\n".repeat(4096);
    let mut peak = idle;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let _ = flooder.write(lines.as_bytes());
        peak = peak.max(server.rss_bytes());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let conns = (READERS + 1) as u64;
    let bound = idle + conns * 256 * 1024 + 32 * MIB;
    assert!(
        peak < bound,
        "server RSS peaked at {} MiB (idle {} MiB, bound {} MiB)",
        peak / MIB,
        idle / MIB,
        bound / MIB
    );
    drop(flooder);
    drop(readers);
    let mut after = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        after = server.rss_bytes();
        if after <= 2 * idle {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        after <= 2 * idle,
        "RSS {} KiB 5 s after everyone left (idle {} KiB)",
        after / 1024,
        idle / 1024
    );
}

/// Issue item 7: a graceful stop under load ends every connection with FIN,
/// not RST, and each client receives every byte the log says was sent.
#[test]
fn a_graceful_stop_under_load_closes_with_fin_and_loses_nothing() {
    const CLIENTS: usize = 40;
    let mut server = Server::builder().no_chat().start();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let s = connect(server.echo_addr());
        let conn = server.conn_of(&s);
        clients.push((conn, s));
    }
    // Each client has data in flight both ways when the stop begins.
    for (_, s) in &mut clients {
        s.write_all(&[b'z'; 10 * 1024]).unwrap();
    }
    server.signal(SIGTERM);
    let mut received = Vec::new();
    for (conn, s) in &mut clients {
        // Keep sending a little after the stop began, as a busy client
        // would, then read to EOF: a RST would fail this read.
        let _ = s.write_all(&[b'w'; 1024]);
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) => panic!(
                "conn {conn}: {e} after {} bytes (want FIN, not RST)",
                got.len()
            ),
        }
        received.push((*conn, got.len()));
    }
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    let events = server.events();
    for (conn, got) in received {
        let c = conn.to_string();
        let line = events
            .iter()
            .find(|e| e.is("disconnect", "conn", &c))
            .unwrap_or_else(|| panic!("no disconnect for conn {conn}"));
        let bytes_out: usize = line.get("bytes_out").unwrap().parse().unwrap();
        assert_eq!(
            bytes_out, got,
            "conn {conn}: log says sent, client got: {}",
            line.text
        );
        assert_eq!(line.get("reason"), Some("shutdown"), "{}", line.text);
    }
}

/// Issue item 8: SIGHUP (the terminal closed) and SIGQUIT stop gracefully,
/// with a `stop` line and the chat notice; SIGUSR1 does not stop at all.
#[test]
fn sighup_and_sigquit_stop_gracefully_and_sigusr1_does_not_kill() {
    for sig in [SIGHUP, SIGQUIT] {
        let mut server = Server::builder().no_echo().start();
        let mut s = connect(server.chat_addr());
        read_line(&mut s);
        s.write_all(b"ann\n").unwrap();
        assert_eq!(read_line(&mut s), "* hello, ann");
        server.signal(sig);
        assert_eq!(read_line(&mut s), "* server shutting down");
        let status = server.wait_exit();
        assert!(status.success(), "signal {sig}: exit status {status:?}");
        let stop = server.wait_log("stop", |e| e.event == "stop");
        assert_eq!(stop.get("reason"), Some("signal"), "{}", stop.text);
    }
    let mut server = Server::builder().no_chat().start();
    server.signal(SIGUSR1);
    // Still serving after the signal: an echo round trip works.
    let mut s = connect(server.echo_addr());
    s.write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut s), "still here");
    assert!(server.is_running(), "SIGUSR1 killed the server");
}

/// `--max-per-ip`: past the limit from one address, the newcomer is told
/// the server is full and closed with `reason=full`; others still get in.
#[test]
fn max_per_ip_refuses_the_extra_connection_from_one_address() {
    let server = Server::builder()
        .no_chat()
        .args(["--max-per-ip", "2"])
        .start();
    let mut a = connect(server.echo_addr());
    let mut b = connect(server.echo_addr());
    for s in [&mut a, &mut b] {
        s.write_all(b"hi\n").unwrap();
        assert_eq!(read_line(s), "hi");
    }
    let mut c = connect(server.echo_addr());
    let conn = server.conn_of(&c);
    assert_eq!(read_line(&mut c), "! server full, try again later");
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("full"), "{}", line.text);
    // A place frees when one leaves.
    let a_conn = server.conn_of(&a);
    drop(a);
    server.wait_disconnect(a_conn);
    let mut d = connect(server.echo_addr());
    d.write_all(b"again\n").unwrap();
    assert_eq!(read_line(&mut d), "again");
}

/// Issue item 11: bad values are usage errors (exit 2, clap's message),
/// like every other bad value; `--host localhost` is resolved.
#[test]
fn bad_serve_values_are_usage_errors() {
    for args in [
        &["--read-chunk", "0"][..],
        &["--read-chunk", "17MiB"],
        &["--max-line", "0"],
        &["--max-clients", "0"],
        &["--log-keep", "1001"],
        &["--log-keep", "4294967295"],
        &["--no-echo", "--no-chat", "--no-http", "--no-frame"],
        &["--host", "no-such-host.invalid"],
    ] {
        let out = run_bin(["serve"].iter().copied().chain(args.iter().copied()));
        assert_eq!(out.status.code(), Some(2), "serve {args:?}: {out:?}");
        assert!(
            out.stderr.contains("error:"),
            "serve {args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn serve_host_accepts_a_name() {
    let server = Server::builder()
        .no_chat()
        .args(["--host", "localhost"])
        .start();
    assert!(
        server.echo_addr().ip().is_loopback(),
        "{}",
        server.echo_addr()
    );
}

/// `--chat-rate`/`--chat-burst`: a flooder is not read until its allowance
/// refills (`pause why=rate`, then `resume`); nothing it sent is lost, and
/// another user's line still goes through at once meanwhile.
#[test]
fn a_chat_flooder_is_paused_by_rate_and_loses_nothing() {
    const LINES: usize = 150;
    let server = Server::builder()
        .no_echo()
        .args(["--chat-rate", "100", "--chat-burst", "10"])
        .start();
    let join = |name: &str| {
        let mut s = connect(server.chat_addr());
        read_line(&mut s);
        s.write_all(format!("{name}\n").as_bytes()).unwrap();
        while !read_line(&mut s).starts_with("* hello") {}
        s
    };
    let mut reader = join("reader");
    let mut flooder = join("flooder");
    let mut other = join("other");
    let mut batch = String::new();
    // ~40 bytes a line: the flood spans several 1 KiB reads, and the room
    // charges the allowance a read at a time.
    let pad = "p".repeat(36);
    for i in 0..LINES {
        batch.push_str(&format!("{i} {pad}\n"));
    }
    let started = Instant::now();
    flooder.write_all(batch.as_bytes()).unwrap();
    server.wait_log("pause why=rate", |e| e.is("pause", "why", "rate"));
    // The room still answers someone else while the flooder waits.
    let asked = Instant::now();
    other.write_all(b"/who\n").unwrap();
    // (Lines the flooder got in before its pause arrive first.)
    while !read_line(&mut other).starts_with("* online:") {}
    let who_took = asked.elapsed();
    let mut seen = Vec::new();
    while seen.len() < LINES {
        let line = read_line(&mut reader);
        if let Some(rest) = line.strip_prefix("flooder: ") {
            let (n, p) = rest.split_once(' ').unwrap();
            assert_eq!(p, pad);
            seen.push(n.parse::<usize>().unwrap());
        }
    }
    let took = started.elapsed();
    assert_eq!(seen, (0..LINES).collect::<Vec<_>>(), "every line, in order");
    // The first read (~25 lines) overdraws the burst of 10; each later
    // read waits for its lines' worth of allowance: 150 lines at 100/s
    // cannot all arrive in under a second.
    assert!(
        took >= Duration::from_millis(1000),
        "flood went through in {took:?}"
    );
    assert!(
        who_took < Duration::from_millis(500),
        "/who took {who_took:?}"
    );
    server.wait_log("resume", |e| e.event == "resume");
}
