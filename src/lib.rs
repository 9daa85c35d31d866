//! echochat: an event-driven echo and chat server on one thread, built
//! directly on `mio`, with its clients and a load generator.
//!
//! # A tour: what to read first
//!
//! 1. `reactor/mod.rs` — the loop: one `mio::Poll`, one `Slab` of
//!    connections, and `turn()`, which reads aloud as the steps of an
//!    event-driven server (wait, accept, read, feed the service, write,
//!    close).
//! 2. `service/mod.rs` and `service/echo.rs` — protocols as state machines:
//!    bytes in, effects out, no sockets. `service/chat.rs` is the bigger one.
//! 3. `event.rs` — every lifecycle event, defined once, and `record()`, the
//!    one place that logs them; `logging/` sends the lines to a rotating
//!    file and the console.
//! 4. `codec.rs` — the line decoder shared by chat, its client and the load
//!    generator.
//! 5. `auth/` — chat accounts, and the one other thread: why password
//!    hashing must leave the reactor, and how its answers come back
//!    (`auth/worker.rs`).
//! 6. `client/` and `load/` — the same ideas seen from the client side.
//!
//! `main.rs` only parses the command line and calls into this library, so
//! tests and benchmarks run exactly what users run.

pub mod auth;
pub mod cli;
pub mod client;
pub mod codec;
pub mod event;
pub mod load;
pub mod logging;
pub mod names;
pub mod reactor;
pub mod service;
