//! The integration tests: the real `echochat` binary against real sockets
//! on loopback, one module per part of DESIGN.md.
//!
//! They are one test binary, not one per file, so the harness (`common/`)
//! and the dependencies are compiled and linked once. Run one part with
//! `cargo test --test it chat::`, one test with
//! `cargo test --test it -- --exact chat::crlf_clients_work_like_lf_clients`.
//!
//! # Writing a test
//!
//! 1. **Where.** In the module of its part, or in a new `tests/it/NAME.rs`
//!    that starts with a `//!` paragraph and `use crate::common::*;`, plus
//!    `mod NAME;` below.
//! 2. **A server of its own.** `Server::start()` runs echo and chat on port
//!    0 in a temporary log directory; `Server::builder().no_chat()
//!    .args(["--max-clients", "3"]).start()` changes that. It returns once
//!    the listening lines are printed: `server.echo_addr()`,
//!    `server.chat_addr()`, `server.addr("SERVICE")`. Dropping the `Server`
//!    kills it; `server.finish()` instead stops it with SIGTERM and checks
//!    the graceful stop and every log line. A startup error:
//!    `.run_to_exit()`; other commands: `run_bin([...])`.
//! 3. **Real sockets.** `connect(addr)` sets a read timeout, so
//!    `read_line`, `read_exact`, `read_to_eof` and `send_and_finish` fail
//!    instead of hanging. Chat users: `let [mut ann, mut ben] =
//!    room(&server, ["ann", "ben"]);`, then `ann.send("hi")`,
//!    `ben.expect("ann: hi")`.
//! 4. **Wait for a condition, with a deadline; never sleep and hope.** What
//!    the server did is in its log: `server.wait_log("what", |ev| ...)`
//!    returns the first matching line; `server.conn_of(&socket)` and
//!    `server.wait_disconnect(conn)` cover the usual case. Anything else:
//!    `wait_until("what", || condition)`. A failed wait says what never
//!    happened.
//! 5. **Log lines are parsed, strictly.** Every line a test reads goes
//!    through `common::parse_log_line` (via `server.events()`,
//!    `wait_log`, `parse_all`) and comes back as a `LogLine { time, level,
//!    event, fields, text }` with unescaped values: `ev.get("reason")`,
//!    `ev.is("disconnect", "conn", "17")`. A line off DESIGN.md's grammar
//!    fails the test, so every test also checks the log format.
//! 6. **Bounded.** Loops that add load are bounded in count and in time,
//!    and assert something that could fail.

mod common;

mod accounts;
mod browser;
mod chat;
mod class;
mod cli;
mod client;
mod echo;
mod exit_word;
mod framed;
mod hardening;
mod http;
mod lang;
mod limits;
mod load;
mod log;
mod log_files;
mod log_reader;
mod names;
mod ports;
mod stop;
mod telnet;
mod udp;
