//! Client sockets for the tests: every read has a timeout ([`DEADLINE`]),
//! so a reply that never comes fails the test instead of hanging it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use socket2::{Domain, SockAddr, Socket, Type};

use super::DEADLINE;

/// Connects with a read timeout and `TCP_NODELAY` set.
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Like [`connect`], but from the loopback address `127.0.0.{host}`: the
/// server then sees a client IP of its own (chat remembers names by IP).
/// `rcvbuf` shrinks the receive buffer, set before `connect` so the window
/// the kernel advertises is small from the start.
#[track_caller]
pub fn connect_from(addr: SocketAddr, host: u8, rcvbuf: Option<usize>) -> TcpStream {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let local = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    sock.bind(&SockAddr::from(local))
        .expect("bind source address");
    sock.connect(&SockAddr::from(addr)).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes (fails on timeout or EOF).
#[track_caller]
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read_exact");
    buf
}

/// Reads one `\n`-terminated line (without the `\n`), byte by byte so no
/// data is lost to a buffer the caller cannot see.
#[track_caller]
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => panic!(
                "EOF while reading a line; got so far {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => out.push(b[0]),
            Err(e) => panic!(
                "read_line failed: {e}; got so far {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8(out).expect("utf-8 line")
}

/// Reads until EOF; returns everything (fails on timeout).
#[track_caller]
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Writes `data` and half-closes, then reads everything until EOF.
#[track_caller]
pub fn send_and_finish(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).expect("write");
    s.shutdown(std::net::Shutdown::Write)
        .expect("shutdown(Write)");
    read_to_eof(s)
}
