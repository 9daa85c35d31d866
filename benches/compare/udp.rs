//! A small open-loop UDP echo driver for the `udp-*` row (the same driver
//! for echochat's udp-echo and for the C reference, so the two compare
//! like with like).
//!
//! `clients` sockets, each `connect`ed to the server, send `rate`
//! datagrams a second between them, round-robin, on a fixed schedule (a
//! send that comes due is made whatever came back: open loop, as UDP
//! clients are). Each datagram carries the sender's index, its sequence
//! number and the send time, padded to `size` bytes; a reply is matched by
//! those, so the driver counts lost, reordered and duplicated datagrams
//! and the round-trip latency. A send the kernel refuses at once
//! (`WouldBlock`) is counted, not retried.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::drive::Outcome;
use crate::table::Measured;

/// Bytes of the header: client (4), sequence (8), send time in µs (8).
const HEADER: usize = 20;
/// How long, after the last send, late replies are still waited for.
const DRAIN: Duration = Duration::from_millis(500);

/// One sending socket and what came back to it.
struct Client {
    socket: UdpSocket,
    next_seq: u64,
    /// Per sequence number: came back already (for duplicates).
    seen: Vec<bool>,
    /// Highest sequence number seen so far (for reordering).
    highest: Option<u64>,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    send_refused: u64,
    received: u64,
    duplicated: u64,
    reordered: u64,
    foreign: u64,
}

pub fn run(addr: SocketAddr, clients: usize, size: usize, rate: f64, secs: u64) -> Outcome {
    let size = size.max(HEADER);
    let mut poll = Poll::new().expect("poll");
    let mut conns: Vec<Client> = (0..clients)
        .map(|i| {
            let mut socket = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
            socket.connect(addr).expect("udp connect");
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)
                .expect("register");
            Client {
                socket,
                next_seq: 0,
                seen: Vec::new(),
                highest: None,
            }
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut counts = Counts::default();
    let mut events = Events::with_capacity(1024);
    let mut out = vec![0u8; size];
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let interval = Duration::from_secs_f64(1.0 / rate);
    loop {
        let now = Instant::now();
        if now >= end + DRAIN {
            break;
        }
        if now < end {
            // Every send due by now, round-robin over the sockets.
            let due = (now.duration_since(start).as_secs_f64() * rate) as u64;
            while counts.sent + counts.send_refused < due {
                let i = ((counts.sent + counts.send_refused) % clients as u64) as usize;
                let c = &mut conns[i];
                out[..4].copy_from_slice(&(i as u32).to_be_bytes());
                out[4..12].copy_from_slice(&c.next_seq.to_be_bytes());
                let us = start.elapsed().as_micros() as u64;
                out[12..20].copy_from_slice(&us.to_be_bytes());
                match c.socket.send(&out) {
                    Ok(_) => counts.sent += 1,
                    Err(_) => counts.send_refused += 1,
                }
                c.next_seq += 1;
                c.seen.push(false);
            }
        }
        let wait = if now < end {
            interval.min(Duration::from_millis(1))
        } else {
            Duration::from_millis(10)
        };
        poll.poll(&mut events, Some(wait)).expect("poll");
        for ev in events.iter() {
            receive(
                &mut conns,
                ev.token().0,
                &mut buf,
                start,
                &mut hist,
                &mut counts,
            );
        }
    }
    let load = Duration::from_secs(secs).as_secs_f64();
    let lost = counts.sent.saturating_sub(counts.received);
    let pct = |n: u64| 100.0 * n as f64 / counts.sent.max(1) as f64;
    Outcome {
        measured: Measured {
            msgs_per_sec: counts.received as f64 / load,
            mib_per_sec: (counts.received * size as u64) as f64 / load / 1048576.0,
            p50_us: hist.value_at_quantile(0.50) as f64,
            p99_us: hist.value_at_quantile(0.99) as f64,
            note: format!(
                "sent {} at {rate:.0}/s, lost {lost} ({:.2}%), reordered {}, duplicated {}, \
                 refused at send {}, foreign {}",
                counts.sent,
                pct(lost),
                counts.reordered,
                counts.duplicated,
                counts.send_refused,
                counts.foreign
            ),
            ..Measured::default()
        },
        messages: counts.received,
    }
}

/// Reads socket `i` until `WouldBlock` (mio is edge-triggered), matching
/// each reply to what was sent.
fn receive(
    conns: &mut [Client],
    i: usize,
    buf: &mut [u8],
    start: Instant,
    hist: &mut Histogram<u64>,
    counts: &mut Counts,
) {
    loop {
        let n = match conns[i].socket.recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // ECONNREFUSED from an earlier send's ICMP: nothing listens.
            Err(_) => return,
        };
        let now_us = start.elapsed().as_micros() as u64;
        let field = |r: std::ops::Range<usize>| buf[r].iter().fold(0u64, |a, &b| a << 8 | b as u64);
        if n < HEADER || field(0..4) as usize != i {
            counts.foreign += 1;
            continue;
        }
        let (seq, sent_us) = (field(4..12), field(12..20));
        let c = &mut conns[i];
        let Some(seen) = c.seen.get_mut(seq as usize) else {
            counts.foreign += 1;
            continue;
        };
        if *seen {
            counts.duplicated += 1;
            continue;
        }
        *seen = true;
        counts.received += 1;
        if c.highest.is_some_and(|h| seq < h) {
            counts.reordered += 1;
        } else {
            c.highest = Some(seq);
        }
        let _ = hist.record(now_us.saturating_sub(sent_us).max(1));
    }
}
