//! The result of a load run: [`Report`], its human summary (stdout), and its
//! `--json` object (the keys DESIGN.md names, plus a few more).
//!
//! Rates are per second of the load phase (after the ramp, before the
//! drain), so a slow ramp does not dilute msgs/s.

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde_json::json;

use super::stats::{ConnectCause, Stats};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// What the run was asked to do and how long its phases took.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo {
    pub scenario: &'static str,
    pub clients: usize,
    pub threads: usize,
    /// Echo: bytes per message. Chat: 0.
    pub size: u64,
    /// Length of the load phase.
    pub load: Duration,
    /// Time until every connection was up or failed.
    pub ramp: Duration,
    /// Chat: messages per second per user.
    pub chat_rate: Option<f64>,
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
}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `echo` or `chat`.
    pub scenario: &'static str,
    pub clients: usize,
    pub threads: usize,
    /// Echo: bytes per message. Chat: 0.
    pub size: u64,
    pub connected: u64,
    pub connect_errors: u64,
    /// Per cause, in [`ConnectCause::ALL`] order.
    pub connect_errors_by_cause: Vec<(ConnectCause, u64)>,
    /// Echo: round trips completed. Chat: messages sent.
    pub messages: u64,
    pub msgs_per_sec: f64,
    /// Echo: bytes echoed back. Chat: bytes delivered.
    pub bytes: u64,
    pub mib_per_sec: f64,
    pub latency_us: Percentiles,
    /// Latency samples behind the percentiles.
    pub latency_samples: u64,
    pub verify_errors: u64,
    pub io_errors: u64,
    /// Echo: messages still unanswered when the drain ended.
    pub incomplete: u64,
    /// Echo: connections that completed at least one round trip.
    pub served: u64,
    /// Length of the load phase.
    pub duration_s: f64,
    /// Time from start until every connection was up or failed.
    pub ramp_s: f64,
    pub chat: Option<ChatResult>,
}

impl Report {
    /// Build the report from merged stats.
    pub fn new(info: &RunInfo, stats: &Stats) -> Report {
        let RunInfo {
            scenario,
            clients,
            threads,
            size,
            load,
            ramp,
            chat_rate,
        } = *info;
        let secs = load.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let h = &stats.latency_us;
        let pct = if h.is_empty() {
            Percentiles::default()
        } else {
            Percentiles {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            }
        };
        let chat = chat_rate.map(|rate| {
            let receivers = stats.connected.saturating_sub(1);
            let expected = stats.messages * receivers;
            ChatResult {
                rate,
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
            }
        });
        Report {
            scenario,
            clients,
            threads,
            size,
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
            mib_per_sec: per_sec(stats.bytes) / (1024.0 * 1024.0),
            latency_us: pct,
            latency_samples: h.len(),
            verify_errors: stats.verify_errors,
            io_errors: stats.io_errors,
            incomplete: stats.incomplete,
            served: stats.served,
            duration_s: secs,
            ramp_s: ramp.as_secs_f64(),
            chat,
        }
    }

    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        let by_cause: serde_json::Map<String, serde_json::Value> = self
            .connect_errors_by_cause
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), json!(n)))
            .collect();
        let mut v = json!({
            "scenario": self.scenario,
            "clients": self.clients,
            "threads": self.threads,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "connect_errors_by_cause": by_cause,
            "messages": self.messages,
            "msgs_per_sec": round2(self.msgs_per_sec),
            "bytes": self.bytes,
            "mib_per_sec": round2(self.mib_per_sec),
            "latency_us": {
                "p50": self.latency_us.p50,
                "p90": self.latency_us.p90,
                "p99": self.latency_us.p99,
                "p999": self.latency_us.p999,
                "max": self.latency_us.max,
            },
            "latency_samples": self.latency_samples,
            "verify_errors": self.verify_errors,
            "io_errors": self.io_errors,
            "duration_s": round2(self.duration_s),
            "ramp_s": round2(self.ramp_s),
        });
        if self.scenario == "echo" {
            v["size"] = json!(self.size);
            v["incomplete"] = json!(self.incomplete);
            v["served"] = json!(self.served);
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
        }
        v
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The human summary printed on stdout.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.scenario {
            "echo" => format!("{} B messages", self.size),
            _ => format!(
                "{} msgs/s per user",
                self.chat.as_ref().map_or(0.0, |c| c.rate)
            ),
        };
        writeln!(
            f,
            "echochat load {}: {} clients, {what}, {:.2} s load after a {:.2} s ramp ({} thread{})",
            self.scenario,
            self.clients,
            self.duration_s,
            self.ramp_s,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )?;
        let mut failed = format!("{} failed", self.connect_errors);
        let causes: Vec<String> = self
            .connect_errors_by_cause
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        if !causes.is_empty() {
            let _ = write!(failed, " ({})", causes.join(", "));
        }
        write!(f, "connections: {} made, {failed}", self.connected)?;
        if self.scenario == "echo" {
            write!(f, "; {} served (at least one round trip)", self.served)?;
        }
        writeln!(f)?;
        match &self.chat {
            None => writeln!(
                f,
                "messages:    {} round trips ({:.0} msgs/s, {:.2} MiB/s), {} incomplete",
                self.messages, self.msgs_per_sec, self.mib_per_sec, self.incomplete
            )?,
            Some(c) => {
                writeln!(
                    f,
                    "messages:    {} sent ({:.0} msgs/s), {} dropped before sending",
                    self.messages, self.msgs_per_sec, c.send_dropped
                )?;
                writeln!(
                    f,
                    "delivered:   {} of {} lines ({:.4}), {:.0} lines/s, {:.2} MiB/s",
                    c.delivered,
                    c.expected,
                    c.delivered_fraction,
                    c.delivered_per_sec,
                    self.mib_per_sec
                )?;
            }
        }
        let l = &self.latency_us;
        writeln!(
            f,
            "latency us:  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        write!(
            f,
            "errors:      {} verification, {} io",
            self.verify_errors, self.io_errors
        )?;
        if let Some(c) = &self.chat {
            write!(
                f,
                ", {} server (! lines), {} foreign lines",
                c.server_errors, c.foreign_lines
            )?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_contract_keys() {
        let mut s = Stats::new();
        s.connected = 2;
        s.messages = 100;
        s.bytes = 100 * 1024;
        s.connect_failed(ConnectCause::Refused);
        s.record_latency_us(20);
        let info = RunInfo {
            scenario: "echo",
            clients: 3,
            threads: 1,
            size: 1024,
            load: Duration::from_secs(2),
            ramp: Duration::ZERO,
            chat_rate: None,
        };
        let r = Report::new(&info, &s);
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
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"].get(k).is_some(), "missing latency {k}");
        }
        assert_eq!(v["msgs_per_sec"], json!(50.0));
        assert_eq!(v["connect_errors_by_cause"]["refused"], json!(1));
        let text = r.to_string();
        assert!(text.contains("2 made, 1 failed (refused 1)"), "{text}");
    }

    #[test]
    fn chat_fraction() {
        let mut s = Stats::new();
        s.connected = 3;
        s.messages = 10;
        s.delivered = 15;
        let info = RunInfo {
            scenario: "chat",
            clients: 3,
            threads: 1,
            size: 0,
            load: Duration::from_secs(1),
            ramp: Duration::ZERO,
            chat_rate: Some(1.0),
        };
        let r = Report::new(&info, &s);
        let c = r.chat.as_ref().unwrap();
        assert_eq!(c.expected, 20);
        assert!((c.delivered_fraction - 0.75).abs() < 1e-9);
        assert_eq!(r.to_json()["delivered_fraction"], json!(0.75));
    }
}
