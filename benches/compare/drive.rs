//! Running one side of a row: start what runs in the background, run the
//! measured load against the server child, and measure the server while it
//! runs. The load's numbers come from the typed [`Report`] (or from the
//! minimal client, `minimal.rs`); the server's CPU,
//! memory and log bytes from `/proc` and its log directory.

use std::time::{Duration, Instant};

use clap::Parser;
use echochat::cli::{Cli, Command};
use echochat::load::Report;

use crate::background::Running;
use crate::scenarios::{Load, Note, Side};
use crate::server::ServerProc;
use crate::table::Measured;
use crate::{idle, minimal};

/// What a load measured, before the server's CPU is divided by `messages`.
pub struct Outcome {
    pub measured: Measured,
    /// Round trips (echo), messages sent (chat), cycles (connect),
    /// datagrams answered (UDP).
    pub messages: u64,
}

/// Runs one side of a row against its server and measures it.
pub fn drive(server: &ServerProc, side: &Side, notes: &[Note]) -> Measured {
    match side.load {
        Load::Idle { conns, chat } => return idle::memory(server, conns, chat, false),
        Load::IdleJoined { users } => return idle::memory(server, users, true, true),
        _ => {}
    }
    // The background outlives the load by its drain (a little over 2 s).
    let background = Running::start(server, &side.background, load_secs(&side.load) + 3);
    let threads0 = server.thread_cpu_us();
    let cpu0 = server.cpu_us();
    let rss0 = server.rss_bytes();
    let log0 = server.log_bytes();
    let started = Instant::now();
    // Sample the server's memory while the load runs, to tell a ramp (the
    // join storm) from growth that goes on (unbounded queues).
    // And the log's size, for its rate past the accepts of the ramp.
    let (outcome, samples, log_samples) = std::thread::scope(|s| {
        let runner = s.spawn(|| run_load(server, &side.load));
        let (mut samples, mut logs) = (Vec::new(), Vec::new());
        while !runner.is_finished() {
            samples.push(server.rss_bytes());
            logs.push((started.elapsed().as_secs_f64(), server.log_bytes()));
            std::thread::sleep(Duration::from_millis(200));
        }
        (runner.join().expect("load thread"), samples, logs)
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = server.cpu_us() - cpu0;
    let log_rate = (server.log_bytes().saturating_sub(log0)) as f64 / wall;
    let rss1 = server.rss_bytes();
    let mut m = outcome.measured;
    m.cpu_us_per_msg = if outcome.messages > 0 {
        cpu / outcome.messages as f64
    } else {
        0.0
    };
    let mut extra = Vec::new();
    if matches!(side.load, Load::Chat { .. }) {
        // Growth across the middle of the run (30% → 80% of the samples):
        // past the join storm of the ramp, before the leave storm at the end.
        let at = |f: f64| samples.get((samples.len() as f64 * f) as usize).copied();
        let steady_growth = match (at(0.3), at(0.8)) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        extra.push(format!(
            "rss +{:.1} MiB, {:+.1} MiB mid-run",
            (rss1 - rss0) / 1048576.0,
            steady_growth / 1048576.0
        ));
    }
    extra.extend(background.stop());
    for note in notes {
        match note {
            Note::LogRate if side_is_ours(side) => {
                extra.push(format!(
                    "log {:.0} B/s steady, {:.0} B/s with accepts and disconnects",
                    steady_rate(&log_samples),
                    log_rate
                ));
            }
            Note::BacklogCuts if side_is_ours(side) => {
                extra.push(format!(
                    "backlog cuts {}",
                    server.log_count("reason=backlog")
                ));
            }
            Note::ThreadCpu => {
                extra.push(thread_cpu(&threads0, &server.thread_cpu_us(), wall));
            }
            Note::PeakRss => {
                let peak = samples.iter().copied().fold(rss1, f64::max);
                extra.push(format!("rss peak {:.1} MiB", peak / 1048576.0));
            }
            _ => {}
        }
    }
    if !m.note.is_empty() {
        extra.insert(0, std::mem::take(&mut m.note));
    }
    m.note = extra.join(", ");
    m
}

/// The CPU each server thread used between two readings, as a share of
/// one core over `wall` seconds (threads of one name summed; a thread
/// started meanwhile counts from 0).
fn thread_cpu(
    before: &[(String, String, f64)],
    after: &[(String, String, f64)],
    wall: f64,
) -> String {
    let mut by_name: Vec<(&str, f64)> = Vec::new();
    for (tid, name, us) in after {
        let was = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0.0, |b| b.2);
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += us - was,
            None => by_name.push((name, us - was)),
        }
    }
    let parts: Vec<String> = by_name
        .iter()
        .map(|(n, us)| format!("{n} {:.0}%", us / 1e4 / wall))
        .collect();
    format!("server threads: {}", parts.join(", "))
}

/// Log bytes per second between 50% and 80% of the samples: past the
/// ramp's accepts (the ramp takes at most half of the run), before the
/// disconnects at the end.
fn steady_rate(samples: &[(f64, u64)]) -> f64 {
    let at = |f: f64| samples.get((samples.len() as f64 * f) as usize).copied();
    match (at(0.5), at(0.8)) {
        (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => b1.saturating_sub(b0) as f64 / (t1 - t0),
        _ => 0.0,
    }
}

fn side_is_ours(side: &Side) -> bool {
    matches!(side.server, crate::scenarios::Server::Echochat { .. })
}

/// How long the measured load runs, in seconds (drain not included).
fn load_secs(load: &Load) -> u64 {
    match *load {
        Load::Echo { secs, .. }
        | Load::Chat { secs, .. }
        | Load::Connect { secs, .. }
        | Load::Framed { secs, .. }
        | Load::Minimal { secs, .. }
        | Load::Udp { secs, .. } => secs,
        Load::Idle { .. } | Load::IdleJoined { .. } => 0,
    }
}

fn run_load(server: &ServerProc, load: &Load) -> Outcome {
    match *load {
        Load::Echo {
            clients,
            size,
            secs,
        } => {
            let port = server.addr("echo").port();
            report(&format!(
                "echo --clients {clients} --size {size} --duration {secs}s --port {port}"
            ))
        }
        Load::Chat { users, rate, secs } => {
            let port = server.addr("chat").port();
            report(&format!(
                "chat --clients {users} --rate {rate} --duration {secs}s --port {port}"
            ))
        }
        Load::Connect { clients, secs } => {
            let port = server.addr("echo").port();
            report(&format!(
                "connect --clients {clients} --duration {secs}s --port {port}"
            ))
        }
        Load::Framed {
            clients,
            size,
            secs,
        } => {
            let port = server.addr("frame").port();
            report(&format!(
                "echo --framed --clients {clients} --size {size} --duration {secs}s --port {port}"
            ))
        }
        Load::Minimal { clients, secs } => minimal::run(server.addr("echo"), clients, secs),
        Load::Udp {
            clients,
            size,
            rate,
            secs,
        } => {
            let port = server.addr("udp-echo").port();
            report(&format!(
                "udp-echo --clients {clients} --size {size} --rate {rate} --duration {secs}s \
                 --port {port}"
            ))
        }
        Load::Idle { .. } | Load::IdleJoined { .. } => unreachable!("memory rows return early"),
    }
}

/// `echochat load ARGS` in-process, exactly as the command line would run
/// it (same parser, same defaults).
pub fn load(args: &str) -> Result<Report, String> {
    let argv = ["echochat", "load"]
        .into_iter()
        .chain(args.split_whitespace());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let Command::Load(cmd) = cli.command else {
        return Err(format!("not a load command: {args}"));
    };
    echochat::load::run_to_report(&cmd).map_err(|e| e.to_string())
}

/// Runs `echochat load ARGS` and turns its report into the row's figures.
fn report(args: &str) -> Outcome {
    let r = match load(args) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                measured: Measured {
                    note: format!("load failed: {e}"),
                    ..Measured::default()
                },
                messages: 0,
            };
        }
    };
    let mut note = Vec::new();
    if (r.connected as usize) < r.run.clients && r.run.scenario != "connect" {
        note.push(format!("connected {}/{}", r.connected, r.run.clients));
    }
    if r.verify_errors > 0 {
        note.push(format!("verify_errors {}", r.verify_errors));
    }
    if let Some(c) = &r.chat {
        note.push(format!(
            "generator {:.0}% of a core, {:.2} µs/line",
            r.generator_cpu_pct, c.cpu_us_per_line
        ));
    }
    if let Some(u) = &r.udp {
        note.push(format!(
            "sent {}, lost {} ({:.2}%, of which our own receive buffers {}), \
             reordered {}, duplicated {}, refused at send {}",
            u.sent, u.lost, u.lost_pct, u.client_drops, u.reordered, u.duplicated, u.send_dropped
        ));
    }
    if r.run.scenario == "connect" {
        note.push(format!(
            "msgs = connects, cpu per connection; {} failed",
            r.connect_errors
        ));
    }
    if r.run.scenario == "echo" && r.run.clients >= 10_000 && r.connected as usize == r.run.clients
    {
        note.push(format!("{} connected, {} served", r.connected, r.served));
    }
    Outcome {
        measured: Measured {
            msgs_per_sec: r.msgs_per_sec,
            mib_per_sec: r.mib_per_sec,
            p50_us: r.latency_us.p50 as f64,
            p99_us: r.latency_us.p99 as f64,
            cpu_us_per_msg: 0.0,
            extra: r
                .chat
                .as_ref()
                .map(|c| ("delivered".to_string(), c.delivered_fraction)),
            note: note.join(", "),
        },
        messages: r.messages,
    }
}
