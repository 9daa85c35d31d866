//! State the load threads share while they run, and the progress line that
//! shows it on a terminal.
//!
//! The threads never share sockets or buffers; they share only a few
//! counters, published once per event-loop turn (not per message, so the hot
//! path stays free of contended atomics), the ramp barrier (the load starts
//! once every thread has its connections up), and — only while a progress
//! line is shown — a copy of each thread's latency histogram, refreshed a
//! few times a second, so the line can show the p99 so far.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::stats::new_histogram;

/// How often a thread copies its histogram for the progress line, and how
/// often the line is redrawn.
pub const REFRESH: Duration = Duration::from_millis(250);

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
    /// Sessions established so far (for the line and, in chat, for the
    /// number of receivers each message should reach).
    pub connected: AtomicU64,
    /// Connection attempts that failed so far.
    pub failed: AtomicU64,
    /// Echo: round trips done. Chat: messages sent. Connect: cycles done.
    pub messages: AtomicU64,
    /// Chat: lines delivered to receivers so far (the drain waits for them).
    pub delivered: AtomicU64,
    /// Verification and io errors so far (failed connects are in `failed`).
    pub errors: AtomicU64,
    /// Chat: send timestamps are microseconds since this instant, which all
    /// threads share, so receive minus send needs no clock sync.
    pub epoch: Instant,
    /// A progress line is shown: threads publish their histograms.
    pub live: bool,
    /// Each thread's latency histogram as of its last publication.
    pub latency: Vec<Mutex<Histogram<u64>>>,
    /// Set when the workers are done; stops the progress line.
    pub done: AtomicBool,
}

impl Shared {
    pub fn new(threads: usize, live: bool) -> Arc<Shared> {
        Arc::new(Shared {
            threads,
            ready_threads: AtomicUsize::new(0),
            sending_done: AtomicUsize::new(0),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            epoch: Instant::now(),
            live,
            latency: (0..if live { threads } else { 0 })
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
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

    /// Thread `t` publishes its histogram for the progress line.
    pub fn publish_latency(&self, t: usize, mine: &Histogram<u64>) {
        if let Some(slot) = self.latency.get(t)
            && let Ok(mut h) = slot.lock()
        {
            h.reset();
            // Same bounds on both sides: adding cannot fail.
            let _ = h.add(mine);
        }
    }

    /// The p99 so far over every thread's last publication, in µs.
    fn p99_us(&self, merged: &mut Histogram<u64>) -> Option<u64> {
        merged.reset();
        for slot in &self.latency {
            if let Ok(h) = slot.lock() {
                let _ = merged.add(&*h);
            }
        }
        (!merged.is_empty()).then(|| merged.value_at_quantile(0.99))
    }
}

/// Whether a progress line would be shown (stderr is a terminal).
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// Start the progress line thread; `None` when `shared.live` is off (stderr
/// is a pipe or a file, or the caller is a benchmark).
pub fn start_bar(
    shared: Arc<Shared>,
    scenario: &'static str,
    clients: usize,
    duration: Duration,
) -> Option<JoinHandle<()>> {
    if !shared.live {
        return None;
    }
    Some(thread::spawn(move || {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg}") {
            bar.set_style(style);
        }
        let started = Instant::now();
        let mut merged = new_histogram();
        let mut last = (Instant::now(), 0u64);
        let mut rate = 0.0;
        while !shared.done.load(Ordering::Acquire) {
            let msgs = Shared::get(&shared.messages);
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64();
            if dt >= 0.45 {
                rate = (msgs - last.1) as f64 / dt;
                last = (now, msgs);
            }
            bar.set_message(line(
                &shared,
                scenario,
                clients,
                duration,
                started,
                rate,
                &mut merged,
            ));
            // A display refresh interval, not a wait for a condition.
            thread::sleep(REFRESH);
        }
        bar.finish_and_clear();
    }))
}

/// `echo 3.2/10s | 500/500 connected | 169310 msgs/s | p99 5.2 ms | 0 errors`.
fn line(
    shared: &Shared,
    scenario: &str,
    clients: usize,
    duration: Duration,
    started: Instant,
    rate: f64,
    merged: &mut Histogram<u64>,
) -> String {
    let elapsed = started.elapsed().as_secs_f64().min(duration.as_secs_f64());
    let phase = if shared.all_ready() {
        ""
    } else {
        " connecting"
    };
    let connected = Shared::get(&shared.connected);
    let unit = match scenario {
        "chat" => "sent/s",
        "connect" => "conns/s",
        _ => "msgs/s",
    };
    let p99 = shared.p99_us(merged).map_or("-".to_string(), |us| {
        format!("{:.1} ms", us as f64 / 1000.0)
    });
    let errors = Shared::get(&shared.failed) + Shared::get(&shared.errors);
    let who = if scenario == "connect" {
        format!("{connected} done")
    } else if scenario == "udp-echo" {
        format!("{connected}/{clients} sockets")
    } else {
        format!("{connected}/{clients} connected")
    };
    format!(
        "{scenario} {elapsed:.1}/{:.0}s{phase} | {who} | {rate:.0} {unit} | p99 {p99} | {errors} errors",
        duration.as_secs_f64()
    )
}
