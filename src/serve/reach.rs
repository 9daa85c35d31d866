//! The `reachable at` lines: what students type when the server listens on
//! every interface.
//!
//! A socket bound to `0.0.0.0` (or `::`) accepts connections to any
//! address of the machine, so its `listening on 0.0.0.0:7000` line names
//! no address anyone can connect to. The kernel knows the machine's
//! addresses per network interface (`getifaddrs(3)`, through the
//! `if-addrs` crate); after such a line the shell prints one
//! `  NAME reachable at IP:PORT` line for each, so a class knows what to
//! type (DESIGN.md, "Ports").
//!
//! Which addresses: not loopback (another machine cannot reach
//! `127.0.0.1`); IPv4 only for `0.0.0.0`, both families for `::` (Linux
//! lets an IPv6 socket on `::` take IPv4 connections too, and the listener
//! does not turn that off); and no IPv6 link-local `fe80::` address, which
//! works only with the client's own interface name appended
//! (`fe80::1%eth0`) — not something to put on a projector. No address at
//! all (a test's network namespace) means no extra line.
//!
//! The choice is a pure function ([`reachable`]), tested without touching
//! the machine's interfaces; [`interface_addrs`] is the one call that does.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// The machine's interface addresses that another machine might reach:
/// not loopback, not IPv6 link-local; in the order the system lists them,
/// each once.
///
/// # Errors
/// `getifaddrs(3)` failed (rare: out of memory or descriptors).
pub fn interface_addrs() -> io::Result<Vec<IpAddr>> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for interface in if_addrs::get_if_addrs()? {
        let ip = interface.ip();
        if ip.is_loopback() || is_v6_link_local(ip) || addrs.contains(&ip) {
            continue;
        }
        addrs.push(ip);
    }
    Ok(addrs)
}

/// The addresses to print after `listening on bound`: one per interface
/// address of the bound family (both for `::`), with the bound port. None
/// unless `bound` is an unspecified address.
pub fn reachable(bound: SocketAddr, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
    let ip = bound.ip();
    if !ip.is_unspecified() {
        return Vec::new();
    }
    interfaces
        .iter()
        .filter(|a| a.is_ipv4() || ip.is_ipv6())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .map(|&a| SocketAddr::new(a, bound.port()))
        .collect()
}

/// `fe80::/10`: usable only with a zone (`%eth0`).
fn is_v6_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_unspecified_binds_get_lines() {
        let here = ips(&["192.168.1.23", "10.8.0.5", "fd00::2"]);
        let any4 = "0.0.0.0:7000".parse().unwrap();
        assert_eq!(
            reachable(any4, &here),
            addrs(&["192.168.1.23:7000", "10.8.0.5:7000"]),
            "IPv4 addresses only for 0.0.0.0"
        );
        let any6 = "[::]:7100".parse().unwrap();
        assert_eq!(
            reachable(any6, &here),
            addrs(&["192.168.1.23:7100", "10.8.0.5:7100", "[fd00::2]:7100"]),
            "both families for ::"
        );
        for bound in ["127.0.0.1:7000", "192.168.1.23:7000", "[::1]:7000"] {
            assert!(
                reachable(bound.parse().unwrap(), &here).is_empty(),
                "{bound}"
            );
        }
        assert!(reachable(any4, &[]).is_empty(), "no interface, no line");
    }

    #[test]
    fn loopback_is_never_offered() {
        let here = ips(&["127.0.0.1", "::1", "192.0.2.2"]);
        assert_eq!(
            reachable("[::]:1".parse().unwrap(), &here),
            addrs(&["192.0.2.2:1"])
        );
    }

    #[test]
    fn link_local_v6_needs_a_zone() {
        assert!(is_v6_link_local("fe80::fc:ff:fe00:1".parse().unwrap()));
        assert!(is_v6_link_local("febf::1".parse().unwrap()));
        assert!(!is_v6_link_local("fec0::1".parse().unwrap()));
        assert!(!is_v6_link_local("fd00::2".parse().unwrap()));
        assert!(!is_v6_link_local("169.254.1.1".parse().unwrap()));
    }

    #[test]
    fn this_machine_lists_no_loopback() {
        // Whatever the machine has (maybe nothing, in a namespace), the
        // list never holds loopback, link-local IPv6 or a repeat.
        let list = interface_addrs().expect("getifaddrs");
        for (i, ip) in list.iter().enumerate() {
            assert!(!ip.is_loopback() && !is_v6_link_local(*ip), "{ip}");
            assert!(!list[..i].contains(ip), "{ip} twice");
        }
    }
}
