//! The reactor: one thread, one `mio::Poll`, one `Slab` of connections.
//!
//! An event-driven server never waits on one client. It asks the kernel
//! (`epoll` on Linux, through `mio`) "which of my sockets can make progress
//! now?", does exactly that much work on each — accept, read, write — and
//! asks again. Sockets are non-blocking, so a call that would wait returns
//! `WouldBlock` instead, and the loop moves on.
//!
//! [`Reactor::run`] and [`Reactor::turn`] come first in this file and read
//! as the steps of that loop; the state they work on follows. The steps
//! live one per file: `accept.rs` (new connections), `read.rs` (bytes in,
//! fed to the service), `effects.rs` (what the service answered), `flush.rs`
//! (bytes out, and closing), `timers.rs` (deadlines), `save.rs` (handing
//! state to the thread that writes files), `stop.rs` (signals, a
//! graceful stop), `control.rs` (the console and the teacher's commands),
//! `worker.rs` (answers from the
//! password-hashing thread). `conn.rs` is one connection's
//! state. The protocols are not here: a connection's bytes go to its
//! [`Service`] (`service/`), which answers with effects the reactor applies.
//! Starting up — options, logging, binding ports — is the shell's job
//! (`serve/`), which hands this loop its listeners and services.

mod accept;
mod conn;
mod control;
mod effects;
mod flush;
mod read;
mod save;
mod stop;
mod timers;
mod token;
mod udp;
mod watch;
mod worker;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::event::StopReason;
use crate::service::{ConnKey, Effects, Service};
use crate::status::Status;
use crate::status::trace::{Lang, TraceLimiter, TurnTrace};
use conn::{BufPool, Conn};
use control::Console;
use timers::Timers;
use token::Source;

pub use accept::FULL_LINE;
pub use udp::{MAX_UDP, UdpStats};

impl Reactor {
    /// Turns the loop until the server has stopped; returns why.
    ///
    /// # Errors
    /// Only when `poll` itself fails, which no retry would fix.
    pub fn run(&mut self) -> io::Result<StopReason> {
        loop {
            match self.phase {
                RunState::Done(reason) => return Ok(reason),
                RunState::Draining { reason, deadline } => {
                    if self.conns.is_empty() {
                        return Ok(reason);
                    }
                    if self.now >= deadline {
                        self.close_all_now();
                        return Ok(reason);
                    }
                }
                RunState::Running => {}
            }
            self.turn()?;
        }
    }

    /// One round of the loop.
    fn turn(&mut self) -> io::Result<()> {
        let timeout = self.poll_timeout();
        self.wait_for_events(timeout)?;
        crate::event::traffic_tick(self.now);
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            self.dispatch(event.token(), event.is_read_closed() || event.is_error());
        }
        self.events = events;
        self.retry_cut_short_work();
        self.fire_timers();
        self.save_snapshots();
        self.flush_and_close();
        self.tick_services();
        self.end_turn();
        Ok(())
    }

    /// Step 1: sleep until the nearest deadline — or not at all when work
    /// was cut short last turn. With no deadline, sleep until an event.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again_reads.is_empty()
            || !self.again_accepts.is_empty()
            || self.again_console
            || self.udp.has_work()
        {
            return Some(Duration::ZERO);
        }
        let drain_deadline = match self.phase {
            RunState::Draining { deadline, .. } => Some(deadline),
            _ => None,
        };
        let services = self.services.iter().filter_map(|s| s.next_deadline());
        let next = [
            self.timers.next_deadline(),
            drain_deadline,
            self.save_deadline(),
            self.trim_deadline(),
            crate::event::traffic_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(services)
        .min();
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Step 2: write the log lines batched since the last sleep (one
    /// `write(2)`, so `tail -F` sees them now), then `poll`. A signal
    /// arriving while we sleep interrupts the system call (`EINTR`); that
    /// is not an error, just ask again.
    ///
    /// The time `poll` returns is the turn's `now`; how long it slept and
    /// what woke it start the turn's record (`--trace`, the status page).
    fn wait_for_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        crate::logging::flush();
        self.give_back_memory();
        let asleep = Instant::now();
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.now = Instant::now();
        self.turn = TurnTrace {
            turn: self.status.turns.turns + 1,
            slept: self.now.saturating_duration_since(asleep),
            events: u32::try_from(self.events.iter().count()).unwrap_or(u32::MAX),
            ..TurnTrace::default()
        };
        Ok(())
    }

    /// Step 3: act on one readiness event, by what its token names.
    fn dispatch(&mut self, token: Token, read_closed: bool) {
        match token::classify(token) {
            Source::Listener(index) => {
                self.turn.woke_listeners += 1;
                self.accept_ready(index);
            }
            Source::Conn(slot) => {
                self.turn.woke_conns += 1;
                self.conn_ready(slot, read_closed);
            }
            Source::Signals => {
                self.turn.woke_control += 1;
                self.signals_ready();
            }
            Source::Console => {
                self.turn.woke_control += 1;
                self.console_ready();
            }
            Source::Worker => {
                self.turn.woke_control += 1;
                self.worker_ready();
            }
            Source::Udp(index) => {
                self.turn.woke_control += 1;
                self.udp_ready(index);
            }
        }
    }

    /// Work that a budget cut short last turn, or reading that resumed:
    /// edge-triggered readiness will not report it again.
    fn retry_cut_short_work(&mut self) {
        for index in std::mem::take(&mut self.again_accepts) {
            self.accept_ready(index);
        }
        for key in std::mem::take(&mut self.again_reads) {
            if self.live(key).is_some() {
                self.read_conn(key.slot, true);
            }
        }
        if std::mem::take(&mut self.again_console) {
            self.console_ready();
        }
        self.retry_udp();
    }
}

/// The reactor's tunables, chosen by the shell (`serve/`) from the command
/// line.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_clients: usize,
    /// `--max-per-ip`; `None` for no limit.
    pub max_per_ip: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub read_chunk: usize,
    pub max_backlog: usize,
    pub shutdown_grace: Duration,
    /// `--trace`: one console line per turn, in this language; `None` off.
    pub trace: Option<Lang>,
}

/// A bound listening socket and the index (in the services list) of the
/// service its connections belong to.
pub struct Listening {
    pub socket: TcpListener,
    pub service: usize,
}

/// A listener as the loop keeps it.
struct Listener {
    socket: TcpListener,
    service: usize,
    /// In an `accept-error` episode (logged once until accepting works).
    failing: bool,
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RunState {
    Running,
    /// A graceful stop: listeners closed, pending output gets until
    /// `deadline`.
    Draining {
        reason: StopReason,
        deadline: Instant,
    },
    /// Stop now.
    Done(StopReason),
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    /// One entry per connection; the key is the connection's slot and token.
    conns: Slab<Conn>,
    /// Indexed by the `service` field of a `Conn` or `Listener`.
    services: Vec<Box<dyn Service>>,
    /// `None` once closed (at the start of a graceful stop).
    listeners: Vec<Option<Listener>>,
    signals: Signals,
    console: Console,
    config: Config,
    phase: RunState,
    /// The time of the current turn (services are given this, never read
    /// the clock themselves).
    now: Instant,
    next_conn_id: u64,
    timers: Timers,
    /// Effects buffer reused by every service call.
    fx: Effects,
    /// One read buffer for all connections (`--read-chunk` bytes).
    read_buf: Vec<u8>,
    pool: BufPool,
    /// Connections with queued output to write at the end of the turn.
    dirty: Vec<ConnKey>,
    /// Connections marked for closing, closed at the end of the turn.
    closing: Vec<ConnKey>,
    /// Connections whose queue passed `--max-backlog` while a service's
    /// answer was applied; the service hears it once the answer is done
    /// (`effects.rs`).
    backlog_due: Vec<ConnKey>,
    /// Work cut short by a budget (or resumed), picked up next turn.
    again_reads: Vec<ConnKey>,
    again_accepts: Vec<usize>,
    again_console: bool,
    /// Accepting stopped on `EMFILE`/`ENFILE` until a connection closes.
    accept_paused: bool,
    /// The UDP twins (`udp.rs`), added after `new` by `add_udp`.
    udp: udp::UdpTwins,
    /// Open connections per client address, kept only with `--max-per-ip`.
    per_ip: HashMap<IpAddr, u32>,
    /// What the reactor shows about itself (the status page, `/metrics`).
    status: Status,
    /// The current turn's record, filled as the turn goes.
    turn: TurnTrace,
    /// `--trace`: what reaches the console, at most 20 lines a second.
    trace: Option<TraceLimiter>,
    /// The trace lines of a turn, reused.
    trace_out: String,
    /// Services whose snapshots are saved off this thread (`save.rs`).
    savers: Vec<save::Persist>,
    /// No snapshot is taken before this (at most one a second).
    next_save: Instant,
    /// The password-hashing thread, when chat has accounts
    /// (`attach_worker`); its `Waker` is registered as `token::WORKER`.
    worker: Option<crate::auth::worker::Worker>,
    /// Connections flushed since memory was last given back to the OS (a
    /// measure of how much queueing the recent bursts did).
    burst_flushes: usize,
    /// When memory was last given back (at most once a second).
    last_trim: Instant,
}

impl Reactor {
    /// Builds the loop around listeners the shell has bound: registers the
    /// signals first, then the listeners and the console. Returns the
    /// reactor and the address each listener got, in order.
    ///
    /// Signals are caught before this returns, so the shell can announce
    /// "listening on" afterwards knowing that a SIGTERM sent the moment the
    /// line appears is a graceful stop, not death without a `stop` line.
    ///
    /// # Errors
    /// Creating the poll instance or registering with it failed.
    pub fn new(
        config: Config,
        listeners: Vec<Listening>,
        services: Vec<Box<dyn Service>>,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut signals = Signals::new(stop::SIGNALS)?;
        poll.registry()
            .register(&mut signals, token::SIGNALS, Interest::READABLE)?;
        let mut kept = Vec::with_capacity(listeners.len());
        for (index, mut l) in listeners.into_iter().enumerate() {
            poll.registry()
                .register(&mut l.socket, token::listener(index), Interest::READABLE)?;
            kept.push(Some(Listener {
                socket: l.socket,
                service: l.service,
                failing: false,
            }));
        }
        let (console, early_input) = Console::start(poll.registry());
        let names: Vec<&'static str> = services.iter().map(|s| s.name()).collect();
        let status = Status::new(&names, config.max_clients, config.max_backlog);
        let trace = config.trace.map(TraceLimiter::new);
        let mut reactor = Reactor {
            poll,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            services,
            listeners: kept,
            signals,
            console,
            read_buf: vec![0; config.read_chunk],
            config,
            phase: RunState::Running,
            now: Instant::now(),
            next_conn_id: 1,
            timers: Timers::default(),
            fx: Effects::new(),
            pool: BufPool::default(),
            dirty: Vec::new(),
            closing: Vec::new(),
            backlog_due: Vec::new(),
            again_reads: Vec::new(),
            again_accepts: Vec::new(),
            again_console: false,
            accept_paused: false,
            udp: udp::UdpTwins::default(),
            per_ip: HashMap::new(),
            status,
            turn: TurnTrace::default(),
            trace,
            trace_out: String::new(),
            savers: Vec::new(),
            next_save: Instant::now(),
            burst_flushes: 0,
            last_trim: Instant::now(),
            worker: None,
        };
        reactor.handle_console_input(early_input);
        Ok(reactor)
    }

    /// Before sleeping, after a burst (a join storm, a flood): hand the
    /// memory the burst's queues used back to the operating system. Freed
    /// memory otherwise stays in the allocator's pools, and the process
    /// keeps the burst's size long after the clients are idle or gone.
    /// Bounded: only after real queueing work, at most once a second.
    fn give_back_memory(&mut self) {
        let now = Instant::now();
        if self.trim_deadline().is_some_and(|at| at <= now) {
            crate::sys::release_free_memory();
            self.burst_flushes = 0;
            self.last_trim = now;
        }
    }

    /// When memory should next be given back: a second after the last
    /// time, once a burst's worth of queueing happened since.
    fn trim_deadline(&self) -> Option<Instant> {
        const BURST: usize = 10_000;
        (self.burst_flushes >= BURST).then(|| self.last_trim + Duration::from_secs(1))
    }

    /// The address of listener `index`, as bound.
    pub fn listener_addr(&self, index: usize) -> Option<std::net::SocketAddr> {
        self.listeners
            .get(index)?
            .as_ref()?
            .socket
            .local_addr()
            .ok()
    }

    /// The connection behind `key`, if it is still the one the key names.
    fn live(&self, key: ConnKey) -> Option<&Conn> {
        self.conns.get(key.slot).filter(|c| c.key.id == key.id)
    }
}

/// [`Reactor::live`] for a mutable borrow of the slab alone (so the rest of
/// the reactor stays borrowable).
fn live_mut(conns: &mut Slab<Conn>, key: ConnKey) -> Option<&mut Conn> {
    conns.get_mut(key.slot).filter(|c| c.key.id == key.id)
}
