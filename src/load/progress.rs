//! State the load threads share while they run, and the progress bar that
//! shows it on a terminal.
//!
//! The threads never share sockets or buffers; they share only a few
//! counters, updated once per event-loop turn (not per message, so the hot
//! path stays free of contended atomics), and the ramp barrier: the load
//! starts once every thread has its connections up.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Counters and barriers shared by the worker threads of one run.
#[derive(Debug)]
pub struct Shared {
    /// Worker threads in this run.
    pub threads: usize,
    /// Threads whose connections are all up (or failed); the load starts
    /// when this reaches `threads`.
    pub ready_threads: AtomicUsize,
    /// Threads past the end of the load phase, with their sent count
    /// published; chat's drain trusts the shared counters only after this
    /// reaches `threads`.
    pub sending_done: AtomicUsize,
    /// Sessions established so far (for the bar and, in chat, for the
    /// number of receivers each message should reach).
    pub connected: AtomicU64,
    /// Connection attempts that failed so far.
    pub failed: AtomicU64,
    /// Echo: round trips done. Chat: messages sent.
    pub messages: AtomicU64,
    /// Chat: lines delivered to receivers so far (the drain waits for them).
    pub delivered: AtomicU64,
    /// Chat: send timestamps are microseconds since this instant, which all
    /// threads share, so receive minus send needs no clock sync.
    pub epoch: Instant,
    /// Set when the workers are done; stops the progress bar.
    pub done: AtomicBool,
}

impl Shared {
    pub fn new(threads: usize) -> Arc<Shared> {
        Arc::new(Shared {
            threads,
            ready_threads: AtomicUsize::new(0),
            sending_done: AtomicUsize::new(0),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            epoch: Instant::now(),
            done: AtomicBool::new(false),
        })
    }

    pub fn all_ready(&self) -> bool {
        self.ready_threads.load(Ordering::Acquire) >= self.threads
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Start the progress bar thread if stderr is a terminal; `None` otherwise
/// (a pipe or a file gets only the preflight line and the summary).
pub fn start_bar(
    shared: Arc<Shared>,
    scenario: &'static str,
    clients: usize,
    duration: Duration,
) -> Option<JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(thread::spawn(move || {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        let started = Instant::now();
        let mut load_started: Option<Instant> = None;
        let unit = if scenario == "chat" { "sent" } else { "msgs" };
        while !shared.done.load(Ordering::Acquire) {
            let connected = Shared::get(&shared.connected);
            let failed = Shared::get(&shared.failed);
            let msgs = Shared::get(&shared.messages);
            let phase = if shared.all_ready() {
                let t0 = *load_started.get_or_insert_with(Instant::now);
                format!(
                    "load {:.1}/{:.0}s",
                    t0.elapsed().as_secs_f64().min(duration.as_secs_f64()),
                    duration.as_secs_f64()
                )
            } else {
                format!("ramp {:.1}s", started.elapsed().as_secs_f64())
            };
            let mut msg = format!(
                "{scenario}: {phase} | connected {connected}/{clients} failed {failed} | {msgs} {unit}"
            );
            if scenario == "chat" {
                msg.push_str(&format!(" delivered {}", Shared::get(&shared.delivered)));
            }
            bar.set_message(msg);
            bar.tick();
            // A display refresh interval, not a wait for a condition.
            thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    }))
}
