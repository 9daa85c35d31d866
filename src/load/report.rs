//! The result of a load run: [`Report`], its human summary (stdout), its
//! `--json` object (the keys DESIGN.md names, plus a few more), and
//! [`Report::check`], which decides the exit status.
//!
//! Rates are per second of the load phase (after the ramp, before the
//! drain), so a slow ramp does not dilute msgs/s. Latency is kept in µs
//! (the JSON keys say so) and shown in ms.

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde_json::json;

use super::Error;
use super::stats::{ConnectCause, Stats};

const MIB: f64 = 1024.0 * 1024.0;

/// The server's default `--max-frame` (DESIGN.md), for a hint only.
const DEFAULT_MAX_FRAME: u64 = 1 << 20;

/// Latency over the run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub mean: f64,
    pub stdev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// What a run is: the same in its plan ([`RunInfo`]) and its result
/// ([`Report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunShape {
    /// `echo`, `chat`, `connect` or `udp-echo`.
    pub scenario: &'static str,
    /// The server's address, as connected to.
    pub target: String,
    /// Connections (UDP: sockets) at once.
    pub clients: usize,
    pub threads: usize,
    /// Echo: bytes per message (framed: payload bytes). UDP: bytes per
    /// datagram. Connect: bytes per round trip. Chat: 0.
    pub size: u64,
    /// Echo `--framed`: 4-byte length headers on every message.
    pub framed: bool,
}

/// What the run was asked to do and how long its phases took.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run: RunShape,
    /// Echo, udp-echo, connect: messages (connects) per second asked over
    /// all clients, `None` for closed loop. Chat: messages per second per
    /// user.
    pub rate: Option<f64>,
    /// Length of the load phase.
    pub load: Duration,
    /// Time until every connection was up or failed.
    pub ramp: Duration,
    /// The ramp ran out of its share of `--duration`.
    pub ramp_cut: bool,
    /// Load phase plus drain, the longest thread's.
    pub busy: Duration,
    /// CPU time of the load threads over `busy`, summed.
    pub cpu: Duration,
}

/// Chat-only results.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResult {
    /// Messages per second each user was asked to send.
    pub rate: f64,
    /// Messages × (users − 1): the lines the room should have delivered.
    pub expected: u64,
    /// Lines received by other users.
    pub delivered: u64,
    /// `delivered / expected` (1.0 when nothing was expected).
    pub delivered_fraction: f64,
    pub delivered_per_sec: f64,
    pub send_dropped: u64,
    pub server_errors: u64,
    pub foreign_lines: u64,
    /// The generator's CPU per line received, in µs.
    pub cpu_us_per_line: f64,
}

/// udp-echo only: what UDP did not promise.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpResult {
    /// Datagrams the kernel took for sending.
    pub sent: u64,
    /// Unique verified replies (the report's `messages`).
    pub received: u64,
    /// `sent - received` after the drain.
    pub lost: u64,
    /// `lost / sent` in percent (0 when nothing was sent).
    pub lost_pct: f64,
    /// Replies that came after the reply to a later datagram.
    pub reordered: u64,
    /// Extra copies of replies already received.
    pub duplicated: u64,
    /// Datagrams the kernel refused (`ENOBUFS`) before they left.
    pub send_dropped: u64,
    /// Of `lost`: replies dropped by our own full receive buffers (the
    /// generator was too slow to read them), not by the server.
    pub client_drops: u64,
}

/// Open loop (echo, udp-echo, connect with `--rate`): what was asked and
/// what came.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoop {
    /// Messages (or connects) per second asked over all clients.
    pub rate: f64,
    /// Messages (connects, datagrams sent) per second achieved.
    pub achieved: f64,
    /// How far the achieved rate fell below `rate`, in percent (0 when it
    /// was met).
    pub shortfall_pct: f64,
    /// Sends that came due but were never started before the load ended.
    pub not_started: u64,
}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub run: RunShape,
    /// Sessions made (connect: cycles completed; UDP: sockets opened).
    pub connected: u64,
    pub connect_errors: u64,
    /// Per cause, in [`ConnectCause::ALL`] order.
    pub connect_errors_by_cause: Vec<(ConnectCause, u64)>,
    /// Echo: round trips completed. Chat: messages sent. Connect: cycles.
    pub messages: u64,
    pub msgs_per_sec: f64,
    /// Verified payload: echoed back (echo, connect), delivered (chat).
    pub bytes: u64,
    /// `bytes` per second, in MiB.
    pub mib_per_sec: f64,
    /// Everything written to the server, per second, in MiB.
    pub mib_per_sec_sent: f64,
    /// Everything read from the server, per second, in MiB.
    pub mib_per_sec_received: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub latency_us: Latency,
    /// Latency samples behind the percentiles.
    pub latency_samples: u64,
    pub verify_errors: u64,
    pub io_errors: u64,
    /// Echo: messages still unanswered when the drain ended.
    pub incomplete: u64,
    /// Connections that completed at least one round trip (echo) or joined
    /// (chat).
    pub served: u64,
    /// Length of the load phase.
    pub duration_s: f64,
    /// Time from start until every connection was up or failed.
    pub ramp_s: f64,
    /// The ramp ran out of its share of `--duration`.
    pub ramp_cut: bool,
    /// CPU the generator's threads used from the load's start to the end
    /// of the drain.
    pub generator_cpu_s: f64,
    /// `generator_cpu_s` over that wall time, in percent of one core.
    pub generator_cpu_pct: f64,
    pub open_loop: Option<OpenLoop>,
    pub chat: Option<ChatResult>,
    pub udp: Option<UdpResult>,
}

impl Report {
    /// Build the report from merged stats.
    pub fn new(info: &RunInfo, stats: &Stats) -> Report {
        let secs = info.load.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let h = &stats.latency_us;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                mean: h.mean(),
                stdev: h.stdev(),
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            }
        };
        let cpu_s = info.cpu.as_secs_f64();
        let busy_s = info.busy.as_secs_f64();
        let chat = (info.run.scenario == "chat").then(|| {
            let receivers = stats.connected.saturating_sub(1);
            let expected = stats.messages * receivers;
            ChatResult {
                rate: info.rate.unwrap_or(0.0),
                expected,
                delivered: stats.delivered,
                delivered_fraction: if expected == 0 {
                    1.0
                } else {
                    stats.delivered as f64 / expected as f64
                },
                delivered_per_sec: per_sec(stats.delivered),
                send_dropped: stats.send_dropped,
                server_errors: stats.server_errors,
                foreign_lines: stats.foreign_lines,
                cpu_us_per_line: ratio(cpu_s * 1e6, stats.delivered as f64),
            }
        });
        let udp = (info.run.scenario == "udp-echo").then(|| UdpResult {
            sent: stats.sent,
            received: stats.messages,
            lost: stats.lost,
            lost_pct: 100.0 * ratio(stats.lost as f64, stats.sent as f64),
            reordered: stats.reordered,
            duplicated: stats.duplicated,
            send_dropped: stats.send_dropped,
            client_drops: stats.client_drops,
        });
        // What the generator did, not what came back: a UDP run that sent
        // at the rate asked met it, however many replies were lost.
        let achieved = per_sec(if udp.is_some() {
            stats.sent
        } else {
            stats.messages
        });
        let open_loop = match (info.run.scenario, info.rate) {
            ("chat", _) | (_, None) => None,
            (_, Some(rate)) => Some(OpenLoop {
                rate,
                achieved,
                shortfall_pct: (100.0 * (1.0 - achieved / rate)).max(0.0),
                not_started: stats.not_started,
            }),
        };
        Report {
            run: info.run.clone(),
            connected: stats.connected,
            connect_errors: stats.connect_errors_total(),
            connect_errors_by_cause: ConnectCause::ALL
                .iter()
                .copied()
                .zip(stats.connect_errors)
                .collect(),
            messages: stats.messages,
            msgs_per_sec: per_sec(stats.messages),
            bytes: stats.bytes,
            mib_per_sec: per_sec(stats.bytes) / MIB,
            mib_per_sec_sent: per_sec(stats.bytes_sent) / MIB,
            mib_per_sec_received: per_sec(stats.bytes_received) / MIB,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            latency_us: latency,
            latency_samples: h.len(),
            verify_errors: stats.verify_errors,
            io_errors: stats.io_errors,
            incomplete: stats.incomplete,
            served: stats.served,
            duration_s: secs,
            ramp_s: info.ramp.as_secs_f64(),
            ramp_cut: info.ramp_cut,
            generator_cpu_s: cpu_s,
            generator_cpu_pct: 100.0 * ratio(cpu_s, busy_s),
            open_loop,
            chat,
            udp,
        }
    }

    /// The exit status: `Err` (exit 1, with this `error:` line) when no
    /// connection could be made, when a reply failed verification, or
    /// (udp-echo) when no reply at all came back.
    ///
    /// # Errors
    /// As above; the summary has already said the rest.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(u) = &self.udp {
            return self.check_udp(u);
        }
        if self.connected == 0 {
            let causes = self.causes();
            let why = if causes.is_empty() {
                String::new()
            } else {
                format!(" ({causes})")
            };
            // The framed echo service closes a connection whose header
            // announces more than its --max-frame.
            let framed_hint = if self.run.framed && self.run.size > DEFAULT_MAX_FRAME {
                " Or is --size above the server's --max-frame (1MiB unless set)?"
            } else {
                ""
            };
            return Err(Error::new(format!(
                "no connection to {} could be made{why}; is `echochat serve` running there, and is --port right?{framed_hint}",
                self.run.target
            )));
        }
        self.check_verified()
    }

    /// Exit 1 when anything that came back was not what was sent.
    fn check_verified(&self) -> Result<(), Error> {
        if self.verify_errors == 0 {
            return Ok(());
        }
        let what = if self.run.scenario == "chat" {
            "lines"
        } else {
            "replies"
        };
        Err(Error::new(format!(
            "{} {what} failed verification: the server sent back something other than what was sent",
            self.verify_errors
        )))
    }

    /// [`check`](Report::check) for udp-echo: a socket refused before any
    /// reply means nothing listens there (ICMP port unreachable); a silent
    /// run means nothing answered (or the answers were all lost).
    fn check_udp(&self, u: &UdpResult) -> Result<(), Error> {
        let hint = "is `echochat serve` running there (without --no-udp), and is --port right?";
        if self.connected == 0 {
            let refused = self
                .connect_errors_by_cause
                .iter()
                .any(|&(c, n)| c == ConnectCause::Refused && n > 0);
            let why = if refused {
                format!(
                    "nothing listens on that UDP port (ICMP port unreachable; {})",
                    self.causes()
                )
            } else {
                format!("no UDP socket could be opened ({})", self.causes())
            };
            return Err(Error::new(format!(
                "no reply from udp-echo at {}: {why}; {hint}",
                self.run.target
            )));
        }
        self.check_verified()?;
        if u.received == 0 {
            let what = if u.sent == 0 {
                "no datagram came due (--rate times --duration is below one)".to_string()
            } else {
                format!("{} datagrams sent, none came back", u.sent)
            };
            return Err(Error::new(format!(
                "no reply from udp-echo at {}: {what}; {hint}",
                self.run.target
            )));
        }
        Ok(())
    }

    /// `refused 3, full 2`: the failure causes that happened.
    fn causes(&self) -> String {
        let causes: Vec<String> = self
            .connect_errors_by_cause
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        causes.join(", ")
    }

    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        let by_cause: serde_json::Map<String, serde_json::Value> = self
            .connect_errors_by_cause
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), json!(n)))
            .collect();
        let l = &self.latency_us;
        let mut v = json!({
            "scenario": self.run.scenario,
            "target": self.run.target,
            "clients": self.run.clients,
            "threads": self.run.threads,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "connect_errors_by_cause": by_cause,
            "messages": self.messages,
            "msgs_per_sec": round2(self.msgs_per_sec),
            "bytes": self.bytes,
            "mib_per_sec": round2(self.mib_per_sec),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "mib_per_sec_sent": round2(self.mib_per_sec_sent),
            "mib_per_sec_received": round2(self.mib_per_sec_received),
            "latency_us": {
                "mean": round2(l.mean),
                "stdev": round2(l.stdev),
                "p50": l.p50,
                "p90": l.p90,
                "p99": l.p99,
                "p999": l.p999,
                "max": l.max,
            },
            "latency_samples": self.latency_samples,
            "verify_errors": self.verify_errors,
            "io_errors": self.io_errors,
            "duration_s": round2(self.duration_s),
            "ramp_s": round2(self.ramp_s),
            "ramp_cut": self.ramp_cut,
            "generator_cpu_s": round2(self.generator_cpu_s),
            "generator_cpu_pct": round2(self.generator_cpu_pct),
        });
        if self.run.scenario == "echo" {
            v["size"] = json!(self.run.size);
            v["framed"] = json!(self.run.framed);
            v["incomplete"] = json!(self.incomplete);
            v["served"] = json!(self.served);
        }
        if let Some(u) = &self.udp {
            v["size"] = json!(self.run.size);
            v["served"] = json!(self.served);
            v["sent"] = json!(u.sent);
            v["received"] = json!(u.received);
            v["lost"] = json!(u.lost);
            v["lost_pct"] = json!(round3(u.lost_pct));
            v["reordered"] = json!(u.reordered);
            v["duplicated"] = json!(u.duplicated);
            v["send_dropped"] = json!(u.send_dropped);
            v["client_drops"] = json!(u.client_drops);
        }
        if self.run.scenario == "connect" {
            v["connects_per_sec"] = json!(round2(self.msgs_per_sec));
        }
        if let Some(o) = &self.open_loop {
            v["rate"] = json!(o.rate);
            v["shortfall_pct"] = json!(round2(o.shortfall_pct));
            v["not_started"] = json!(o.not_started);
        }
        if let Some(c) = &self.chat {
            v["rate"] = json!(c.rate);
            v["expected"] = json!(c.expected);
            v["delivered"] = json!(c.delivered);
            v["delivered_fraction"] = json!((c.delivered_fraction * 1e6).round() / 1e6);
            v["delivered_per_sec"] = json!(round2(c.delivered_per_sec));
            v["send_dropped"] = json!(c.send_dropped);
            v["server_errors"] = json!(c.server_errors);
            v["foreign_lines"] = json!(c.foreign_lines);
            v["generator_cpu_us_per_line"] = json!(round3(c.cpu_us_per_line));
        }
        v
    }

    /// First line: what ran against what, and for how long.
    fn write_header(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.run.scenario, &self.open_loop, &self.chat) {
            (_, _, Some(c)) => format!("{} users, {} msgs/s each", self.run.clients, c.rate),
            ("connect", Some(o), _) => {
                format!(
                    "at most {} at once, {} connects/s",
                    self.run.clients, o.rate
                )
            }
            ("connect", None, _) => {
                format!("at most {} at once, as fast as possible", self.run.clients)
            }
            ("udp-echo", Some(o), _) => format!(
                "{} sockets, {} B datagrams, open loop at {} msgs/s",
                self.run.clients, self.run.size, o.rate
            ),
            (_, Some(o), _) => format!(
                "{} clients, {} B messages{}, open loop at {} msgs/s",
                self.run.clients,
                self.run.size,
                self.framed_note(),
                o.rate
            ),
            _ => format!(
                "{} clients, {} B messages{}, closed loop",
                self.run.clients,
                self.run.size,
                self.framed_note()
            ),
        };
        let cut = if self.ramp_cut {
            " (cut short: still connecting at half of --duration)"
        } else {
            ""
        };
        // UDP has no connect, so no ramp to speak of.
        let ramp = if self.udp.is_some() {
            String::new()
        } else {
            format!(" after a {:.2} s ramp{cut}", self.ramp_s)
        };
        writeln!(
            f,
            "echochat load {}{} -> {}: {what}; {:.2} s of load{ramp}, {} thread{}",
            self.run.scenario,
            if self.run.framed { " --framed" } else { "" },
            self.run.target,
            self.duration_s,
            self.run.threads,
            if self.run.threads == 1 { "" } else { "s" }
        )
    }

    /// ` in frames (+4 B header)` for a framed run.
    fn framed_note(&self) -> &'static str {
        if self.run.framed {
            " in frames (+4 B header)"
        } else {
            ""
        }
    }

    fn write_connections(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut failed = format!("{} failed", self.connect_errors);
        let causes = self.causes();
        if !causes.is_empty() {
            let _ = write!(failed, " ({causes})");
        }
        match self.run.scenario {
            "connect" => writeln!(
                f,
                "connects:    {} completed ({:.0}/s), {failed}",
                self.connected, self.msgs_per_sec
            ),
            "echo" => writeln!(
                f,
                "connections: {} made, {failed}; {} served",
                self.connected, self.served
            ),
            "udp-echo" => writeln!(
                f,
                "sockets:     {} opened, {failed}; {} answered",
                self.connected, self.served
            ),
            _ => writeln!(f, "connections: {} joined, {failed}", self.connected),
        }
    }

    fn write_traffic(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let directions = format!(
            "{:.2} MiB/s sent, {:.2} MiB/s received",
            self.mib_per_sec_sent, self.mib_per_sec_received
        );
        if let Some(u) = &self.udp {
            writeln!(
                f,
                "datagrams:   {} sent, {} received ({:.0}/s); {directions}",
                u.sent, u.received, self.msgs_per_sec,
            )?;
            writeln!(
                f,
                "lost:        {} ({:.3}%; {} of them in our own full receive buffers), {} reordered, {} duplicated",
                u.lost, u.lost_pct, u.client_drops, u.reordered, u.duplicated
            )?;
        }
        match (&self.chat, self.run.scenario) {
            (Some(c), _) => {
                writeln!(
                    f,
                    "messages:    {} sent ({:.0}/s), {} dropped before sending",
                    self.messages, self.msgs_per_sec, c.send_dropped
                )?;
                writeln!(
                    f,
                    "delivered:   {} of {} lines ({:.4}%), {:.0} lines/s; {directions}",
                    c.delivered,
                    c.expected,
                    100.0 * c.delivered_fraction,
                    c.delivered_per_sec
                )
            }
            (None, "connect") => writeln!(f, "traffic:     {directions}"),
            (None, "udp-echo") => Ok(()),
            (None, _) => writeln!(
                f,
                "messages:    {} round trips, {:.0} msgs/s; {directions}",
                self.messages, self.msgs_per_sec
            ),
        }?;
        if let Some(o) = &self.open_loop {
            writeln!(
                f,
                "rate:        {} asked, {:.0} achieved ({:.1}% short); {} came due but never started",
                o.rate, o.achieved, o.shortfall_pct, o.not_started
            )?;
        }
        Ok(())
    }

    fn write_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        let ms = |us: f64| us / 1000.0;
        let from = match (self.run.scenario, &self.open_loop) {
            ("chat", _) => "send to delivery",
            ("connect", Some(_)) => "due time to verified reply",
            ("connect", None) => "connect start to verified reply",
            (_, Some(_)) => "due time to reply",
            (_, None) => "send to reply",
        };
        writeln!(
            f,
            "latency ms:  mean {:.3}  stdev {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({from})",
            ms(l.mean),
            ms(l.stdev),
            ms(l.p50 as f64),
            ms(l.p90 as f64),
            ms(l.p99 as f64),
            ms(l.p999 as f64),
            ms(l.max as f64)
        )
    }

    fn write_errors(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "errors:      {} verification, {} io",
            self.verify_errors, self.io_errors
        )?;
        if let Some(c) = &self.chat {
            write!(
                f,
                ", {} `!` lines from the server; {} lines of other clients ignored",
                c.server_errors, c.foreign_lines
            )?;
        }
        if self.run.scenario == "echo" {
            write!(f, "; {} unanswered when the drain ended", self.incomplete)?;
        }
        if let Some(u) = &self.udp {
            write!(f, "; {} not sent (the kernel said ENOBUFS)", u.send_dropped)?;
        }
        writeln!(f)
    }

    fn write_generator(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match &self.chat {
            Some(c) => format!("{:.2} µs per line received", c.cpu_us_per_line),
            None => format!(
                "{:.2} µs per {}",
                ratio(self.generator_cpu_s * 1e6, self.messages as f64),
                if self.run.scenario == "connect" {
                    "connect"
                } else {
                    "message"
                }
            ),
        };
        writeln!(
            f,
            "generator:   {:.2} s CPU ({:.0}% of a core), {per}",
            self.generator_cpu_s, self.generator_cpu_pct
        )
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The human summary printed on stdout: at most eight lines. What each
/// counter means is in `echochat load --help` and the README.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_header(f)?;
        self.write_connections(f)?;
        self.write_traffic(f)?;
        self.write_latency(f)?;
        self.write_errors(f)?;
        self.write_generator(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(scenario: &'static str, rate: Option<f64>) -> RunInfo {
        RunInfo {
            run: RunShape {
                scenario,
                target: "127.0.0.1:7000".into(),
                clients: 3,
                threads: 1,
                size: 1024,
                framed: false,
            },
            rate,
            load: Duration::from_secs(2),
            ramp: Duration::ZERO,
            ramp_cut: false,
            busy: Duration::from_secs(2),
            cpu: Duration::from_secs(1),
        }
    }

    #[test]
    fn json_has_the_contract_keys() {
        let mut s = Stats::new();
        s.connected = 2;
        s.messages = 100;
        s.bytes = 100 * 1024;
        s.connect_failed(ConnectCause::Refused);
        s.connect_failed(ConnectCause::Full);
        s.record_latency_us(20);
        let r = Report::new(&info("echo", None), &s);
        let v = r.to_json();
        for k in [
            "scenario",
            "clients",
            "connected",
            "connect_errors",
            "messages",
            "msgs_per_sec",
            "mib_per_sec",
            "latency_us",
            "verify_errors",
            "io_errors",
            "duration_s",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in ["p50", "p90", "p99", "p999", "max", "mean", "stdev"] {
            assert!(v["latency_us"].get(k).is_some(), "missing latency {k}");
        }
        assert_eq!(v["msgs_per_sec"], json!(50.0));
        assert_eq!(v["connect_errors_by_cause"]["refused"], json!(1));
        assert_eq!(v["connect_errors_by_cause"]["full"], json!(1));
        assert_eq!(v["generator_cpu_pct"], json!(50.0));
        let text = r.to_string();
        assert!(
            text.contains("2 made, 2 failed (refused 1, full 1)"),
            "{text}"
        );
        assert!(text.contains("closed loop"), "{text}");
        assert!(text.lines().count() <= 8, "{text}");
        assert!(r.check().is_ok());
    }

    #[test]
    fn open_loop_reports_the_shortfall() {
        let mut s = Stats::new();
        s.connected = 3;
        s.messages = 180; // 90/s of the 100/s asked
        s.not_started = 4;
        let r = Report::new(&info("echo", Some(100.0)), &s);
        let o = r.open_loop.as_ref().unwrap();
        assert!((o.shortfall_pct - 10.0).abs() < 1e-9, "{o:?}");
        let v = r.to_json();
        assert_eq!(v["shortfall_pct"], json!(10.0));
        assert_eq!(v["not_started"], json!(4));
        assert!(r.to_string().contains("10.0% short"), "{r}");
    }

    #[test]
    fn nothing_connected_or_a_bad_reply_fails_the_run() {
        let mut s = Stats::new();
        s.connect_failed(ConnectCause::Refused);
        let err = Report::new(&info("echo", None), &s).check().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no connection to 127.0.0.1:7000 could be made (refused 1)"),
            "{err}"
        );
        s.connected = 1;
        s.verify_errors = 2;
        let err = Report::new(&info("echo", None), &s).check().unwrap_err();
        assert!(
            err.to_string().starts_with("2 replies failed verification"),
            "{err}"
        );
    }

    #[test]
    fn udp_reports_loss_order_and_copies_and_fails_only_when_silent() {
        let mut s = Stats::new();
        s.connected = 3;
        s.sent = 200; // 100/s, as asked
        s.messages = 190;
        s.lost = 10;
        s.reordered = 2;
        s.duplicated = 1;
        s.bytes_sent = 200 * 64;
        let mut i = info("udp-echo", Some(100.0));
        i.run.size = 64;
        let r = Report::new(&i, &s);
        let u = r.udp.as_ref().unwrap();
        assert_eq!((u.sent, u.received, u.lost), (200, 190, 10));
        assert!((u.lost_pct - 5.0).abs() < 1e-9);
        // The shortfall is about what was sent, not what came back.
        assert_eq!(r.open_loop.as_ref().unwrap().shortfall_pct, 0.0);
        let v = r.to_json();
        for (k, want) in [
            ("lost", 10),
            ("reordered", 2),
            ("duplicated", 1),
            ("sent", 200),
            ("received", 190),
        ] {
            assert_eq!(v[k], json!(want), "{k}: {v}");
        }
        assert_eq!(v["scenario"], "udp-echo");
        let text = r.to_string();
        assert!(text.contains("sockets:     3 opened, 0 failed"), "{text}");
        assert!(text.contains("200 sent, 190 received (95/s); "), "{text}");
        assert!(
            text.contains("lost:        10 (5.000%; 0 of them in our own full receive buffers), 2 reordered, 1 duplicated"),
            "{text}"
        );
        assert!(!text.contains("ramp"), "{text}");
        assert!(text.lines().count() <= 8, "{text}");
        assert!(r.check().is_ok(), "loss alone is not a failure");

        s.messages = 0;
        s.lost = 200;
        let err = Report::new(&i, &s).check().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "no reply from udp-echo at 127.0.0.1:7000: 200 datagrams sent, none came back"
            ),
            "{err}"
        );
        let mut s = Stats::new();
        s.connect_failed(ConnectCause::Refused);
        let err = Report::new(&i, &s).check().unwrap_err().to_string();
        assert!(
            err.contains("nothing listens on that UDP port (ICMP port unreachable; refused 1)"),
            "{err}"
        );
    }

    #[test]
    fn framed_echo_says_so() {
        let mut s = Stats::new();
        s.connected = 3;
        s.messages = 10;
        let mut i = info("echo", None);
        i.run.framed = true;
        let r = Report::new(&i, &s);
        assert_eq!(r.to_json()["framed"], json!(true));
        let text = r.to_string();
        assert!(
            text.starts_with("echochat load echo --framed -> 127.0.0.1:7000: 3 clients, 1024 B messages in frames (+4 B header), closed loop"),
            "{text}"
        );
        assert_eq!(
            Report::new(&info("echo", None), &s).to_json()["framed"],
            json!(false)
        );
    }

    #[test]
    fn chat_fraction() {
        let mut s = Stats::new();
        s.connected = 3;
        s.messages = 10;
        s.delivered = 15;
        let mut i = info("chat", Some(1.0));
        i.run.size = 0;
        let r = Report::new(&i, &s);
        let c = r.chat.as_ref().unwrap();
        assert_eq!(c.expected, 20);
        assert!((c.delivered_fraction - 0.75).abs() < 1e-9);
        assert_eq!(r.to_json()["delivered_fraction"], json!(0.75));
        assert!(r.open_loop.is_none());
        assert!(r.to_string().contains("(75.0000%)"), "{r}");
    }
}
