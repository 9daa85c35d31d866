//! What one run measured, the mean of several, and the printed table.

/// What one run measured.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server CPU time per message (or per connection, for connect rows).
    pub cpu_us_per_msg: f64,
    /// For chat: delivered fraction; for idle: RSS bytes per connection.
    pub extra: Option<(String, f64)>,
    pub note: String,
}

impl Measured {
    /// The mean of several runs of one row.
    pub fn mean(runs: &[Measured]) -> Measured {
        let n = runs.len() as f64;
        let avg = |f: fn(&Measured) -> f64| runs.iter().map(f).sum::<f64>() / n;
        Measured {
            msgs_per_sec: avg(|m| m.msgs_per_sec),
            mib_per_sec: avg(|m| m.mib_per_sec),
            p50_us: avg(|m| m.p50_us),
            p99_us: avg(|m| m.p99_us),
            cpu_us_per_msg: avg(|m| m.cpu_us_per_msg),
            extra: runs[0].extra.as_ref().map(|(k, _)| {
                let v = runs
                    .iter()
                    .map(|m| m.extra.as_ref().map_or(0.0, |e| e.1))
                    .sum::<f64>()
                    / n;
                (k.clone(), v)
            }),
            note: runs
                .iter()
                .map(|m| m.note.as_str())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

pub fn print_header() {
    println!(
        "{:<24} {:<18} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "scenario", "server", "msgs/s", "MiB/s", "p50 µs", "p99 µs", "cpu µs/msg", "ratio"
    );
}

/// Prints one server's numbers; for the compared side, `ours` gives the
/// ratios first side / this side of CPU per message (below 1: the first
/// side costs less), of msgs/s and of p99 latency.
pub fn print_row(name: &str, server: &str, m: &Measured, ours: Option<&Measured>) {
    let ratio = match ours {
        Some(o) if m.cpu_us_per_msg > 0.0 && m.msgs_per_sec > 0.0 => {
            let p99 = if m.p99_us > 0.0 {
                format!(", p99 {:.2}x", o.p99_us / m.p99_us)
            } else {
                String::new()
            };
            format!(
                "cpu {:.2}x, msgs {:.2}x{p99}",
                o.cpu_us_per_msg / m.cpu_us_per_msg,
                o.msgs_per_sec / m.msgs_per_sec,
            )
        }
        _ => String::new(),
    };
    let extra = m
        .extra
        .as_ref()
        .map(|(k, v)| format!(" {k}={v:.3}"))
        .unwrap_or_default();
    let note = if m.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.note)
    };
    println!(
        "{:<24} {:<18} {:>10.0} {:>9.1} {:>8.0} {:>8.0} {:>9.2} {ratio}{extra}{note}",
        name, server, m.msgs_per_sec, m.mib_per_sec, m.p50_us, m.p99_us, m.cpu_us_per_msg,
    );
}
