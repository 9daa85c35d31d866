//! Memory per idle connection: open N connections (for chat, optionally
//! joined users), let them settle, and read the server's RSS growth.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::server::ServerProc;
use crate::table::Measured;

/// Opens `n` connections, leaves them idle, and reads the server's RSS
/// growth per connection. For chat, each connection first picks a name, so
/// it is a joined user.
pub fn memory(server: &ServerProc, n: usize, chat: bool, join: bool) -> Measured {
    let addr = server.addr(if chat { "chat" } else { "echo" });
    // Warm up allocator and tables with a few connections first.
    let warm: Vec<TcpStream> = (0..16)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    wait_fds(server, 16);
    let rss0 = server.rss_bytes();
    let fds0 = server.fd_count();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                if chat {
                    let _ = s.set_nonblocking(true);
                }
                if join {
                    let _ = s.write_all(format!("idle{i}\n").as_bytes());
                    // Keep reading the join notices, or they would pile
                    // up unsent (and the user be dropped for backlog).
                    drain(&mut conns);
                }
                conns.push(s);
            }
            Err(_) => break,
        }
    }
    let want = fds0 + conns.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.fd_count() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if chat {
        // Let the greetings, name handshakes and join notices settle.
        let quiet_since = Instant::now();
        let mut last = Instant::now();
        while last.duration_since(quiet_since) < Duration::from_secs(20) {
            if drain(&mut conns) == 0 {
                if last.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            } else {
                last = Instant::now();
            }
        }
    }
    let rss = server.rss_bytes();
    let per_conn = (rss - rss0) / conns.len().max(1) as f64;
    drop(warm);
    Measured {
        extra: Some(("rss_bytes_per_conn".into(), per_conn)),
        note: format!("{} connections", conns.len()),
        ..Measured::default()
    }
}

/// Reads whatever is waiting on non-blocking sockets; returns the bytes.
fn drain(conns: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    for s in conns.iter_mut() {
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
    }
    total
}

fn wait_fds(server: &ServerProc, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.fd_count() < at_least && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}
