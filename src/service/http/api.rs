//! The JSON behind the page: `/api/status` (every figure in one object) and
//! `/api/conns` (one page of the connections table).
//!
//! The JSON is written straight into a reused buffer rather than built as a
//! `serde_json::Value` tree: a page of 1,000 rows would otherwise cost
//! thousands of small allocations inside one reactor turn. Strings that
//! come from outside (a peer address, a chat name) still go through
//! `serde_json`'s string writer, which escapes them.

use std::io::Write;
use std::time::Duration;

use crate::status::histogram::Histogram;
use crate::status::{ConnInfo, StatusView};

/// Rows of `/api/conns` when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most rows of one `/api/conns` page (a larger `limit` is taken as this).
pub const MAX_LIMIT: usize = 1000;

/// The query of `/api/conns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnsQuery {
    pub limit: usize,
    pub after: u64,
}

/// Reads `limit=N&after=CONN` (either may be missing; other keys are
/// ignored).
///
/// # Errors
/// A value that is not a number, or `limit=0`: one sentence for the `400`.
pub fn parse_conns_query(query: &str) -> Result<ConnsQuery, String> {
    let mut q = ConnsQuery {
        limit: DEFAULT_LIMIT,
        after: 0,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("limit must be a number, not {value:?}"))?;
                if n == 0 {
                    return Err("limit must be at least 1".into());
                }
                q.limit = usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
            }
            "after" => {
                q.after = value
                    .parse()
                    .map_err(|_| format!("after must be a conn number, not {value:?}"))?;
            }
            _ => {}
        }
    }
    Ok(q)
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `{"conns": [...], "next": CONN|null, "total": N}`.
pub fn write_conns(view: &StatusView<'_>, rows: &[ConnInfo], next: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"conns\":[");
    for (i, c) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_conn(view, c, out);
    }
    out.extend_from_slice(b"],\"next\":");
    match next {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
    let _ = write!(out, ",\"total\":{}}}", view.conns.count());
}

/// One row. This runs up to 1,000 times in one turn, so it writes numbers
/// with `itoa` and durations as integer milliseconds, and allocates nothing.
fn write_conn(view: &StatusView<'_>, c: &ConnInfo, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"{\"conn\":");
    out.extend_from_slice(n.format(c.conn).as_bytes());
    out.extend_from_slice(b",\"slot\":");
    out.extend_from_slice(n.format(c.slot).as_bytes());
    out.extend_from_slice(b",\"service\":");
    string(out, view.service_name(c.service));
    // An address prints as digits, dots, colons, brackets and a numeric
    // scope: nothing JSON would need escaped.
    let _ = write!(out, ",\"peer\":\"{}\",\"name\":", c.peer);
    match view.name_of(c.conn) {
        Some(name) => string(out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"bytes_in\":");
    out.extend_from_slice(n.format(c.bytes_in).as_bytes());
    out.extend_from_slice(b",\"bytes_out\":");
    out.extend_from_slice(n.format(c.bytes_out).as_bytes());
    out.extend_from_slice(b",\"age_s\":");
    millis_as_seconds(out, view.now.saturating_duration_since(c.opened));
    out.extend_from_slice(b",\"idle_s\":");
    millis_as_seconds(out, view.now.saturating_duration_since(c.last_active));
    out.extend_from_slice(b",\"unsent\":");
    out.extend_from_slice(n.format(c.unsent).as_bytes());
    out.extend_from_slice(if c.paused {
        b",\"paused\":true}"
    } else {
        b",\"paused\":false}"
    });
}

/// A duration as seconds with three decimals (`12.345`), from integers.
fn millis_as_seconds(out: &mut Vec<u8>, d: Duration) {
    let ms = d.as_millis();
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(ms / 1000).as_bytes());
    let frac = (ms % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Every figure of the page, in one object (see the README for its keys).
pub fn write_status(view: &StatusView<'_>, log_seq: u64, out: &mut Vec<u8>) {
    let s = view.status;
    let _ = write!(out, "{{\"version\":");
    string(out, s.version);
    let _ = write!(
        out,
        ",\"pid\":{},\"uptime_s\":{},\"max_clients\":{},\"max_backlog\":{},\"open\":{},\"log_seq\":{}",
        s.pid,
        seconds(s.uptime(view.now)),
        s.max_clients,
        s.max_backlog,
        view.conns.count(),
        log_seq
    );
    out.extend_from_slice(b",\"services\":[");
    let gauges = view.conn_gauges();
    for (i, (svc, g)) in s.services.iter().zip(gauges).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, svc.name);
        let _ = write!(
            out,
            ",\"open\":{},\"accepted\":{},\"bytes_in\":{},\"bytes_out\":{},\"messages\":{},\"paused\":{},\"queued_bytes\":{}",
            svc.open,
            svc.accepted,
            svc.bytes_in,
            svc.bytes_out,
            svc.messages(),
            g.paused,
            g.queued_bytes
        );
        out.extend_from_slice(b",\"users\":");
        option(out, svc.report.users);
        out.extend_from_slice(b",\"rejected\":");
        counts(out, &svc.rejected);
        out.extend_from_slice(b",\"disconnects\":");
        counts(out, &svc.disconnects);
        out.push(b'}');
    }
    let t = &s.turns;
    let _ = write!(
        out,
        "],\"reactor\":{{\"turns\":{},\"events\":{},\"turn_us\":",
        t.turns, t.events
    );
    histogram(out, &t.turn_micros);
    out.extend_from_slice(b",\"events_per_turn\":");
    histogram(out, &t.events_per_turn);
    let l = &t.last;
    let _ = write!(
        out,
        ",\"last\":{{\"turn\":{},\"slept_us\":{},\"events\":{},\"accepts\":{},\"reads\":{},\"writes\":{},\"closes\":{},\"took_us\":{}}}}}",
        l.turn,
        l.slept.as_micros(),
        l.events,
        l.accepts,
        l.reads,
        l.writes,
        l.closes,
        l.took.as_micros()
    );
    let _ = write!(
        out,
        ",\"slots\":{{\"total\":{},\"used\":{},\"reuses\":{},\"grid\":\"",
        s.slots.len(),
        s.slots.used(),
        s.slots.reuses
    );
    // The grid's characters (`.`, `_`, `u`, `A`-`Z`) need no escaping.
    s.slots.write_grid(out);
    out.extend_from_slice(b"\"}}");
}

fn option(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `{"full": 2, ...}` (the keys are the program's own words).
fn counts(out: &mut Vec<u8>, list: &[(&'static str, u64)]) {
    out.push(b'{');
    for (i, (k, n)) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        let _ = write!(out, ":{n}");
    }
    out.push(b'}');
}

/// `{"count": n, "p50": x, "p99": y, "bounds": [...], "counts": [...]}`:
/// percentiles since the start, and the buckets, so the page can compute
/// them over its last few seconds (the difference of two snapshots).
fn histogram(out: &mut Vec<u8>, h: &Histogram) {
    let _ = write!(
        out,
        "{{\"count\":{},\"sum\":{},\"p50\":",
        h.count(),
        h.sum()
    );
    quantile(out, h.quantile(0.5));
    out.extend_from_slice(b",\"p99\":");
    quantile(out, h.quantile(0.99));
    out.extend_from_slice(b",\"bounds\":");
    list(out, h.bounds());
    out.extend_from_slice(b",\"counts\":");
    list(out, h.counts());
    out.push(b'}');
}

fn quantile(out: &mut Vec<u8>, q: Option<f64>) {
    match q {
        Some(v) => {
            let _ = write!(out, "{}", (v * 10.0).round() / 10.0);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn list(out: &mut Vec<u8>, values: &[u64]) {
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{v}");
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::status::Status;
    use crate::status::tests::table;
    use crate::status::trace::TurnTrace;
    use serde_json::Value;
    use std::time::Instant;

    #[test]
    fn conns_query() {
        let q = |s: &str| parse_conns_query(s);
        assert_eq!(
            q(""),
            Ok(ConnsQuery {
                limit: 100,
                after: 0
            })
        );
        assert_eq!(
            q("limit=5&after=17"),
            Ok(ConnsQuery {
                limit: 5,
                after: 17
            })
        );
        assert_eq!(q("limit=5000").map(|q| q.limit), Ok(1000));
        assert_eq!(
            q("limit=99999999999999999999999").map(|q| q.limit),
            Err("limit must be a number, not \"99999999999999999999999\"".into())
        );
        assert!(q("limit=0").is_err());
        assert!(q("limit=abc").is_err());
        assert!(q("after=-1").is_err());
        assert_eq!(q("x=1&limit=2").map(|q| q.limit), Ok(2));
    }

    #[test]
    fn conns_json_shape() {
        let now = Instant::now();
        let conns = table(5, now);
        let mut status = Status::new(&["echo", "chat"], 10, 1024);
        // A hostile name must come out escaped.
        status.on_event(&Event::Join {
            service: "chat",
            conn: 2,
            name: "a\"b\\c".into(),
        });
        let view = StatusView {
            status: &status,
            conns: &conns,
            now,
        };
        let mut scratch = Vec::new();
        let (rows, next) = view.page(0, 2, &mut scratch);
        let mut out = Vec::new();
        write_conns(&view, &rows, next, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["next"], 2);
        assert_eq!(v["total"], 5);
        let rows = v["conns"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        let keys = [
            "conn",
            "slot",
            "service",
            "peer",
            "name",
            "bytes_in",
            "bytes_out",
            "age_s",
            "idle_s",
            "unsent",
            "paused",
        ];
        for row in rows {
            for k in keys {
                assert!(row.get(k).is_some(), "{k} missing in {row}");
            }
            assert_eq!(row.as_object().unwrap().len(), keys.len());
        }
        assert_eq!(rows[0]["conn"], 1);
        assert_eq!(rows[0]["name"], Value::Null);
        assert_eq!(rows[0]["peer"], "127.0.0.1:40000");
        assert_eq!(rows[1]["name"], "a\"b\\c");
        assert_eq!(rows[1]["service"], "chat");
        // The last page says so.
        let (rows, next) = view.page(4, 100, &mut scratch);
        out.clear();
        write_conns(&view, &rows, next, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["next"], Value::Null);
        assert_eq!(v["conns"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn status_json_shape() {
        let now = Instant::now();
        let conns = table(3, now);
        let mut status = Status::new(&["echo", "chat", "http"], 10, 1024);
        status.on_accept(0, 0);
        status.on_accept(0, 1);
        status.on_close(0, 1, 2, "eof");
        status.on_accept(0, 1);
        status.on_turn(&TurnTrace {
            turn: 1,
            events: 2,
            took: std::time::Duration::from_micros(40),
            ..TurnTrace::default()
        });
        let view = StatusView {
            status: &status,
            conns: &conns,
            now,
        };
        let mut out = Vec::new();
        write_status(&view, 9, &mut out);
        let v: Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(v["open"], 3);
        assert_eq!(v["log_seq"], 9);
        assert_eq!(v["services"][0]["name"], "echo");
        assert_eq!(v["services"][0]["open"], 2);
        assert_eq!(v["services"][0]["disconnects"]["eof"], 1);
        assert_eq!(v["services"][2]["users"], Value::Null);
        assert_eq!(v["reactor"]["turns"], 1);
        assert_eq!(v["reactor"]["turn_us"]["count"], 1);
        assert!(v["reactor"]["turn_us"]["p50"].as_f64().unwrap() > 0.0);
        assert_eq!(v["reactor"]["last"]["events"], 2);
        assert_eq!(v["slots"]["grid"], "uC");
        assert_eq!(v["slots"]["reuses"], 1);
        assert_eq!(
            v["reactor"]["events_per_turn"]["bounds"]
                .as_array()
                .unwrap()
                .len()
                + 1,
            v["reactor"]["events_per_turn"]["counts"]
                .as_array()
                .unwrap()
                .len()
        );
    }
}
