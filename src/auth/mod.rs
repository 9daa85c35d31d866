//! Chat accounts: the course's authentication server (lab task 8), built
//! into the chat room.
//!
//! Anyone may protect the name they hold with `/register PASSWORD`. From
//! then on that name asks for its password, and a successful login (or
//! registration) hands the client a session token, "like a cookie", that
//! lets it back in without the password until `--session-ttl` runs out.
//! DESIGN.md "Accounts (chat)" is the contract; this module is its engine.
//!
//! The parts, in reading order:
//!
//! 1. `hasher.rs` — Argon2id with OWASP's parameters (19 MiB, 2 passes,
//!    1 lane). One hash costs tens of milliseconds of CPU, and that one
//!    fact shapes everything below.
//! 2. `worker.rs` — **the one other thread.** 40 ms on the reactor thread
//!    would freeze every user of the server for every login. So the room
//!    only *asks* for a hash (a [`Job`] tagged with the connection's
//!    [`ConnKey`]), the worker computes it, and the answer ([`Done`]) comes
//!    back through a channel and a `mio::Waker` that wakes the same `Poll`
//!    that watches the sockets. The queue is bounded: past it, `! busy`.
//! 3. `lockout.rs` — 5 wrong passwords for a name from one IP lock that
//!    pair for 1 s, doubling per further failure up to 15 min.
//! 4. `store.rs` — the accounts file (`NAME<TAB>PHC`), the sessions file
//!    (token hashes with their expiry), safe loading, atomic saving, and
//!    the tokens themselves (128 random bits from the OS).
//! 5. `desk.rs` — [`AccountDesk`]: the account rules of the room as a
//!    sans-IO state machine (stores + lockout + jobs in flight), which
//!    `service/chat.rs` turns into protocol lines.
//!
//! Nothing here ever logs or prints a password, a token or a hash: the
//! only trace of an account action is the `auth` event (`name`, `how`,
//! `result`). [`Secret`] keeps a password out of `{:?}` output by
//! construction.

use std::fmt;
use std::path::Path;

use crate::service::ConnKey;

pub mod desk;
pub mod hasher;
pub mod lockout;
pub mod store;
pub mod worker;

pub use desk::{AccountDesk, DeskConfig};

/// A password on its way to the hasher. It has no `Display`, and its
/// `Debug` shows only its length class, so a `{:?}` of a job (or of an
/// effect holding one) cannot leak it into a log or a panic message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

// The `how` and `result` of an `auth` event live with the event.
pub use crate::event::{AuthHow, AuthResult};

/// Work for the hashing thread, tagged with the connection that asked and
/// a number that tells this job from an earlier one of the same
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub key: ConnKey,
    pub id: u64,
    pub work: Work,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Check `password` against `phc`. With no `phc` (no such account) it
    /// is checked against a dummy hash with the same parameters and fails:
    /// the answer takes as long as for a real account.
    Verify {
        phc: Option<String>,
        password: Secret,
    },
    /// Hash a new password (`/register`).
    Hash { password: Secret },
    /// `/passwd OLD NEW`: verify `old` against `phc`, and only then hash
    /// `new` — one job, so a wrong OLD costs no second hash.
    Change {
        phc: String,
        old: Secret,
        new: Secret,
    },
}

/// The worker's answer to a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub key: ConnKey,
    pub id: u64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Verify`: whether the password matched.
    Verified(bool),
    /// `Hash`: the PHC string, or `None` if hashing failed (it does not,
    /// short of running out of memory).
    Hashed(Option<String>),
    /// `Change`: the new PHC string; `Err(true)` when OLD was wrong,
    /// `Err(false)` when hashing failed.
    Changed(Result<String, bool>),
}

/// The job queue is full (or the worker is gone): the user is told
/// `! busy, try again`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Where the room sends hashing jobs. The real one is the worker thread's
/// bounded channel ([`worker::WorkerQueue`]); tests use a plain vector and
/// run a fast fake hasher themselves.
pub trait JobQueue {
    /// Queues `job` without waiting.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full: the caller answers the user at
    /// once instead of buffering without bound.
    fn submit(&mut self, job: Job) -> Result<(), Busy>;
}

/// Where changed account files go to be written, off the reactor thread.
/// The real one is the worker's [`worker::WorkerSaver`].
pub trait SnapshotSink {
    /// Takes the new contents of `path`; never blocks on the disk.
    fn save(&mut self, path: &Path, bytes: Vec<u8>);
}

impl SnapshotSink for worker::WorkerSaver {
    fn save(&mut self, path: &Path, bytes: Vec<u8>) {
        worker::WorkerSaver::save(self, path, bytes);
    }
}
