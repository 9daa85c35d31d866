//! `echochat load` end to end: the real binary against a real
//! `echochat serve` on loopback port 0. Speed is never asserted; counts,
//! verification, the `--json` keys and the reporting of failed connects are.

mod common;

use std::process::{Command, Output};

use common::Server;
use serde_json::Value;

/// Run `echochat load ARGS...` to completion.
fn load(args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("load")
        .args(args)
        .output()
        .expect("run echochat load")
}

/// Run with `--json` appended; check the exit code and parse stdout.
#[track_caller]
fn load_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = load(&all);
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

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

#[test]
fn echo_run_verifies_every_reply_and_reports_the_json_keys() {
    let server = Server::start();
    let port = server.echo_addr().port().to_string();
    let v = load_json(&[
        "echo",
        "--port",
        &port,
        "--clients",
        "4",
        "--threads",
        "2",
        "--size",
        "1000",
        "--duration",
        "1s",
    ]);
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
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][key].is_u64(), "latency_us.{key}: {v}");
    }
    assert_eq!(v["scenario"], "echo");
    assert_eq!(n(&v, "clients"), 4);
    assert_eq!(n(&v, "connected"), 4);
    assert_eq!(n(&v, "connect_errors"), 0);
    assert_eq!(n(&v, "verify_errors"), 0);
    assert_eq!(n(&v, "io_errors"), 0);
    assert_eq!(n(&v, "incomplete"), 0);
    assert_eq!(n(&v, "served"), 4);
    let messages = n(&v, "messages");
    assert!(messages > 0, "no round trips: {v}");
    assert_eq!(n(&v, "bytes"), messages * 1000);
    assert_eq!(n(&v, "latency_samples"), messages);
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["latency_us"]["max"].as_u64().unwrap() >= v["latency_us"]["p50"].as_u64().unwrap());
}

#[test]
fn echo_replies_split_by_small_server_reads_still_verify() {
    // The server reads 1 KiB at a time, so each 64 KiB reply comes back in
    // many pieces; the count and the byte-exact check must not care.
    let server = Server::builder().args(["--read-chunk", "1KiB"]).start();
    let port = server.echo_addr().port().to_string();
    let v = load_json(&[
        "echo",
        "--port",
        &port,
        "--clients",
        "3",
        "--size",
        "64KiB",
        "--duration",
        "1s",
    ]);
    assert_eq!(n(&v, "connected"), 3);
    assert!(n(&v, "messages") > 0, "{v}");
    assert_eq!(n(&v, "bytes"), n(&v, "messages") * 65536);
    assert_eq!(n(&v, "verify_errors"), 0);
    assert_eq!(n(&v, "io_errors"), 0);
}

#[test]
fn echo_human_summary_and_clean_disconnects() {
    let server = Server::start();
    let port = server.echo_addr().port().to_string();
    let out = load(&[
        "echo",
        "--port",
        &port,
        "--clients",
        "3",
        "--duration",
        "500ms",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("connections: 3 made, 0 failed; 3 served"),
        "{stdout}"
    );
    assert!(stdout.contains("latency us:  p50 "), "{stdout}");
    assert!(
        stdout.contains("errors:      0 verification, 0 io"),
        "{stdout}"
    );
    // Every connection ends with FIN (nothing left unread), not RST.
    let disconnect_reasons = || -> Vec<String> {
        server
            .log()
            .lines()
            .filter(|l| common::event_name(l) == Some("disconnect"))
            .filter_map(|l| common::field(l, "reason"))
            .collect()
    };
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
fn connect_failures_against_a_closed_port_are_reported_not_fatal() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    drop(l);
    let v = load_json(&[
        "echo",
        "--port",
        &port,
        "--clients",
        "3",
        "--duration",
        "1s",
    ]);
    assert_eq!(n(&v, "connected"), 0);
    assert_eq!(n(&v, "connect_errors"), 3);
    assert_eq!(v["connect_errors_by_cause"]["refused"], 3, "{v}");
    assert_eq!(n(&v, "messages"), 0);

    let out = load(&["echo", "--port", &port, "--clients", "2"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("connections: 0 made, 2 failed (refused 2)"),
        "{stdout}"
    );
}

#[test]
fn sessions_the_server_turns_down_count_as_connect_errors() {
    // `--max-clients 2`: the third and fourth get `! server full` and FIN.
    let server = Server::builder().args(["--max-clients", "2"]).start();
    let port = server.echo_addr().port().to_string();
    let v = load_json(&[
        "echo",
        "--port",
        &port,
        "--clients",
        "4",
        "--duration",
        "500ms",
    ]);
    assert_eq!(n(&v, "connected"), 2, "{v}");
    assert_eq!(n(&v, "connect_errors"), 2, "{v}");
    let by = &v["connect_errors_by_cause"];
    assert_eq!(
        by["closed"].as_u64().unwrap() + by["reset"].as_u64().unwrap(),
        2,
        "{v}"
    );
    assert_eq!(n(&v, "verify_errors"), 0);
    assert_eq!(n(&v, "io_errors"), 0);
}

#[test]
fn chat_run_delivers_every_line_twice_over_with_remembered_names() {
    let server = Server::start();
    let port = server.chat_addr().port().to_string();
    // The second run meets names remembered by IP (`* welcome back, NAME`).
    for run in 0..2 {
        let v = load_json(&[
            "chat",
            "--port",
            &port,
            "--clients",
            "5",
            "--threads",
            "2",
            "--rate",
            "10",
            "--duration",
            "1s",
        ]);
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
fn bad_values_are_one_error_line_and_exit_1() {
    for (args, want) in [
        (
            vec!["echo", "--clients", "0"],
            "error: --clients must be at least 1",
        ),
        (
            vec!["echo", "--size", "0", "--port", "1"],
            "error: --size must be between 1 byte and 16MiB",
        ),
        (
            vec!["echo", "--size", "1GiB", "--port", "1"],
            "error: --size must be between 1 byte and 16MiB",
        ),
        (
            vec!["chat", "--rate", "0", "--port", "1"],
            "error: --rate must be",
        ),
    ] {
        let out = load(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
    }
}

#[test]
fn running_out_of_descriptors_is_counted_by_cause() {
    // The load process may hold 40 descriptors: stdio, the epoll instance
    // and a few more leave room for fewer than 40 of the 60 connections.
    let server = Server::start();
    let port = server.echo_addr().port().to_string();
    let out = Command::new("prlimit")
        .arg("--nofile=40:40")
        .arg(common::bin())
        .args(["load", "echo", "--port", &port, "--clients", "60"])
        .args(["--duration", "300ms", "--json"])
        .output()
        .expect("run prlimit echochat load");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("descriptor limit 40"), "{stderr}");
    assert!(
        stderr.contains("warning: 60 clients need more descriptors"),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let connected = n(&v, "connected");
    let out_of_fds = v["connect_errors_by_cause"]["out_of_descriptors"]
        .as_u64()
        .unwrap();
    assert!(connected > 0 && out_of_fds > 0, "{v}");
    assert_eq!(connected + n(&v, "connect_errors"), 60, "{v}");
    assert_eq!(n(&v, "connect_errors"), out_of_fds, "{v}");
    assert_eq!(n(&v, "verify_errors"), 0);
}
