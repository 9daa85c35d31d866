//! The log that survives (DESIGN.md, "Lifecycle events and the log file"):
//! the traffic cap, `pause`/`resume`, rotation that loses nothing under
//! `EMFILE`, a removed directory or a full disk, `tail -F` through 50
//! rotations, one server per log file, `SIGUSR1` reopen, `--log-keep`.
//!
//! Each test runs the real binary on loopback and bounds its load by count
//! and time.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// A child process killed (by its pid) when dropped, so a failing
/// assertion cannot leave `tail -F` or a server running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The log's files oldest first (`NAME.K` … `NAME.1`, `NAME`).
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut numbered: Vec<(u32, PathBuf)> = Vec::new();
    let mut active = None;
    for p in files_with_prefix(dir, "echochat.log") {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name == "echochat.log" {
            active = Some(p);
        } else if let Some(k) = name
            .strip_prefix("echochat.log.")
            .and_then(|k| k.parse::<u32>().ok())
        {
            numbered.push((k, p));
        }
    }
    numbered.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    numbered.into_iter().map(|(_, p)| p).chain(active).collect()
}

/// Every line of every log file, oldest first; fails on a line off the
/// grammar (a torn line would be one).
#[track_caller]
fn all_events(dir: &Path) -> Vec<LogLine> {
    log_files(dir)
        .iter()
        .flat_map(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends mid-line",
                p.display()
            );
            parse_all(&text)
        })
        .collect()
}

fn num(e: &LogLine, key: &str) -> u64 {
    e.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {e:?}"))
}

/// One echo round trip of `msg`.
#[track_caller]
fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    assert_eq!(read_exact(s, msg.len()), msg);
}

/// Runs `prlimit` on a running process (soft limit only).
#[track_caller]
fn set_nofile(pid: u32, soft: u64) {
    let st = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={soft}:"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(st.success(), "prlimit failed");
}

/// The lowest descriptor number the process does not use: a limit of
/// that many descriptors leaves it no room to open anything.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: std::collections::HashSet<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

// ----- the traffic cap ------------------------------------------------------

#[test]
fn under_the_traffic_rate_every_recv_and_send_line_is_written() {
    let mut server = Server::builder().no_chat().start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    // 20 round trips: 40 lines, under the default 100 a second.
    for i in 0..20u8 {
        echo_once(&mut s, &[b'a' + i; 10]);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    server.wait_disconnect(conn);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
    let events = server.events();
    let c = conn.to_string();
    for name in ["recv", "send"] {
        let lines: Vec<&LogLine> = events
            .iter()
            .filter(|e| e.event == name && e.get("conn") == Some(&c))
            .collect();
        let bytes: u64 = lines.iter().map(|e| num(e, "bytes")).sum();
        assert_eq!(bytes, 200, "{name} bytes of conn {conn}");
    }
    assert!(
        !events.iter().any(|e| e.event == "traffic"),
        "a traffic line under the cap"
    );
}

/// The traffic lines and the single lines together account for every byte
/// the clients exchanged, exactly. Which single lines a `traffic` line
/// already counts is known from the order of the file: a second over the
/// cap wrote exactly `recv + send - suppressed` single lines, just before
/// its `traffic` line.
#[test]
fn above_the_traffic_rate_traffic_lines_sum_every_byte() {
    const RATE: u64 = 10;
    const CLIENTS: usize = 4;
    let mut server = Server::builder()
        .no_chat()
        .args(["--log-traffic-rate", &RATE.to_string()])
        .start();
    let addr = server.echo_addr();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut s = connect(addr);
                let msg = vec![b'0' + c as u8; 1000 + c * 24];
                let until = Instant::now() + Duration::from_millis(1500);
                let mut total = 0u64;
                for _ in 0..5000 {
                    if Instant::now() >= until {
                        break;
                    }
                    echo_once(&mut s, &msg);
                    total += msg.len() as u64;
                }
                s.shutdown(Shutdown::Write).unwrap();
                assert!(read_to_eof(&mut s).is_empty());
                total
            })
        })
        .collect();
    let sent: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    wait_until("every disconnect logged", || {
        server
            .log()
            .lines()
            .filter(|l| event_name(l) == Some("disconnect"))
            .count()
            == CLIENTS
    });
    // `stop` writes the sums of a second still open.
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));

    let events = all_events(&server.log_dir());
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let mut singles: Vec<(bool, u64)> = Vec::new(); // (is recv, bytes)
    let mut traffic_lines = 0;
    for e in events.iter().filter(|e| e.get("service") == Some("echo")) {
        match e.event.as_str() {
            "recv" => singles.push((true, num(e, "bytes"))),
            "send" => singles.push((false, num(e, "bytes"))),
            "traffic" => {
                traffic_lines += 1;
                let written = num(e, "recv") + num(e, "send") - num(e, "suppressed");
                assert_eq!(
                    written, RATE,
                    "a second over the cap wrote {RATE} lines: {e:?}"
                );
                assert!((1..=CLIENTS as u64).contains(&num(e, "conns")), "{e:?}");
                // The single lines before this second's own are not summed.
                let own = singles.split_off(singles.len() - written as usize);
                assert_eq!(own.len() as u64, written);
                for (is_recv, b) in singles.drain(..) {
                    *if is_recv {
                        &mut bytes_in
                    } else {
                        &mut bytes_out
                    } += b;
                }
                bytes_in += num(e, "bytes_in");
                bytes_out += num(e, "bytes_out");
            }
            _ => {}
        }
    }
    for (is_recv, b) in singles {
        *if is_recv {
            &mut bytes_in
        } else {
            &mut bytes_out
        } += b;
    }
    assert!(traffic_lines >= 1, "no traffic line");
    assert_eq!(bytes_in, sent, "bytes in: traffic sums + single lines");
    assert_eq!(bytes_out, sent, "bytes out: traffic sums + single lines");
    let single_lines = events
        .iter()
        .filter(|e| e.event == "recv" || e.event == "send")
        .count();
    assert!(
        single_lines <= (RATE as usize) * (traffic_lines + 2),
        "{single_lines} single lines for {traffic_lines} summed seconds"
    );
}

/// A client that writes and does not read: the kernel's buffers absorb a
/// few MiB, then echo's unsent output passes `--max-backlog` and the server
/// stops reading it. Returns the writer, which sends `total` bytes and
/// half-closes.
fn flood(s: &TcpStream, total: usize) -> thread::JoinHandle<()> {
    let mut writer = s.try_clone().unwrap();
    thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    })
}

/// Far more than the loopback buffers between a client and the server hold.
const FLOOD_BYTES: usize = 32 << 20;

#[test]
fn echo_backpressure_is_logged_as_pause_and_resume() {
    let server = Server::builder()
        .no_chat()
        .args(["--max-backlog", "16KiB", "--log-level", "info"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let w = flood(&s, FLOOD_BYTES);
    let c = conn.to_string();
    let pause = server.wait_log("pause of the client that does not read", |e| {
        e.is("pause", "conn", &c)
    });
    assert_eq!(pause.get("why"), Some("backlog"), "{pause}");
    assert_eq!(pause.get("service"), Some("echo"), "{pause}");
    let got = read_to_eof(&mut s);
    w.join().unwrap();
    assert_eq!(got.len(), FLOOD_BYTES);
    let resume = server.wait_log("resume once the client read", |e| {
        e.is("resume", "conn", &c)
    });
    assert!(
        resume.text.contains(" INFO  resume service=echo "),
        "{}",
        resume.text
    );
}

// ----- rotation that cannot lose the log ------------------------------------

/// `EMFILE` at rotation: the new file cannot be created. The server keeps
/// writing to the file it has, retries, and once descriptors are back
/// rotates and logs one `log-error ... lost=0`. Nothing is lost.
#[test]
fn rotation_under_emfile_retries_and_loses_nothing() {
    let server = Server::builder()
        .no_chat()
        .args([
            "--log-max-size",
            "2KiB",
            "--log-keep",
            "20",
            "--log-traffic-rate",
            "0",
        ])
        .start();
    let pid = server.pid();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let msg = [b'm'; 100];
    echo_once(&mut s, &msg);
    let limit = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft: u64 = limit
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("soft limit in /proc/PID/limits");
    // Every descriptor the server may have is in use: opening fails.
    set_nofile(pid, lowest_free_fd(pid));
    let mut exchanged = 100u64;
    for _ in 0..40 {
        echo_once(&mut s, &msg);
        exchanged += 100;
    }
    wait_until("the failed rotation is reported on stderr", || {
        server.stderr_text().contains("cannot rotate")
    });
    assert!(
        fs::metadata(server.log_path()).unwrap().len() > 2048,
        "the file in hand keeps growing past the limit while rotation fails"
    );
    set_nofile(pid, soft);
    let deadline = Instant::now() + DEADLINE;
    while !server.log().contains(" log-error ") {
        assert!(Instant::now() < deadline, "no log-error after recovery");
        echo_once(&mut s, &msg);
        exchanged += 100;
        thread::sleep(Duration::from_millis(20));
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty());
    wait_until("disconnect logged", || {
        all_events(&server.log_dir())
            .iter()
            .any(|e| e.event == "disconnect")
    });

    let events = all_events(&server.log_dir());
    let errors: Vec<&LogLine> = events.iter().filter(|e| e.event == "log-error").collect();
    assert_eq!(errors.len(), 1, "one log-error for the episode: {errors:?}");
    assert_eq!(errors[0].get("lost"), Some("0"));
    assert!(
        errors[0]
            .get("error")
            .is_some_and(|e| e.contains("Too many open files")),
        "{errors:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e.event == "start").count(),
        1,
        "start line kept: no file was deleted"
    );
    let c = conn.to_string();
    for name in ["recv", "send"] {
        let sum: u64 = events
            .iter()
            .filter(|e| e.event == name && e.get("conn") == Some(&c))
            .map(|e| num(e, "bytes"))
            .sum();
        assert_eq!(sum, exchanged, "{name} lines of conn {conn}: none lost");
    }
    assert!(!server.log_dir().join(".echochat.log.new").exists());
}

/// `rm -r logs` while the server runs: the next write goes to a file with
/// no name; the server notices (link count 0), makes the directory and the
/// file again, and starts it with one `log-error` counting what went
/// nowhere. Lines after that are all there.
#[test]
fn a_removed_log_directory_is_made_again_and_the_loss_counted() {
    let server = Server::builder()
        .no_chat()
        .args(["--log-traffic-rate", "0"])
        .start();
    let mut s = connect(server.echo_addr());
    let first = server.conn_of(&s);
    assert_eq!(send_and_finish(&mut s, b"before"), b"before");
    server.wait_disconnect(first);
    fs::remove_dir_all(server.log_dir()).unwrap();

    let mut s = connect(server.echo_addr());
    let peer = s.local_addr().unwrap().to_string();
    echo_once(&mut s, b"into the void?");
    assert_eq!(send_and_finish(&mut s, b"after"), b"after");
    let disc = server.wait_log("the disconnect in the recreated file", |e| {
        e.is("disconnect", "peer", &peer)
    });
    let events = server.events();
    assert_eq!(events[0].event, "log-error", "first line: {events:?}");
    let lost = num(&events[0], "lost");
    assert!(
        events[0]
            .get("error")
            .is_some_and(|e| e.contains("deleted")),
        "{:?}",
        events[0]
    );
    // The second connection's lines: accept, 2 × (recv, send), disconnect.
    let conn = disc.get("conn").unwrap();
    let present = events
        .iter()
        .filter(|e| e.get("conn") == Some(conn))
        .count() as u64;
    assert!(lost >= 1, "the first batch after the removal went nowhere");
    assert!(
        present + lost >= 6,
        "{present} lines present + {lost} counted lost < 6 events"
    );
    assert!(
        server.stderr_text().contains("deleted"),
        "{}",
        server.stderr_text()
    );
}

/// A tmpfs mount that is unmounted (lazily) when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(path).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); the ENOSPC test needs root or CAP_SYS_ADMIN",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system of `dir` with `path` until `free` bytes are left
/// (to within a page).
fn fill_until(path: &Path, free: u64) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = [0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(free)).unwrap();
}

/// A full disk: short writes and `ENOSPC`. No torn line is ever left (a
/// partial write is cut back to the last whole line); lines wait in memory
/// up to a bound and the rest are counted; when space is back the waiting
/// lines are written and one `log-error` says how many were lost.
#[test]
fn a_full_disk_leaves_no_torn_line_and_reports_the_loss() {
    let base = tempfile::tempdir().unwrap();
    // Big enough to take the 1 MiB of lines that waited in memory once
    // space is back; filled up to its last 8 KiB meanwhile.
    let Some(mnt) = Tmpfs::mount(&base.path().join("mnt"), "4m") else {
        return;
    };
    let log_dir = mnt.path.join("logs");
    let mut child = Command::new(bin())
        .args(["serve", "--echo-ports", "0", "--no-chat"])
        .args(["--log-traffic-rate", "0", "--log-max-size", "0"])
        .arg("--log-dir")
        .arg(&log_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let errs = stderr.clone();
    let mut err_pipe = child.stderr.take().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            errs.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let child = KillOnDrop(child);
    // Keep draining stdout (console lines), or the server would block on it.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.strip_prefix("echo listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr: std::net::SocketAddr = rx
        .recv_timeout(DEADLINE)
        .expect("listening line")
        .parse()
        .unwrap();
    let log = log_dir.join("echochat.log");
    wait_until("startup lines written", || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains(" listen "))
    });
    let filler = mnt.path.join("filler");
    fill_until(&filler, 8 * 1024);

    // Small messages, many lines: the disk fills, then the lines waiting
    // in memory pass their 1 MiB bound and are counted as lost.
    let mut s = connect(addr);
    let deadline = Instant::now() + DEADLINE;
    let mut n = 0;
    while n < 30_000 {
        echo_once(&mut s, b"x");
        n += 1;
        if n % 1000 == 0 {
            assert!(Instant::now() < deadline, "too slow");
            if n >= 12_000 && stderr.lock().unwrap().contains("cannot write") {
                break;
            }
        }
    }
    assert!(
        stderr.lock().unwrap().contains("cannot write"),
        "the disk never filled: {}",
        stderr.lock().unwrap()
    );
    // Every line on disk is whole while the disk is full.
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.ends_with('\n'),
        "torn last line: {:?}",
        &text[text.len().saturating_sub(80)..]
    );
    parse_all(&text);

    fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !fs::read_to_string(&log).unwrap().contains(" log-error ") {
        assert!(
            Instant::now() < deadline,
            "no log-error once space was back"
        );
        echo_once(&mut s, b"y");
        thread::sleep(Duration::from_millis(20));
    }
    let text = fs::read_to_string(&log).unwrap();
    let events = parse_all(&text);
    let errors: Vec<&LogLine> = events.iter().filter(|e| e.event == "log-error").collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    println!("after {n} round trips on a full disk: {:?}", errors[0]);
    assert!(num(errors[0], "lost") > 0, "{errors:?}");
    assert!(
        errors[0]
            .get("error")
            .is_some_and(|e| e.contains("No space")),
        "{errors:?}"
    );
    assert_eq!(events[0].event, "start", "the file was not replaced");
    drop(s);
    drop(child);
}

/// Real `tail -F` on the log during 50 rotations never reports the file
/// missing: the active name always exists.
#[test]
fn tail_follows_fifty_rotations_without_missing_the_file() {
    let server = Server::builder()
        .no_chat()
        .args([
            "--log-max-size",
            "1KiB",
            "--log-keep",
            "3",
            "--log-traffic-rate",
            "0",
        ])
        .start();
    let mut tail = Command::new("tail")
        .args(["-F", "-n", "+1", "-s", "0.05"])
        .arg(server.log_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tail");
    let tail_out = tail.stdout.take().unwrap();
    let mut tail_err = tail.stderr.take().unwrap();
    let tail = KillOnDrop(tail);
    let out = Arc::new(Mutex::new(Vec::<String>::new()));
    let err = Arc::new(Mutex::new(String::new()));
    let (o, e) = (out.clone(), err.clone());
    thread::spawn(move || {
        for line in BufReader::new(tail_out).lines() {
            let Ok(line) = line else { break };
            o.lock().unwrap().push(line);
        }
    });
    thread::spawn(move || {
        let mut s = String::new();
        let _ = tail_err.read_to_string(&mut s);
        e.lock().unwrap().push_str(&s);
    });
    let rotations = || {
        out.lock()
            .unwrap()
            .iter()
            .filter(|l| event_name(l) == Some("rotate"))
            .count()
    };
    let mut s = connect(server.echo_addr());
    let msg = [b'r'; 64];
    let deadline = Instant::now() + DEADLINE;
    let mut sent = 0;
    while rotations() < 50 {
        assert!(
            Instant::now() < deadline && sent < 20_000,
            "tail saw only {} rotations; its stderr: {}",
            rotations(),
            err.lock().unwrap()
        );
        for _ in 0..10 {
            echo_once(&mut s, &msg);
            sent += 1;
        }
        thread::sleep(Duration::from_millis(15));
    }
    drop(tail);
    let stderr = err.lock().unwrap().clone();
    assert!(
        !stderr.contains("inaccessible") && !stderr.contains("No such file"),
        "tail -F saw the log missing:\n{stderr}"
    );
    for line in out.lock().unwrap().iter() {
        parse_log_line(line).unwrap_or_else(|e| panic!("tail printed a bad line: {e}"));
    }
}

// ----- one server per log file, SIGUSR1, --log-keep --------------------------

#[test]
fn a_second_server_on_the_same_log_file_is_refused() {
    let server = Server::builder().no_chat().start();
    let dir = server.log_dir();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--echo-ports", "0", "--no-chat", "--log-dir"])
        .arg(&dir)
        .stdin(Stdio::null());
    let out = run_with_deadline(cmd, tempfile::tempdir().unwrap());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: {} is in use by another echochat (pid {}); give this one its own --log-dir\n",
            dir.join("echochat.log").display(),
            server.pid()
        )
    );
    assert!(!out.stdout.contains("listening"), "{out:?}");
    let starts = server
        .events()
        .iter()
        .filter(|e| e.event == "start")
        .count();
    assert_eq!(starts, 1, "the refused server wrote into the log");
    // Another file name in the same directory is another log: allowed.
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--echo-ports", "0", "--no-chat", "--log-dir"])
        .arg(&dir)
        .args(["--log-file", "other.log"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut other = cmd.spawn().unwrap();
    let other_out = other.stdout.take().unwrap();
    let _other = KillOnDrop(other);
    let listening = BufReader::new(other_out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("echo listening on"));
    assert!(listening, "a server with another --log-file starts");
}

#[test]
fn sigusr1_reopens_the_log_after_an_external_move() {
    let server = Server::builder()
        .no_chat()
        .args(["--log-level", "info"])
        .start();
    let moved = server.log_dir().join("moved.log");
    fs::rename(server.log_path(), &moved).unwrap();
    let mut s = connect(server.echo_addr());
    let peer = s.local_addr().unwrap().to_string();
    // Until the signal, lines go to the file the server holds.
    wait_until("accept in the moved file", || {
        fs::read_to_string(&moved)
            .unwrap()
            .contains(&format!("peer={peer}"))
    });
    assert!(!server.log_path().exists());
    server.signal(libc::SIGUSR1);
    let reopen = server.wait_log("reopen line", |e| e.event == "reopen");
    assert_eq!(reopen.get("file"), Some("echochat.log"));
    assert_eq!(send_and_finish(&mut s, b"hi"), b"hi");
    server.wait_log("disconnect in the reopened file", |e| {
        e.is("disconnect", "peer", &peer)
    });
    let events = server.events();
    assert_eq!(
        events[0].event, "reopen",
        "reopen is the first line: {events:?}"
    );
    let old = parse_all(&fs::read_to_string(&moved).unwrap());
    assert_eq!(old[0].event, "start");
    assert!(!old.iter().any(|e| e.event == "disconnect"), "{old:?}");
}

#[test]
fn log_keep_is_bounded_to_1000() {
    for keep in ["1001", "5000", "4294967295", "-1"] {
        let out = run_bin(["serve".to_string(), format!("--log-keep={keep}")]);
        assert_eq!(out.status.code(), Some(2), "--log-keep {keep}: {out:?}");
        assert!(out.stderr.contains("--log-keep"), "{out:?}");
    }
    // The largest keep with the smallest size: every line rotates, and the
    // server still starts, serves and stops at once (no loop over keep).
    let mut server = Server::builder()
        .no_chat()
        .args(["--log-keep", "1000", "--log-max-size", "1"])
        .start();
    let mut s = connect(server.echo_addr());
    assert_eq!(send_and_finish(&mut s, b"ping"), b"ping");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
    let files = log_files(&server.log_dir());
    assert!(files.len() > 3 && files.len() <= 1001, "{}", files.len());
    let events = all_events(&server.log_dir());
    assert_eq!(events.iter().filter(|e| e.event == "start").count(), 1);
    assert_eq!(events.last().unwrap().event, "stop");
}

#[test]
fn log_keep_0_keeps_no_copy_and_log_max_size_0_never_rotates() {
    let mut keep0 = Server::builder()
        .no_chat()
        .args([
            "--log-keep",
            "0",
            "--log-max-size",
            "1KiB",
            "--log-traffic-rate",
            "0",
        ])
        .start();
    let mut size0 = Server::builder()
        .no_chat()
        .args(["--log-max-size", "0", "--log-traffic-rate", "0"])
        .start();
    for server in [&keep0, &size0] {
        let mut s = connect(server.echo_addr());
        for _ in 0..50 {
            echo_once(&mut s, &[b'k'; 50]);
        }
        drop(s);
    }
    for server in [&mut keep0, &mut size0] {
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit().code(), Some(0));
    }
    assert_eq!(
        log_files(&keep0.log_dir()).len(),
        1,
        "keep 0: only the active file"
    );
    let first = keep0.events().remove(0);
    assert_eq!(first.event, "rotate");
    assert_eq!(first.get("file"), Some("(deleted)"));
    assert_eq!(
        log_files(&size0.log_dir()).len(),
        1,
        "size 0: never rotated"
    );
    assert!(fs::metadata(size0.log_path()).unwrap().len() > 5000);
    assert_eq!(size0.events()[0].event, "start");
}

#[test]
fn explain_has_a_sentence_for_pause_and_the_log_events() {
    // The console shows --explain sentences; checked here for the events
    // this branch added that a server run can produce quickly.
    let server = Server::builder()
        .no_chat()
        .args(["--explain", "--max-backlog", "16KiB"])
        .start();
    let mut s = connect(server.echo_addr());
    let conn = server.conn_of(&s);
    let w = flood(&s, FLOOD_BYTES);
    let c = conn.to_string();
    server.wait_log("pause", |e| e.is("pause", "conn", &c));
    assert_eq!(read_to_eof(&mut s).len(), FLOOD_BYTES);
    w.join().unwrap();
    wait_until("the pause sentence on the console", || {
        let out = server.stdout_text();
        let mut lines = out.lines();
        while let Some(l) = lines.next() {
            if l.contains(" pause service=echo") {
                return lines
                    .next()
                    .is_some_and(|n| n.contains("-> ") && n.contains("backpressure"));
            }
        }
        false
    });
}
