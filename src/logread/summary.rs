//! `echochat log --summary`: what a log says, on one screen.
//!
//! - connections by service and disconnect reason (and how many were still
//!   open at the end of the log);
//! - bytes in and out per service (from `disconnect`, which carries a
//!   connection's totals);
//! - the busiest peers, by IP address;
//! - traffic per second over time: a second with a `traffic` line is taken
//!   from it (it sums the whole second, written lines included), any other
//!   second from its `recv`/`send`/`datagram` lines. Which single lines a
//!   `traffic` line already counts is known from the file's order, not
//!   from clocks: a summed second wrote exactly `recv + send - suppressed`
//!   single lines, all before its `traffic` line and after the previous
//!   second's (see `event/traffic.rs`);
//! - the warnings and errors.
//!
//! Everything is a running total, so a 50 MB log is summarized in one
//! pass with memory for the totals only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use crate::logfmt::Line;

/// Warnings and errors shown in full (the rest are counted).
const SHOWN_PROBLEMS: usize = 20;
/// Rows of the traffic table at most (seconds are grouped to fit).
const TRAFFIC_ROWS: u64 = 30;
/// Peers listed.
const TOP_PEERS: usize = 10;
/// Single traffic lines held per service while waiting to learn whether a
/// `traffic` line counts them (more than any sane `--log-traffic-rate`).
const PENDING_SINGLES: usize = 100_000;

#[derive(Default)]
pub(super) struct Summary {
    lines: u64,
    damaged: u64,
    first: Option<String>,
    last: Option<String>,
    /// service -> (accepted, reason -> closed)
    services: BTreeMap<String, Service>,
    /// IP -> (connections, bytes in, bytes out)
    peers: HashMap<String, Peer>,
    /// Traffic per second, all services.
    seconds: BTreeMap<u64, Sums>,
    /// Per service, the single recv/send/datagram lines since its last
    /// `traffic` line: (second, sums).
    pending: HashMap<String, VecDeque<(u64, Sums)>>,
    /// WARN and ERROR lines, by event name.
    problem_counts: BTreeMap<String, u64>,
    problems: Vec<String>,
    problems_total: u64,
}

#[derive(Default)]
struct Service {
    accepted: u64,
    closed: BTreeMap<String, u64>,
    bytes_in: u64,
    bytes_out: u64,
}

#[derive(Default)]
struct Peer {
    conns: u64,
    bytes_in: u64,
    bytes_out: u64,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.msgs_in += o.msgs_in;
        self.msgs_out += o.msgs_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

fn num(line: &Line<'_>, key: &str) -> u64 {
    line.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The whole seconds since the epoch of a line's timestamp.
fn second(line: &Line<'_>) -> Option<u64> {
    line.timestamp()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// `127.0.0.1:5000` -> `127.0.0.1`, `[::1]:5000` -> `::1`.
fn ip_of(peer: &str) -> &str {
    let host = peer.rsplit_once(':').map_or(peer, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Summary {
    pub(super) fn add(&mut self, line: &Line<'_>) {
        self.lines += 1;
        if self.first.is_none() {
            self.first = Some(line.time.to_string());
        }
        self.last = Some(line.time.to_string());
        let service = line.get("service").unwrap_or("-");
        match line.event {
            "accept" => self.service(service).accepted += 1,
            "disconnect" => {
                let (bytes_in, bytes_out) = (num(line, "bytes_in"), num(line, "bytes_out"));
                let reason = line.get("reason").unwrap_or("?").to_string();
                let s = self.service(service);
                *s.closed.entry(reason).or_default() += 1;
                s.bytes_in += bytes_in;
                s.bytes_out += bytes_out;
                if let Some(peer) = line.get("peer") {
                    let p = self.peers.entry(ip_of(peer).to_string()).or_default();
                    p.conns += 1;
                    p.bytes_in += bytes_in;
                    p.bytes_out += bytes_out;
                }
            }
            "recv" | "send" | "datagram" => {
                let bytes = num(line, "bytes");
                let inward = line.event == "recv" || line.get("dir") == Some("in");
                let sums = if inward {
                    Sums {
                        msgs_in: 1,
                        bytes_in: bytes,
                        ..Sums::default()
                    }
                } else {
                    Sums {
                        msgs_out: 1,
                        bytes_out: bytes,
                        ..Sums::default()
                    }
                };
                if let Some(sec) = second(line) {
                    let queue = self.pending.entry(service.to_string()).or_default();
                    queue.push_back((sec, sums));
                    if queue.len() > PENDING_SINGLES
                        && let Some((sec, sums)) = queue.pop_front()
                    {
                        self.seconds.entry(sec).or_default().add(sums);
                    }
                }
            }
            "traffic" => self.add_traffic(service, line),
            _ => {}
        }
        if matches!(line.level, "WARN" | "ERROR") {
            *self
                .problem_counts
                .entry(line.event.to_string())
                .or_default() += 1;
            self.note_problem(line_text(line));
        }
    }

    pub(super) fn add_damaged(&mut self, raw: &[u8]) {
        self.damaged += 1;
        *self
            .problem_counts
            .entry("(damaged line)".to_string())
            .or_default() += 1;
        self.note_problem(format!("damaged: {}", String::from_utf8_lossy(raw)));
    }

    fn note_problem(&mut self, text: String) {
        self.problems_total += 1;
        if self.problems.len() < SHOWN_PROBLEMS {
            self.problems.push(text);
        }
    }

    /// A `traffic` line: the last `recv + send - suppressed` single lines
    /// of its service are its own (already in its sums); the ones before
    /// them belong to seconds without a sum.
    fn add_traffic(&mut self, service: &str, line: &Line<'_>) {
        let sums = Sums {
            msgs_in: num(line, "recv"),
            msgs_out: num(line, "send"),
            bytes_in: num(line, "bytes_in"),
            bytes_out: num(line, "bytes_out"),
        };
        let written = (sums.msgs_in + sums.msgs_out).saturating_sub(num(line, "suppressed"));
        let mut queue = self.pending.remove(service).unwrap_or_default();
        let own = queue
            .len()
            .min(usize::try_from(written).unwrap_or(usize::MAX));
        let mine = queue.split_off(queue.len() - own);
        for (sec, single) in queue {
            self.seconds.entry(sec).or_default().add(single);
        }
        // Its second is that of its own single lines; without any, the one
        // before it was written (it comes just after the second it sums).
        let sec = match mine.front() {
            Some((sec, _)) => Some(*sec),
            None => second(line).map(|s| s.saturating_sub(1)),
        };
        if let Some(sec) = sec {
            self.seconds.entry(sec).or_default().add(sums);
        }
    }

    fn service(&mut self, name: &str) -> &mut Service {
        self.services.entry(name.to_string()).or_default()
    }

    /// Traffic per second over all services, the single lines still
    /// waiting included (no `traffic` line came for them).
    fn per_second(&self) -> BTreeMap<u64, Sums> {
        let mut out = self.seconds.clone();
        for queue in self.pending.values() {
            for (sec, sums) in queue {
                out.entry(*sec).or_default().add(*sums);
            }
        }
        out
    }

    pub(super) fn print(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "{} lines{}, from {} to {}",
            self.lines,
            if self.damaged > 0 {
                format!(" (and {} damaged)", self.damaged)
            } else {
                String::new()
            },
            self.first.as_deref().unwrap_or("-"),
            self.last.as_deref().unwrap_or("-")
        )?;

        writeln!(out, "\nconnections by service and reason")?;
        if self.services.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for (name, s) in &self.services {
            let closed: u64 = s.closed.values().sum();
            let reasons: Vec<String> = s.closed.iter().map(|(r, n)| format!("{r}={n}")).collect();
            writeln!(
                out,
                "  {name:<10} accepted={} closed={closed} {}",
                s.accepted,
                reasons.join(" ")
            )?;
            if s.accepted > closed {
                writeln!(
                    out,
                    "  {:<10} still open at the end: {}",
                    "",
                    s.accepted - closed
                )?;
            }
        }

        writeln!(out, "\nbytes (of closed connections)")?;
        for (name, s) in &self.services {
            writeln!(
                out,
                "  {name:<10} in={} out={}",
                human_bytes(s.bytes_in),
                human_bytes(s.bytes_out)
            )?;
        }

        writeln!(out, "\nbusiest peers")?;
        let mut peers: Vec<(&String, &Peer)> = self.peers.iter().collect();
        peers.sort_by(|a, b| {
            (b.1.bytes_in + b.1.bytes_out)
                .cmp(&(a.1.bytes_in + a.1.bytes_out))
                .then(b.1.conns.cmp(&a.1.conns))
                .then(a.0.cmp(b.0))
        });
        if peers.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for (ip, p) in peers.iter().take(TOP_PEERS) {
            writeln!(
                out,
                "  {ip:<40} conns={} in={} out={}",
                p.conns,
                human_bytes(p.bytes_in),
                human_bytes(p.bytes_out)
            )?;
        }

        self.print_traffic(out)?;

        writeln!(out, "\nwarnings and errors")?;
        if self.problems_total == 0 {
            writeln!(out, "  (none)")?;
        }
        for (event, n) in &self.problem_counts {
            writeln!(out, "  {event}: {n}")?;
        }
        for p in &self.problems {
            writeln!(out, "    {p}")?;
        }
        if self.problems_total > self.problems.len() as u64 {
            writeln!(
                out,
                "    ... and {} more",
                self.problems_total - self.problems.len() as u64
            )?;
        }
        Ok(())
    }

    /// The traffic table: one row per second, or per group of seconds when
    /// the log covers more than [`TRAFFIC_ROWS`] of them.
    fn print_traffic(&self, out: &mut impl Write) -> io::Result<()> {
        let seconds = self.per_second();
        let (Some(first), Some(last)) = (seconds.keys().next(), seconds.keys().next_back()) else {
            writeln!(out, "\ntraffic per second\n  (none)")?;
            return Ok(());
        };
        let span = last - first + 1;
        let width = span.div_ceil(TRAFFIC_ROWS).max(1);
        writeln!(
            out,
            "\ntraffic per second{}",
            if width > 1 {
                format!(" (averaged over {width} s)")
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "  {:<20} {:>10} {:>10} {:>12} {:>12}",
            "time (UTC)", "msgs in", "msgs out", "bytes in", "bytes out"
        )?;
        let mut groups: BTreeMap<u64, Sums> = BTreeMap::new();
        for (sec, sums) in &seconds {
            groups
                .entry(first + (sec - first) / width * width)
                .or_default()
                .add(*sums);
        }
        for (start, s) in groups {
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(start));
            writeln!(
                out,
                "  {:<20} {:>10} {:>10} {:>12} {:>12}",
                at.to_string(),
                s.msgs_in / width,
                s.msgs_out / width,
                human_bytes(s.bytes_in / width),
                human_bytes(s.bytes_out / width)
            )?;
        }
        Ok(())
    }
}

/// The line again, as text (for the warnings list).
fn line_text(line: &Line<'_>) -> String {
    let mut s = format!("{} {} {}", line.time, line.level, line.event);
    for (k, v) in &line.fields {
        s.push(' ');
        s.push_str(k);
        s.push('=');
        s.push_str(&crate::logfmt::Value(v).to_string());
    }
    s
}

/// `1536` -> `1.5KiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfmt::parse_line;

    fn summary(lines: &[&str]) -> String {
        let mut s = Summary::default();
        for l in lines {
            match parse_line(l) {
                Ok(line) => s.add(&line),
                Err(_) => s.add_damaged(l.as_bytes()),
            }
        }
        let mut out = Vec::new();
        s.print(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The cells after `first` in the row that starts with it.
    fn row(text: &str, first: &str) -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(first))
            .unwrap_or_else(|| panic!("no row {first} in:\n{text}"));
        line.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn counts_connections_bytes_peers_and_problems() {
        let text = summary(&[
            "2026-11-22T13:53:10.000Z INFO  accept service=echo conn=1 slot=0 peer=10.0.0.5:4000",
            "2026-11-22T13:53:10.100Z DEBUG recv service=echo conn=1 bytes=100",
            "2026-11-22T13:53:10.100Z DEBUG send service=echo conn=1 bytes=100",
            "2026-11-22T13:53:11.000Z INFO  accept service=echo conn=2 slot=1 peer=10.0.0.6:4001",
            "2026-11-22T13:53:11.500Z INFO  disconnect service=echo conn=1 peer=10.0.0.5:4000 reason=eof bytes_in=2048 bytes_out=2048 duration=1.500s",
            "2026-11-22T13:53:11.600Z DEBUG recv service=echo conn=2 bytes=1024",
            "2026-11-22T13:53:12.001Z DEBUG traffic service=echo recv=500 send=500 bytes_in=512000 bytes_out=512000 conns=2 suppressed=999",
            "2026-11-22T13:53:12.100Z WARN  accept-error service=echo error=\"Too many open files\"",
            "garbage",
        ]);
        assert!(text.contains("8 lines (and 1 damaged)"), "{text}");
        assert!(text.contains("accepted=2 closed=1 eof=1"), "{text}");
        assert!(text.contains("still open at the end: 1"), "{text}");
        assert!(text.contains("in=2.0KiB out=2.0KiB"), "{text}");
        assert!(text.contains("10.0.0.5"), "{text}");
        // 13:53:10 from single lines, 13:53:11 from the traffic line.
        assert_eq!(
            row(&text, "2026-11-22T13:53:10Z"),
            ["1", "1", "100B", "100B"]
        );
        assert_eq!(
            row(&text, "2026-11-22T13:53:11Z"),
            ["500", "500", "500.0KiB", "500.0KiB"]
        );
        assert!(text.contains("accept-error: 1"), "{text}");
        assert!(text.contains("(damaged line): 1"), "{text}");
    }

    #[test]
    fn a_summed_second_does_not_count_its_single_lines_twice() {
        // Second :09 stayed under the cap; :10 went over it with a cap of 2.
        let text = summary(&[
            "2026-11-22T13:53:09.100Z DEBUG recv service=echo conn=1 bytes=7",
            "2026-11-22T13:53:09.100Z DEBUG send service=echo conn=1 bytes=7",
            "2026-11-22T13:53:10.100Z DEBUG recv service=echo conn=1 bytes=100",
            "2026-11-22T13:53:10.100Z DEBUG send service=echo conn=1 bytes=100",
            "2026-11-22T13:53:11.001Z DEBUG traffic service=echo recv=3 send=3 bytes_in=300 bytes_out=300 conns=1 suppressed=4",
        ]);
        assert_eq!(row(&text, "2026-11-22T13:53:09Z"), ["1", "1", "7B", "7B"]);
        assert_eq!(
            row(&text, "2026-11-22T13:53:10Z"),
            ["3", "3", "300B", "300B"]
        );
    }

    #[test]
    fn ips_are_taken_from_peers() {
        assert_eq!(ip_of("127.0.0.1:5"), "127.0.0.1");
        assert_eq!(ip_of("[::1]:5"), "::1");
    }
}
