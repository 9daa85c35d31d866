//! What the reactor shows about itself: the plain data behind the status
//! page, `/metrics` and `--trace`.
//!
//! The reactor owns one [`Status`] and keeps it current with a few cheap
//! calls on paths it already takes — a counter bump per read or write, a
//! slot mark per accept or close, two histogram records per turn — and
//! nothing else. Whatever only a reader of the page needs (a page of the
//! connections table, the paused count, the queued bytes) is computed when
//! someone asks, from the reactor's own connection table, lent for that one
//! call through the [`ConnTable`] trait inside a [`StatusView`]. So a server
//! nobody watches pays almost nothing, and one that is watched pays per
//! request, never per message.
//!
//! Read `trace.rs` for the per-turn record and `--trace`, `histogram.rs` for
//! the turn-time figures, `tap.rs` for the log lines the page streams, then
//! `metrics.rs` and `service/http/` for the readers.

pub mod histogram;
pub mod tap;
pub mod trace;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::event::Event;
use histogram::Histogram;
use trace::TurnTrace;

/// Bounds of the turn-time histogram, in microseconds. 2 ms is one of them:
/// the contract's promise is that no request stretches a turn past ~1 ms.
pub const TURN_MICROS_BOUNDS: &[u64] = &[
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000,
];
/// Bounds of the events-per-turn histogram (`poll` returns at most 1024).
pub const EVENTS_BOUNDS: &[u64] = &[0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Figures that only a service knows (chat users, lines relayed...). The
/// reactor asks each service for them when a reader wants them, never per
/// message; a service that has no such figure leaves it `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceReport {
    /// Messages handled (chat lines, frames, datagrams, HTTP requests).
    /// `None`: the service has no messages of its own (echo is a byte
    /// stream), and the page counts its reads instead.
    pub messages: Option<u64>,
    /// Users in the room (chat).
    pub users: Option<u64>,
    /// Wrong passwords and refused tokens (chat with accounts).
    pub auth_failures: Option<u64>,
    /// Datagrams dropped because the kernel could not take a reply (UDP).
    pub datagrams_dropped: Option<u64>,
}

/// Counters of one service, kept by the reactor.
#[derive(Debug, Clone)]
pub struct ServiceStats {
    /// The `service=` name (`echo`, `chat`, `http`...).
    pub name: &'static str,
    /// Connections accepted (every `accept` line, refused ones included).
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections refused, by reason (`full`, `per-ip`).
    pub rejected: Vec<(&'static str, u64)>,
    /// Connections closed, by the `reason` of their `disconnect` line.
    pub disconnects: Vec<(&'static str, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `recv` calls that returned bytes.
    pub reads: u64,
    /// The service's own figures, as last reported.
    pub report: ServiceReport,
}

impl ServiceStats {
    fn new(name: &'static str) -> Self {
        ServiceStats {
            name,
            accepted: 0,
            open: 0,
            rejected: Vec::new(),
            disconnects: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            reads: 0,
            report: ServiceReport::default(),
        }
    }

    /// Messages as the page shows them: the service's own count, or its
    /// reads for a byte-stream service.
    pub fn messages(&self) -> u64 {
        self.report.messages.unwrap_or(self.reads)
    }

    pub fn disconnects_for(&self, reason: &str) -> u64 {
        lookup(&self.disconnects, reason)
    }

    pub fn rejected_for(&self, reason: &str) -> u64 {
        lookup(&self.rejected, reason)
    }
}

fn lookup(list: &[(&'static str, u64)], key: &str) -> u64 {
    list.iter().find(|(k, _)| *k == key).map_or(0, |(_, n)| *n)
}

/// Adds one to the count for `key` (a handful of keys: a scan is fastest).
fn bump(list: &mut Vec<(&'static str, u64)>, key: &'static str) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => list.push((key, 1)),
    }
}

/// The reactor's per-turn figures.
#[derive(Debug, Clone)]
pub struct TurnFigures {
    /// Turns since the start.
    pub turns: u64,
    /// Readiness events `poll` returned since the start.
    pub events: u64,
    /// How long each turn worked after `poll` returned, in microseconds.
    pub turn_micros: Histogram,
    /// How many events each `poll` returned.
    pub events_per_turn: Histogram,
    /// The last turn, as `--trace` would print it.
    pub last: TurnTrace,
}

/// One slab slot: how many connections have held it, and whether one holds
/// it now. A slot whose count passes one was *reused* — the page shows that
/// as it happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotState {
    pub uses: u32,
    pub used: bool,
}

/// The slab's slots as the page draws them.
#[derive(Debug, Clone, Default)]
pub struct SlotMap {
    slots: Vec<SlotState>,
    /// Connections that got a slot someone held before.
    pub reuses: u64,
}

impl SlotMap {
    /// A connection took `slot`.
    pub fn take(&mut self, slot: usize) {
        if slot >= self.slots.len() {
            self.slots.resize(slot + 1, SlotState::default());
        }
        let s = &mut self.slots[slot];
        if s.uses > 0 {
            self.reuses += 1;
        }
        s.uses = s.uses.saturating_add(1);
        s.used = true;
    }

    /// The connection in `slot` closed.
    pub fn free(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.used = false;
        }
    }

    pub fn get(&self, slot: usize) -> Option<SlotState> {
        self.slots.get(slot).copied()
    }

    /// Slots the slab has ever had.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots held now.
    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// One character per slot, for the page's grid: `.` never used, `_`
    /// free (used before), `u` held by its first connection, and for a
    /// reused slot held now a letter `A`..`Z` that changes with every new
    /// holder — so a slot freed and taken again between two looks still
    /// changes, and the page can flash it.
    pub fn write_grid(&self, out: &mut Vec<u8>) {
        out.reserve(self.slots.len());
        out.extend(self.slots.iter().map(|s| slot_char(*s)));
    }
}

/// The grid character of one slot (see [`SlotMap::write_grid`]).
pub fn slot_char(s: SlotState) -> u8 {
    match (s.used, s.uses) {
        (_, 0) => b'.',
        (false, _) => b'_',
        (true, 1) => b'u',
        (true, n) => b'A' + (n % 26) as u8,
    }
}

/// Everything the reactor shows about itself (see the module doc).
#[derive(Debug, Clone)]
pub struct Status {
    pub version: &'static str,
    pub pid: u32,
    /// When the server started (for uptimes and ages).
    pub started: Instant,
    /// The same moment on the wall clock (for `process_start_time_seconds`).
    pub started_at: SystemTime,
    pub max_clients: usize,
    pub max_backlog: usize,
    /// Indexed like the reactor's services.
    pub services: Vec<ServiceStats>,
    pub turns: TurnFigures,
    pub slots: SlotMap,
    /// Chat names by `conn`, from the `join`, `nick` and `leave` events the
    /// reactor records anyway (so the chat service needs no new hook).
    pub names: HashMap<u64, Box<str>>,
}

impl Status {
    /// Fresh figures for services named `services`, in the reactor's order.
    pub fn new(services: &[&'static str], max_clients: usize, max_backlog: usize) -> Self {
        Status {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            max_clients,
            max_backlog,
            services: services.iter().map(|n| ServiceStats::new(n)).collect(),
            turns: TurnFigures {
                turns: 0,
                events: 0,
                turn_micros: Histogram::new(TURN_MICROS_BOUNDS),
                events_per_turn: Histogram::new(EVENTS_BOUNDS),
                last: TurnTrace::default(),
            },
            slots: SlotMap::default(),
            names: HashMap::new(),
        }
    }

    /// A connection of `service` was accepted into `slot`.
    pub fn on_accept(&mut self, service: usize, slot: usize) {
        if let Some(s) = self.services.get_mut(service) {
            s.accepted += 1;
            s.open += 1;
        }
        self.slots.take(slot);
    }

    /// An accepted connection is being refused (`full`, `per-ip`); it is
    /// still closed later like any other, through [`Status::on_close`].
    pub fn on_reject(&mut self, service: usize, reason: &'static str) {
        if let Some(s) = self.services.get_mut(service) {
            bump(&mut s.rejected, reason);
        }
    }

    /// The connection `conn` of `service` in `slot` closed for `reason`.
    pub fn on_close(&mut self, service: usize, slot: usize, conn: u64, reason: &'static str) {
        if let Some(s) = self.services.get_mut(service) {
            s.open = s.open.saturating_sub(1);
            bump(&mut s.disconnects, reason);
        }
        self.slots.free(slot);
        self.names.remove(&conn);
    }

    /// One `recv` of `bytes` bytes (the per-message path: two additions).
    #[inline]
    pub fn on_recv(&mut self, service: usize, bytes: usize) {
        if let Some(s) = self.services.get_mut(service) {
            s.bytes_in += bytes as u64;
            s.reads += 1;
        }
    }

    /// One `send` that handed `bytes` bytes to the kernel.
    #[inline]
    pub fn on_send(&mut self, service: usize, bytes: usize) {
        if let Some(s) = self.services.get_mut(service) {
            s.bytes_out += bytes as u64;
        }
    }

    /// Folds a finished turn into the figures (the same record `--trace`
    /// prints: measured once).
    pub fn on_turn(&mut self, trace: &TurnTrace) {
        let t = &mut self.turns;
        t.turns += 1;
        t.events += u64::from(trace.events);
        t.turn_micros
            .record(u64::try_from(trace.took.as_micros()).unwrap_or(u64::MAX));
        t.events_per_turn.record(u64::from(trace.events));
        t.last = *trace;
    }

    /// Keeps the chat names current from the events the reactor records.
    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::Join { conn, name, .. } => {
                self.names.insert(*conn, name.as_str().into());
            }
            Event::Nick { conn, new, .. } => {
                self.names.insert(*conn, new.as_str().into());
            }
            Event::Leave { conn, .. } => {
                self.names.remove(conn);
            }
            _ => {}
        }
    }

    /// Connections open now, all services together.
    pub fn open(&self) -> u64 {
        self.services.iter().map(|s| s.open).sum()
    }

    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}

/// One connection as the reactor knows it, copied out for a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The log's `conn` (unique for the life of the process).
    pub conn: u64,
    /// The slab key (reused after a close).
    pub slot: usize,
    /// Index into [`Status::services`].
    pub service: usize,
    pub peer: SocketAddr,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub opened: Instant,
    pub last_active: Instant,
    /// Output accepted but not yet taken by the kernel.
    pub unsent: usize,
    /// Reading is stopped (backpressure or a chat rate limit).
    pub paused: bool,
}

/// The reactor's connection table, lent to a reader for one call. The
/// reactor implements it over its slab; tests use a `Vec<ConnInfo>`.
pub trait ConnTable {
    /// Connections open now.
    fn count(&self) -> usize;
    /// Calls `f` for every open connection, in no particular order.
    fn for_each(&self, f: &mut dyn FnMut(&ConnInfo));
    /// The connection in `slot`, if one is there.
    fn get(&self, slot: usize) -> Option<ConnInfo>;
    /// Calls `f` with the `conn` and `slot` of every open connection: what
    /// paging needs, without copying whole rows.
    fn for_each_key(&self, f: &mut dyn FnMut(u64, usize)) {
        self.for_each(&mut |c| f(c.conn, c.slot));
    }
}

impl ConnTable for Vec<ConnInfo> {
    fn count(&self) -> usize {
        self.len()
    }
    fn for_each(&self, f: &mut dyn FnMut(&ConnInfo)) {
        self.iter().for_each(f);
    }
    fn get(&self, slot: usize) -> Option<ConnInfo> {
        self.iter().find(|c| c.slot == slot).cloned()
    }
}

/// Read access to the server's state for one request: the counters, the
/// connection table, and the time of the turn.
pub struct StatusView<'a> {
    pub status: &'a Status,
    pub conns: &'a dyn ConnTable,
    pub now: Instant,
}

/// Figures derived from a scan of the connection table, per service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnGauges {
    /// Connections whose reading is stopped.
    pub paused: u64,
    /// Bytes accepted for sending but not yet taken by the kernel.
    pub queued_bytes: u64,
}

impl StatusView<'_> {
    /// Scans the table once (a reader asked; never per turn).
    pub fn conn_gauges(&self) -> Vec<ConnGauges> {
        let mut out = vec![ConnGauges::default(); self.status.services.len()];
        self.conns.for_each(&mut |c| {
            if let Some(g) = out.get_mut(c.service) {
                g.paused += u64::from(c.paused);
                g.queued_bytes += c.unsent as u64;
            }
        });
        out
    }

    /// Up to `limit` connections with `conn` greater than `after`, in
    /// `conn` order, and the `after` for the next page if there is one.
    ///
    /// One pass over the table picks the candidates, and a partial sort
    /// (`select_nth_unstable`) keeps the smallest: linear in the number of
    /// connections, whatever the page, so 19,000 connections cost a
    /// fraction of a millisecond. `scratch` is the caller's reused buffer.
    pub fn page(
        &self,
        after: u64,
        limit: usize,
        scratch: &mut Vec<(u64, usize)>,
    ) -> (Vec<ConnInfo>, Option<u64>) {
        scratch.clear();
        self.conns.for_each_key(&mut |conn, slot| {
            if conn > after {
                scratch.push((conn, slot));
            }
        });
        let more = scratch.len() > limit;
        if more && limit > 0 {
            scratch.select_nth_unstable(limit - 1);
        }
        scratch.truncate(limit);
        scratch.sort_unstable();
        let rows: Vec<ConnInfo> = scratch
            .iter()
            .filter_map(|&(conn, slot)| self.conns.get(slot).filter(|c| c.conn == conn))
            .collect();
        let next = if more {
            rows.last().map(|c| c.conn)
        } else {
            None
        };
        (rows, next)
    }

    pub fn service_name(&self, service: usize) -> &'static str {
        self.status.services.get(service).map_or("?", |s| s.name)
    }

    /// The chat name of a connection, if it joined.
    pub fn name_of(&self, conn: u64) -> Option<&str> {
        self.status.names.get(&conn).map(|n| &**n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A table of `n` connections with conns 1..=n in shuffled slots.
    pub fn table(n: usize, now: Instant) -> Vec<ConnInfo> {
        (0..n)
            .map(|i| ConnInfo {
                conn: i as u64 + 1,
                // A permutation of 0..n: slots are not in conn order.
                slot: (i * 7919) % n.max(1),
                service: i % 2,
                peer: SocketAddr::from(([127, 0, 0, 1], 40_000 + (i % 20_000) as u16)),
                bytes_in: i as u64,
                bytes_out: 2 * i as u64,
                opened: now,
                last_active: now,
                unsent: i % 3,
                paused: i % 5 == 0,
            })
            .collect()
    }

    #[test]
    fn counters_follow_the_connection_life() {
        let mut s = Status::new(&["echo", "chat"], 10, 1024);
        s.on_accept(0, 0);
        s.on_accept(0, 1);
        s.on_recv(0, 10);
        s.on_send(0, 10);
        s.on_close(0, 0, 1, "eof");
        s.on_accept(1, 0);
        s.on_reject(1, "full");
        s.on_close(1, 0, 3, "full");
        assert_eq!(s.services[0].accepted, 2);
        assert_eq!(s.services[0].open, 1);
        assert_eq!(s.services[0].bytes_in, 10);
        assert_eq!(s.services[0].messages(), 1);
        assert_eq!(s.services[0].disconnects_for("eof"), 1);
        assert_eq!(s.services[1].rejected_for("full"), 1);
        assert_eq!(s.services[1].open, 0);
        assert_eq!(s.open(), 1);
        // Slot 0 held conn 1, then conn 3: reused once.
        assert_eq!(s.slots.reuses, 1);
        assert_eq!(s.slots.used(), 1);
    }

    #[test]
    fn slot_grid_shows_reuse() {
        let mut m = SlotMap::default();
        m.take(0);
        m.take(2);
        m.free(2);
        let mut grid = Vec::new();
        m.write_grid(&mut grid);
        assert_eq!(grid, b"u._");
        m.take(2);
        grid.clear();
        m.write_grid(&mut grid);
        assert_eq!(grid, b"u.C");
        // Freed and taken again between two looks: the letter changes.
        m.free(2);
        m.take(2);
        grid.clear();
        m.write_grid(&mut grid);
        assert_eq!(grid, b"u.D");
    }

    #[test]
    fn names_come_from_chat_events() {
        let mut s = Status::new(&["chat"], 10, 1024);
        s.on_event(&Event::Join {
            service: "chat",
            conn: 7,
            name: "alice".into(),
        });
        s.on_event(&Event::Nick {
            service: "chat",
            conn: 7,
            old: "alice".into(),
            new: "bob".into(),
        });
        assert_eq!(s.names.get(&7).map(|n| &**n), Some("bob"));
        s.on_close(0, 0, 7, "eof");
        assert!(s.names.is_empty());
    }

    #[test]
    fn turns_feed_both_histograms() {
        let mut s = Status::new(&["echo"], 10, 1024);
        let t = TurnTrace {
            events: 3,
            took: Duration::from_micros(120),
            ..TurnTrace::default()
        };
        s.on_turn(&t);
        s.on_turn(&t);
        assert_eq!(s.turns.turns, 2);
        assert_eq!(s.turns.events, 6);
        assert_eq!(s.turns.turn_micros.count(), 2);
        assert_eq!(s.turns.events_per_turn.sum(), 6);
        assert_eq!(s.turns.last, t);
    }

    #[test]
    fn pages_walk_every_connection_once_in_order() {
        let now = Instant::now();
        let conns = table(1234, now);
        let status = Status::new(&["echo", "chat"], 20_000, 1024);
        let view = StatusView {
            status: &status,
            conns: &conns,
            now,
        };
        let mut scratch = Vec::new();
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let (rows, next) = view.page(after, 100, &mut scratch);
            assert!(rows.len() <= 100);
            seen.extend(rows.iter().map(|r| r.conn));
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        assert_eq!(seen, (1..=1234).collect::<Vec<u64>>());
    }

    #[test]
    fn last_page_has_no_next() {
        let now = Instant::now();
        let conns = table(10, now);
        let status = Status::new(&["echo", "chat"], 20, 1024);
        let view = StatusView {
            status: &status,
            conns: &conns,
            now,
        };
        let mut scratch = Vec::new();
        let (rows, next) = view.page(0, 10, &mut scratch);
        assert_eq!(rows.len(), 10);
        assert_eq!(next, None);
        let (rows, next) = view.page(5, 3, &mut scratch);
        assert_eq!(rows.iter().map(|r| r.conn).collect::<Vec<_>>(), [6, 7, 8]);
        assert_eq!(next, Some(8));
        let (rows, next) = view.page(10, 3, &mut scratch);
        assert!(rows.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn gauges_sum_per_service() {
        let now = Instant::now();
        let conns = table(10, now);
        let status = Status::new(&["echo", "chat"], 20, 1024);
        let view = StatusView {
            status: &status,
            conns: &conns,
            now,
        };
        let g = view.conn_gauges();
        let paused: u64 = g.iter().map(|g| g.paused).sum();
        let queued: u64 = g.iter().map(|g| g.queued_bytes).sum();
        assert_eq!(paused, 2); // i = 0 and 5
        assert_eq!(queued, (0..10).map(|i| (i % 3) as u64).sum::<u64>());
    }
}
