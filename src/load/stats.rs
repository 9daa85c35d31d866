//! What one load thread counted, and how the threads' counts are merged.
//!
//! Every thread owns a [`Stats`] and touches no shared state on its hot path
//! (except the few relaxed counters the progress line reads, published once
//! per event-loop turn, see `progress.rs`); the run merges them once at the
//! end with [`Stats::merge`]. `report.rs` turns the merged stats into the
//! summary.

use std::fmt;

use hdrhistogram::Histogram;

/// Why a connection attempt did not become a session. A failed connect is
/// counted under its cause and the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCause {
    /// `ECONNREFUSED`: nothing listens on the port (or the SYN was answered
    /// with RST because the listen queue overflowed).
    Refused,
    /// `ECONNRESET`/`EPIPE` while connecting.
    Reset,
    /// No answer within the connect (or handshake) deadline, `ETIMEDOUT`, or
    /// still not connected when the ramp's share of `--duration` ran out.
    TimedOut,
    /// The server said `! server full, try again later` and closed: it was
    /// at its `--max-clients` (or `--max-per-ip`).
    Full,
    /// `EMFILE`/`ENFILE`: this process (or the system) has no descriptor left.
    OutOfDescriptors,
    /// `EADDRNOTAVAIL`/`EADDRINUSE`: no free ephemeral port for this source
    /// address and destination.
    OutOfPorts,
    /// The server closed the connection before the session started, without
    /// saying it was full.
    Closed,
    /// Anything else (unreachable network, permission, ...).
    Other,
}

impl ConnectCause {
    pub const ALL: [ConnectCause; 8] = [
        ConnectCause::Refused,
        ConnectCause::Reset,
        ConnectCause::TimedOut,
        ConnectCause::Full,
        ConnectCause::OutOfDescriptors,
        ConnectCause::OutOfPorts,
        ConnectCause::Closed,
        ConnectCause::Other,
    ];

    /// The key used in the summary and in `connect_errors_by_cause`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectCause::Refused => "refused",
            ConnectCause::Reset => "reset",
            ConnectCause::TimedOut => "timed_out",
            ConnectCause::Full => "full",
            ConnectCause::OutOfDescriptors => "out_of_descriptors",
            ConnectCause::OutOfPorts => "out_of_ports",
            ConnectCause::Closed => "closed",
            ConnectCause::Other => "other",
        }
    }

    /// Classify an error from `socket`, `bind`, `connect` or `SO_ERROR`.
    pub fn of(e: &std::io::Error) -> ConnectCause {
        use std::io::ErrorKind as K;
        match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => return ConnectCause::OutOfDescriptors,
            Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => {
                return ConnectCause::OutOfPorts;
            }
            Some(libc::ETIMEDOUT) => return ConnectCause::TimedOut,
            _ => {}
        }
        match e.kind() {
            K::ConnectionRefused => ConnectCause::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ConnectCause::Reset,
            K::TimedOut => ConnectCause::TimedOut,
            K::UnexpectedEof => ConnectCause::Closed,
            _ => ConnectCause::Other,
        }
    }

    fn index(self) -> usize {
        ConnectCause::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or(ConnectCause::ALL.len() - 1)
    }
}

impl fmt::Display for ConnectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one thread (or, after merging, of the whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Sessions established: connected (echo), joined the room (chat), or
    /// opened, verified and closed (connect).
    pub connected: u64,
    /// Failed connection attempts, indexed like [`ConnectCause::ALL`].
    pub connect_errors: [u64; ConnectCause::ALL.len()],
    /// Echo: round trips completed. UDP: unique verified replies. Chat:
    /// messages sent. Connect: cycles completed.
    pub messages: u64,
    /// Payload bytes verified: echoed back (echo, connect) or delivered
    /// (chat).
    pub bytes: u64,
    /// Bytes written to the server, whatever happened to them.
    pub bytes_sent: u64,
    /// Bytes read from the server, ours or not.
    pub bytes_received: u64,
    /// Echo, connect: replies that differed from what was sent. Chat: lines
    /// that did not parse, came from ourselves, or were attributed to the
    /// wrong name.
    pub verify_errors: u64,
    /// Read/write errors and unexpected EOFs on established sessions.
    pub io_errors: u64,
    /// Connections that completed at least one round trip (echo), or joined
    /// (chat).
    pub served: u64,
    /// Echo: messages still in flight when the drain period ended.
    pub incomplete: u64,
    /// Open loop (echo `--rate`, connect `--rate`): messages or connects
    /// that came due but were never started before the load ended.
    pub not_started: u64,
    /// Chat: our lines received by the other users.
    pub delivered: u64,
    /// Chat: messages not sent because the socket's send buffer and our
    /// bounded queue were full (the server is not reading). UDP: datagrams
    /// the kernel refused with `ENOBUFS` (not in `sent`).
    pub send_dropped: u64,
    /// Chat: `! ` lines received after joining.
    pub server_errors: u64,
    /// Chat: `NAME: text` lines from users that are not part of this run.
    pub foreign_lines: u64,
    /// UDP: datagrams the kernel took for sending.
    pub sent: u64,
    /// UDP: datagrams sent that never came back verified by the end of the
    /// drain (`sent` minus the unique verified replies).
    pub lost: u64,
    /// UDP: replies that came after a reply to a later datagram of the same
    /// socket.
    pub reordered: u64,
    /// UDP: extra copies of a reply already received.
    pub duplicated: u64,
    /// UDP: replies the kernel dropped because our own sockets' receive
    /// buffers were full (part of `lost`; from `/proc/net/udp`).
    pub client_drops: u64,
    /// Round-trip (echo, udp-echo), delivery (chat) or connect-to-reply
    /// (connect) latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// `a.f += b.f` for each listed counter field `f`.
macro_rules! add_fields {
    ($a:expr, $b:expr; $($f:ident),+ $(,)?) => {
        $( $a.$f += $b.$f; )+
    };
}

/// Latencies above an hour are clamped; a load run never lasts that long.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// An empty latency histogram with the bounds every thread uses.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >=
    // 2*low, 3 significant figures), so this cannot fail.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant histogram bounds are valid")
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            connected: 0,
            connect_errors: [0; ConnectCause::ALL.len()],
            messages: 0,
            bytes: 0,
            bytes_sent: 0,
            bytes_received: 0,
            verify_errors: 0,
            io_errors: 0,
            served: 0,
            incomplete: 0,
            not_started: 0,
            delivered: 0,
            send_dropped: 0,
            server_errors: 0,
            foreign_lines: 0,
            sent: 0,
            lost: 0,
            reordered: 0,
            duplicated: 0,
            client_drops: 0,
            latency_us: new_histogram(),
        }
    }

    pub fn connect_failed(&mut self, cause: ConnectCause) {
        self.connect_errors[cause.index()] += 1;
    }

    pub fn connect_errors_total(&self) -> u64 {
        self.connect_errors.iter().sum()
    }

    /// Errors of any kind so far: failed connects, verification, io.
    pub fn errors_total(&self) -> u64 {
        self.connect_errors_total() + self.verify_errors + self.io_errors
    }

    pub fn record_latency_us(&mut self, us: u64) {
        self.latency_us.saturating_record(us);
    }

    /// Add another thread's counts to these.
    pub fn merge(&mut self, other: &Stats) {
        self.connected += other.connected;
        for (a, b) in self.connect_errors.iter_mut().zip(other.connect_errors) {
            *a += b;
        }
        add_fields!(self, other; messages, bytes, bytes_sent, bytes_received,
            verify_errors, io_errors, served, incomplete, not_started, delivered,
            send_dropped, server_errors, foreign_lines, sent, lost, reordered,
            duplicated, client_drops);
        // Both histograms have the same bounds, so adding cannot fail; if it
        // somehow did, the merged percentiles would only miss that thread.
        let _ = self.latency_us.add(&other.latency_us);
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_from_errno() {
        for (errno, cause) in [
            (libc::ECONNREFUSED, ConnectCause::Refused),
            (libc::ECONNRESET, ConnectCause::Reset),
            (libc::ETIMEDOUT, ConnectCause::TimedOut),
            (libc::EMFILE, ConnectCause::OutOfDescriptors),
            (libc::ENFILE, ConnectCause::OutOfDescriptors),
            (libc::EADDRNOTAVAIL, ConnectCause::OutOfPorts),
            (libc::ENETUNREACH, ConnectCause::Other),
        ] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert_eq!(ConnectCause::of(&e), cause, "errno {errno}");
        }
    }

    #[test]
    fn every_cause_has_its_own_counter() {
        let mut s = Stats::new();
        for (n, cause) in ConnectCause::ALL.iter().enumerate() {
            for _ in 0..=n {
                s.connect_failed(*cause);
            }
        }
        let want: Vec<u64> = (1..=ConnectCause::ALL.len() as u64).collect();
        assert_eq!(s.connect_errors.to_vec(), want);
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.messages = 3;
        b.messages = 4;
        b.bytes_sent = 9;
        a.connect_failed(ConnectCause::Refused);
        b.connect_failed(ConnectCause::Refused);
        b.connect_failed(ConnectCause::Full);
        a.record_latency_us(10);
        b.record_latency_us(1000);
        a.merge(&b);
        assert_eq!(a.messages, 7);
        assert_eq!(a.bytes_sent, 9);
        assert_eq!(a.connect_errors_total(), 3);
        assert_eq!(a.connect_errors[0], 2);
        assert_eq!(a.connect_errors[3], 1);
        assert_eq!(a.errors_total(), 3);
        assert_eq!(a.latency_us.len(), 2);
        assert!(a.latency_us.max() >= 1000);
    }
}
