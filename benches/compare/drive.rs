//! Running `echochat load` in this process against a server child and
//! measuring the server while it runs. The load's numbers come from the
//! typed [`Report`]; the server's CPU and memory from `/proc`.

use std::time::Duration;

use clap::Parser;
use echochat::cli::{Cli, Command};
use echochat::load::Report;

use crate::idle;
use crate::scenarios::Load;
use crate::server::ServerProc;
use crate::table::Measured;

/// Runs the load against a server and measures it.
pub fn drive(server: &ServerProc, load: &Load) -> Measured {
    match load {
        Load::Echo {
            clients,
            size,
            secs,
        } => {
            let port = server.echo.expect("echo address").port();
            let args =
                format!("echo --clients {clients} --size {size} --duration {secs}s --port {port}");
            run_load(server, &args)
        }
        Load::Chat { users, rate, secs } => {
            let port = server.chat.expect("chat address").port();
            let args =
                format!("chat --clients {users} --rate {rate} --duration {secs}s --port {port}");
            run_load(server, &args)
        }
        Load::Connect { clients, secs } => {
            let port = server.echo.expect("echo address").port();
            run_load(
                server,
                &format!("connect --clients {clients} --duration {secs}s --port {port}"),
            )
        }
        Load::Idle { conns, chat } => idle::memory(server, *conns, *chat, false),
        Load::IdleJoined { users } => idle::memory(server, *users, true, true),
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

fn run_load(server: &ServerProc, args: &str) -> Measured {
    let cpu0 = server.cpu_us();
    let rss0 = server.rss_bytes();
    // Sample the server's memory while the load runs, to tell a ramp (the
    // join storm) from growth that goes on (unbounded queues).
    let (report, samples) = std::thread::scope(|s| {
        let runner = s.spawn(|| load(args));
        let mut samples = Vec::new();
        while !runner.is_finished() {
            samples.push(server.rss_bytes());
            std::thread::sleep(Duration::from_millis(200));
        }
        (runner.join().expect("load thread"), samples)
    });
    let cpu = server.cpu_us() - cpu0;
    let rss1 = server.rss_bytes();
    let r = match report {
        Ok(r) => r,
        Err(e) => {
            return Measured {
                note: format!("load failed: {e}"),
                ..Measured::default()
            };
        }
    };
    // Growth across the middle of the run (30% → 80% of the samples):
    // past the join storm of the ramp, before the leave storm at the end.
    let at = |f: f64| samples.get((samples.len() as f64 * f) as usize).copied();
    let steady_growth = match (at(0.3), at(0.8)) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let mut note = Vec::new();
    if (r.connected as usize) < r.clients {
        note.push(format!("connected {}/{}", r.connected, r.clients));
    }
    if r.verify_errors > 0 {
        note.push(format!("verify_errors {}", r.verify_errors));
    }
    if let Some(c) = &r.chat {
        note.push(format!(
            "rss +{:.1} MiB, {:+.1} MiB mid-run; generator {:.0}% of a core, {:.2} µs/line",
            (rss1 - rss0) / 1048576.0,
            steady_growth / 1048576.0,
            r.generator_cpu_pct,
            c.cpu_us_per_line
        ));
    }
    if r.scenario == "connect" {
        note.push(format!(
            "msgs = connects, cpu per connection; {} failed",
            r.connect_errors
        ));
    }
    if r.scenario == "echo" && r.clients >= 10_000 && r.connected as usize == r.clients {
        note.push(format!("{} connected, {} served", r.connected, r.served));
    }
    Measured {
        msgs_per_sec: r.msgs_per_sec,
        mib_per_sec: r.mib_per_sec,
        p50_us: r.latency_us.p50 as f64,
        p99_us: r.latency_us.p99 as f64,
        cpu_us_per_msg: if r.messages > 0 {
            cpu / r.messages as f64
        } else {
            0.0
        },
        extra: r
            .chat
            .as_ref()
            .map(|c| ("delivered".to_string(), c.delivered_fraction)),
        note: note.join(", "),
    }
}
