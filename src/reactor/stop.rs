//! Stopping, and the signals that ask for it.
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT, or `exit` typed on the console
//! (`control.rs`), start a graceful stop: listeners close, each service
//! says goodbye (chat's `* server shutting down`), pending output gets
//! `--shutdown-grace`. A second request stops at once.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

use super::{Reactor, RunState, live_mut};
use crate::event::{DisconnectReason, StopReason};
use crate::service::ConnKey;

/// The signals the reactor handles. All but SIGUSR1 stop the server
/// gracefully: SIGHUP is what a closed terminal sends, SIGQUIT is Ctrl-\\.
/// SIGUSR1 reopens the log file (for `logrotate`). Left to their default
/// action, each of these would kill the server with no `stop` line and no
/// goodbye to chat users.
pub(super) const SIGNALS: [i32; 5] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1];

impl Reactor {
    pub(super) fn signals_ready(&mut self) {
        let mut stop = false;
        let mut reopen = false;
        for signal in self.signals.pending() {
            match signal {
                SIGUSR1 => reopen = true,
                _ => stop = true,
            }
        }
        if reopen {
            crate::logging::reopen();
        }
        if stop {
            self.request_stop(StopReason::Signal);
        }
    }

    /// The first request starts a graceful stop: stop accepting, let each
    /// service say goodbye, give pending output `--shutdown-grace`. A second
    /// request stops at once.
    pub(super) fn request_stop(&mut self, reason: StopReason) {
        if let RunState::Draining { reason: first, .. } = self.phase {
            // The stop's reason is what started it (`exit` on the console,
            // say), not the impatient second signal.
            self.close_all_now();
            self.phase = RunState::Done(first);
            return;
        }
        for listener in self.listeners.iter_mut() {
            if let Some(mut l) = listener.take() {
                let _ = self.poll.registry().deregister(&mut l.socket);
            }
        }
        for service in &mut self.services {
            service.on_shutdown(&mut self.fx);
        }
        self.apply_effects();
        self.close_udp();
        let keys: Vec<ConnKey> = self.conns.iter().map(|(_, c)| c.key).collect();
        for key in keys {
            self.close_later(key, DisconnectReason::Shutdown);
        }
        self.phase = RunState::Draining {
            reason,
            deadline: self.now + self.config.shutdown_grace,
        };
    }

    /// Closes every connection now, sent or not (the grace is over).
    pub(super) fn close_all_now(&mut self) {
        let keys: Vec<ConnKey> = self.conns.iter().map(|(_, c)| c.key).collect();
        for key in keys {
            if let Some(conn) = live_mut(&mut self.conns, key) {
                conn.mark_closing(DisconnectReason::Shutdown);
                conn.out.clear();
            }
            self.close_conn(key);
        }
        crate::logging::flush();
    }
}
