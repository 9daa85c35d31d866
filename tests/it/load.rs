//! `echochat load` end to end: the real binary against a real
//! `echochat serve` on loopback port 0. Speed is never asserted; counts,
//! verification, the `--json` keys, the exit status, the reporting of failed
//! connects, the open-loop rate, and a server stall showing in open-loop
//! latency are. `framed.rs` covers `load echo --framed`, `udp.rs` covers
//! `load udp-echo`.

mod common;
mod framed;
mod udp;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// Run `echochat load ARGS` to completion (ARGS split at spaces).
fn load(args: &str) -> Output {
    Command::new(common::bin())
        .arg("load")
        .args(args.split_whitespace())
        .output()
        .expect("run echochat load")
}

/// Run with `--json` appended; check the exit code and parse stdout.
#[track_caller]
fn load_json(args: &str) -> Value {
    let out = load(&format!("{args} --json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stdout={stdout} stderr={stderr}",
        out.status
    );
    assert!(
        stderr.contains("preflight: descriptor limit"),
        "no preflight line: {stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Start `echochat serve SERVER_ARGS`, then run `echochat load ARGS --port
/// P --json` against the service the scenario drives (chat for `chat`,
/// echo otherwise). The server is returned for looking at its log.
#[track_caller]
fn against(server_args: &[&str], args: &str) -> (Server, Value) {
    let server = Server::builder().args(server_args.iter().copied()).start();
    let addr = if args.starts_with("chat") {
        server.chat_addr()
    } else {
        server.echo_addr()
    };
    let v = load_json(&format!("{args} --port {}", addr.port()));
    (server, v)
}

/// The `reason` of every `disconnect` in the server's log, in order.
fn disconnect_reasons(server: &Server) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| common::event_name(l) == Some("disconnect"))
        .filter_map(|l| common::field(l, "reason"))
        .collect()
}

/// No reply failed verification and no established session broke.
#[track_caller]
fn assert_clean(v: &Value) {
    assert_eq!(n(v, "verify_errors"), 0, "{v}");
    assert_eq!(n(v, "io_errors"), 0, "{v}");
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

#[test]
fn echo_run_verifies_every_reply_and_reports_the_json_keys() {
    let (_server, v) = against(
        &[],
        "echo --clients 4 --threads 2 --size 1000 --duration 1s",
    );
    for key in [
        "scenario",
        "clients",
        "connected",
        "connect_errors",
        "messages",
        "msgs_per_sec",
        "mib_per_sec",
        "latency_us",
        "verify_errors",
        "io_errors",
        "duration_s",
        "connect_errors_by_cause",
        // Added with the second round of the load generator.
        "target",
        "bytes_sent",
        "bytes_received",
        "mib_per_sec_sent",
        "mib_per_sec_received",
        "ramp_s",
        "ramp_cut",
        "generator_cpu_s",
        "generator_cpu_pct",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][key].is_u64(), "latency_us.{key}: {v}");
    }
    for key in ["mean", "stdev"] {
        assert!(v["latency_us"][key].is_f64(), "latency_us.{key}: {v}");
    }
    for cause in [
        "refused",
        "reset",
        "timed_out",
        "full",
        "out_of_descriptors",
        "out_of_ports",
        "closed",
        "other",
    ] {
        assert_eq!(v["connect_errors_by_cause"][cause], 0, "{cause}: {v}");
    }
    assert!(v.get("rate").is_none(), "closed loop has no rate: {v}");
    assert_eq!(v["scenario"], "echo");
    assert_eq!(n(&v, "clients"), 4);
    assert_eq!(n(&v, "connected"), 4);
    assert_eq!(n(&v, "connect_errors"), 0);
    assert_clean(&v);
    assert_eq!(n(&v, "incomplete"), 0);
    assert_eq!(n(&v, "served"), 4);
    let messages = n(&v, "messages");
    assert!(messages > 0, "no round trips: {v}");
    assert_eq!(n(&v, "bytes"), messages * 1000);
    assert_eq!(n(&v, "bytes_sent"), messages * 1000);
    assert_eq!(n(&v, "bytes_received"), messages * 1000);
    assert_eq!(n(&v, "latency_samples"), messages);
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["latency_us"]["max"].as_u64().unwrap() >= v["latency_us"]["p50"].as_u64().unwrap());
}

#[test]
fn echo_replies_split_by_small_server_reads_still_verify() {
    // The server reads 1 KiB at a time, so each 64 KiB reply comes back in
    // many pieces; the count and the byte-exact check must not care.
    let (_server, v) = against(
        &["--read-chunk", "1KiB"],
        "echo --clients 3 --size 64KiB --duration 1s",
    );
    assert_eq!(n(&v, "connected"), 3);
    assert!(n(&v, "messages") > 0, "{v}");
    assert_eq!(n(&v, "bytes"), n(&v, "messages") * 65536);
    assert_clean(&v);
}

#[test]
fn echo_human_summary_and_clean_disconnects() {
    let server = Server::start();
    let port = server.echo_addr().port().to_string();
    let out = load(&format!("echo --port {port} --clients 3 --duration 500ms"));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("connections: 3 made, 0 failed; 3 served"),
        "{stdout}"
    );
    assert!(stdout.contains("latency ms:  mean "), "{stdout}");
    assert!(
        stdout.contains("errors:      0 verification, 0 io"),
        "{stdout}"
    );
    assert!(stdout.contains(" MiB/s sent, "), "{stdout}");
    assert!(stdout.lines().count() <= 8, "more than a screen: {stdout}");
    // Every connection ends with FIN (nothing left unread), not RST.
    let disconnect_reasons = || disconnect_reasons(&server);
    common::wait_until("three echo disconnects in the log", || {
        disconnect_reasons().len() == 3
    });
    assert_eq!(
        disconnect_reasons(),
        ["eof", "eof", "eof"],
        "{}",
        server.log()
    );
}

#[test]
fn nothing_listening_is_reported_then_exit_1() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    drop(l);
    let out = load(&format!(
        "echo --port {port} --clients 3 --duration 1s --json"
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("the report is still printed");
    assert_eq!(n(&v, "connected"), 0);
    assert_eq!(n(&v, "connect_errors"), 3);
    assert_eq!(v["connect_errors_by_cause"]["refused"], 3, "{v}");
    assert_eq!(n(&v, "messages"), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("error: no connection to 127.0.0.1:{port} could be made (refused 3)");
    assert!(stderr.lines().any(|l| l.starts_with(&want)), "{stderr}");

    let out = load(&format!("echo --port {port} --clients 2"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("connections: 0 made, 2 failed (refused 2)"),
        "{stdout}"
    );
}

#[test]
fn sessions_the_server_turns_down_count_as_connect_errors() {
    // `--max-clients 2`: the third and fourth get `! server full` and FIN.
    let (_server, v) = against(&["--max-clients", "2"], "echo --clients 4 --duration 500ms");
    assert_eq!(n(&v, "connected"), 2, "{v}");
    assert_eq!(n(&v, "connect_errors"), 2, "{v}");
    // `! server full, try again later` is its own cause, not `closed`.
    assert_eq!(v["connect_errors_by_cause"]["full"], 2, "{v}");
    assert_clean(&v);
}

#[test]
fn chat_run_delivers_every_line_twice_over_with_remembered_names() {
    let server = Server::start();
    let port = server.chat_addr().port().to_string();
    // The second run meets names remembered by IP (`* welcome back, NAME`).
    for run in 0..2 {
        let v = load_json(&format!(
            "chat --port {port} --clients 5 --threads 2 --rate 10 --duration 1s"
        ));
        assert_eq!(v["scenario"], "chat");
        assert_eq!(n(&v, "connected"), 5, "run {run}: {v}");
        assert_eq!(n(&v, "connect_errors"), 0, "run {run}: {v}");
        let sent = n(&v, "messages");
        assert!(sent >= 5, "run {run}: {v}");
        assert_eq!(n(&v, "expected"), sent * 4, "run {run}: {v}");
        assert_eq!(n(&v, "delivered"), sent * 4, "run {run}: {v}");
        assert_eq!(v["delivered_fraction"], 1.0, "run {run}: {v}");
        assert_eq!(n(&v, "verify_errors"), 0, "run {run}: {v}");
        assert_eq!(n(&v, "io_errors"), 0, "run {run}: {v}");
        assert_eq!(n(&v, "server_errors"), 0, "run {run}: {v}");
        assert_eq!(n(&v, "latency_samples"), sent * 4);
    }
    // The second run's first user was welcomed back under a name of the
    // first run and adopted it: that name joined twice.
    let joins: Vec<String> = server
        .log()
        .lines()
        .filter(|l| common::event_name(l) == Some("join"))
        .filter_map(|l| common::field(l, "name"))
        .collect();
    assert_eq!(joins.len(), 10, "{joins:?}");
    let rejoined = joins
        .iter()
        .filter(|name| joins.iter().filter(|other| other == name).count() == 2)
        .count();
    assert_eq!(rejoined, 2, "no welcome-back in the second run: {joins:?}");
    // Every user left with FIN, not RST (nothing left unread).
    common::wait_until("ten chat disconnects", || {
        server.log().matches(" disconnect ").count() == 10
    });
    assert_eq!(
        server.log().matches("reason=reset").count(),
        0,
        "{}",
        server.log()
    );
}

#[test]
fn bad_values_are_usage_errors() {
    for (args, want) in [
        ("echo --clients 0", "--clients"),
        ("echo --threads 0", "--threads"),
        ("echo --duration 0", "--duration"),
        ("connect --duration 0s", "--duration"),
        ("echo --size 0", "--size"),
        ("echo --size 1GiB", "--size"),
        ("echo --rate 0", "--rate"),
        ("chat --rate=-1", "--rate"),
        ("connect --rate x", "--rate"),
    ] {
        let out = load(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: invalid value") && stderr.contains(want),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_explains_every_counter() {
    for scenario in ["echo", "chat", "connect"] {
        let out = load(&format!("{scenario} --help"));
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for word in [
            "timed_out",
            "full",
            "served",
            "unanswered",
            "delivered",
            "other clients",
            "MiB/s",
            "DUE",
            "Exit status",
        ] {
            assert!(
                help.contains(word),
                "{scenario} --help lacks {word}: {help}"
            );
        }
    }
}

#[test]
fn more_clients_than_descriptors_are_refused_before_starting() {
    // The load process may hold 40 descriptors: 60 connections cannot fit,
    // and the run must say so at once rather than fail half of them.
    let server = Server::start();
    let port = server.echo_addr().port().to_string();
    let started = std::time::Instant::now();
    let out = Command::new("prlimit")
        .arg("--nofile=40:40")
        .arg(common::bin())
        .args(["load", "echo", "--port", &port, "--clients", "60"])
        .args(["--duration", "10s", "--json"])
        .output()
        .expect("run prlimit echochat load");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: --clients 60 needs 60 descriptors, but the descriptor limit is 40"
        ),
        "{stderr}"
    );
    assert!(!server.log().contains(" accept "), "{}", server.log());
}

#[test]
fn chat_users_the_server_turns_away_count_as_full() {
    let (_server, v) = against(
        &["--max-clients", "2"],
        "chat --clients 4 --rate 5 --duration 1s",
    );
    assert_eq!(n(&v, "connected"), 2, "{v}");
    assert_eq!(v["connect_errors_by_cause"]["full"], 2, "{v}");
    assert_eq!(n(&v, "connect_errors"), 2, "{v}");
    assert_eq!(n(&v, "delivered"), n(&v, "expected"), "{v}");
}

#[test]
fn open_loop_echo_keeps_the_asked_rate() {
    let (_server, v) = against(&[], "echo --clients 4 --rate 200 --duration 3s");
    assert_eq!(v["rate"], 200.0, "{v}");
    let achieved = v["msgs_per_sec"].as_f64().unwrap();
    assert!(
        (achieved - 200.0).abs() <= 10.0,
        "asked 200 msgs/s, got {achieved}: {v}"
    );
    assert!(v["shortfall_pct"].as_f64().unwrap() <= 5.0, "{v}");
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
    assert_eq!(n(&v, "incomplete"), 0, "{v}");
    assert_eq!(n(&v, "not_started"), 0, "{v}");
}

/// Run `echochat load echo` while the server is stopped (SIGSTOP) for
/// `stall`, once the load is under way; returns the report.
fn echo_with_a_stall(extra: &[&str], stall: Duration) -> Value {
    // debug: every recv is logged (capped at 100/s), so the first message
    // of the load phase shows in the log.
    let server = Server::builder().args(["--log-level", "debug"]).start();
    let port = server.echo_addr().port().to_string();
    let mut cmd = Command::new(common::bin());
    cmd.args(["load", "echo", "--port", &port, "--clients", "4"])
        .args(["--duration", "3s", "--json"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("start echochat load");
    common::wait_until("the load's first message at the server", || {
        server.log().contains(" recv ")
    });
    server.signal(libc::SIGSTOP);
    // The stall itself: a deliberate length of time, not a wait for a
    // condition.
    std::thread::sleep(stall);
    server.signal(libc::SIGCONT);
    let out = child.wait_with_output().expect("load output");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_server_stall_shows_in_open_loop_p99_but_hides_in_closed_loop() {
    let stall = Duration::from_millis(300);
    // Open loop, 200 msgs/s: the ~60 messages due during the stall are
    // each late by up to 300 ms, measured from when they were due.
    let open = echo_with_a_stall(&["--rate", "200"], stall);
    assert_eq!(n(&open, "verify_errors"), 0, "{open}");
    let p99 = open["latency_us"]["p99"].as_u64().unwrap();
    assert!(
        p99 >= 200_000,
        "open-loop p99 {p99} µs hides the stall: {open}"
    );
    // Closed loop: the four messages in flight wait 300 ms, but nothing is
    // sent meanwhile, so they are a handful among many thousands.
    let closed = echo_with_a_stall(&[], stall);
    let max = closed["latency_us"]["max"].as_u64().unwrap();
    let p99 = closed["latency_us"]["p99"].as_u64().unwrap();
    assert!(max >= 250_000, "closed loop never saw the stall: {closed}");
    assert!(p99 < 200_000, "closed-loop p99 {p99} µs: {closed}");
}

#[test]
fn connect_cycles_are_counted_and_the_server_closes_first() {
    let (server, v) = against(&[], "connect --clients 4 --rate 100 --duration 1s");
    assert_eq!(v["scenario"], "connect");
    let done = n(&v, "connected");
    assert!((90..=110).contains(&done), "100/s for 1 s: {v}");
    assert_eq!(n(&v, "messages"), done, "{v}");
    assert_eq!(n(&v, "connect_errors"), 0, "{v}");
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
    assert_eq!(n(&v, "latency_samples"), done, "{v}");
    assert!(v["connects_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    // Every cycle is one accept and one disconnect at the server, closed by
    // the exit word (the server's side keeps the TIME_WAIT).
    let reasons = || disconnect_reasons(&server);
    common::wait_until("a disconnect per cycle", || reasons().len() as u64 == done);
    assert!(reasons().iter().all(|r| r == "exit"), "{:?}", reasons());
    let accepts = server
        .log()
        .lines()
        .filter(|l| common::event_name(l) == Some("accept"))
        .count() as u64;
    assert_eq!(accepts, done);
}

#[test]
fn connect_as_fast_as_possible_and_against_a_full_server() {
    let server = Server::builder().args(["--max-clients", "1"]).start();
    let port = server.echo_addr().port().to_string();
    // One connection held open: every cycle is turned away as full.
    let _held = common::connect(server.echo_addr());
    common::wait_until("the held connection accepted", || {
        server.log().contains(" accept ")
    });
    let out = load(&format!(
        "connect --port {port} --clients 2 --duration 500ms --json"
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(n(&v, "connected"), 0, "{v}");
    let full = v["connect_errors_by_cause"]["full"].as_u64().unwrap();
    assert!(full > 0 && full == n(&v, "connect_errors"), "{v}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: no connection to "), "{stderr}");

    drop(_held);
    let v = load_json(&format!(
        "connect --port {port} --clients 1 --duration 500ms"
    ));
    assert!(n(&v, "connected") > 10, "{v}");
    assert_eq!(n(&v, "verify_errors"), 0, "{v}");
}

#[test]
fn a_slow_ramp_still_ends_on_time() {
    // A listener that never accepts, with a listen queue of one: past the
    // first connections the kernel drops SYNs, so connects hang.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(1).unwrap();
    let port = sock
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .port()
        .to_string();
    let started = Instant::now();
    let out = load(&format!(
        "echo --port {port} --clients 20 --duration 2s --json"
    ));
    let took = started.elapsed();
    // --duration 2s, plus at most the 2 s drain, plus start-up slack.
    assert!(took < Duration::from_secs(6), "took {took:?}: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ramp_cut"], true, "{v}");
    assert!(v["ramp_s"].as_f64().unwrap() < 1.5, "{v}");
    assert!(
        v["connect_errors_by_cause"]["timed_out"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert_eq!(n(&v, "connected") + n(&v, "connect_errors"), 20, "{v}");
    let stdout = load(&format!("echo --port {port} --clients 20 --duration 1s")).stdout;
    let text = String::from_utf8_lossy(&stdout);
    assert!(text.contains("cut short"), "{text}");
}
