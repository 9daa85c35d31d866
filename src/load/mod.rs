//! The load generator `echochat load echo|chat`: many concurrent
//! connections driven by mio event loops, every reply verified, latency in
//! an hdrhistogram, a summary (or one JSON object) at the end.
//!
//! A run has four phases, the same in both scenarios:
//! 1. **Preflight** (`connect.rs`): raise the descriptor limit, read the
//!    ephemeral port range, decide whether to spread source addresses over
//!    127.0.0.x; one line on stderr says what was found.
//! 2. **Ramp**: each of `--threads` threads, with its own `Poll`, opens its
//!    share of the connections with at most `--connect-burst` connects in
//!    flight in total. A failed connect is counted by cause, never fatal.
//! 3. **Load** for `--duration`, once every thread is ready (`echo.rs`:
//!    closed-loop ping-pong; `chat.rs`: users at a fixed rate).
//! 4. **Drain**: at most [`DRAIN`] for replies (echo) or deliveries (chat)
//!    still under way; then the threads' [`Stats`](stats::Stats) are merged
//!    into a [`Report`] (`report.rs`).
//!
//! The run always ends within ramp + duration + drain; the ramp itself is
//! bounded by the connect (and chat handshake) timeouts. A run whose
//! connections all failed still exits 0 and reports the failures: the
//! summary, not the exit code, is the result of a load test.
//!
//! [`run_echo`] and [`run_chat`] return the report without printing it, so
//! benchmarks can call them in-process.

mod chat;
mod connect;
mod echo;
mod progress;
mod report;
mod stats;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::{LoadChatArgs, LoadCommand, LoadCommon, LoadEchoArgs};

pub use report::{ChatResult, Percentiles, Report, RunInfo};
pub use stats::{ConnectCause, Stats};

/// How long, after the load phase, replies and deliveries still in flight
/// are waited for.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Largest echo message: each connection holds two buffers of this size
/// (what was sent, what came back), so this bounds the memory per client.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The echo service's first default port (DESIGN.md, `--echo-ports`).
const DEFAULT_ECHO_PORT: u16 = 7000;
/// The chat service's first default port.
const DEFAULT_CHAT_PORT: u16 = 7100;

/// Why a load run could not start or finish. Failed connects are not
/// errors; they are counted in the report.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// One thread's share of the run.
#[derive(Debug, Clone)]
struct Plan {
    /// Global client indices, `thread, thread + T, thread + 2T, ...`.
    clients: Vec<usize>,
    /// This thread's share of `--connect-burst`.
    burst: usize,
    duration: Duration,
    /// When the run started (the ramp is measured from here).
    started: Instant,
}

/// What one thread hands back.
#[derive(Debug, Default)]
struct ThreadResult {
    stats: Stats,
    /// Time from the run's start until this thread's connections were up.
    ramp: Duration,
    /// Length of this thread's load phase.
    load: Duration,
}

/// `echochat load ...`: run the scenario, print the summary (or the JSON
/// object) on stdout.
///
/// # Errors
/// Bad option values, an unresolvable host, or a failure to set up an
/// event loop. Failed connects are reported, not errors.
pub fn run(cmd: &LoadCommand) -> Result<(), Error> {
    let (report, json) = match cmd {
        LoadCommand::Echo(args) => (run_echo(args)?, args.common.json),
        LoadCommand::Chat(args) => (run_chat(args)?, args.common.json),
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Closed-loop ping-pong against the echo service; see `echo.rs`.
///
/// # Errors
/// As [`run`].
pub fn run_echo(args: &LoadEchoArgs) -> Result<Report, Error> {
    let size = args.size.as_usize();
    if size == 0 || size > MAX_MESSAGE_BYTES {
        return Err(Error::new(format!(
            "--size must be between 1 byte and {}MiB",
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    drive(
        &args.common,
        "echo",
        DEFAULT_ECHO_PORT,
        size as u64,
        None,
        |t, plan, shared| echo::run_thread(t, plan, size, shared),
    )
}

/// Chat users sending `--rate` messages per second each; see `chat.rs`.
///
/// # Errors
/// As [`run`].
pub fn run_chat(args: &LoadChatArgs) -> Result<Report, Error> {
    let rate = args.rate;
    if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
        return Err(Error::new(
            "--rate must be a number of messages per second above 0 (and at most 1000000)",
        ));
    }
    let token = chat::run_token();
    let clients = args.common.clients;
    drive(
        &args.common,
        "chat",
        DEFAULT_CHAT_PORT,
        0,
        Some(rate),
        |t, plan, shared| chat::run_thread(t, plan, rate, clients, token, shared),
    )
}

/// The frame both scenarios share: validate, preflight, spawn the threads,
/// merge their stats.
fn drive(
    common: &LoadCommon,
    scenario: &'static str,
    default_port: u16,
    size: u64,
    chat_rate: Option<f64>,
    thread_fn: impl Fn(&connect::Target, Plan, &progress::Shared) -> Result<ThreadResult, Error> + Sync,
) -> Result<Report, Error> {
    if common.clients == 0 {
        return Err(Error::new("--clients must be at least 1"));
    }
    if common.threads == 0 {
        return Err(Error::new("--threads must be at least 1"));
    }
    if common.connect_burst == 0 {
        return Err(Error::new("--connect-burst must be at least 1"));
    }
    let port = common.port.unwrap_or(default_port);
    let addr = connect::resolve(&common.host, port)?;
    let (pre, target) = connect::preflight(addr, common.clients);
    eprintln!("{}", pre.line());

    let threads = common.threads.min(common.clients);
    let duration = common.duration.0;
    let started = Instant::now();
    let shared = progress::Shared::new(threads);
    let bar = progress::start_bar(Arc::clone(&shared), scenario, common.clients, duration);
    let plans: Vec<Plan> = (0..threads)
        .map(|t| Plan {
            clients: (t..common.clients).step_by(threads).collect(),
            burst: (common.connect_burst / threads).max(1),
            duration,
            started,
        })
        .collect();

    let results: Vec<Result<ThreadResult, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .into_iter()
            .map(|plan| {
                let (target, shared, f) = (&target, &*shared, &thread_fn);
                s.spawn(move || {
                    let r = f(target, plan, shared);
                    if r.is_err() {
                        // Do not leave the other threads waiting for us at
                        // the ramp barrier.
                        shared.ready_threads.fetch_add(1, Ordering::AcqRel);
                        shared.sending_done.fetch_add(1, Ordering::AcqRel);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::new("a load thread panicked (a bug)")))
            })
            .collect()
    });
    shared.done.store(true, Ordering::Release);
    if let Some(bar) = bar {
        let _ = bar.join();
    }

    let mut stats = Stats::new();
    let mut ramp = Duration::ZERO;
    let mut load = Duration::ZERO;
    for r in results {
        let r = r?;
        stats.merge(&r.stats);
        ramp = ramp.max(r.ramp);
        load = load.max(r.load);
    }
    let info = RunInfo {
        scenario,
        clients: common.clients,
        threads,
        size,
        load,
        ramp,
        chat_rate,
    };
    Ok(Report::new(&info, &stats))
}

/// One `poll`, retried on `EINTR` (a signal is not an error).
fn poll_once(
    poll: &mut mio::Poll,
    events: &mut mio::Events,
    timeout: Duration,
) -> Result<(), Error> {
    loop {
        match poll.poll(events, Some(timeout)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::new(format!("poll failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The echo loop against a throwaway std-thread echo server on loopback,
    //! so the load generator can be checked without the reactor.
    use super::*;
    use crate::cli::{HumanDuration, Size};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// An echo server: one thread per connection, bounded by `max_conns`.
    fn spawn_echo_server(max_conns: usize) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(max_conns) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 700];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            // Echo in two writes so the client sees split replies.
                            Ok(n) => {
                                let half = n / 2;
                                if s.write_all(&buf[..half]).is_err()
                                    || s.write_all(&buf[half..n]).is_err()
                                {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        port
    }

    fn echo_args(port: u16, clients: usize, threads: usize, size: u64) -> LoadEchoArgs {
        LoadEchoArgs {
            common: LoadCommon {
                host: "127.0.0.1".into(),
                port: Some(port),
                clients,
                duration: HumanDuration(Duration::from_millis(300)),
                threads,
                connect_burst: 4,
                json: true,
            },
            size: Size(size),
        }
    }

    #[test]
    fn echo_against_a_thread_server_verifies_everything() {
        let port = spawn_echo_server(8);
        let r = run_echo(&echo_args(port, 8, 2, 3000)).unwrap();
        assert_eq!(r.connected, 8);
        assert_eq!(r.connect_errors, 0);
        assert!(r.messages > 8, "{r:?}");
        assert_eq!(r.verify_errors, 0);
        assert_eq!(r.io_errors, 0);
        assert_eq!(r.incomplete, 0);
        assert_eq!(r.bytes, r.messages * 3000);
        assert_eq!(r.latency_samples, r.messages);
    }

    #[test]
    fn echo_against_a_closed_port_counts_refusals() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let r = run_echo(&echo_args(port, 5, 1, 16)).unwrap();
        assert_eq!(r.connected, 0);
        assert_eq!(r.connect_errors, 5);
        assert_eq!(r.connect_errors_by_cause[0], (ConnectCause::Refused, 5));
        assert_eq!(r.messages, 0);
    }

    /// A chat room: one thread per user, the protocol's handshake and
    /// relay. Every second user is greeted `* welcome back, NAME`, as the
    /// real server does for a remembered IP.
    fn spawn_chat_server(max_conns: usize) -> u16 {
        use std::io::{BufRead, BufReader};
        use std::sync::Mutex;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let room: Arc<Mutex<Vec<(String, std::net::TcpStream)>>> = Arc::default();
        std::thread::spawn(move || {
            for (n, s) in l.incoming().take(max_conns).enumerate() {
                let Ok(mut s) = s else { continue };
                let room = Arc::clone(&room);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    let name = if n % 2 == 1 {
                        let name = format!("old{n}");
                        let _ = writeln!(s, "* welcome back, {name}");
                        name
                    } else {
                        let _ = writeln!(s, "* welcome to echochat; what is your name?");
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let name = line.trim().to_string();
                        let _ = writeln!(s, "* hello, {name}");
                        name
                    };
                    let broadcast = |room: &Mutex<Vec<(String, std::net::TcpStream)>>,
                                     text: &str| {
                        for (other, w) in room.lock().unwrap().iter_mut() {
                            if *other != name {
                                let _ = w.write_all(text.as_bytes());
                            }
                        }
                    };
                    broadcast(&room, &format!("* {name} joined\n"));
                    room.lock()
                        .unwrap()
                        .push((name.clone(), s.try_clone().unwrap()));
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => broadcast(&room, &format!("{name}: {}", line)),
                        }
                    }
                    room.lock().unwrap().retain(|(other, _)| *other != name);
                });
            }
        });
        port
    }

    #[test]
    fn chat_against_a_thread_server_delivers_everything() {
        let port = spawn_chat_server(6);
        let args = LoadChatArgs {
            common: LoadCommon {
                host: "127.0.0.1".into(),
                port: Some(port),
                clients: 6,
                duration: HumanDuration(Duration::from_millis(500)),
                threads: 2,
                connect_burst: 2,
                json: true,
            },
            rate: 20.0,
        };
        let r = run_chat(&args).unwrap();
        assert_eq!(r.connected, 6, "{r:?}");
        assert_eq!(r.connect_errors, 0);
        let c = r.chat.as_ref().unwrap();
        assert!(r.messages >= 6, "{r:?}");
        assert_eq!(c.expected, r.messages * 5);
        assert_eq!(c.delivered, c.expected, "{r:?}");
        assert_eq!(r.verify_errors, 0);
        assert_eq!(r.io_errors, 0);
        assert_eq!(r.latency_samples, c.delivered);
    }
}
