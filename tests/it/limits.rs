//! Limits and bad input (DESIGN.md, "Limits and bad input"): the
//! `--max-clients` refusal, backpressure against a client that never reads,
//! and running out of descriptors at `accept` without a busy loop.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// Checks that `s` is served: a message goes out and comes back.
#[track_caller]
fn assert_echoes(s: &mut TcpStream, msg: &str) {
    s.write_all(msg.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    assert_eq!(read_line(s), msg);
}

#[test]
fn max_clients_refuses_the_extra_one_with_a_message() {
    let server = Server::builder()
        .no_chat()
        .args(["--max-clients", "3"])
        .start();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut s = connect(server.echo_addr());
            assert_echoes(&mut s, &format!("client {i}"));
            s
        })
        .collect();
    let mut fourth = connect(server.echo_addr());
    assert_eq!(read_line(&mut fourth), "! server full, try again later");
    assert!(
        read_to_eof(&mut fourth).is_empty(),
        "more after the full line"
    );
    let peer = fourth.local_addr().unwrap().to_string();
    let line = server.wait_log("disconnect reason=full", |e| {
        e.is("disconnect", "peer", &peer)
    });
    assert_eq!(line.get("reason"), Some("full"), "{line}");
    // The three are unaffected.
    for (i, s) in held.iter_mut().enumerate() {
        assert_echoes(s, &format!("still {i}"));
    }
    // One leaves; then a new client is accepted and served.
    let mut gone = held.pop().unwrap();
    let conn = server.conn_of(&gone);
    gone.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut gone).is_empty());
    server.wait_disconnect(conn);
    let mut fresh = connect(server.echo_addr());
    assert_echoes(&mut fresh, "welcome back in");
}

/// A client writes up to 20 MiB and never reads. With `--max-backlog
/// 64KiB` the server must stop reading from it (TCP flow control then
/// stalls the writer) instead of buffering: its RSS stays bounded, and
/// another client is served meanwhile.
#[test]
fn client_that_never_reads_leaves_memory_bounded() {
    const TOTAL: u64 = 20 << 20;
    let server = Server::builder()
        .no_chat()
        .args(["--max-backlog", "64KiB"])
        .start();
    let mut other = connect(server.echo_addr());
    assert_echoes(&mut other, "warm up");
    let baseline = server.rss_bytes();

    let hog = connect(server.echo_addr());
    // A write that cannot progress for 1 s means the writer is stalled by
    // flow control: stop there (bounded in time whatever happens).
    hog.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let written = written.clone();
        let done = done.clone();
        let mut hog = hog.try_clone().unwrap();
        thread::spawn(move || {
            let chunk = vec![b'z'; 64 * 1024];
            let mut stalled = false;
            while written.load(Ordering::Relaxed) < TOTAL {
                match hog.write(&chunk) {
                    Ok(n) => {
                        written.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        stalled = true;
                        break;
                    }
                    Err(e) => panic!("writer failed: {e}"),
                }
            }
            done.store(true, Ordering::Relaxed);
            stalled
        })
    };
    let mut peak = baseline;
    let mut rounds = 0;
    while !done.load(Ordering::Relaxed) {
        peak = peak.max(server.rss_bytes());
        // The other client is served while the hog pushes.
        assert_echoes(&mut other, &format!("meanwhile {rounds}"));
        rounds += 1;
        thread::sleep(Duration::from_millis(20));
    }
    let stalled = writer.join().unwrap();
    peak = peak.max(server.rss_bytes());
    assert_echoes(&mut other, "after the hog");
    let growth = peak.saturating_sub(baseline);
    println!(
        "hog wrote {} KiB (stalled: {stalled}); server RSS {} KiB -> peak {} KiB (+{} KiB)",
        written.load(Ordering::Relaxed) >> 10,
        baseline >> 10,
        peak >> 10,
        growth >> 10
    );
    // Buffering the hog's bytes would cost most of 20 MiB (only the
    // kernel's send buffer toward the hog, a few MiB, could absorb the
    // rest); backpressure keeps it near 64 KiB.
    assert!(
        growth < 8 << 20,
        "server RSS grew by {} KiB while a client sent without reading",
        growth >> 10
    );
    drop(hog);
}

/// Descriptors run out at `accept`: the server logs `accept-error` once for
/// the episode, does not spin, keeps serving the connections it has, and
/// accepts again once descriptors free up.
///
/// The server fits `--max-clients` to its `RLIMIT_NOFILE`, so to reach
/// `EMFILE` below that count it inherits extra open descriptors (as if
/// something else in the process held them).
#[test]
fn emfile_is_logged_once_without_a_busy_loop_and_accepting_resumes() {
    let server = Server::builder()
        .no_chat()
        .nofile(100)
        .extra_fds(74)
        .start();
    let addr = server.echo_addr();
    let mut probe = connect(addr);
    assert_echoes(&mut probe, "before");

    // More connections than descriptors left (~100 - 74 - the server's
    // own few), fewer than the fitted --max-clients (100 - 64 = 36).
    let mut crowd: Vec<TcpStream> = (0..30).map(|_| connect(addr)).collect();
    let err = server.wait_log("accept-error", |e| e.event == "accept-error");
    assert_eq!(err.level, "WARN", "{err}");
    assert_eq!(err.get("service"), Some("echo"), "{err}");
    assert!(err.get("error").is_some_and(|e| !e.is_empty()), "{err}");

    // About a second into the episode, with more clients knocking, the
    // server's CPU time must stay small (a busy loop burns ~100 ticks/s).
    let ticks_before = server.cpu_ticks();
    let t0 = Instant::now();
    for _ in 0..10 {
        crowd.push(connect(addr));
        thread::sleep(Duration::from_millis(100));
    }
    let ticks = server.cpu_ticks() - ticks_before;
    let secs = t0.elapsed().as_secs_f64();
    println!("EMFILE episode: {ticks} ticks of CPU in {secs:.2} s");
    assert!(
        (ticks as f64) < 50.0 * secs,
        "server used {ticks} CPU ticks in {secs:.2} s while out of descriptors (busy loop?)"
    );
    // Still serving what it has.
    assert_echoes(&mut probe, "during");
    let errors = server.count_events(|e| e.event == "accept-error");
    assert_eq!(errors, 1, "accept-error must be logged once per episode");

    // Free the descriptors: the waiting connections are accepted (and see
    // our FIN), and a new client is served again.
    let n = crowd.len();
    drop(crowd);
    wait_until("every crowd connection accepted and closed", || {
        server.count_events(|e| e.event == "disconnect") == n
    });
    let mut fresh = connect(addr);
    assert_echoes(&mut fresh, "after");
    assert_echoes(&mut probe, "probe after");
}
