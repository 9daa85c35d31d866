//! Saving: state a service keeps in a file (chat's names) reaches the disk
//! without the loop ever waiting on it.
//!
//! A service never does file IO; it keeps its state in memory and says
//! when it changed (`Service::snapshot_pending`). At most once a second the
//! reactor takes a snapshot (a walk of memory) and hands the bytes to a
//! saver thread (`persist.rs`), which writes a temporary file and renames
//! it into place. A `/nick` storm thus costs one file write a second, not
//! one per change, and a slow disk delays the file, never the room.

use std::time::{Duration, Instant};

use super::Reactor;
use crate::event::{self, Event};
use crate::persist::Saver;

/// Snapshots of a service's file are taken at most this often (DESIGN.md:
/// the names file is saved at most once a second).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// While a saver is writing, look for its errors this often.
const SAVER_CHECK: Duration = Duration::from_millis(100);
/// How long a stop waits for the last snapshot to reach the disk.
const SAVE_AT_STOP: Duration = Duration::from_secs(5);

/// A service whose file a background thread saves (chat's names).
pub(super) struct Persist {
    service: usize,
    /// The `what=` of its warnings.
    what: &'static str,
    saver: Saver,
}

impl Reactor {
    /// Saves `service`'s snapshots with `saver` from now on.
    pub fn persist_with(&mut self, service: usize, what: &'static str, saver: Saver) {
        self.savers.push(Persist {
            service,
            what,
            saver,
        });
    }

    /// When the loop must wake for saving: the next allowed snapshot if one
    /// is pending, or soon while a saver is writing or has an error to log
    /// (a write can fail between this turn's look and the next `poll`).
    pub(super) fn save_deadline(&self) -> Option<Instant> {
        let mut at = None;
        for p in &self.savers {
            let due = if self.services[p.service].snapshot_pending() {
                self.next_save
            } else if p.saver.needs_attention() {
                self.now + SAVER_CHECK
            } else {
                continue;
            };
            at = Some(at.map_or(due, |a: Instant| a.min(due)));
        }
        at
    }

    /// Step 4b: hand changed state to the savers, at most once a second,
    /// and log what they reported. Taking a snapshot is a walk of memory;
    /// the disk is the saver thread's business.
    pub(super) fn save_snapshots(&mut self) {
        for p in &self.savers {
            for error in p.saver.errors() {
                event::record(&Event::Warning {
                    what: p.what,
                    error: error.to_string(),
                });
            }
        }
        if self.now < self.next_save {
            return;
        }
        for p in &self.savers {
            if let Some(bytes) = self.services[p.service].take_snapshot() {
                p.saver.save(bytes);
                self.next_save = self.now + SAVE_EVERY;
            }
        }
    }

    /// At the stop: the last snapshots go to disk before the process ends.
    pub fn finish_saving(&mut self) {
        for p in std::mem::take(&mut self.savers) {
            if let Some(bytes) = self.services[p.service].take_snapshot() {
                p.saver.save(bytes);
            }
            for error in p.saver.finish(SAVE_AT_STOP) {
                event::record(&Event::Warning {
                    what: p.what,
                    error: error.to_string(),
                });
            }
        }
    }
}
