//! The log file (DESIGN.md, "Lifecycle events and the log file"): every
//! line follows the grammar, the seven core events carry their keys, `conn`
//! is unique while `slot` is reused, and rotation under traffic keeps every
//! line whole in exactly one file.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::thread;

use crate::common::*;

#[track_caller]
fn assert_keys(line: &LogLine, keys: &[&str]) {
    for k in keys {
        assert!(
            line.get(k).is_some_and(|v| !v.is_empty()),
            "{} lacks key {k}: {line:?}",
            line.event
        );
    }
}

#[test]
fn every_line_parses_and_the_seven_events_carry_their_keys() {
    let mut server = Server::builder().no_chat().start();
    let mut s = connect(server.echo_addr());
    let peer = s.local_addr().unwrap().to_string();
    s.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut s), "hello");
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    let conn = server.conn_of(&s);
    server.wait_disconnect(conn);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));

    let events = server.events(); // fails on any line off the grammar
    let find = |name: &str| -> &LogLine {
        events
            .iter()
            .find(|e| e.event == name)
            .unwrap_or_else(|| panic!("no {name} event in:\n{}", server.log()))
    };
    let start = find("start");
    assert_eq!(start.level, "INFO");
    assert_keys(start, &["version", "pid"]);
    assert_eq!(start.get("pid"), Some(server.pid().to_string().as_str()));
    assert_eq!(start.get("version"), Some(env!("CARGO_PKG_VERSION")));

    let listen = find("listen");
    assert_eq!(listen.level, "INFO");
    assert_keys(listen, &["service", "addr"]);
    assert_eq!(listen.get("service"), Some("echo"));
    assert_eq!(
        listen.get("addr"),
        Some(server.echo_addr().to_string().as_str())
    );

    let accept = find("accept");
    assert_eq!(accept.level, "INFO");
    assert_keys(accept, &["service", "conn", "slot", "peer"]);
    assert_eq!(accept.get("peer"), Some(peer.as_str()));
    assert_eq!(accept.get("conn"), Some(conn.to_string().as_str()));

    let recv = find("recv");
    assert_eq!(recv.level, "DEBUG");
    assert_keys(recv, &["service", "conn", "bytes"]);
    let send = find("send");
    assert_eq!(send.level, "DEBUG");
    assert_keys(send, &["service", "conn", "bytes"]);
    let sum = |name: &str| -> u64 {
        events
            .iter()
            .filter(|e| e.event == name && e.get("conn") == Some(conn.to_string().as_str()))
            .map(|e| e.get("bytes").unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("recv"), 6, "recv bytes of conn {conn}");
    assert_eq!(sum("send"), 6, "send bytes of conn {conn}");

    let disc = find("disconnect");
    assert_eq!(disc.level, "INFO");
    assert_keys(
        disc,
        &[
            "service",
            "conn",
            "peer",
            "reason",
            "bytes_in",
            "bytes_out",
            "duration",
        ],
    );
    assert_eq!(disc.get("reason"), Some("eof"));
    assert_eq!(disc.get("peer"), Some(peer.as_str()));
    assert_eq!(disc.get("bytes_in"), Some("6"));
    assert_eq!(disc.get("bytes_out"), Some("6"));

    let stop = find("stop");
    assert_eq!(stop.level, "INFO");
    assert_keys(stop, &["reason", "uptime"]);
    assert_eq!(stop.get("reason"), Some("signal"));
    assert_eq!(
        events.last().unwrap().event,
        "stop",
        "stop is the last line"
    );
    assert_eq!(events[0].event, "start", "start is the first line");
}

/// "A line is visible to `tail -F` within one reactor turn": the startup
/// lines must reach the file while the server sits idle, not only once the
/// first connection or signal wakes the loop. (Not a speed check: the wait
/// is the usual 20 s deadline.)
#[test]
fn startup_lines_reach_the_file_without_any_traffic() {
    let server = Server::builder().no_chat().start();
    let line = server.wait_log("listen line in the file of an idle server", |e| {
        e.event == "listen"
    });
    assert_eq!(
        line.get("addr"),
        Some(server.echo_addr().to_string().as_str()),
        "{line}"
    );
    assert!(server.events().first().is_some_and(|e| e.event == "start"));
}

#[test]
fn info_file_level_leaves_out_recv_and_send() {
    let server = Server::builder()
        .no_chat()
        .args(["--log-level", "info"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    assert_eq!(send_and_finish(&mut s, b"abc"), b"abc");
    server.wait_disconnect(conn);
    let names: HashSet<String> = server.events().into_iter().map(|e| e.event).collect();
    assert!(
        !names.contains("recv") && !names.contains("send"),
        "{names:?}"
    );
    assert!(names.contains("accept"), "{names:?}");
}

#[test]
fn conn_is_unique_while_slot_is_reused() {
    let server = Server::builder().no_chat().start();
    let mut seen = Vec::new();
    // One connection at a time: each closes (and is logged closed) before
    // the next opens, so the slab hands the freed slot out again.
    for i in 0..6u8 {
        let mut s = connect(server.echo_addr());
        let conn = server.conn_of(&s);
        assert_eq!(send_and_finish(&mut s, &[i]), [i]);
        server.wait_disconnect(conn);
        seen.push(conn);
    }
    let accepts: Vec<LogLine> = server
        .events()
        .into_iter()
        .filter(|e| e.event == "accept")
        .collect();
    assert_eq!(accepts.len(), 6);
    let conns: HashSet<&str> = accepts.iter().map(|e| e.get("conn").unwrap()).collect();
    assert_eq!(conns.len(), 6, "conn must be unique: {accepts:?}");
    let mut by_slot: HashMap<&str, usize> = HashMap::new();
    for e in &accepts {
        *by_slot.entry(e.get("slot").unwrap()).or_default() += 1;
    }
    assert!(
        by_slot.values().any(|&n| n >= 2),
        "no slot was reused across sequential connections: {by_slot:?}"
    );
}

/// The rotated files, oldest first, then the active file.
fn log_files_oldest_first(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<(u32, std::path::PathBuf)> = files_with_prefix(dir, "echochat.log")
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let k = match name.strip_prefix("echochat.log.") {
                Some(n) => n.parse::<u32>().expect("rotated file suffix"),
                None => 0,
            };
            (k, p)
        })
        .collect();
    v.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    v.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn rotation_under_traffic_keeps_every_line_whole_in_one_file() {
    const CLIENTS: usize = 3;
    const MSGS: usize = 12;
    let mut server = Server::builder()
        .no_chat()
        .args(["--log-max-size", "2KiB", "--log-keep", "3"])
        .start();
    let addr = server.echo_addr();
    // A few clients at once, each echoing messages of distinct sizes, so
    // lines of different connections interleave while files rotate.
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut s = connect(addr);
                let mut sent = 0u64;
                for m in 0..MSGS {
                    let len = 50 + c * 10 + m;
                    let msg: Vec<u8> = (0..len).map(|i| b'a' + ((i + m) % 26) as u8).collect();
                    s.write_all(&msg).unwrap();
                    assert_eq!(read_exact(&mut s, len), msg);
                    sent += len as u64;
                }
                s.shutdown(Shutdown::Write).unwrap();
                assert!(read_to_eof(&mut s).is_empty());
                (s.local_addr().unwrap().to_string(), sent)
            })
        })
        .collect();
    let sent: HashMap<String, u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    wait_until("all disconnects logged", || {
        // The files of a running server: the active one may end in a half
        // line, and a file may be renamed between listing and reading.
        let text: String = log_files_oldest_first(&server.log_dir())
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .map(|t| complete_lines(&t).to_string())
            .collect();
        parse_all(&text)
            .iter()
            .filter(|e| e.event == "disconnect")
            .count()
            == CLIENTS
    });
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));

    let files = log_files_oldest_first(&server.log_dir());
    assert!(
        files.len() <= 4,
        "more than keep=3 rotated files: {files:?}"
    );
    assert!(
        files.len() >= 3,
        "expected at least two rotations: {files:?}"
    );
    let mut all = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let text = std::fs::read_to_string(p).unwrap();
        let is_active = i + 1 == files.len();
        if !is_active {
            assert!(
                text.len() <= 2048,
                "{} holds {} bytes > 2048",
                p.display(),
                text.len()
            );
        }
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            p.display()
        );
        for e in parse_all(&text) {
            all.push(e);
        }
    }
    let count = |name: &str| all.iter().filter(|e| e.event == name).count();
    // `start` is the first line ever written: if it is still there, no file
    // was deleted, so every line written must be in these files.
    assert_eq!(count("start"), 1, "start line (nothing deleted)");
    assert_eq!(count("stop"), 1);
    assert!(count("rotate") >= 2, "rotate events: {}", count("rotate"));
    assert_eq!(count("accept"), CLIENTS);
    for e in all.iter().filter(|e| e.event == "rotate") {
        assert!(
            e.get("file").is_some_and(|f| f.starts_with("echochat.log")),
            "{e:?}"
        );
    }
    // Per connection, the recv and send lines add up exactly to the bytes
    // exchanged: a lost or duplicated line would break the sum.
    for e in all.iter().filter(|e| e.event == "accept") {
        let conn = e.get("conn").unwrap();
        let peer = e.get("peer").unwrap();
        let want = sent[peer];
        for name in ["recv", "send"] {
            let got: u64 = all
                .iter()
                .filter(|x| x.event == name && x.get("conn") == Some(conn))
                .map(|x| x.get("bytes").unwrap().parse::<u64>().unwrap())
                .sum();
            assert_eq!(got, want, "{name} bytes of conn {conn}");
        }
        let disc: Vec<_> = all
            .iter()
            .filter(|x| x.event == "disconnect" && x.get("conn") == Some(conn))
            .collect();
        assert_eq!(disc.len(), 1, "disconnect lines of conn {conn}");
        assert_eq!(disc[0].get("bytes_in"), Some(want.to_string().as_str()));
    }
}
