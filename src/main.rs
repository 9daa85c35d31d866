//! The `echochat` binary: parse the command line, run the command, and turn
//! a failure into one `error:` line on stderr and exit code 1. Everything
//! else lives in the library (`lib.rs` has the tour), so tests and
//! benchmarks call the same code.

use std::process::ExitCode;

use clap::Parser;
use echochat::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => {
            if let Err(usage) = args.check() {
                usage.exit();
            }
            echochat::serve::serve(&args).map_err(Into::into)
        }
        Command::Echo(args) => echochat::client::run_echo(&args).map_err(Into::into),
        Command::Chat(args) => {
            if let Err(usage) = args.check_chat() {
                usage.exit();
            }
            echochat::client::run_chat(&args).map_err(Into::into)
        }
        Command::Load(cmd) => echochat::load::run(&cmd).map_err(Into::into),
        Command::Log(args) => echochat::logread::run(&args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
