//! `echochat log` (DESIGN.md, "Log reader"): the rotated files and the
//! active one read oldest first as one stream, the filters, `--summary`,
//! `--follow` across rotations, and damaged lines shown and counted.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::common::*;

/// A child process killed (by its pid) when dropped, so a failing
/// assertion cannot leave a follower running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A timestamp `ago` before now, as the log writes it.
fn stamp(ago: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - ago).to_string()
}

/// A small log in three files: two connections, a chat join, a warning
/// and one damaged line.
fn sample(dir: &Path) -> Vec<String> {
    let hour = Duration::from_secs(3600);
    let min = Duration::from_secs(60);
    let old = stamp(2 * hour);
    let mid = stamp(hour);
    let new = stamp(min);
    let files = [
        (
            "echochat.log.2",
            vec![
                format!("{old} INFO  start version=0.1.0 pid=7"),
                format!("{old} INFO  accept service=echo conn=1 slot=0 peer=10.0.0.1:5000"),
                format!("{old} DEBUG recv service=echo conn=1 bytes=5"),
            ],
        ),
        (
            "echochat.log.1",
            vec![
                format!("{mid} DEBUG send service=echo conn=1 bytes=5"),
                format!(
                    "{mid} INFO  disconnect service=echo conn=1 peer=10.0.0.1:5000 reason=eof bytes_in=5 bytes_out=5 duration=0.010s"
                ),
                format!("{mid} INFO  accept service=chat conn=17 slot=0 peer=10.0.0.2:6000"),
                "2026-11-30T22:28:53.715Z INFO  accept service=echo conn=2026-11-30T22:28:53.715Z INFO  accept".to_string(),
            ],
        ),
        (
            "echochat.log",
            vec![
                format!("{new} INFO  join service=chat conn=17 name=\"ann b\""),
                format!("{new} WARN  accept-error service=echo error=\"Too many open files (os error 24)\""),
                format!(
                    "{new} INFO  disconnect service=chat conn=17 peer=10.0.0.2:6000 reason=exit bytes_in=100 bytes_out=900 duration=60.000s"
                ),
            ],
        ),
    ];
    let mut all = Vec::new();
    for (name, lines) in files {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        fs::write(dir.join(name), text).unwrap();
        all.extend(lines);
    }
    all
}

fn log(dir: &Path, args: &[&str]) -> Exited {
    let mut full = vec!["log".to_string(), "--dir".to_string()];
    full.push(dir.to_str().unwrap().to_string());
    full.extend(args.iter().map(|a| a.to_string()));
    run_bin(full)
}

#[test]
fn reads_rotated_files_oldest_first_and_shows_damaged_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let all = sample(tmp.path());
    let out = log(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), all);
    assert!(
        out.stderr.contains("1 damaged line"),
        "the damaged line is counted: {:?}",
        out.stderr
    );
}

#[test]
fn filters_combine() {
    let tmp = tempfile::tempdir().unwrap();
    let all = sample(tmp.path());
    let damaged = &all[6];
    // The whole story of conn 17 (and the damaged line, which cannot be
    // judged and is never hidden).
    let out = log(tmp.path(), &["--conn", "17"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, [&all[5], damaged, &all[7], &all[9]], "{out:?}");

    let out = log(tmp.path(), &["--service", "echo", "--event", "disconnect"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, [&all[4], damaged], "{out:?}");

    let out = log(tmp.path(), &["--event", "accept", "--event", "join"]);
    let kept: Vec<&str> = out.stdout.lines().filter(|l| l != damaged).collect();
    assert_eq!(kept, [&all[1], &all[5], &all[7]], "{out:?}");

    let out = log(tmp.path(), &["--since", "10m", "--service", "chat"]);
    let kept: Vec<&str> = out.stdout.lines().filter(|l| l != damaged).collect();
    assert_eq!(kept, [&all[7], &all[9]], "{out:?}");
}

#[test]
fn summary_counts_connections_bytes_peers_and_problems() {
    let tmp = tempfile::tempdir().unwrap();
    sample(tmp.path());
    let out = log(tmp.path(), &["--summary"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = &out.stdout;
    assert!(s.contains("9 lines (and 1 damaged)"), "{s}");
    assert!(s.contains("echo       accepted=1 closed=1 eof=1"), "{s}");
    assert!(s.contains("chat       accepted=1 closed=1 exit=1"), "{s}");
    assert!(s.contains("chat       in=100B out=900B"), "{s}");
    // The busiest peer first.
    let peers = s.split("busiest peers").nth(1).unwrap();
    let first_peer = peers.lines().nth(1).unwrap();
    assert!(first_peer.trim_start().starts_with("10.0.0.2 "), "{s}");
    assert!(s.contains("accept-error: 1"), "{s}");
    assert!(s.contains("Too many open files"), "{s}");
    assert!(s.contains("(damaged line): 1"), "{s}");
}

#[test]
fn no_log_is_one_error_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = log(&tmp.path().join("nowhere"), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: no log file echochat.log"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let out = run_bin(["log", "--follow", "--summary"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `--follow` prints what is there, then every line the server writes,
/// once and in order, across several rotations.
#[test]
fn follow_reads_across_rotations_like_tail_f() {
    let mut server = Server::builder()
        .no_chat()
        .args([
            "--log-max-size",
            "1KiB",
            "--log-keep",
            "100",
            "--log-traffic-rate",
            "0",
        ])
        .start();
    let mut follower = Command::new(bin())
        .args(["log", "--follow", "--dir"])
        .arg(server.log_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let follower = KillOnDrop(follower);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = seen.clone();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    wait_until("the follower printed the start line", || {
        seen.lock()
            .unwrap()
            .first()
            .is_some_and(|l| event_name(l) == Some("start"))
    });
    let addr = server.echo_addr();
    for round in 0..6 {
        let mut s = connect(addr);
        let msg = vec![b'a' + round; 100 + round as usize];
        for _ in 0..5 {
            use std::io::Write;
            s.write_all(&msg).unwrap();
            assert_eq!(read_exact(&mut s, msg.len()), msg);
        }
        drop(s);
        // Let some rotations fall between the follower's checks, some not.
        thread::sleep(Duration::from_millis(if round % 2 == 0 { 10 } else { 150 }));
    }
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));

    let mut files: Vec<(u32, std::path::PathBuf)> =
        files_with_prefix(&server.log_dir(), "echochat.log")
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_str().unwrap().to_string();
                let k = name
                    .strip_prefix("echochat.log.")
                    .map_or(0, |k| k.parse::<u32>().unwrap());
                (k, p)
            })
            .collect();
    files.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    assert!(files.len() >= 4, "expected several rotations: {files:?}");
    let written: Vec<String> = files
        .iter()
        .flat_map(|(_, p)| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    wait_until("the follower printed every line", || {
        seen.lock().unwrap().len() >= written.len()
    });
    drop(follower);
    assert_eq!(*seen.lock().unwrap(), written);
}
