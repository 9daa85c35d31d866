//! Binding the UDP twins: `udp-echo` beside `echo`, `udp-chat` beside
//! `chat`.
//!
//! TCP and UDP ports are separate namespaces, so a twin first tries the very
//! port number its TCP service got (a class then types one number for
//! both); if another program holds that UDP port, it takes the next free
//! port of the same range, wrapping round to the range's start (with range
//! `0`, whatever port the OS picks). Busy ports are logged as `bind-retry`,
//! as for TCP.
//!
//! Unlike the TCP listeners, no `SO_REUSEADDR`: UDP has no `TIME_WAIT` for it
//! to help with, and on Linux it would let two servers bind the same UDP
//! port and split its datagrams between them.

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::listen::{self, Error};
use crate::cli::PortRange;

/// The UDP twin of a TCP service, by the TCP service's name.
pub fn twin_name(tcp_service: &str) -> Option<&'static str> {
    match tcp_service {
        "echo" => Some("udp-echo"),
        "chat" => Some("udp-chat"),
        _ => None,
    }
}

/// Binds `service` (a twin's name) on `host`, trying `same_port` first and
/// then the rest of `range` in order from there.
///
/// # Errors
/// `NoFreePort` when every port was in use or not allowed; `Bind` for any
/// other error.
pub fn bind_twin(
    service: &'static str,
    host: IpAddr,
    same_port: u16,
    range: PortRange,
) -> Result<mio::net::UdpSocket, Error> {
    listen::first_free(
        service,
        host,
        range,
        ports_to_try(same_port, range),
        bind_one,
    )
}

/// `same_port`, then the ports after it in `range`, then those before it;
/// for range `0`, `same_port` and then any port (`0`).
fn ports_to_try(same_port: u16, range: PortRange) -> impl Iterator<Item = u16> {
    if range.first == 0 {
        return vec![same_port, 0].into_iter();
    }
    let after = range.ports().filter(|&p| p > same_port);
    let before = range.ports().filter(|&p| p < same_port);
    std::iter::once(same_port)
        .chain(after)
        .chain(before)
        .collect::<Vec<_>>()
        .into_iter()
}

fn bind_one(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    // mio requires non-blocking sockets: recv_from() must return
    // WouldBlock instead of waiting when no datagram is queued.
    socket.set_nonblocking(true)?;
    Ok(mio::net::UdpSocket::from_std(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    #[test]
    fn same_port_first_then_the_rest_of_the_range() {
        let got: Vec<u16> = ports_to_try(7002, range(7000, 7004)).collect();
        assert_eq!(got, [7002, 7003, 7004, 7000, 7001]);
        let got: Vec<u16> = ports_to_try(7000, range(7000, 7000)).collect();
        assert_eq!(got, [7000]);
        let got: Vec<u16> = ports_to_try(65535, range(65534, 65535)).collect();
        assert_eq!(got, [65535, 65534]);
        // Range 0: the TCP service's port, else whatever the OS picks.
        let got: Vec<u16> = ports_to_try(41234, range(0, 0)).collect();
        assert_eq!(got, [41234, 0]);
    }

    #[test]
    fn a_taken_udp_port_moves_the_twin_on() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        match bind_twin("udp-echo", host, p, range(p, p)) {
            Err(Error::NoFreePort { service, .. }) => assert_eq!(service, "udp-echo"),
            other => panic!(
                "expected NoFreePort, got {:?}",
                other.map(|s| s.local_addr())
            ),
        }
        let got = bind_twin("udp-echo", host, p, range(0, 0)).unwrap();
        assert_ne!(got.local_addr().unwrap().port(), p);
    }
}
