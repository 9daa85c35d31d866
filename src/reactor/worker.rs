//! The one other thread, seen from the loop: answers from the
//! password-hashing worker (`auth/worker.rs` explains why it exists).
//!
//! The worker cannot touch a socket or the room; it can only say "an
//! answer is waiting" by waking this `Poll` through a `mio::Waker`, whose
//! token (`token::WORKER`) brings the loop here. Each answer is tagged with
//! the `ConnKey` that asked, and goes to that connection's service only if
//! the key is still live — slot *and* id, exactly as an effect is checked.
//! A user who closed the connection while their password was hashed (or a
//! newcomer who got their slot since) never sees the answer.

use std::io;
use std::sync::Arc;

use mio::Waker;

use super::{Reactor, token};
use crate::auth::worker::{Report, Worker};
use crate::event::{self, Event};

impl Reactor {
    /// Registers the worker's `Waker` in this loop's `Poll` and starts its
    /// thread. Jobs submitted before this wait in its queue.
    ///
    /// # Errors
    /// The waker could not be registered or the thread not spawned.
    pub fn attach_worker(&mut self, mut worker: Worker) -> io::Result<()> {
        let waker = Waker::new(self.poll.registry(), token::WORKER)?;
        worker.start(Arc::new(waker))?;
        self.worker = Some(worker);
        Ok(())
    }

    /// The worker woke us: hand every waiting answer to its connection's
    /// service (wakes coalesce, so there may be several), or drop it.
    pub(super) fn worker_ready(&mut self) {
        loop {
            let Some(report) = self.worker.as_ref().and_then(Worker::try_recv) else {
                return;
            };
            match report {
                Report::Done(done) => {
                    let Some(service) = self.live(done.key).map(|c| c.service) else {
                        continue; // closed meanwhile: dropped
                    };
                    self.services[service].on_job_done(done, self.now, &mut self.fx);
                    self.apply_effects();
                }
                Report::Warning(error) => event::record(&Event::Warning {
                    what: "accounts-file",
                    error,
                }),
            }
        }
    }

    /// After [`Reactor::run`]: lets each service save what must survive
    /// (`Service::on_stop`), then stops the worker, which writes those
    /// files before its thread ends.
    pub fn finish(&mut self) {
        for service in &mut self.services {
            service.on_stop(self.now);
        }
        if let Some(mut worker) = self.worker.take() {
            worker.stop();
            // Answers that came after the loop ended are dropped with the
            // connections they were for; warnings are still worth a line.
            while let Some(report) = worker.try_recv() {
                if let Report::Warning(error) = report {
                    event::record(&Event::Warning {
                        what: "accounts-file",
                        error,
                    });
                }
            }
        }
    }
}
