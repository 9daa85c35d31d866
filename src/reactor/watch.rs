//! The reactor seen from outside: the end-of-turn step that lets a service
//! read the server's own state (the status page), and the turn's record
//! that feeds the turn-time figures and `--trace`.
//!
//! The counters themselves are bumped where things happen (`accept.rs`,
//! `read.rs`, `effects.rs`, `flush.rs`), one addition each. Everything a
//! reader needs beyond them is computed here only when a service asks
//! (`Service::wants_tick`), from the slab itself, lent through
//! [`ConnTable`] — so a server nobody watches pays one check per turn.

use std::io::Write;
use std::time::Instant;

use slab::Slab;

use super::Reactor;
use super::conn::Conn;
use crate::status::{ConnInfo, ConnTable, StatusView};

/// The slab, as the status page reads it.
struct SlabTable<'a>(&'a Slab<Conn>);

fn info(c: &Conn) -> ConnInfo {
    ConnInfo {
        conn: c.key.id,
        slot: c.key.slot,
        service: c.service,
        peer: c.peer,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        opened: c.opened,
        last_active: c.last_active,
        unsent: c.out.len(),
        paused: !c.reading,
    }
}

impl ConnTable for SlabTable<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn for_each(&self, f: &mut dyn FnMut(&ConnInfo)) {
        for (_, c) in self.0.iter() {
            f(&info(c));
        }
    }

    fn get(&self, slot: usize) -> Option<ConnInfo> {
        self.0.get(slot).map(info)
    }

    fn for_each_key(&self, f: &mut dyn FnMut(u64, usize)) {
        for (slot, c) in self.0.iter() {
            f(c.key.id, slot);
        }
    }
}

impl Reactor {
    /// Step 6: services that read the server's state do so now, after the
    /// turn's work is done and written (the status page answers its
    /// requests and streams the turn's log lines here).
    pub(super) fn tick_services(&mut self) {
        let mut reports_fresh = false;
        for index in 0..self.services.len() {
            if !self.services[index].wants_tick() {
                continue;
            }
            if !std::mem::replace(&mut reports_fresh, true) {
                for (stats, service) in self.status.services.iter_mut().zip(&self.services) {
                    stats.report = service.report();
                }
                let mut reports = std::mem::take(&mut self.status.services);
                self.report_udp(&mut reports);
                self.status.services = reports;
            }
            let table = SlabTable(&self.conns);
            let view = StatusView {
                status: &self.status,
                conns: &table,
                now: self.now,
            };
            self.services[index].on_tick(&view, &mut self.fx);
            self.apply_effects();
        }
        if reports_fresh {
            self.flush_and_close();
        }
    }

    /// Step 7: the turn's record is complete: fold it into the figures
    /// (measured once, for the page and `/metrics`) and, with `--trace`,
    /// offer it to the console.
    pub(super) fn end_turn(&mut self) {
        self.turn.took = Instant::now().saturating_duration_since(self.now);
        self.status.on_turn(&self.turn);
        if let Some(limiter) = &mut self.trace {
            self.trace_out.clear();
            limiter.offer(self.now, &self.turn, &mut self.trace_out);
            if !self.trace_out.is_empty() {
                // Best effort, like every console line: a closed stdout
                // must not stop the server.
                let _ = std::io::stdout()
                    .lock()
                    .write_all(self.trace_out.as_bytes());
            }
        }
    }
}
