//! `cargo bench`: echochat beside reference servers, driven by the same load
//! generator in the same run.
//!
//! The references are built from this bench's own dev-dependencies: a tokio
//! `current_thread` echo server (a lean, idiomatic async server), and a
//! tokio chat server in the style of tokio's `examples/chat.rs` (a queue
//! per peer and a `String` per delivered line). Each server, ours or a
//! reference, runs in a child process (the bench re-executes itself for the
//! references), so its CPU time and memory can be read from `/proc` the same
//! way; the load runs in this process, through
//! `echochat::load::run_to_report`, the function `echochat load` calls.
//!
//! On two cores the client and the server saturate together, so msgs/s
//! alone cannot show a server faster than its peer; the server's CPU time
//! per message can, and it is printed beside msgs/s.
//!
//! Usage: `cargo bench` (all scenarios), or `cargo bench -- NAME...` for
//! some (a scenario runs if its name contains one of the NAMEs; names are
//! printed in the table), and `ROUNDS=3` to alternate more runs per
//! scenario (default 2).
//!
//! Rows that compare echochat with itself (with and without a flooder, a
//! `/nick` storm, logins, the status page open, `--trace`, debug logging)
//! print the second setup's figures under the first, with the ratios.
//!
//! Modules: `scenarios` (the table of rows), `server` (child processes and
//! their `/proc` figures), `drive` (running a side of a row, measuring),
//! `background` (what runs beside the measured load), `idle` (memory per
//! idle connection), `minimal` (the yardstick client), `reference` (the
//! tokio servers and the C UDP echo server), `table` (averaging and
//! printing).

mod background;
mod drive;
mod idle;
mod minimal;
mod reference;
mod scenarios;
mod server;
mod table;

use scenarios::{Note, Scenario, Side};
use server::ServerProc;
use table::Measured;

fn main() {
    if let Ok(kind) = std::env::var(reference::ENV) {
        reference::serve(&kind);
        return;
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let scenarios = scenarios::all();
    let chosen: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| s.name.contains(w.as_str())))
        .collect();
    if chosen.is_empty() {
        eprintln!("no scenario matches {wanted:?}; names are:");
        for s in &scenarios {
            eprintln!("  {}", s.name);
        }
        std::process::exit(2);
    }
    println!(
        "machine: {} cores; rounds per scenario: {rounds}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    table::print_header();
    for s in chosen {
        run_scenario(s, rounds);
    }
}

/// Runs one row (and the side it is compared with), alternating `rounds`
/// times, so that a slow minute of the machine hits both sides alike.
fn run_scenario(s: &Scenario, rounds: usize) {
    let rounds = if s.ours.load.is_idle() || s.other.is_none() {
        1
    } else {
        rounds
    };
    let mut ours_runs = Vec::new();
    let mut other_runs = Vec::new();
    for _ in 0..rounds {
        ours_runs.push(run_side(&s.ours, s.notes));
        if let Some(other) = &s.other {
            other_runs.push(run_side(other, s.notes));
        }
    }
    let ours = Measured::mean(&ours_runs);
    table::print_row(s.name, s.ours.label, &ours, None);
    if let Some(other) = &s.other {
        table::print_row("", other.label, &Measured::mean(&other_runs), Some(&ours));
    }
}

/// A fresh server for each run: no run inherits another's queues, names or
/// allocator state.
fn run_side(side: &Side, notes: &[Note]) -> Measured {
    let server = ServerProc::start(&side.server);
    drive::drive(&server, side, notes)
}
