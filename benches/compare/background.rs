//! What runs beside a row's measured load: chat users, a flooder, a
//! `/nick` storm, password logins, the status page open. Each runs on its
//! own threads of this process, is ready (joined, registered, connected)
//! before the load starts, stops when told, and reports one short note.
//!
//! These are deliberately small blocking clients (one thread each, read
//! timeouts so they notice the stop flag): the measured load is the
//! `echochat load` run beside them, not these.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::drive;
use crate::scenarios::Background;
use crate::server::ServerProc;

/// How long a background waits for a server's line before giving up.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the backgrounds get to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The password of the login row's accounts.
const PASSWORD: &str = "bench-password-1";

/// The running backgrounds of one side of a row.
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<String>>,
}

impl Running {
    /// Starts each background and waits until all are ready (or
    /// [`READY_TIMEOUT`] passed). `secs`: how long a background with a
    /// fixed duration (`echochat load chat`) runs.
    pub fn start(server: &ServerProc, backgrounds: &[Background], secs: u64) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicUsize::new(0));
        let fds0 = server.fd_count();
        let mut conns = 0;
        let mut threads = Vec::new();
        for &b in backgrounds {
            let (stop, ready) = (Arc::clone(&stop), Arc::clone(&ready));
            let chat = server.addr("chat");
            let thread = match b {
                Background::ChatUsers { users, rate } => {
                    conns += users;
                    let args = format!(
                        "chat --clients {users} --rate {rate} --duration {secs}s --port {}",
                        chat.port()
                    );
                    ready.fetch_add(1, Ordering::AcqRel);
                    std::thread::spawn(move || chat_users(&args))
                }
                Background::Flooder => {
                    conns += 1;
                    std::thread::spawn(move || flooder(chat, &stop, &ready))
                }
                Background::NickStorm => {
                    conns += 1;
                    std::thread::spawn(move || nick_storm(chat, &stop, &ready))
                }
                Background::Logins { per_sec } => {
                    std::thread::spawn(move || logins(chat, per_sec, &stop, &ready))
                }
                Background::StatusPage => {
                    conns += 2;
                    let http = server.addr("http");
                    std::thread::spawn(move || status_page(http, &stop, &ready))
                }
            };
            threads.push(thread);
        }
        // Ready: every background said so, and the server holds their
        // connections (for `load chat`, that all its users connected).
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline
            && (ready.load(Ordering::Acquire) < backgrounds.len()
                || server.fd_count() < fds0 + conns)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !backgrounds.is_empty() {
            // Let `load chat` finish its name handshakes before measuring.
            std::thread::sleep(Duration::from_millis(300));
        }
        Running { stop, threads }
    }

    /// Stops the backgrounds and returns their notes.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| "a background thread panicked".into())
            })
            .collect()
    }
}

/// `echochat load chat` beside the measured load: its delivered fraction
/// and whether any of its users lost the connection.
fn chat_users(args: &str) -> String {
    match drive::load(args) {
        Ok(r) => {
            let c = r.chat.as_ref();
            // Other users' lines (the flooder's) reach each of ours.
            let foreign = c.map_or(0, |c| c.foreign_lines) as f64 / r.run.clients.max(1) as f64;
            format!(
                "chat users: p99 {:.1} ms, delivered {:.4}, io_errors {}, \
                 {:.0} other lines/s each",
                r.latency_us.p99 as f64 / 1000.0,
                c.map_or(0.0, |c| c.delivered_fraction),
                r.io_errors,
                foreign / r.duration_s.max(0.001)
            )
        }
        Err(e) => format!("chat users failed: {e}"),
    }
}

/// Connects to chat and joins under `name` (or the name the server
/// remembers for our IP). Returns the stream, with a read timeout set.
fn join(addr: SocketAddr, name: &str) -> Result<(TcpStream, BufReader<TcpStream>), String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(LINE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let first = read_line(&mut r)?;
    if first.contains("what is your name?") {
        let mut w = &s;
        w.write_all(format!("{name}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        wait_for(&mut r, "* hello, ")?;
    } else if !first.contains("welcome back") {
        return Err(format!("unexpected greeting {first:?}"));
    }
    Ok((s, r))
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err("the server closed".into()),
        Ok(_) => Ok(line),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Reads lines until one contains `what`; an `! ` line first is an error.
fn wait_for(r: &mut BufReader<TcpStream>, what: &str) -> Result<String, String> {
    loop {
        let line = read_line(r)?;
        if line.contains(what) {
            return Ok(line);
        }
        if line.starts_with("! ") {
            return Err(line.trim().to_string());
        }
    }
}

/// Reads and discards until EOF, an error, or `stop`; returns the bytes.
fn discard(mut s: TcpStream, stop: &AtomicBool) -> u64 {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    while !stop.load(Ordering::Acquire) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    total
}

/// Writes `next()`'s bytes as fast as the server takes them until `stop`,
/// reading (and discarding) everything sent back so that this user is
/// never cut for backlog. Returns the lines written.
fn write_flat_out(s: TcpStream, stop: &AtomicBool, mut next: impl FnMut() -> Vec<u8>) -> u64 {
    std::thread::scope(|scope| {
        if let Ok(r) = s.try_clone() {
            scope.spawn(move || discard(r, stop));
        }
        // A write blocked on a paused user must still see `stop`.
        let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
        let mut lines = 0u64;
        let mut pending = Vec::new();
        let mut w = &s;
        while !stop.load(Ordering::Acquire) {
            if pending.is_empty() {
                pending = next();
                lines += pending.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            match w.write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = s.shutdown(Shutdown::Both);
        lines
    })
}

/// One chat user writing short lines flat out (issue #8's flooder). The
/// server's `--chat-rate` should pause its reads (`pause why=rate`), so
/// nobody else notices.
fn flooder(addr: SocketAddr, stop: &AtomicBool, ready: &AtomicUsize) -> String {
    let (s, _r) = match join(addr, "flooder") {
        Ok(j) => j,
        Err(e) => {
            ready.fetch_add(1, Ordering::AcqRel);
            return format!("flooder failed to join: {e}");
        }
    };
    ready.fetch_add(1, Ordering::AcqRel);
    let started = Instant::now();
    let batch = b"flood flood flood flood\n".repeat(100);
    let lines = write_flat_out(s, stop, || batch.clone());
    format!(
        "flooder wrote {:.0} lines/s",
        lines as f64 / started.elapsed().as_secs_f64()
    )
}

/// One chat user changing its name as fast as the server lets it
/// (`--chat-rate` set high by the row): `/nick s1`, `/nick s2`, ...
fn nick_storm(addr: SocketAddr, stop: &AtomicBool, ready: &AtomicUsize) -> String {
    let (s, _r) = match join(addr, "storm") {
        Ok(j) => j,
        Err(e) => {
            ready.fetch_add(1, Ordering::AcqRel);
            return format!("nick storm failed to join: {e}");
        }
    };
    ready.fetch_add(1, Ordering::AcqRel);
    let started = Instant::now();
    let mut n = 0u64;
    let lines = write_flat_out(s, stop, || {
        let mut batch = Vec::with_capacity(64 * 12);
        for _ in 0..64 {
            n += 1;
            batch.extend_from_slice(format!("/nick s{n}\n").as_bytes());
        }
        batch
    });
    format!(
        "/nick storm wrote {:.0} /nick/s",
        lines as f64 / started.elapsed().as_secs_f64()
    )
}

/// Chat logins with a password, `per_sec` a second over 16 accounts (one
/// thread each, so that a login slowed to ~0.5 s by a busy machine still
/// leaves the asked rate reachable): connect, give the name, the password,
/// wait for `* hello`, `/quit`. The accounts are registered first (not
/// measured).
fn logins(addr: SocketAddr, per_sec: f64, stop: &AtomicBool, ready: &AtomicUsize) -> String {
    const ACCOUNTS: usize = 16;
    for i in 0..ACCOUNTS {
        if let Err(e) = register(addr, &format!("bench{i}")) {
            ready.fetch_add(1, Ordering::AcqRel);
            return format!("logins: registering failed: {e}");
        }
    }
    ready.fetch_add(1, Ordering::AcqRel);
    let started = Instant::now();
    let period = Duration::from_secs_f64(ACCOUNTS as f64 / per_sec);
    let results: Vec<(u64, u64, Vec<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..ACCOUNTS)
            .map(|i| {
                s.spawn(move || {
                    let name = format!("bench{i}");
                    let (mut ok, mut failed, mut times) = (0, 0, Vec::new());
                    // Spread the accounts' schedules over one period.
                    let mut due = Instant::now() + period.mul_f64(i as f64 / ACCOUNTS as f64);
                    while !stop.load(Ordering::Acquire) {
                        let now = Instant::now();
                        if now < due {
                            std::thread::sleep((due - now).min(Duration::from_millis(50)));
                            continue;
                        }
                        due += period;
                        match login(addr, &name) {
                            Ok(t) => {
                                ok += 1;
                                times.push(t.as_micros() as u64);
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    (ok, failed, times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let ok: u64 = results.iter().map(|r| r.0).sum();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let mut times: Vec<u64> = results.into_iter().flat_map(|r| r.2).collect();
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or(0);
    format!(
        "logins {:.1}/s ok, {failed} failed, login median {:.1} ms",
        ok as f64 / secs,
        median as f64 / 1000.0
    )
}

/// Joins as `name`, registers it with [`PASSWORD`], quits.
fn register(addr: SocketAddr, name: &str) -> Result<(), String> {
    let (s, mut r) = join(addr, name)?;
    let mut w = &s;
    w.write_all(format!("/register {PASSWORD}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    wait_for(&mut r, "is registered")?;
    quit(&s, &mut r);
    Ok(())
}

/// One password login; returns the time from connect to `* hello`.
fn login(addr: SocketAddr, name: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(LINE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = &s;
    wait_for(&mut r, "what is your name?")?;
    w.write_all(format!("{name}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    wait_for(&mut r, "password?")?;
    w.write_all(format!("{PASSWORD}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    wait_for(&mut r, "* hello, ")?;
    let t = t0.elapsed();
    quit(&s, &mut r);
    Ok(t)
}

/// `/quit`, then read until the server closes, so that the name is free
/// again before the next login under it.
fn quit(s: &TcpStream, r: &mut BufReader<TcpStream>) {
    let mut w = s;
    let _ = w.write_all(b"/quit\n");
    let mut sink = Vec::new();
    let _ = r.read_to_end(&mut sink);
}

/// The status page open in a browser and a Prometheus scraper (issue
/// #13): an `/api/events` stream held and read; once a second
/// `/api/status` and `/api/conns` (the page's polling) and `/metrics`, on
/// one keep-alive connection.
fn status_page(addr: SocketAddr, stop: &AtomicBool, ready: &AtomicUsize) -> String {
    let sse = TcpStream::connect(addr).and_then(|mut s| {
        s.write_all(
            b"GET /api/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        )?;
        Ok(s)
    });
    let (mut requests, mut failed) = (0u64, 0u64);
    let mut poller = TcpStream::connect(addr).ok();
    let sse_bytes = std::thread::scope(|scope| {
        let sse = sse.map(|s| scope.spawn(move || discard(s, stop)));
        let mut first = true;
        while !stop.load(Ordering::Acquire) {
            let tick = Instant::now();
            for path in ["/api/status", "/api/conns", "/metrics"] {
                let ok = match poller.as_mut() {
                    Some(p) => get(p, path).is_ok(),
                    None => false,
                };
                if ok {
                    requests += 1;
                } else {
                    failed += 1;
                    poller = TcpStream::connect(addr).ok();
                }
            }
            if first {
                ready.fetch_add(1, Ordering::AcqRel);
                first = false;
            }
            while tick.elapsed() < Duration::from_secs(1) && !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        sse.map(|h| h.join().unwrap_or(0)).unwrap_or(0)
    });
    format!("status page: {requests} requests ok, {failed} failed, {sse_bytes} B of events")
}

/// One `GET` on a keep-alive connection; reads the head and the body
/// (`Content-Length`). Returns the body's length.
fn get(s: &mut TcpStream, path: &str) -> Result<usize, String> {
    s.set_read_timeout(Some(LINE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut data = Vec::with_capacity(16 * 1024);
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    while data.len() < head_end + len {
        match s.read(&mut buf) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(len)
}
