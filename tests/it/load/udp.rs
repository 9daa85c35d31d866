//! `echochat load udp-echo` against the real server's udp-echo twin: the
//! `--json` keys, counts that add up (every datagram sent is received or
//! lost, none reordered or duplicated on loopback), the size on the wire,
//! and exit 1 with an `error:` line when nothing answers.

use super::common::Server;
use super::{load, load_json, n};
use serde_json::Value;

#[test]
fn udp_echo_json_keys_and_counts_that_add_up() {
    // debug: the server logs each datagram (capped at 100/s), so the size
    // on the wire can be checked from its side.
    let server = Server::builder().args(["--log-level", "debug"]).start();
    let port = server.addr("udp-echo").port();
    let v = load_json(&format!(
        "udp-echo --port {port} --clients 10 --threads 2 --size 100 --rate 1000 --duration 2s"
    ));
    for key in [
        "scenario",
        "clients",
        "connected",
        "connect_errors",
        "connect_errors_by_cause",
        "messages",
        "msgs_per_sec",
        "mib_per_sec",
        "latency_us",
        "verify_errors",
        "io_errors",
        "duration_s",
        "lost",
        "reordered",
        "duplicated",
        "sent",
        "received",
        "lost_pct",
        "client_drops",
        "send_dropped",
        "rate",
        "shortfall_pct",
        "not_started",
        "size",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][key].is_u64(), "latency_us.{key}: {v}");
    }
    assert_eq!(v["scenario"], "udp-echo");
    assert_eq!(n(&v, "clients"), 10);
    assert_eq!(n(&v, "connected"), 10, "{v}");
    assert_eq!(n(&v, "connect_errors"), 0, "{v}");
    assert_eq!(n(&v, "served"), 10, "every socket got replies: {v}");
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
    assert_eq!(n(&v, "io_errors"), 0, "{v}");
    // 1,000 a second for 2 s, open loop: the generator keeps the rate.
    let sent = n(&v, "sent");
    assert!((1900..=2010).contains(&sent), "{v}");
    assert!(v["shortfall_pct"].as_f64().unwrap() <= 5.0, "{v}");
    // Every datagram sent came back or is counted lost. Loopback itself
    // loses nothing at this rate, but a machine busy enough to stall the
    // server for ~100 ms overflows its receive buffer, so allow 1%.
    let (received, lost) = (n(&v, "received"), n(&v, "lost"));
    assert_eq!(received + lost, sent, "{v}");
    assert!(lost * 100 <= sent, "more than 1% lost at 1,000/s: {v}");
    assert_eq!(n(&v, "messages"), received);
    assert_eq!(n(&v, "latency_samples"), received);
    // One server thread answers each socket in order, once.
    assert_eq!(n(&v, "reordered"), 0, "{v}");
    assert_eq!(n(&v, "duplicated"), 0, "{v}");
    assert_eq!(n(&v, "bytes"), received * 100);
    assert_eq!(n(&v, "bytes_sent"), sent * 100);
    let lat = &v["latency_us"];
    assert!(lat["max"].as_u64() >= lat["p50"].as_u64(), "{v}");
    assert!(lat["p50"].as_u64().unwrap() > 0, "{v}");
    // The server saw 100-byte datagrams from us, and answered them.
    let datagrams = server.count_events(|e| {
        e.event == "datagram" && e.get("service") == Some("udp-echo") && e.get("dir") == Some("in")
    });
    assert!(datagrams > 0, "no datagram events: {}", server.log());
    assert_eq!(
        server.count_events(|e| e.event == "datagram" && e.get("bytes") != Some("100")),
        0,
        "{}",
        server.log()
    );
}

#[test]
fn udp_echo_human_summary_fits_a_screen() {
    let server = Server::start();
    let port = server.addr("udp-echo").port();
    let out = load(&format!(
        "udp-echo --port {port} --clients 3 --rate 300 --duration 500ms"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.starts_with(&format!(
            "echochat load udp-echo -> 127.0.0.1:{port}: 3 sockets, 64 B datagrams, open loop at 300 msgs/s"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("sockets:     3 opened, 0 failed; 3 answered"),
        "{stdout}"
    );
    assert!(stdout.contains(" reordered, 0 duplicated"), "{stdout}");
    assert!(stdout.contains("(due time to reply)"), "{stdout}");
    assert!(stdout.lines().count() <= 8, "more than a screen: {stdout}");
}

#[test]
fn udp_echo_with_nothing_listening_exits_1() {
    // A UDP port nobody holds: the kernel answers with ICMP port
    // unreachable, which a connected UDP socket reports as ECONNREFUSED.
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    drop(s);
    let out = load(&format!(
        "udp-echo --port {port} --clients 3 --rate 300 --duration 500ms --json"
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the report is still printed");
    assert_eq!(n(&v, "received"), 0, "{v}");
    assert_eq!(n(&v, "lost"), n(&v, "sent"), "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("error: no reply from udp-echo at 127.0.0.1:{port}: ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    // Either the ICMP came back (refused), or nothing at all did.
    assert!(
        line.contains("ICMP port unreachable") || line.contains("none came back"),
        "{line}"
    );
}

#[test]
fn udp_echo_to_a_server_without_udp_exits_1() {
    // The TCP echo port is there; its UDP twin is not.
    let server = Server::builder().args(["--no-udp"]).start();
    let port = server.echo_addr().port();
    let out = load(&format!(
        "udp-echo --port {port} --clients 2 --rate 200 --duration 500ms"
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: no reply from udp-echo at ") && stderr.contains("--no-udp"),
        "{stderr}"
    );
    assert!(
        !server.log().contains("service=udp-echo"),
        "{}",
        server.log()
    );
}

#[test]
fn udp_echo_bad_values_are_usage_errors() {
    for (args, want) in [
        ("udp-echo --size 15", "--size"),
        ("udp-echo --size 65508", "--size"),
        ("udp-echo --rate 0", "--rate"),
        ("udp-echo --duration 0", "--duration"),
        ("udp-echo --clients 0", "--clients"),
    ] {
        let out = load(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: invalid value") && stderr.contains(want),
            "{args:?}: {stderr}"
        );
    }
    let help = load("udp-echo --help");
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["lost", "reordered", "duplicated", "ICMP", "no reply at all"] {
        assert!(text.contains(word), "udp-echo --help lacks {word}: {text}");
    }
}
