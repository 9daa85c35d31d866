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
//! Modules: `scenarios` (the table of rows), `server` (child processes and
//! their `/proc` figures), `drive` (running a load, measuring), `idle`
//! (memory per idle connection), `minimal` (the yardstick client),
//! `reference` (the tokio servers), `table` (averaging and printing).

mod drive;
mod idle;
mod minimal;
mod reference;
mod scenarios;
mod server;
mod table;

use scenarios::{Reference, Scenario};
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

/// Runs one row (and its reference row), alternating `rounds` times.
fn run_scenario(s: &Scenario, rounds: usize) {
    let mut ours_runs = Vec::new();
    let mut other_runs = Vec::new();
    let other_label = match (&s.reference, &s.alt) {
        (Some(r), _) => Some(r.label().to_string()),
        (None, Some((label, _))) => Some(label.to_string()),
        (None, None) => None,
    };
    let rounds = if s.load.is_idle() || other_label.is_none() {
        1
    } else {
        rounds
    };
    for _ in 0..rounds {
        let server = ServerProc::echochat(&s.ours);
        ours_runs.push(drive::drive(&server, &s.load));
        drop(server);
        match (s.reference, &s.alt) {
            (Some(Reference::MinimalClient), _) => {
                let server = ServerProc::echochat(&s.ours);
                other_runs.push(minimal::run(&server, &s.load));
            }
            (Some(reference), _) => {
                let server = ServerProc::reference(reference);
                other_runs.push(drive::drive(&server, &s.load));
            }
            (None, Some((_, alt))) => {
                let server = ServerProc::echochat(alt);
                other_runs.push(drive::drive(&server, &s.load));
            }
            (None, None) => {}
        }
    }
    let ours = Measured::mean(&ours_runs);
    let other = (!other_runs.is_empty()).then(|| Measured::mean(&other_runs));
    let ours_label = match s.reference {
        Some(Reference::MinimalClient) => "echochat load",
        _ => "echochat",
    };
    table::print_row(s.name, ours_label, &ours, None);
    if let (Some(label), Some(other)) = (other_label, other) {
        table::print_row("", &label, &other, Some(&ours));
    }
}
