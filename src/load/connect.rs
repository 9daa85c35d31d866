//! Getting connections up: the preflight (descriptor limit, ephemeral port
//! range, source addresses) and the non-blocking connect itself.
//!
//! A connect is started here and finished by the worker's event loop
//! (`worker.rs`): the socket becomes writable when the handshake ends, and
//! then `SO_ERROR` (`take_error`) says whether it worked (mio's
//! `TcpStream::connect` docs describe the same dance). Every failure is
//! classified by [`ConnectCause`], never fatal.
//!
//! The raw system calls the load generator needs (the descriptor limit, an
//! int socket option, a thread's CPU clock) are together at the end of this
//! file, so they can move to one shared home for syscall helpers unchanged.
//! Read `worker.rs` next.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::Error;
use super::stats::ConnectCause;

/// The most loopback source addresses we spread over (127.0.0.1 ..= .254).
const MAX_SOURCE_ADDRS: usize = 254;

/// Descriptors kept back from `--clients`: stdio, the progress thread, and
/// slack for whatever the runtime opens (`/proc` reads, DNS).
const RESERVED_FDS: u64 = 16;

/// Descriptors a run may spend on connections: the limit, less the
/// reserve and one epoll instance per thread.
pub fn descriptor_budget(nofile: u64, threads: usize) -> u64 {
    nofile.saturating_sub(RESERVED_FDS + threads as u64)
}

/// Where to connect and from where; shared read-only by all threads.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Source addresses to bind before connecting, chosen round-robin by
    /// client index. Empty: let the kernel choose (the usual case).
    pub sources: Vec<IpAddr>,
}

impl Target {
    /// The source address for client `i`, if sources are spread.
    pub fn source_for(&self, i: usize) -> Option<IpAddr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }
}

/// What the preflight found; printed as one line on stderr.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// `RLIMIT_NOFILE` soft limit after raising it to the hard limit.
    pub nofile: u64,
    /// The soft limit before we raised it (same as `nofile` if unchanged).
    pub nofile_before: u64,
    /// `/proc/sys/net/ipv4/ip_local_port_range`, if readable.
    pub port_range: Option<(u16, u16)>,
    pub sources: Vec<IpAddr>,
}

impl Preflight {
    /// The line printed to stderr before the run.
    pub fn line(&self) -> String {
        let mut s = format!("preflight: descriptor limit {}", self.nofile);
        if self.nofile_before != self.nofile {
            s.push_str(&format!(" (raised from {})", self.nofile_before));
        }
        match self.port_range {
            Some((lo, hi)) => s.push_str(&format!(
                ", local port range {lo}-{hi} ({} ports per source address)",
                u32::from(hi) - u32::from(lo) + 1
            )),
            None => s.push_str(", local port range unknown"),
        }
        match self.sources.as_slice() {
            [] => s.push_str(", source address chosen by the kernel"),
            [one] => s.push_str(&format!(", source address {one}")),
            [first, .., last] => s.push_str(&format!(
                ", source addresses {first}..{last} ({})",
                self.sources.len()
            )),
        }
        s
    }
}

/// Resolve `host:port` to the first address it names.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(format!("cannot resolve --host {host}: {e}")))?
        .next()
        .ok_or_else(|| Error::new(format!("--host {host} resolves to no address")))
}

/// Raise the descriptor limit, read the port range, and decide the source
/// addresses for `clients` connections to `addr` from `threads` threads.
///
/// # Errors
/// `clients` connections do not fit the descriptor limit even after
/// raising it: the run is refused before it starts, rather than half of it
/// failing as `out_of_descriptors` (or running long past `--duration`).
pub fn preflight(
    addr: SocketAddr,
    clients: usize,
    threads: usize,
) -> Result<(Preflight, Target), Error> {
    let limit = crate::sys::raise_nofile_limit();
    let (nofile_before, nofile) = (limit.before, limit.now);
    let budget = descriptor_budget(nofile, threads);
    if nofile > 0 && clients as u64 > budget {
        return Err(Error::new(format!(
            "--clients {clients} needs {clients} descriptors, but the descriptor limit is {nofile} \
             (at most {budget} connections after stdio and the event loops); \
             raise it (ulimit -n, up to the hard limit) or use --clients {budget} or fewer"
        )));
    }
    let port_range = read_port_range();
    let sources = plan_sources(addr, clients, port_range);
    let pre = Preflight {
        nofile,
        nofile_before,
        port_range,
        sources: sources.clone(),
    };
    Ok((pre, Target { addr, sources }))
}

fn read_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&text)
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace();
    let lo = it.next()?.parse().ok()?;
    let hi = it.next()?.parse().ok()?;
    (lo <= hi).then_some((lo, hi))
}

/// Spread over 127.0.0.1..k when one source address would need more than
/// half of its ephemeral ports for this destination: the kernel picks a
/// local port per (source, destination) pair, and ports left in TIME_WAIT
/// by earlier runs eat into the range. Only for an IPv4 loopback target,
/// where every 127.x address is ours.
fn plan_sources(addr: SocketAddr, clients: usize, range: Option<(u16, u16)>) -> Vec<IpAddr> {
    let IpAddr::V4(ip) = addr.ip() else {
        return Vec::new();
    };
    if !ip.is_loopback() {
        return Vec::new();
    }
    let ports = range.map_or(28_232, |(lo, hi)| usize::from(hi - lo) + 1);
    let per_source = (ports / 2).max(1);
    if clients <= per_source {
        return Vec::new();
    }
    let k = clients.div_ceil(per_source).min(MAX_SOURCE_ADDRS);
    (0..k)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
        .collect()
}

/// [`start`] client `i`'s connect and register it with `registry` under
/// `token` for both directions (WRITABLE says the handshake finished,
/// READABLE that the server spoke). Both scenarios open connections this way.
pub fn start_registered(
    target: &Target,
    i: usize,
    registry: &mio::Registry,
    token: mio::Token,
) -> Result<mio::net::TcpStream, ConnectCause> {
    let mut stream = start(target, i)?;
    registry
        .register(
            &mut stream,
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
        .map_err(|e| ConnectCause::of(&e))?;
    Ok(stream)
}

/// Start a non-blocking connect for client `i`. `Ok` means the handshake is
/// under way (or done); the caller registers the stream for WRITABLE and
/// calls [`finish`] when it fires.
pub fn start(target: &Target, i: usize) -> Result<mio::net::TcpStream, ConnectCause> {
    let fail = |e: io::Error| ConnectCause::of(&e);
    let domain = Domain::for_address(target.addr);
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    sock.set_nonblocking(true).map_err(fail)?;
    // Small request/reply messages: without TCP_NODELAY, Nagle would hold a
    // short write while the previous one is unacknowledged.
    sock.set_tcp_nodelay(true).map_err(fail)?;
    if let Some(src) = target.source_for(i) {
        // IP_BIND_ADDRESS_NO_PORT: reserve the port at connect time, per
        // (source, destination) pair, instead of at bind time, where a port
        // would be taken for every destination at once. Best effort: without
        // it, binding still works, with fewer ports.
        let _ = crate::sys::set_int_sockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            1,
        );
        sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .map_err(fail)?;
    }
    match sock.connect(&SockAddr::from(target.addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(fail(e)),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// After a WRITABLE (or error) event on a connecting stream: `Ok(true)` when
/// connected, `Ok(false)` when still in progress (a spurious wakeup), `Err`
/// with the cause when the connect failed.
pub fn finish(stream: &mio::net::TcpStream) -> Result<bool, ConnectCause> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Err(ConnectCause::of(&e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(ConnectCause::of(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_clients_are_refused_before_starting() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let err = preflight(addr, usize::MAX / 2, 1).unwrap_err().to_string();
        assert!(err.starts_with("--clients "), "{err}");
        assert!(err.contains("descriptor limit"), "{err}");
        assert_eq!(descriptor_budget(40, 2), 22);
        assert_eq!(descriptor_budget(4, 2), 0);
    }

    #[test]
    fn thread_cpu_time_moves_forward() {
        let t0 = crate::sys::thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(crate::sys::thread_cpu_time() > t0, "{x}");
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(parse_port_range("9 1"), None);
    }

    #[test]
    fn sources_spread_only_when_needed() {
        let lo: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let range = Some((32768, 60999));
        assert!(plan_sources(lo, 1000, range).is_empty());
        let s = plan_sources(lo, 19_000, range);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let small = plan_sources(lo, 19_000, Some((60000, 60999)));
        assert_eq!(small.len(), 38);
        let v6: SocketAddr = "[::1]:7000".parse().unwrap();
        assert!(plan_sources(v6, 19_000, range).is_empty());
    }

    #[test]
    fn connect_to_closed_port_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let target = Target {
            addr,
            sources: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
        };
        let cause = match start(&target, 0) {
            Err(c) => c,
            Ok(s) => {
                let mut poll = mio::Poll::new().unwrap();
                let mut s = s;
                poll.registry()
                    .register(&mut s, mio::Token(0), mio::Interest::WRITABLE)
                    .unwrap();
                let mut events = mio::Events::with_capacity(4);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    poll.poll(&mut events, Some(std::time::Duration::from_millis(50)))
                        .unwrap();
                    match finish(&s) {
                        Ok(false) => assert!(std::time::Instant::now() < deadline),
                        Ok(true) => panic!("connected to a closed port"),
                        Err(c) => break c,
                    }
                }
            }
        };
        assert_eq!(cause, ConnectCause::Refused);
    }
}
