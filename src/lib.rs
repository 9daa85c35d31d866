//! echochat: an event-driven echo and chat server on one thread, built
//! directly on `mio`, with its clients and a load generator.
//!
//! # A tour: what to read first
//!
//! 1. `reactor/mod.rs` — the loop: one `mio::Poll`, one `Slab` of
//!    connections. `run()` and `turn()` come first and read aloud as the
//!    steps of an event-driven server; each step has its own file
//!    (`accept.rs`, `read.rs`, `effects.rs`, `flush.rs`, `timers.rs`,
//!    `stop.rs`), and `conn.rs` is one connection's state. `udp.rs` adds
//!    the UDP twins: datagram sockets in the same `Poll`, no connections.
//! 2. `service/mod.rs` and `service/echo.rs` — protocols as state machines:
//!    bytes in, effects out, no sockets. `service/chat.rs` is the bigger one
//!    (`chat/udp.rs`: the same room over UDP); `service/frame.rs` is echo
//!    with a length header per message.
//! 3. `serve/` — the shell around the loop: options, logging, the
//!    descriptor limit, binding port ranges, announcing, stopping. The
//!    reactor never sees the command line.
//! 4. `event.rs` — every lifecycle event, defined once, and `record()`, the
//!    one place that logs them (with the traffic cap, `event/traffic.rs`);
//!    `logging/` sends the lines to a rotating file and the console, and
//!    `logread/` (`echochat log`) reads them back.
//! 5. `codec.rs` — the line decoder shared by chat, its client and the load
//!    generator; `telnet.rs` — what a `telnet` client mixes into what its
//!    user types, and the chat's answers; `frame.rs` — length-prefixed
//!    messages (encode, and decoders that say "need more bytes").
//! 6. `sys.rs` — the few raw system calls (stdin readiness, the descriptor
//!    limit, socket options), each written once.
//! 7. `names.rs` and `text.rs` — which names and which characters may
//!    reach other users (Unicode's own security advice, UTS #39);
//!    `names/store.rs` keeps names by IP in memory, and `persist.rs` saves
//!    such state on a thread of its own, so no client makes the loop wait
//!    on the disk.
//! 8. `auth/` — chat accounts, and the one other thread: why password
//!    hashing must leave the reactor, and how its answers come back
//!    (`auth/worker.rs`).
//! 9. `client/` and `load/` — the same ideas seen from the client side.
//! 10. `lang/` — `--lang`: what the program says to people (`--explain`,
//!     `--trace`, the clients' messages) in English, Ukrainian or Russian.
//!
//! `main.rs` only parses the command line and calls into this library, so
//! tests and benchmarks run exactly what users run.

pub mod auth;
pub mod cli;
pub mod client;
pub mod codec;
pub mod event;
pub mod frame;
pub mod lang;
pub mod load;
pub mod logfmt;
pub mod logging;
pub mod logread;
pub mod metrics;
pub mod names;
pub mod persist;
pub mod reactor;
pub mod serve;
pub mod service;
pub mod status;
pub mod sys;
pub mod telnet;
pub mod text;
