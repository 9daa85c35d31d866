//! The yardstick for `echochat load`'s own overhead: the least an echo load
//! client can do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::drive::Outcome;
use crate::table::Measured;

/// The least an echo load client can do: one mio loop, `clients`
/// connections, each sending 1 KiB and reading it back, with one `send`
/// and one `recv` per message and no verification or statistics. The
/// yardstick for `echochat load`'s own overhead.
pub fn run(addr: SocketAddr, clients: usize, secs: u64) -> Outcome {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().expect("poll");
    let msg = [0xA5u8; 1024];
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let std = TcpStream::connect(addr).expect("connect");
        std.set_nodelay(true).expect("nodelay");
        std.set_nonblocking(true).expect("nonblocking");
        let mut s = mio::net::TcpStream::from_std(std);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .expect("register");
        conns.push((s, 0usize));
    }
    for (s, _) in conns.iter_mut() {
        s.write_all(&msg).expect("first message");
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let mut messages = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for ev in events.iter() {
            let (s, got) = &mut conns[ev.token().0];
            loop {
                match s.read(&mut buf[*got..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        *got += n;
                        if *got == msg.len() {
                            *got = 0;
                            messages += 1;
                            let _ = s.write(&msg);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Outcome {
        measured: Measured {
            msgs_per_sec: messages as f64 / elapsed,
            mib_per_sec: messages as f64 * 1024.0 / elapsed / 1048576.0,
            ..Measured::default()
        },
        messages,
    }
}
