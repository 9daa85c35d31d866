//! The test harness, in small parts:
//! - `server.rs`: [`Server`], the real binary on port 0 with its own log
//!   directory, and its builder;
//! - `server_log.rs`: that server's log, as parsed [`LogLine`]s, and waits
//!   on it;
//! - `logline.rs`: the one strict parser of log lines;
//! - `process.rs`: [`run_bin`] for command-line tests, output capture,
//!   `/proc` figures;
//! - `net.rs`: client sockets whose reads time out;
//! - `users.rs`: chat users ([`User`], [`room`]).
//!
//! Everything is re-exported here, so a test module says
//! `use crate::common::*;`. How to write a test: `tests/it/main.rs`.

mod logline;
mod net;
mod process;
mod server;
mod server_log;
mod users;

use std::thread;
use std::time::{Duration, Instant};

pub use logline::*;
pub use net::*;
pub use process::*;
pub use server::*;
pub use server_log::*;
pub use users::*;

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` every few milliseconds until it holds; fails the test
/// saying what never happened if it does not within [`DEADLINE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}
