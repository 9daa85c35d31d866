//! Port ranges (DESIGN.md, "Ports"): a busy port is logged as `bind-retry`
//! and the next one taken; a fully taken range is `error: no free port ...`
//! and exit 1.
//!
//! Fixed ports are not safe in parallel tests, so the ranges are made of
//! ports this test holds, below the kernel's ephemeral range so that no
//! other test's port-0 socket can take them meanwhile.

use std::io::Write;
use std::net::TcpListener;

use crate::common::*;

/// A port P below the kernel's ephemeral range (where no `bind(0)` of a
/// parallel test can land), different for each call, with P and P+1 free
/// at the moment of the check. Inside the ephemeral range another test's
/// port-0 listener can take P+1 between this check and the server's bind.
fn quiet_port_pair() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Spread over the space below the range by process id, then step.
    let span = low.saturating_sub(20_000).max(1000);
    let base = 20_000 + (std::process::id() % u32::from(span / 2)) as u16;
    for _ in 0..200 {
        let p = base + 2 * NEXT.fetch_add(1, Ordering::Relaxed) % span;
        if p + 1 < low
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("found no free port pair below {low} in 200 tries");
}

/// Holds a listener on some port P while P+1 is free.
fn held_port_with_free_next() -> (TcpListener, u16) {
    let p = quiet_port_pair();
    (TcpListener::bind(("127.0.0.1", p)).unwrap(), p)
}

/// Holds listeners on two consecutive ports P and P+1.
fn two_held_ports() -> (TcpListener, TcpListener, u16) {
    let p = quiet_port_pair();
    let a = TcpListener::bind(("127.0.0.1", p)).unwrap();
    let b = TcpListener::bind(("127.0.0.1", p + 1)).unwrap();
    (a, b, p)
}

#[test]
fn busy_port_is_skipped_with_bind_retry() {
    let (_held, p) = held_port_with_free_next();
    let server = Server::builder()
        .no_chat()
        .args(["--echo-ports", &format!("{p}-{}", p + 1)])
        .start();
    let next = p + 1;
    assert_eq!(server.echo_addr().port(), next, "bound the next port");
    let want = format!("echo listening on 127.0.0.1:{next}");
    assert!(
        server.stdout_text().contains(&want),
        "stdout lacks {want:?}: {}",
        server.stdout_text()
    );
    let retry = server.wait_log("bind-retry logged", |e| e.event == "bind-retry");
    assert_eq!(retry.level, "WARN", "{retry}");
    assert_eq!(retry.get("service"), Some("echo"), "{retry}");
    assert_eq!(
        retry.get("addr"),
        Some(format!("127.0.0.1:{p}").as_str()),
        "{retry}"
    );
    assert!(retry.get("error").is_some_and(|e| !e.is_empty()), "{retry}");
    let listen = server.wait_log("listen logged", |e| e.event == "listen");
    assert_eq!(
        listen.get("addr"),
        Some(format!("127.0.0.1:{next}").as_str()),
        "{listen}"
    );
    // And it really serves there.
    let mut s = connect(server.echo_addr());
    assert_eq!(send_and_finish(&mut s, b"ok\n"), b"ok\n");
}

#[test]
fn fully_taken_range_exits_1_naming_service_and_range() {
    let (_a, _b, p) = two_held_ports();
    let range = format!("{p}-{}", p + 1);
    let out = Server::builder()
        .no_chat()
        .args(["--echo-ports", &range])
        .run_to_exit();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let want = format!("error: no free port for echo in {range}");
    assert!(
        out.stderr.starts_with(&want),
        "stderr should start with {want:?}: {:?}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("listening on"),
        "claimed to listen: {:?}",
        out.stdout
    );
    // Both ports were tried, each logged.
    let log = std::fs::read_to_string(out.dir.path().join("logs/echochat.log")).unwrap_or_default();
    let retries: Vec<_> = parse_all(&log)
        .into_iter()
        .filter(|e| e.event == "bind-retry")
        .map(|e| e.get("addr").unwrap_or("").to_string())
        .collect();
    assert_eq!(
        retries,
        [format!("127.0.0.1:{p}"), format!("127.0.0.1:{}", p + 1)],
        "bind-retry lines in the log:\n{log}"
    );
}

#[test]
fn single_taken_port_exits_1() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = held.local_addr().unwrap().port();
    let out = Server::builder()
        .no_chat()
        .args(["--echo-ports", &p.to_string()])
        .run_to_exit();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: no free port for echo in "),
        "{:?}",
        out.stderr
    );
    assert!(out.stderr.contains(&p.to_string()), "{:?}", out.stderr);
}

/// `SO_REUSEADDR`: a restart on the same port does not trip on the
/// `TIME_WAIT` left by a connection the server closed first.
#[test]
fn restart_on_the_same_port_despite_time_wait() {
    let mut first = Server::builder().no_chat().start();
    let port = first.echo_addr().port();
    let mut s = connect(first.echo_addr());
    // The exit word makes the server close first, so its side of the
    // connection (on `port`) goes to TIME_WAIT.
    s.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_eof(&mut s), b"exit\n", "the exit line is echoed");
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit().code(), Some(0));
    let second = Server::builder()
        .no_chat()
        .args(["--echo-ports", &port.to_string()])
        .start();
    assert_eq!(second.echo_addr().port(), port);
}
