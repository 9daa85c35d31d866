//! The one other thread: password hashing off the reactor.
//!
//! # Why a thread, in a server that is proud to have one
//!
//! The reactor serves every connection from one thread, and that works
//! because every step it takes is short: a `recv`, a few lines of room
//! rules, a `send`. Argon2id is long *on purpose* (`hasher.rs`): tens of
//! milliseconds of CPU per hash (43 ms measured here). Hashed on the
//! reactor thread, every login would freeze every other user for that
//! long: 20 logins a second would add most of a second of silence each
//! second, to everyone. No `epoll` trick helps, because nothing is waiting
//! on I/O: the CPU itself is busy. So that one kind of work moves to a
//! thread of its own, and everything else stays where it was.
//!
//! # How the answer gets back
//!
//! ```text
//!   reactor thread                          worker thread
//!   ──────────────                          ─────────────
//!   room: "alice sent a password"
//!     └─ Job{ConnKey, id, Verify} ──(bounded channel)──▶ recv()
//!   alice's next lines held;                 argon2id … ~40 ms
//!   poll() serves everyone else              send(Done{ConnKey, id, ok})
//!                                            waker.wake()
//!   poll() returns: WORKER token ◀──(eventfd)──┘
//!   drain Done: is ConnKey still live? ── no ─▶ dropped, like a stale effect
//!     └─ yes ─▶ room.on_job_done(): "* hello, alice" + token
//! ```
//!
//! The reactor sleeps in `epoll_wait`; a plain channel cannot wake it. A
//! [`mio::Waker`] is registered in the same `Poll` as the sockets (on
//! Linux, an `eventfd`): writing to it makes `poll` return with the
//! waker's token, and the reactor drains every answer waiting in the
//! channel. Wakes coalesce, so one wake may bring many answers.
//!
//! Each job is tagged with the [`ConnKey`](crate::service::ConnKey) that
//! asked. A user may close the connection while its hash is computed; the
//! slot may even be reused by a newcomer by then. The reactor checks the
//! whole key (slot *and* id) before handing an answer to the room, so a
//! late answer is dropped exactly as a late effect is — it can never log
//! the newcomer in.
//!
//! # Bounded, on purpose
//!
//! The job queue holds at most [`QUEUE_CAPACITY`] jobs. A flood of login
//! attempts meets the lockout first (`lockout.rs`), and whatever gets past
//! it meets a full queue: [`WorkerQueue::submit`] never waits, and the user
//! gets `! busy, try again`. A connection has at most one job out: what
//! it types meanwhile is held until the answer.
//!
//! The thread also writes the account files (`save`): the room hands it
//! the latest serialized snapshot, and the thread writes it atomically
//! between hashes, so the `fsync` never lands in a reactor turn either.
//! Only the newest snapshot of each file is kept (older ones are
//! replaced, not queued).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use mio::Waker;

use super::hasher::PasswordHasher;
use super::store::write_atomic;
use super::{Busy, Done, Job, JobQueue, Outcome, Work};

/// Jobs that may wait for the worker. At ~40 ms a hash, a full queue is
/// under 3 s of work: a class logging in at once fits, and nobody waits
/// longer than that for an answer.
pub const QUEUE_CAPACITY: usize = 64;

/// What the reactor receives from the worker.
#[derive(Debug)]
pub enum Report {
    /// A job's answer, for the room.
    Done(Done),
    /// Writing a file failed; the server logs it and goes on (the next
    /// change tries again).
    Warning(String),
}

/// Messages to the thread.
enum Msg {
    Job(Job),
    /// A snapshot is waiting in `pending_saves`.
    Save,
    /// Finish the saves and exit.
    Stop,
}

/// What the thread is given when it starts: its end of the job queue,
/// its end of the report channel, and the hasher.
type Unstarted = (Receiver<Msg>, mpsc::Sender<Report>, Box<dyn PasswordHasher>);

/// The worker: the sending half of its queue, the receiving half of its
/// answers, and the thread.
pub struct Worker {
    tx: SyncSender<Msg>,
    reports: Receiver<Report>,
    /// Snapshots to write, newest per path.
    saves: Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>,
    /// Parts the thread takes when it starts.
    unstarted: Option<Unstarted>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Creates the queues. Jobs may be submitted at once; they wait until
    /// [`Worker::start`] gives the thread its waker (the `Poll` the waker
    /// belongs to may not exist yet when the room is built).
    pub fn new(hasher: Box<dyn PasswordHasher>) -> Worker {
        Worker::with_capacity(hasher, QUEUE_CAPACITY)
    }

    pub fn with_capacity(hasher: Box<dyn PasswordHasher>, capacity: usize) -> Worker {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let (report_tx, reports) = mpsc::channel();
        Worker {
            tx,
            reports,
            saves: Arc::default(),
            unstarted: Some((rx, report_tx, hasher)),
            thread: None,
        }
    }

    /// A handle the room submits jobs through.
    pub fn queue(&self) -> WorkerQueue {
        WorkerQueue {
            tx: self.tx.clone(),
        }
    }

    /// A handle the room hands file snapshots to.
    pub fn saver(&self) -> WorkerSaver {
        WorkerSaver {
            tx: self.tx.clone(),
            saves: Arc::clone(&self.saves),
        }
    }

    /// Starts the thread; it calls `waker.wake()` after each report.
    ///
    /// # Errors
    /// The thread could not be spawned (out of memory or thread limit).
    pub fn start(&mut self, waker: Arc<Waker>) -> io::Result<()> {
        let Some((rx, reports, hasher)) = self.unstarted.take() else {
            return Ok(()); // already running
        };
        let saves = Arc::clone(&self.saves);
        let thread = thread::Builder::new()
            .name("echochat-auth".into())
            .spawn(move || run(rx, reports, hasher, saves, waker))?;
        self.thread = Some(thread);
        Ok(())
    }

    /// The next report, if one is waiting (never blocks).
    pub fn try_recv(&self) -> Option<Report> {
        self.reports.try_recv().ok()
    }

    /// Writes the pending snapshots and ends the thread, waiting for the
    /// job in hand (at most one hash) and the queued ones.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // `send` may wait while the queue is full: the thread is
            // draining it, so this ends within the queue's work.
            let _ = self.tx.send(Msg::Stop);
            let _ = thread.join();
        } else if self.unstarted.is_some() {
            // Never started (a start-up failure): write what was saved.
            write_saves(&self.saves, &mut |_| {});
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The room's end of the job queue.
#[derive(Clone)]
pub struct WorkerQueue {
    tx: SyncSender<Msg>,
}

impl JobQueue for WorkerQueue {
    fn submit(&mut self, job: Job) -> Result<(), Busy> {
        match self.tx.try_send(Msg::Job(job)) {
            Ok(()) => Ok(()),
            // Full: refuse now rather than wait (the reactor must never
            // block). Disconnected: the thread is gone; same answer.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// The room's end of the file writer.
#[derive(Clone)]
pub struct WorkerSaver {
    tx: SyncSender<Msg>,
    saves: Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>,
}

impl WorkerSaver {
    /// Hands the thread a snapshot of `path` to write; a snapshot of the
    /// same path not yet written is replaced. Never blocks on the disk.
    pub fn save(&self, path: &Path, bytes: Vec<u8>) {
        // The lock is held by the thread only to swap the map out.
        if let Ok(mut saves) = self.saves.lock() {
            saves.insert(path.to_path_buf(), bytes);
        }
        // A full queue needs no nudge: the thread looks at the saves
        // after every job.
        let _ = self.tx.try_send(Msg::Save);
    }
}

/// The thread's loop: one message at a time until `Stop` or until every
/// sender is gone.
fn run(
    rx: Receiver<Msg>,
    reports: mpsc::Sender<Report>,
    hasher: Box<dyn PasswordHasher>,
    saves: Arc<Mutex<BTreeMap<PathBuf, Vec<u8>>>>,
    waker: Arc<Waker>,
) {
    let report = |r: Report| {
        // The receiver is gone only when the reactor is: nothing to tell.
        if reports.send(r).is_ok() {
            let _ = waker.wake();
        }
    };
    for msg in rx.iter() {
        match msg {
            Msg::Job(job) => report(Report::Done(perform(&*hasher, job))),
            Msg::Save => {}
            Msg::Stop => break,
        }
        write_saves(&saves, &mut |w| report(Report::Warning(w)));
    }
    write_saves(&saves, &mut |w| report(Report::Warning(w)));
}

/// Does one job. Pure CPU: no I/O, no shared state.
pub fn perform(hasher: &dyn PasswordHasher, job: Job) -> Done {
    let outcome = match &job.work {
        Work::Verify { phc, password } => {
            Outcome::Verified(hasher.verify_or_dummy(phc.as_deref(), password.expose()))
        }
        Work::Hash { password } => Outcome::Hashed(hasher.hash(password.expose())),
        Work::Change { phc, old, new } => {
            if !hasher.verify(phc, old.expose()) {
                Outcome::Changed(Err(true))
            } else {
                Outcome::Changed(hasher.hash(new.expose()).ok_or(false))
            }
        }
    };
    Done {
        key: job.key,
        id: job.id,
        outcome,
    }
}

fn write_saves(saves: &Mutex<BTreeMap<PathBuf, Vec<u8>>>, warn: &mut dyn FnMut(String)) {
    let pending = match saves.lock() {
        Ok(mut map) => std::mem::take(&mut *map),
        Err(_) => return,
    };
    for (path, bytes) in pending {
        if let Err(e) = write_atomic(&path, &bytes) {
            warn(format!(
                "cannot save {}: {e}; kept in memory, retried on the next change",
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;
    use crate::auth::hasher::FakeHasher;
    use crate::service::ConnKey;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    const WAKE: Token = Token(7);

    fn job(id: u64, work: Work) -> Job {
        Job {
            key: ConnKey { slot: 1, id },
            id,
            work,
        }
    }

    /// Waits on a real `Poll` for the waker, then drains the reports.
    fn next_reports(poll: &mut Poll, worker: &Worker, n: usize) -> Vec<Report> {
        let mut got = Vec::new();
        let mut events = Events::with_capacity(4);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < n {
            assert!(std::time::Instant::now() < deadline, "no wake-up");
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(events.iter().all(|e| e.token() == WAKE));
            while let Some(r) = worker.try_recv() {
                got.push(r);
            }
        }
        got
    }

    #[test]
    fn answers_come_back_through_the_waker_tagged_with_their_key() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let mut worker = Worker::new(Box::new(FakeHasher));
        let mut q = worker.queue();
        // Submitted before the thread runs: they wait.
        q.submit(job(
            1,
            Work::Hash {
                password: Secret::new("hunter22"),
            },
        ))
        .unwrap();
        q.submit(job(
            2,
            Work::Verify {
                phc: Some("fake$hunter22".into()),
                password: Secret::new("hunter22"),
            },
        ))
        .unwrap();
        q.submit(job(
            3,
            Work::Verify {
                phc: None,
                password: Secret::new("fake$"),
            },
        ))
        .unwrap();
        worker.start(waker).unwrap();
        let reports = next_reports(&mut poll, &worker, 3);
        let outcomes: Vec<(u64, Outcome)> = reports
            .into_iter()
            .map(|r| match r {
                Report::Done(d) => {
                    assert_eq!(d.key.id, d.id);
                    (d.id, d.outcome)
                }
                Report::Warning(w) => panic!("{w}"),
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (1, Outcome::Hashed(Some("fake$hunter22".into()))),
                (2, Outcome::Verified(true)),
                (3, Outcome::Verified(false)),
            ]
        );
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let worker = Worker::with_capacity(Box::new(FakeHasher), 2);
        let mut q = worker.queue();
        let work = || Work::Hash {
            password: Secret::new("x"),
        };
        assert_eq!(q.submit(job(1, work())), Ok(()));
        assert_eq!(q.submit(job(2, work())), Ok(()));
        assert_eq!(q.submit(job(3, work())), Err(Busy));
    }

    #[test]
    fn change_checks_the_old_password_first() {
        let h = FakeHasher;
        let change = |old: &str| {
            perform(
                &h,
                job(
                    1,
                    Work::Change {
                        phc: "fake$old-pass".into(),
                        old: Secret::new(old),
                        new: Secret::new("new-pass"),
                    },
                ),
            )
            .outcome
        };
        assert_eq!(
            change("old-pass"),
            Outcome::Changed(Ok("fake$new-pass".into()))
        );
        assert_eq!(change("wrong"), Outcome::Changed(Err(true)));
    }

    #[test]
    fn saves_are_written_off_thread_and_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.tsv");
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let mut worker = Worker::new(Box::new(FakeHasher));
        let saver = worker.saver();
        saver.save(&path, b"first\n".to_vec());
        saver.save(&path, b"second\n".to_vec());
        // A path that cannot be written comes back as a warning.
        saver.save(&dir.path().join("no/such/dir"), b"x".to_vec());
        worker.start(waker).unwrap();
        let reports = next_reports(&mut poll, &worker, 1);
        assert!(matches!(&reports[0], Report::Warning(w) if w.contains("cannot save")));
        worker.stop();
        assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let j = job(
            1,
            Work::Change {
                phc: "fake$x".into(),
                old: Secret::new("old-secret"),
                new: Secret::new("new-secret"),
            },
        );
        let text = format!("{j:?}");
        assert!(
            !text.contains("old-secret") && !text.contains("new-secret"),
            "{text}"
        );
    }
}
