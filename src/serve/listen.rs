//! Listening sockets: take the first free port of a range.
//!
//! Each port of the range is tried in order. A port another socket owns
//! (`EADDRINUSE`) or that we may not use (`EACCES`, ports below 1024) is
//! logged as `bind-retry` and the next one is tried. The socket is built
//! with `socket2` rather than `mio::net::TcpListener::bind` for two reasons:
//! `SO_REUSEADDR` must be set *before* `bind` (so a restart does not trip
//! over connections still in `TIME_WAIT`), and `listen()`'s queue length is
//! ours to choose (mio fixes it at 128, too few for a connect storm).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Socket, Type};

use crate::cli::PortRange;
use crate::event::{self, Event};

/// Why a service could not listen.
#[derive(Debug)]
pub enum Error {
    /// Every port of the range was taken or not allowed.
    NoFreePort {
        service: &'static str,
        range: PortRange,
    },
    /// Any other failure (a host that is not ours, ...).
    Bind {
        service: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoFreePort { service, range } => write!(
                f,
                "no free port for {service} in {range}; stop what holds those ports or choose another range with --{}-ports",
                // A UDP twin shares its TCP service's range and option.
                service.trim_start_matches("udp-")
            ),
            Error::Bind {
                service,
                addr,
                error,
            } => write!(
                f,
                "cannot listen for {service} on {addr}: {error}; check --host"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Binds `service` to the first free port of `range` on `host`.
///
/// # Errors
/// `NoFreePort` when every port was in use or not allowed; `Bind` for any
/// other error, which trying more ports would not fix.
pub fn bind_range(
    service: &'static str,
    host: IpAddr,
    range: PortRange,
    listen_backlog: u32,
) -> Result<mio::net::TcpListener, Error> {
    first_free(service, host, range, range.ports(), |addr| {
        bind_one(addr, listen_backlog)
    })
}

/// Tries `bind` on each of `ports` in order (they come from `range`): a
/// port in use or not allowed is logged as `bind-retry` and the next one
/// tried; any other error ends the search. TCP listeners and UDP twins
/// both bind through here.
///
/// # Errors
/// `NoFreePort` when every port failed with a retryable error; `Bind` for
/// any other error.
pub(super) fn first_free<T>(
    service: &'static str,
    host: IpAddr,
    range: PortRange,
    ports: impl Iterator<Item = u16>,
    mut bind: impl FnMut(SocketAddr) -> io::Result<T>,
) -> Result<T, Error> {
    for port in ports {
        let addr = SocketAddr::new(host, port);
        match bind(addr) {
            Ok(socket) => return Ok(socket),
            Err(e) if retryable(&e) => event::record(&Event::BindRetry {
                service,
                addr,
                error: e.to_string(),
            }),
            Err(error) => {
                return Err(Error::Bind {
                    service,
                    addr,
                    error,
                });
            }
        }
    }
    Err(Error::NoFreePort { service, range })
}

/// Whether another port of the range may succeed where this one failed.
fn retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind_one(addr: SocketAddr, listen_backlog: u32) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    let backlog = i32::try_from(listen_backlog).unwrap_or(i32::MAX);
    socket.listen(backlog)?;
    // mio requires non-blocking sockets: accept() must return WouldBlock
    // instead of waiting when the queue is empty.
    socket.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}
