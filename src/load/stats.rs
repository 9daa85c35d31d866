//! What one load thread counted, and how the threads' counts are merged.
//!
//! Every thread owns a [`Stats`] and touches no shared state on its hot path
//! (except the few relaxed counters the progress bar reads, see
//! `progress.rs`); the run merges them once at the end with
//! [`Stats::merge`]. `report.rs` turns the merged stats into the summary.

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
    /// No answer within the connect (or handshake) deadline, or `ETIMEDOUT`.
    TimedOut,
    /// `EMFILE`/`ENFILE`: this process (or the system) has no descriptor left.
    OutOfDescriptors,
    /// `EADDRNOTAVAIL`/`EADDRINUSE`: no free ephemeral port for this source
    /// address and destination.
    OutOfPorts,
    /// The server closed the connection before the session started (e.g.
    /// `! server full, try again later`, then FIN).
    Closed,
    /// Anything else (unreachable network, permission, ...).
    Other,
}

impl ConnectCause {
    pub const ALL: [ConnectCause; 7] = [
        ConnectCause::Refused,
        ConnectCause::Reset,
        ConnectCause::TimedOut,
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
}

impl fmt::Display for ConnectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one thread (or, after merging, of the whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Sessions established: connected (echo) or joined the room (chat).
    pub connected: u64,
    /// Failed connection attempts, indexed like [`ConnectCause::ALL`].
    pub connect_errors: [u64; 7],
    /// Echo: round trips completed. Chat: messages sent.
    pub messages: u64,
    /// Payload bytes that came back (echo) or were delivered (chat).
    pub bytes: u64,
    /// Echo: replies that differed from what was sent. Chat: lines that did
    /// not parse, came from ourselves, or were attributed to the wrong name.
    pub verify_errors: u64,
    /// Read/write errors and unexpected EOFs on established sessions.
    pub io_errors: u64,
    /// Echo: connections that completed at least one round trip.
    pub served: u64,
    /// Echo: messages still in flight when the drain period ended.
    pub incomplete: u64,
    /// Chat: our lines received by the other users.
    pub delivered: u64,
    /// Chat: messages not sent because the socket's send buffer and our
    /// bounded queue were full (the server is not reading).
    pub send_dropped: u64,
    /// Chat: `! ` lines received after joining.
    pub server_errors: u64,
    /// Chat: `NAME: text` lines from users that are not part of this run.
    pub foreign_lines: u64,
    /// Round-trip (echo) or delivery (chat) latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Latencies above an hour are clamped; a load run never lasts that long.
const LATENCY_MAX_US: u64 = 3_600_000_000;

impl Stats {
    pub fn new() -> Stats {
        Stats {
            connected: 0,
            connect_errors: [0; 7],
            messages: 0,
            bytes: 0,
            verify_errors: 0,
            io_errors: 0,
            served: 0,
            incomplete: 0,
            delivered: 0,
            send_dropped: 0,
            server_errors: 0,
            foreign_lines: 0,
            // Bounds are constants that hdrhistogram accepts (low >= 1,
            // high >= 2*low, 3 significant figures), so this cannot fail.
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }

    pub fn connect_failed(&mut self, cause: ConnectCause) {
        let i = ConnectCause::ALL
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(ConnectCause::ALL.len() - 1);
        self.connect_errors[i] += 1;
    }

    pub fn connect_errors_total(&self) -> u64 {
        self.connect_errors.iter().sum()
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
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.verify_errors += other.verify_errors;
        self.io_errors += other.io_errors;
        self.served += other.served;
        self.incomplete += other.incomplete;
        self.delivered += other.delivered;
        self.send_dropped += other.send_dropped;
        self.server_errors += other.server_errors;
        self.foreign_lines += other.foreign_lines;
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
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(
            ConnectCause::of(&e(libc::ECONNREFUSED)),
            ConnectCause::Refused
        );
        assert_eq!(ConnectCause::of(&e(libc::ECONNRESET)), ConnectCause::Reset);
        assert_eq!(
            ConnectCause::of(&e(libc::ETIMEDOUT)),
            ConnectCause::TimedOut
        );
        assert_eq!(
            ConnectCause::of(&e(libc::EMFILE)),
            ConnectCause::OutOfDescriptors
        );
        assert_eq!(
            ConnectCause::of(&e(libc::ENFILE)),
            ConnectCause::OutOfDescriptors
        );
        assert_eq!(
            ConnectCause::of(&e(libc::EADDRNOTAVAIL)),
            ConnectCause::OutOfPorts
        );
        assert_eq!(ConnectCause::of(&e(libc::ENETUNREACH)), ConnectCause::Other);
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.messages = 3;
        b.messages = 4;
        a.connect_failed(ConnectCause::Refused);
        b.connect_failed(ConnectCause::Refused);
        b.connect_failed(ConnectCause::OutOfPorts);
        a.record_latency_us(10);
        b.record_latency_us(1000);
        a.merge(&b);
        assert_eq!(a.messages, 7);
        assert_eq!(a.connect_errors_total(), 3);
        assert_eq!(a.connect_errors[0], 2);
        assert_eq!(a.latency_us.len(), 2);
        assert!(a.latency_us.max() >= 1000);
    }
}
