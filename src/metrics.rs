//! `/metrics`: the server's figures in the Prometheus text format (0.0.4),
//! for a monitoring system to scrape.
//!
//! Nothing here runs per message. The reactor keeps its plain counters in
//! [`Status`](crate::status::Status); a scrape copies them (and a scan of
//! the connection table) into a small snapshot and lets `prometheus-client`
//! write the text, so the names, `# HELP`/`# TYPE` lines, escaping and the
//! `_total` suffix of counters are the library's, not hand-made. Every name
//! starts with `echochat_`; labels are the service and a reason or state,
//! never an IP address or a user name (those would make one series per
//! client, without bound).
//!
//! Read `status/mod.rs` for where the figures come from.

use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::status::StatusView;
use crate::status::histogram::Histogram;

/// The `Content-Type` of the text format, as the contract spells it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The reasons a connection is refused; each is reported, zero or not, so
/// a dashboard has a series before the first refusal.
const REJECT_REASONS: &[&str] = &["full", "per-ip"];

/// Writes every metric to `out`.
pub fn encode(view: &StatusView<'_>, out: &mut String) {
    let mut registry = Registry::with_prefix("echochat");
    registry.register_collector(Box::new(Snapshot::take(view)));
    // Writing into a String cannot fail; a collector error would be ours.
    let _ = prometheus_client::encoding::prometheus_text::encode(out, &registry);
}

/// One service's figures at the moment of the scrape.
#[derive(Debug)]
struct ServiceSnap {
    name: &'static str,
    accepted: u64,
    open: u64,
    rejected: Vec<(&'static str, u64)>,
    disconnects: Vec<(&'static str, u64)>,
    backlog_disconnects: u64,
    bytes_in: u64,
    bytes_out: u64,
    messages: u64,
    paused: u64,
    queued_bytes: u64,
    users: Option<u64>,
    auth_failures: Option<u64>,
    datagrams_dropped: Option<u64>,
}

/// A histogram in the form the encoder wants: per-bucket counts by upper
/// bound, scaled to the metric's unit.
#[derive(Debug)]
struct HistSnap {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl HistSnap {
    fn of(h: &Histogram, scale: f64) -> Self {
        let mut buckets: Vec<(f64, u64)> = h
            .bounds()
            .iter()
            .zip(h.counts())
            .map(|(&b, &c)| (b as f64 * scale, c))
            .collect();
        buckets.push((f64::INFINITY, h.counts().last().copied().unwrap_or(0)));
        HistSnap {
            sum: h.sum() as f64 * scale,
            count: h.count(),
            buckets,
        }
    }
}

impl EncodeMetric for HistSnap {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Everything a scrape reports, copied out of the reactor's state (a
/// collector must own its data).
#[derive(Debug)]
struct Snapshot {
    version: &'static str,
    start_time_seconds: f64,
    services: Vec<ServiceSnap>,
    turns: u64,
    turn_seconds: HistSnap,
    events_per_turn: HistSnap,
    slots_used: u64,
    slots_free: u64,
    slot_reuses: u64,
}

impl Snapshot {
    fn take(view: &StatusView<'_>) -> Self {
        let status = view.status;
        let gauges = view.conn_gauges();
        let services = status
            .services
            .iter()
            .zip(gauges)
            .map(|(s, g)| ServiceSnap {
                name: s.name,
                accepted: s.accepted,
                open: s.open,
                rejected: s.rejected.clone(),
                disconnects: s.disconnects.clone(),
                backlog_disconnects: s.disconnects_for("backlog"),
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                messages: s.messages(),
                paused: g.paused,
                queued_bytes: g.queued_bytes,
                users: s.report.users,
                auth_failures: s.report.auth_failures,
                datagrams_dropped: s.report.datagrams_dropped,
            })
            .collect();
        let used = status.slots.used() as u64;
        Snapshot {
            version: status.version,
            start_time_seconds: status
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            services,
            turns: status.turns.turns,
            turn_seconds: HistSnap::of(&status.turns.turn_micros, 1e-6),
            events_per_turn: HistSnap::of(&status.turns.events_per_turn, 1.0),
            slots_used: used,
            slots_free: status.slots.len() as u64 - used,
            slot_reuses: status.slots.reuses,
        }
    }
}

/// Writes one metric family: its descriptor, then one sample per label
/// set. `M` is the metric type, the same for every sample.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'static str, &'a str)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(()); // nothing to report (e.g. no UDP service)
    };
    let kind = first.metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn per_service<'a, M: EncodeMetric>(
    services: &'a [ServiceSnap],
    value: impl Fn(&ServiceSnap) -> Option<M> + 'a,
) -> impl Iterator<Item = (Vec<(&'static str, &'a str)>, M)> + 'a {
    services
        .iter()
        .filter_map(move |s| value(s).map(|v| (vec![("service", s.name)], v)))
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: u64) -> ConstGauge<u64> {
    ConstGauge::new(v)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.services;
        family(
            &mut e,
            "connections_accepted",
            "Connections accepted (refused ones included).",
            per_service(s, |s| Some(counter(s.accepted))),
        )?;
        family(
            &mut e,
            "connections_open",
            "Connections open now.",
            per_service(s, |s| Some(gauge(s.open))),
        )?;
        family(
            &mut e,
            "connections_rejected",
            "Connections refused, by reason (full: --max-clients, per-ip: --max-per-ip).",
            s.iter().flat_map(|s| {
                REJECT_REASONS.iter().map(move |&r| {
                    let n = s.rejected.iter().find(|(k, _)| *k == r).map_or(0, |x| x.1);
                    (vec![("service", s.name), ("reason", r)], counter(n))
                })
            }),
        )?;
        family(
            &mut e,
            "disconnects",
            "Connections closed, by the reason of their disconnect line.",
            s.iter().flat_map(|s| {
                s.disconnects
                    .iter()
                    .map(move |&(r, n)| (vec![("service", s.name), ("reason", r)], counter(n)))
            }),
        )?;
        family(
            &mut e,
            "backlog_disconnects",
            "Connections dropped because their unsent output passed --max-backlog.",
            per_service(s, |s| Some(counter(s.backlog_disconnects))),
        )?;
        family(
            &mut e,
            "bytes_received",
            "Bytes read from clients.",
            per_service(s, |s| Some(counter(s.bytes_in))),
        )?;
        family(
            &mut e,
            "bytes_sent",
            "Bytes handed to the kernel for clients.",
            per_service(s, |s| Some(counter(s.bytes_out))),
        )?;
        family(
            &mut e,
            "messages",
            "Messages handled: chat lines, frames, datagrams, HTTP requests; reads for echo.",
            per_service(s, |s| Some(counter(s.messages))),
        )?;
        family(
            &mut e,
            "chat_users",
            "Users in the chat room now.",
            per_service(s, |s| s.users.map(gauge)),
        )?;
        family(
            &mut e,
            "paused_connections",
            "Connections not being read now (backpressure or a chat rate limit).",
            per_service(s, |s| Some(gauge(s.paused))),
        )?;
        family(
            &mut e,
            "queued_bytes",
            "Bytes accepted for sending that the kernel has not taken yet.",
            per_service(s, |s| Some(gauge(s.queued_bytes))),
        )?;
        family(
            &mut e,
            "udp_datagrams_dropped",
            "UDP replies dropped because the kernel could not take them at once.",
            per_service(s, |s| s.datagrams_dropped.map(counter)),
        )?;
        family(
            &mut e,
            "auth_failures",
            "Wrong passwords and refused session tokens.",
            per_service(s, |s| s.auth_failures.map(counter)),
        )?;
        family(
            &mut e,
            "turns",
            "Reactor turns (one poll and the work it woke).",
            [(vec![], counter(self.turns))],
        )?;
        family(
            &mut e,
            "turn_duration_seconds",
            "How long a reactor turn worked after poll returned.",
            [(vec![], &self.turn_seconds)],
        )?;
        family(
            &mut e,
            "events_per_turn",
            "Readiness events one poll returned.",
            [(vec![], &self.events_per_turn)],
        )?;
        family(
            &mut e,
            "slab_slots",
            "Slots of the connection slab, by state.",
            [
                (vec![("state", "used")], gauge(self.slots_used)),
                (vec![("state", "free")], gauge(self.slots_free)),
            ],
        )?;
        family(
            &mut e,
            "slab_slot_reuses",
            "Connections that got a slot another connection held before.",
            [(vec![], counter(self.slot_reuses))],
        )?;
        family(
            &mut e,
            "process_start_time_seconds",
            "When the server started, in seconds since the Unix epoch.",
            [(vec![], ConstGauge::new(self.start_time_seconds))],
        )?;
        let mut info = e.encode_descriptor(
            "build",
            "The running version of echochat.",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", self.version)])?;
        Ok(())
    }
}

impl EncodeMetric for &HistSnap {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        (**self).encode(encoder)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The sample lines of a scrape (not the `#` comments).
pub fn sample_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
}

/// `name{labels} value` lines whose name is `name` (with any labels).
pub fn samples_named<'a>(text: &'a str, name: &'a str) -> Vec<&'a str> {
    sample_lines(text)
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::table;
    use crate::status::trace::TurnTrace;
    use crate::status::{ServiceReport, Status};
    use std::time::{Duration, Instant};

    fn scrape(status: &Status) -> String {
        let now = Instant::now();
        let conns = table(10, now);
        let view = StatusView {
            status,
            conns: &conns,
            now,
        };
        let mut out = String::new();
        encode(&view, &mut out);
        out
    }

    fn busy_status() -> Status {
        let mut s = Status::new(&["echo", "chat"], 10, 1024);
        s.on_accept(0, 0);
        s.on_recv(0, 100);
        s.on_send(0, 100);
        s.on_accept(1, 1);
        s.on_reject(1, "full");
        s.on_close(1, 1, 2, "full");
        s.on_accept(1, 1);
        s.on_close(1, 1, 3, "backlog");
        s.services[1].report = ServiceReport {
            messages: Some(7),
            users: Some(1),
            ..ServiceReport::default()
        };
        s.on_turn(&TurnTrace {
            events: 2,
            took: Duration::from_micros(300),
            ..TurnTrace::default()
        });
        s
    }

    #[test]
    fn names_are_prefixed_and_counters_end_in_total() {
        let text = scrape(&busy_status());
        for line in sample_lines(&text) {
            assert!(line.starts_with("echochat_"), "{line}");
        }
        assert!(text.contains("# TYPE echochat_connections_accepted_total counter"));
        assert_eq!(
            samples_named(&text, "echochat_connections_accepted_total"),
            [
                "echochat_connections_accepted_total{service=\"echo\"} 1",
                "echochat_connections_accepted_total{service=\"chat\"} 2",
            ]
        );
        assert!(
            text.contains(
                "echochat_connections_rejected_total{service=\"chat\",reason=\"full\"} 1"
            )
        );
        assert!(
            text.contains(
                "echochat_connections_rejected_total{service=\"echo\",reason=\"per-ip\"} 0"
            )
        );
        assert!(text.contains("echochat_backlog_disconnects_total{service=\"chat\"} 1"));
        assert!(text.contains("echochat_messages_total{service=\"chat\"} 7"));
        assert!(text.contains("echochat_messages_total{service=\"echo\"} 1"));
        assert!(text.contains("echochat_chat_users{service=\"chat\"} 1"));
        assert!(text.contains("echochat_build_info{version=\""));
        assert!(text.contains("echochat_process_start_time_seconds "));
        // No UDP service, no accounts: those families are left out.
        assert!(!text.contains("udp_datagrams_dropped"));
        assert!(!text.contains("auth_failures"));
    }

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let text = scrape(&busy_status());
        assert!(text.contains("# TYPE echochat_turn_duration_seconds histogram"));
        assert!(text.contains("echochat_turn_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("echochat_turn_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("echochat_turn_duration_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("echochat_turn_duration_seconds_count 1"));
        assert!(text.contains("echochat_events_per_turn_bucket{le=\"2\"} 1"));
        assert_eq!(text.matches("le=\"+Inf\"").count(), 2);
    }

    #[test]
    fn no_address_or_name_in_labels() {
        let mut s = busy_status();
        s.names.insert(1, "alice".into());
        let text = scrape(&s);
        assert!(!text.contains("127.0.0.1"));
        assert!(!text.contains("alice"));
    }

    /// `promtool check metrics` (Debian's `prometheus` package) is the
    /// judge of the format; skipped with a note where it is not installed
    /// (`.ci/run` installs it).
    #[test]
    fn promtool_accepts_the_output() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let text = scrape(&busy_status());
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("promtool not installed; skipping (apt-get install prometheus)");
            return;
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
