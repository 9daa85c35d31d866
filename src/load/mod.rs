//! The load generator `echochat load echo|chat|connect|udp-echo`: many
//! concurrent connections (or UDP sockets) driven by mio event loops, every
//! reply verified, latency in an hdrhistogram, a summary (or one JSON
//! object) at the end.
//!
//! How to read it:
//! 1. `connect.rs` — the preflight (descriptor limit, ephemeral ports,
//!    source addresses) and the non-blocking connect.
//! 2. `worker.rs` — the one event loop every scenario runs on: the connect
//!    ramp, the barrier, the load, the drain; and the [`Scenario`] trait
//!    (on connected, on ready, on load start, next wakeup).
//! 3. `echo.rs` (plain and `--framed`), `chat.rs`, `churn.rs` (`load
//!    connect`), `udp.rs` (`load udp-echo`) — the scenarios: only what is
//!    theirs. `schedule.rs` says when each send of a fixed-rate scenario is
//!    due (open-loop echo, udp-echo, chat, connect `--rate`);
//!    `arrivals.rs` tells in-order, reordered and duplicated datagrams
//!    apart.
//! 4. `stats.rs`, `report.rs`, `progress.rs` — counting, the summary, the
//!    live progress line.
//!
//! A run lasts `--duration` from its start, ramp included (the ramp may
//! take at most half of it; connects still under way then count as
//! `timed_out`), plus at most [`DRAIN`] for replies still in flight.
//!
//! [`run`] prints the summary and sets the exit status; [`run_to_report`]
//! returns the typed [`Report`] without printing anything, so benchmarks
//! call exactly what users run.

mod arrivals;
mod chat;
mod churn;
mod connect;
mod echo;
mod progress;
mod report;
mod schedule;
mod stats;
mod udp;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::ports::{CHAT_PORT, ECHO_PORT, FRAME_PORT};
use crate::cli::{
    LoadChatArgs, LoadCommand, LoadCommon, LoadConnectArgs, LoadEchoArgs, LoadUdpEchoArgs,
};

pub use report::{ChatResult, Latency, OpenLoop, Report, RunInfo, RunShape, UdpResult};
pub use stats::{ConnectCause, Stats};
pub use udp::{MAX_DATAGRAM_BYTES, MIN_DATAGRAM_BYTES};
use worker::{Plan, Scenario, ThreadResult};

/// How long, after the load phase, replies and deliveries still in flight
/// are waited for.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Largest echo message: each connection holds two buffers of this size
/// (what was sent, what came back), so this bounds the memory per client.
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;

/// Why a load run could not start or finish, or why it failed (exit 1).
/// Failed connects alone are not errors; they are counted in the report.
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

/// `echochat load ...`: run the scenario, print the summary (or the JSON
/// object) on stdout.
///
/// # Errors
/// An unresolvable host, more clients than descriptors, a failure to set
/// up an event loop; and, after the summary is printed, a run in which no
/// connection could be made or a reply failed verification
/// ([`Report::check`]).
pub fn run(cmd: &LoadCommand) -> Result<(), Error> {
    let report = execute(cmd, true)?;
    if common(cmd).json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    report.check()
}

/// Run the scenario and return its report, printing nothing (no preflight
/// line, no progress line): what benchmarks call.
///
/// # Errors
/// As [`run`], except that the report is returned whatever it says.
pub fn run_to_report(cmd: &LoadCommand) -> Result<Report, Error> {
    execute(cmd, false)
}

fn common(cmd: &LoadCommand) -> &LoadCommon {
    match cmd {
        LoadCommand::Echo(a) => &a.common,
        LoadCommand::Chat(a) => &a.common,
        LoadCommand::Connect(a) => &a.common,
        LoadCommand::UdpEcho(a) => &a.common,
    }
}

/// `chatty`: print the preflight line, and the progress line on a
/// terminal.
fn execute(cmd: &LoadCommand, chatty: bool) -> Result<Report, Error> {
    match cmd {
        LoadCommand::Echo(args) => run_echo(args, chatty),
        LoadCommand::Chat(args) => run_chat(args, chatty),
        LoadCommand::Connect(args) => run_connect(args, chatty),
        LoadCommand::UdpEcho(args) => run_udp_echo(args, chatty),
    }
}

/// Round trips against the echo service (or, `--framed`, the framed echo
/// service); see `echo.rs`.
fn run_echo(args: &LoadEchoArgs, chatty: bool) -> Result<Report, Error> {
    let size = args.size.as_usize();
    if size == 0 || size as u64 > MAX_MESSAGE_BYTES {
        return Err(Error::new(format!(
            "--size must be between 1 byte and {}MiB",
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    let clients = args.common.clients;
    let rate = args.rate;
    check_rate(rate)?;
    let framed = args.framed;
    let setup = Setup {
        scenario: "echo",
        default_port: if framed { FRAME_PORT } else { ECHO_PORT },
        size: size as u64,
        rate,
        ramp: true,
        framed,
    };
    drive(&args.common, &setup, chatty, |plan| {
        echo::Echo::new(size, framed, rate, clients, plan.clients.clone())
    })
}

/// Datagrams at `--rate` against the udp-echo twin; see `udp.rs`.
fn run_udp_echo(args: &LoadUdpEchoArgs, chatty: bool) -> Result<Report, Error> {
    let size = args.size.as_usize();
    if !(MIN_DATAGRAM_BYTES..=MAX_DATAGRAM_BYTES).contains(&size) {
        return Err(Error::new(format!(
            "--size must be between {MIN_DATAGRAM_BYTES} bytes (the stamp every datagram \
             carries) and {MAX_DATAGRAM_BYTES} bytes (the largest UDP datagram)"
        )));
    }
    let rate = args.rate;
    check_rate(Some(rate))?;
    let clients = args.common.clients;
    let token = chat::run_token();
    let setup = Setup {
        scenario: "udp-echo",
        // udp-echo binds the same port number as TCP echo (DESIGN.md).
        default_port: ECHO_PORT,
        size: size as u64,
        rate: Some(rate),
        ramp: false,
        framed: false,
    };
    drive(&args.common, &setup, chatty, |plan| {
        udp::UdpEcho::new(size, rate, clients, plan.clients.clone(), token)
    })
}

/// Connections opened, verified and closed, again and again; see
/// `churn.rs`.
fn run_connect(args: &LoadConnectArgs, chatty: bool) -> Result<Report, Error> {
    let rate = args.rate;
    check_rate(rate)?;
    if args.exit_word.contains(['\n', '\r']) {
        return Err(Error::new("--exit-word must be one line"));
    }
    let token = chat::run_token();
    let setup = Setup {
        scenario: "connect",
        default_port: ECHO_PORT,
        size: 0,
        rate,
        ramp: false,
        framed: false,
    };
    drive(&args.common, &setup, chatty, |plan| {
        churn::Churn::new(
            plan.thread,
            plan.threads,
            plan.clients.len(),
            rate,
            token,
            &args.exit_word,
        )
    })
}

/// Rates come through clap's parser; callers that build the arguments
/// themselves get the same check.
fn check_rate(rate: Option<f64>) -> Result<(), Error> {
    match rate {
        Some(r) if !(r.is_finite() && r > 0.0) => {
            Err(Error::new("--rate must be a number above 0"))
        }
        _ => Ok(()),
    }
}

/// Chat users sending `--rate` messages per second each; see `chat.rs`.
fn run_chat(args: &LoadChatArgs, chatty: bool) -> Result<Report, Error> {
    let rate = args.rate;
    check_rate(Some(rate))?;
    let token = chat::run_token();
    let clients = args.common.clients;
    let setup = Setup {
        scenario: "chat",
        default_port: CHAT_PORT,
        size: 0,
        rate: Some(rate),
        ramp: true,
        framed: false,
    };
    drive(&args.common, &setup, chatty, |plan| {
        chat::Chat::new(rate, clients, plan.clients.clone(), token)
    })
}

/// What a scenario tells [`drive`] about itself.
struct Setup {
    scenario: &'static str,
    default_port: u16,
    /// For the report: bytes per message (or round trip).
    size: u64,
    /// For the report: the rate asked.
    rate: Option<f64>,
    /// The ramp opens `--clients` connections that the load then drives.
    ramp: bool,
    /// Echo `--framed`.
    framed: bool,
}

/// The frame every scenario shares: validate, preflight, spawn the threads
/// (each builds its scenario with `make`), merge their results.
fn drive<S: Scenario>(
    common: &LoadCommon,
    setup: &Setup,
    chatty: bool,
    make: impl Fn(&Plan) -> S + Sync,
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
    let port = common.port.unwrap_or(setup.default_port);
    let addr = connect::resolve(&common.host, port)?;
    let threads = common.threads.min(common.clients);
    let (pre, target) = connect::preflight(addr, common.clients, threads)?;
    if chatty {
        eprintln!("{}", pre.line());
    }

    let duration = common.duration.0;
    let started = Instant::now();
    let shared = progress::Shared::new(threads, chatty && progress::wanted());
    let bar = progress::start_bar(
        Arc::clone(&shared),
        setup.scenario,
        common.clients,
        duration,
    );
    let plans: Vec<Plan> = (0..threads)
        .map(|t| Plan {
            thread: t,
            threads,
            clients: (t..common.clients).step_by(threads).collect(),
            ramp: setup.ramp,
            burst: (common.connect_burst / threads).max(1),
            started,
            ramp_end: started + duration / 2,
            load_end: started + duration,
        })
        .collect();

    let results: Vec<Result<ThreadResult, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let (target, shared, make) = (&target, &*shared, &make);
                s.spawn(move || {
                    let r = worker::run_thread(make(plan), target, plan, shared);
                    if r.is_err() {
                        // Do not leave the other threads waiting for us at
                        // the barrier or in the drain.
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
    let mut info = RunInfo {
        run: RunShape {
            scenario: setup.scenario,
            target: addr.to_string(),
            clients: common.clients,
            threads,
            size: setup.size,
            framed: setup.framed,
        },
        rate: setup.rate,
        load: Duration::ZERO,
        ramp: Duration::ZERO,
        ramp_cut: false,
        busy: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    for r in results {
        let r = r?;
        stats.merge(&r.stats);
        info.ramp = info.ramp.max(r.ramp);
        info.load = info.load.max(r.load);
        info.busy = info.busy.max(r.busy);
        info.ramp_cut |= r.ramp_cut;
        info.cpu += r.cpu;
    }
    Ok(Report::new(&info, &stats))
}

#[cfg(test)]
mod tests {
    //! The echo loop against a throwaway std-thread echo server on loopback,
    //! so the load generator can be checked without the reactor.
    use super::*;
    use crate::cli::{HumanDuration, LoadUdpEchoArgs, Size};
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
            rate: None,
            framed: false,
        }
    }

    #[test]
    fn echo_against_a_thread_server_verifies_everything() {
        let port = spawn_echo_server(8);
        let r = run_echo(&echo_args(port, 8, 2, 3000), false).unwrap();
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
        let r = run_echo(&echo_args(port, 5, 1, 16), false).unwrap();
        assert_eq!(r.connected, 0);
        assert_eq!(r.connect_errors, 5);
        assert_eq!(r.connect_errors_by_cause[0], (ConnectCause::Refused, 5));
        assert_eq!(r.messages, 0);
    }

    #[test]
    fn connect_without_an_exit_word_closes_from_our_side() {
        // This server knows no exit word: it closes when we send FIN.
        let port = spawn_echo_server(10_000);
        let mut common = echo_args(port, 2, 1, 16).common;
        common.duration = HumanDuration(Duration::from_millis(500));
        let args = LoadConnectArgs {
            common,
            rate: Some(100.0),
            exit_word: String::new(),
        };
        let r = run_connect(&args, false).unwrap();
        assert_eq!(r.run.scenario, "connect");
        assert!((40..=60).contains(&r.connected), "{r:?}");
        assert_eq!(r.messages, r.connected);
        assert_eq!(r.connect_errors, 0, "{r:?}");
        assert_eq!(r.verify_errors, 0, "{r:?}");
        assert_eq!(r.latency_samples, r.connected);
        assert!(r.open_loop.is_some());
        assert!(r.check().is_ok());
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
        let r = run_chat(&args, false).unwrap();
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

    /// A framed echo server: reads each frame whole, then writes back
    /// `reply(frame)` in three pieces (header split) so the client sees
    /// the reply in parts.
    fn spawn_framed_server(reply: fn(Vec<u8>) -> Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(16) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    loop {
                        let mut head = [0u8; 4];
                        if s.read_exact(&mut head).is_err() {
                            break;
                        }
                        let mut frame = head.to_vec();
                        frame.resize(4 + u32::from_be_bytes(head) as usize, 0);
                        if s.read_exact(&mut frame[4..]).is_err() {
                            break;
                        }
                        let out = reply(frame);
                        let (a, rest) = out.split_at(2.min(out.len()));
                        let (b, c) = rest.split_at(rest.len() / 2);
                        if [a, b, c].iter().any(|p| s.write_all(p).is_err()) {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn framed_args(port: u16, size: u64) -> LoadEchoArgs {
        let mut args = echo_args(port, 3, 1, size);
        args.framed = true;
        args
    }

    #[test]
    fn framed_echo_verifies_each_frame() {
        let port = spawn_framed_server(|frame| frame);
        let r = run_echo(&framed_args(port, 1000), false).unwrap();
        assert!(r.run.framed);
        assert_eq!(r.connected, 3);
        assert!(r.messages > 3, "{r:?}");
        assert_eq!(r.verify_errors, 0, "{r:?}");
        assert_eq!(r.io_errors, 0, "{r:?}");
        assert_eq!(r.incomplete, 0, "{r:?}");
        // Payload bytes are verified; headers travel too.
        assert_eq!(r.bytes, r.messages * 1000);
        assert_eq!(r.bytes_received, r.messages * 1004);
        assert!(r.check().is_ok());
    }

    #[test]
    fn framed_replies_with_a_wrong_header_or_payload_fail_verification() {
        // Each reply the same length on the wire, but: a header one longer
        // (refused by the decoder before any payload), one shorter (a frame
        // too short, then the start of another), a payload byte changed.
        let longer: fn(Vec<u8>) -> Vec<u8> = |mut f| {
            f[3] = f[3].wrapping_add(1);
            f
        };
        let shorter: fn(Vec<u8>) -> Vec<u8> = |mut f| {
            f[3] = f[3].wrapping_sub(1);
            f
        };
        let changed: fn(Vec<u8>) -> Vec<u8> = |mut f| {
            let last = f.len() - 1;
            f[last] ^= 1;
            f
        };
        for (what, reply) in [
            ("longer", longer),
            ("shorter", shorter),
            ("changed", changed),
        ] {
            let port = spawn_framed_server(reply);
            let r = run_echo(&framed_args(port, 300), false).unwrap();
            assert!(r.messages > 3, "{what}: {r:?}");
            // Every reply is wrong, and each is still read from the right
            // place: exactly one error per message.
            assert_eq!(r.verify_errors, r.messages, "{what}: {r:?}");
            assert_eq!(r.io_errors, 0, "{what}: {r:?}");
            assert!(r.check().is_err(), "{what}");
        }
    }

    /// What a test UDP echo server does with a sender's `k`-th datagram
    /// (1-based).
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Fate {
        Echo,
        Drop,
        Twice,
        /// Held back, and sent after the next one's reply.
        Hold,
        Corrupt,
    }

    /// Counts of what the test server did, over all senders.
    #[derive(Default, Debug)]
    struct Done {
        received: u64,
        dropped: u64,
        twice: u64,
        reordered: u64,
        corrupted: u64,
        /// Held at the end, never sent.
        held: u64,
    }

    /// A UDP echo server on a thread that deals with each sender's
    /// datagrams as `fate` says; it stops when `done.0` is set.
    fn spawn_udp_server(fate: fn(u64) -> Fate) -> (u16, Arc<std::sync::Mutex<Done>>) {
        use std::collections::HashMap;
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = s.local_addr().unwrap().port();
        let done = Arc::new(std::sync::Mutex::new(Done::default()));
        let counts = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peers: HashMap<std::net::SocketAddr, (u64, Option<Vec<u8>>)> = HashMap::new();
            let mut buf = vec![0u8; 70_000];
            // Bounded: the tests run for about a second.
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    continue;
                };
                let mut d = counts.lock().unwrap();
                d.received += 1;
                let (k, held) = peers.entry(from).or_default();
                *k += 1;
                let mut data = buf[..n].to_vec();
                match fate(*k) {
                    Fate::Echo => {}
                    Fate::Drop => {
                        d.dropped += 1;
                        continue;
                    }
                    Fate::Twice => {
                        d.twice += 1;
                        let _ = s.send_to(&data, from);
                    }
                    Fate::Hold => {
                        d.held += 1;
                        *held = Some(data);
                        continue;
                    }
                    Fate::Corrupt => {
                        d.corrupted += 1;
                        data[n - 1] ^= 1;
                    }
                }
                let _ = s.send_to(&data, from);
                if let Some(late) = held.take() {
                    d.held -= 1;
                    d.reordered += 1;
                    let _ = s.send_to(&late, from);
                }
            }
        });
        (port, done)
    }

    fn udp_args(port: u16, clients: usize, rate: f64) -> LoadUdpEchoArgs {
        LoadUdpEchoArgs {
            common: LoadCommon {
                host: "127.0.0.1".into(),
                port: Some(port),
                clients,
                duration: HumanDuration(Duration::from_millis(800)),
                threads: 2,
                connect_burst: 4,
                json: true,
            },
            size: Size(100),
            rate,
        }
    }

    #[test]
    fn udp_echo_counts_what_the_network_did() {
        let (port, done) = spawn_udp_server(|k| match k % 10 {
            3 => Fate::Drop,
            5 => Fate::Twice,
            7 => Fate::Hold,
            _ => Fate::Echo,
        });
        let r = run_udp_echo(&udp_args(port, 3, 300.0), false).unwrap();
        let d = done.lock().unwrap();
        let u = r.udp.as_ref().unwrap();
        assert_eq!(r.run.scenario, "udp-echo");
        assert_eq!(r.connected, 3, "{r:?}");
        assert!(d.dropped > 0 && d.twice > 0 && d.reordered > 0, "{d:?}");
        // Loopback loses nothing itself: the server saw every datagram.
        assert_eq!(u.sent, d.received, "{r:?} {d:?}");
        assert_eq!(u.lost, d.dropped + d.held, "{r:?} {d:?}");
        assert_eq!(u.duplicated, d.twice, "{r:?} {d:?}");
        assert_eq!(u.reordered, d.reordered, "{r:?} {d:?}");
        assert_eq!(u.received, u.sent - u.lost, "{r:?}");
        assert_eq!(r.messages, u.received);
        assert_eq!(r.latency_samples, u.received);
        assert_eq!(r.verify_errors, 0);
        assert_eq!(r.bytes, u.received * 100);
        assert_eq!(r.served, 3);
        // 300/s asked for 0.8 s.
        assert!((200..=280).contains(&u.sent), "{r:?}");
        assert!(r.check().is_ok());
    }

    #[test]
    fn udp_echo_fails_on_a_bad_reply_and_on_silence() {
        let (port, done) = spawn_udp_server(|k| if k == 4 { Fate::Corrupt } else { Fate::Echo });
        let r = run_udp_echo(&udp_args(port, 2, 200.0), false).unwrap();
        assert_eq!(r.verify_errors, done.lock().unwrap().corrupted, "{r:?}");
        assert_eq!(r.verify_errors, 2, "{r:?}");
        // A corrupted reply is not a received one: it is lost too.
        assert_eq!(r.udp.as_ref().unwrap().lost, 2, "{r:?}");
        assert!(
            r.check()
                .unwrap_err()
                .to_string()
                .starts_with("2 replies failed verification")
        );

        let (port, _) = spawn_udp_server(|_| Fate::Drop);
        let r = run_udp_echo(&udp_args(port, 2, 200.0), false).unwrap();
        let u = r.udp.as_ref().unwrap();
        assert!(u.sent > 0 && u.lost == u.sent && u.received == 0, "{r:?}");
        let err = r.check().unwrap_err().to_string();
        assert!(err.contains("datagrams sent, none came back"), "{err}");
    }

    #[test]
    fn udp_echo_to_a_closed_port_is_refused() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        drop(s);
        let r = run_udp_echo(&udp_args(port, 3, 300.0), false).unwrap();
        assert_eq!(r.connected, 0, "{r:?}");
        assert_eq!(
            r.connect_errors_by_cause[0],
            (ConnectCause::Refused, 3),
            "{r:?}"
        );
        let err = r.check().unwrap_err().to_string();
        assert!(err.contains("ICMP port unreachable"), "{err}");
    }
}
