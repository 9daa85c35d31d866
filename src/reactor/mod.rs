//! The reactor: one thread, one `mio::Poll`, one `Slab` of connections.
//!
//! An event-driven server never waits on one client. It asks the kernel
//! (`epoll` on Linux, through `mio`) "which of my sockets can make progress
//! now?", does exactly that much work on each — accept, read, write — and
//! asks again. Sockets are non-blocking, so a call that would wait returns
//! `WouldBlock` instead, and the loop moves on.
//!
//! [`Reactor::turn`] is one round of that loop, and reads as its steps. The
//! protocols are not here: a connection's bytes go to its [`Service`]
//! (`service/`), which answers with effects the reactor applies. Read
//! `conn.rs` for a connection's state, `listen.rs` for port ranges,
//! `timers.rs` for idle timeouts, `control.rs` for signals and the console.

mod conn;
mod control;
mod listen;
mod timers;
mod token;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::cli::{PortRange, ServeArgs};
use crate::event::{self, DisconnectReason, Event, StopReason};
use crate::logging::{self, LogConfig, LogHandle, RotatePolicy};
use crate::service::chat::{ChatConfig, ChatRoom};
use crate::service::echo::EchoService;
use crate::service::{ConnKey, Effect, Effects, Service};
use conn::{BufPool, Conn};
use control::{Console, ConsoleInput};
use timers::Timers;
use token::Source;

/// What a client over `--max-clients` is told before it is closed.
pub const FULL_LINE: &[u8] = b"! server full, try again later\n";

/// Descriptors kept free beyond `--max-clients`: stdio, epoll, the signal
/// pipe, listeners, the log file, the names file being rewritten, and a few
/// refused connections (each needs a descriptor until it is told "full").
/// A burst of refusals larger than that spare meets `EMFILE`, which pauses
/// accepting until the refused sockets are closed at the end of the turn.
const RESERVED_FDS: u64 = 16;
/// Most connections accepted per listener event before the others get a
/// turn (a connect storm must not starve connected clients).
const ACCEPT_BUDGET: usize = 256;
/// Least bytes read from one connection per event before moving on (one
/// busy client must not starve the others); at least one `--read-chunk`.
const READ_BUDGET: usize = 64 * 1024;
/// Largest `--read-chunk` (the read buffer is allocated once) and
/// `--max-line` (a partial line may be buffered per connection).
const MAX_READ_CHUNK: usize = 16 << 20;

/// Why `serve` stopped with an error.
#[derive(Debug)]
pub enum Error {
    Logging(logging::Error),
    Listen(listen::Error),
    Poll(io::Error),
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Logging(e) => e.fmt(f),
            Error::Listen(e) => e.fmt(f),
            Error::Poll(e) => write!(f, "the event loop failed: {e}"),
            Error::Config(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// Runs `echochat serve` until it is stopped (by a signal or `exit` on the
/// console). Returns after `stop` was logged.
///
/// # Errors
/// Bad option values, an unwritable log directory, a range with no free
/// port, or a failing `poll`.
pub fn serve(args: &ServeArgs) -> Result<(), Error> {
    if args.no_echo && args.no_chat {
        return Err(Error::Config(
            "nothing to serve: --no-echo and --no-chat together leave no service; drop one".into(),
        ));
    }
    let read_chunk = args.read_chunk.as_usize();
    if read_chunk == 0 || read_chunk > MAX_READ_CHUNK {
        return Err(Error::Config(format!(
            "--read-chunk {} is out of range; use 1B to 16MiB",
            args.read_chunk
        )));
    }
    let max_line = args.max_line.as_usize();
    if max_line == 0 || max_line > MAX_READ_CHUNK {
        return Err(Error::Config(format!(
            "--max-line {} is out of range; use 1B to 16MiB",
            args.max_line
        )));
    }
    let log = logging::init(&LogConfig {
        dir: args.log_dir.clone(),
        file_name: args.log_file.clone(),
        policy: RotatePolicy {
            max_size: args.log_max_size.bytes(),
            keep: args.log_keep,
            every: args.log_rotate_every.and_then(|d| d.non_zero()),
        },
        file_level: args.log_level.to_filter(),
        console_level: args.effective_console_level().to_filter(),
        explain: args.explain,
        traffic_rate: args.log_traffic_rate,
    })
    .map_err(Error::Logging)?;
    let started = Instant::now();
    event::record(&Event::Start {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
    });
    let max_clients = fit_descriptor_limit(args.max_clients);

    let mut services: Vec<(Box<dyn Service>, PortRange)> = Vec::new();
    if !args.no_echo {
        services.push((Box::new(EchoService::new(&args.exit_word)), args.echo_ports));
    }
    if !args.no_chat {
        let (chat, warnings) = ChatRoom::new(ChatConfig {
            max_line_bytes: args.max_line.as_usize(),
            names_path: args.names_path(),
        });
        for warning in &warnings {
            event::record(warning);
        }
        services.push((Box::new(chat), args.chat_ports));
    }
    let config = Config {
        max_clients,
        idle_timeout: args.idle_timeout.non_zero(),
        read_chunk,
        max_backlog: args.max_backlog.as_usize(),
        shutdown_grace: args.shutdown_grace.0,
    };
    let result = Reactor::new(args, services, config, log.clone())
        .and_then(|mut reactor| reactor.run().map_err(Error::Poll));
    let reason = match &result {
        Ok(reason) => *reason,
        Err(_) => StopReason::Error,
    };
    event::record(&Event::Stop {
        reason,
        uptime: started.elapsed(),
    });
    log.flush();
    result.map(|_| ())
}

/// Compares `--max-clients` with the descriptor limit, raising the soft
/// limit to the hard one first. Every connection is a descriptor, so a
/// limit that does not fit would surface as `EMFILE` at the worst time.
fn fit_descriptor_limit(max_clients: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return max_clients;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    let nofile: u64 = lim.rlim_cur;
    let fits = nofile.saturating_sub(RESERVED_FDS) as usize;
    if max_clients > fits {
        let lowered = fits.max(1);
        event::record(&Event::Limit {
            requested: max_clients,
            max_clients: lowered,
            nofile,
        });
        return lowered;
    }
    max_clients
}

/// The reactor's tunables, taken from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_clients: usize,
    pub idle_timeout: Option<Duration>,
    pub read_chunk: usize,
    pub max_backlog: usize,
    pub shutdown_grace: Duration,
}

/// A listening socket and the service its connections belong to.
struct Listener {
    socket: TcpListener,
    service: usize,
    /// In an `accept-error` episode (logged once until accepting works).
    failing: bool,
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
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
    log: LogHandle,
    phase: Phase,
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
    /// Work cut short by a budget (or resumed): edge-triggered readiness
    /// will not report it again, so the next turn polls without waiting
    /// and picks it up here.
    again_reads: Vec<ConnKey>,
    again_accepts: Vec<usize>,
    again_console: bool,
    /// Accepting stopped on `EMFILE`/`ENFILE` until a connection closes.
    accept_paused: bool,
}

impl Reactor {
    /// Binds every service to the first free port of its range, prints
    /// `NAME listening on ADDR` for each, and sets up signals and the
    /// console.
    ///
    /// # Errors
    /// No free port in a range, or a failure creating the poll instance.
    pub fn new(
        args: &ServeArgs,
        services: Vec<(Box<dyn Service>, PortRange)>,
        config: Config,
        log: LogHandle,
    ) -> Result<Reactor, Error> {
        let poll = Poll::new().map_err(Error::Poll)?;
        // Catch signals before anything is announced: a SIGTERM sent the
        // moment "listening on" appears must be a graceful stop, not the
        // default action (death without a `stop` line).
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1]).map_err(Error::Poll)?;
        poll.registry()
            .register(&mut signals, token::SIGNALS, Interest::READABLE)
            .map_err(Error::Poll)?;
        let mut listeners = Vec::new();
        let mut boxed = Vec::new();
        for (index, (service, range)) in services.into_iter().enumerate() {
            let name = service.name();
            let mut socket = listen::bind_range(name, args.host, range, args.listen_backlog)
                .map_err(Error::Listen)?;
            let addr = socket.local_addr().map_err(Error::Poll)?;
            poll.registry()
                .register(&mut socket, token::listener(index), Interest::READABLE)
                .map_err(Error::Poll)?;
            event::record(&Event::Listen {
                service: name,
                addr,
            });
            // The program's output, not a log line: printed at any level.
            // A closed stdout (`| head`) must not panic the server, as
            // `println!` would: the line is best effort.
            let _ = writeln!(io::stdout(), "{name} listening on {addr}");
            listeners.push(Some(Listener {
                socket,
                service: index,
                failing: false,
            }));
            boxed.push(service);
        }
        let (console, early_input) = Console::start(poll.registry());
        let mut reactor = Reactor {
            poll,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            services: boxed,
            listeners,
            signals,
            console,
            read_buf: vec![0; config.read_chunk],
            config,
            log,
            phase: Phase::Running,
            now: Instant::now(),
            next_conn_id: 1,
            timers: Timers::default(),
            fx: Effects::new(),
            pool: BufPool::default(),
            dirty: Vec::new(),
            closing: Vec::new(),
            again_reads: Vec::new(),
            again_accepts: Vec::new(),
            again_console: false,
            accept_paused: false,
        };
        reactor.handle_console_input(early_input);
        Ok(reactor)
    }

    /// Turns the loop until the server has stopped; returns why.
    ///
    /// # Errors
    /// Only when `poll` itself fails, which no retry would fix.
    pub fn run(&mut self) -> io::Result<StopReason> {
        loop {
            match self.phase {
                Phase::Done(reason) => return Ok(reason),
                Phase::Draining { reason, deadline } => {
                    if self.conns.is_empty() {
                        return Ok(reason);
                    }
                    if self.now >= deadline {
                        self.close_all_now();
                        return Ok(reason);
                    }
                }
                Phase::Running => {}
            }
            self.turn()?;
        }
    }

    /// One round of the loop.
    fn turn(&mut self) -> io::Result<()> {
        let timeout = self.poll_timeout();
        self.wait_for_events(timeout)?;
        self.now = Instant::now();
        event::traffic_tick(self.now);
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            self.dispatch(event.token(), event.is_read_closed() || event.is_error());
        }
        self.events = events;
        self.retry_cut_short_work();
        self.fire_timers();
        self.flush_and_close();
        Ok(())
    }

    /// Step 1: sleep until the nearest deadline — or not at all when work
    /// was cut short last turn. With no deadline, sleep until an event.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again_reads.is_empty() || !self.again_accepts.is_empty() || self.again_console {
            return Some(Duration::ZERO);
        }
        let drain_deadline = match self.phase {
            Phase::Draining { deadline, .. } => Some(deadline),
            _ => None,
        };
        let next = [
            self.timers.next_deadline(),
            drain_deadline,
            event::traffic_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Step 2: write the log lines batched since the last sleep (one
    /// `write(2)`, so `tail -F` sees them now), then `poll`. A signal
    /// arriving while we sleep interrupts the system call (`EINTR`); that
    /// is not an error, just ask again.
    fn wait_for_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.log.flush();
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Step 3: act on one readiness event, by what its token names.
    fn dispatch(&mut self, token: Token, read_closed: bool) {
        match token::classify(token) {
            Source::Listener(index) => self.accept_ready(index),
            Source::Conn(slot) => self.conn_ready(slot, read_closed),
            Source::Signals => self.signals_ready(),
            Source::Console => self.console_ready(),
        }
    }

    /// Work that a budget cut short last turn, or reading that resumed.
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
    }

    // ----- accepting -------------------------------------------------------

    /// Accepts until the listen queue is empty (`WouldBlock`), or the budget
    /// is spent, or descriptors ran out.
    fn accept_ready(&mut self, index: usize) {
        if self.accept_paused {
            // Out of descriptors: leave connections in the listen queue
            // until one of ours closes (see `close_conn`).
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let Some(Some(listener)) = self.listeners.get_mut(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    let service = listener.service;
                    self.admit(stream, peer, service);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The queue is empty: whatever the episode was, it is
                    // over (this is when it ends, not at the first success,
                    // so a burst logs one error and one resume).
                    if std::mem::take(&mut listener.failing) {
                        event::record(&Event::AcceptResume {
                            service: self.services[listener.service].name(),
                        });
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let exhausted = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if !std::mem::replace(&mut listener.failing, true) {
                        event::record(&Event::AcceptError {
                            service: self.services[listener.service].name(),
                            error: e.to_string(),
                        });
                    }
                    if exhausted {
                        // Retrying now would fail the same way, in a busy
                        // loop. Wait for a close to free a descriptor.
                        self.accept_paused = true;
                        return;
                    }
                    // Other errors (e.g. the peer gave up already) concern
                    // one connection only: go on with the queue.
                }
            }
        }
        self.again_accepts.push(index);
    }

    /// Gives a new connection a slot, a token and an id, and tells its
    /// service — or, past `--max-clients`, tells the client and closes it.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, service: usize) {
        // Replies are small and must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        conn::enable_inq(&stream);
        let full = self.conns.len() >= self.config.max_clients;
        let entry = self.conns.vacant_entry();
        let key = ConnKey {
            slot: entry.key(),
            id: self.next_conn_id,
        };
        self.next_conn_id += 1;
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(key.slot), Interest::READABLE)
        {
            event::record(&Event::Warning {
                what: "register",
                error: e.to_string(),
            });
            return;
        }
        let conn = entry.insert(Conn::new(stream, key, service, peer, self.now));
        let name = self.services[service].name();
        event::record(&Event::Accept {
            service: name,
            conn: key.id,
            slot: key.slot,
            peer,
        });
        if full {
            conn.out.push_copy(FULL_LINE, &mut self.pool);
            conn.mark_closing(DisconnectReason::Full);
            self.dirty.push(key);
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            self.timers.schedule(self.now + idle, key);
        }
        self.services[service].on_open(key, peer, self.now, &mut self.fx);
        self.apply_effects();
    }

    // ----- reading ---------------------------------------------------------

    fn conn_ready(&mut self, slot: usize, read_closed: bool) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let key = conn.key;
        if !conn.out.is_empty() {
            // Possibly writable again: try the queued output this turn.
            self.dirty.push(key);
        }
        self.read_conn(slot, read_closed);
    }

    /// Reads until the socket is drained (or the budget is spent), handing
    /// each chunk to the service and applying its effects at once.
    ///
    /// Drained means `WouldBlock` — or, on Linux, the kernel's word that no
    /// byte is left after this read (`TCP_INQ`, see `conn::recv_chunk`), or
    /// a read shorter than asked: the receive queue was then empty, and
    /// data arriving later raises a new edge. The exception is a FIN that
    /// already arrived (`read_closed`): no new edge will come for it, so
    /// read on until `recv` returns 0.
    fn read_conn(&mut self, slot: usize, read_closed: bool) {
        let chunk = self.config.read_chunk;
        let mut budget = READ_BUDGET.max(chunk);
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if !conn.wants_read() {
                return;
            }
            let key = conn.key;
            let service = conn.service;
            match conn::recv_chunk(&mut conn.stream, &mut self.read_buf[..chunk]) {
                Ok((0, _)) => {
                    // recv() == 0: the peer sent FIN. It may still read.
                    conn.peer_closed = true;
                    self.services[service].on_eof(key, self.now, &mut self.fx);
                    self.apply_effects();
                    return;
                }
                Ok((n, queued)) => {
                    conn.note_received(n, self.services[service].name(), self.now);
                    self.services[service].on_recv(
                        key,
                        &self.read_buf[..n],
                        self.now,
                        &mut self.fx,
                    );
                    // Lend the read buffer to the effects, so echo's reply
                    // is written straight from it (taking a Vec is a move).
                    let input = std::mem::take(&mut self.read_buf);
                    self.apply_effects_with_input(&input[..n]);
                    self.read_buf = input;
                    let drained = match queued {
                        Some(left) => left == 0,
                        None => n < chunk && cfg!(target_os = "linux"),
                    };
                    if drained && !read_closed {
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.again_reads.push(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.mark_closing(reason_for(&e));
                    self.closing.push(key);
                    return;
                }
            }
        }
    }

    // ----- effects ---------------------------------------------------------

    /// Applies what the last service call asked for. Effects naming a
    /// connection that is gone (or whose slot now holds another) are
    /// dropped: that is what the `id` in `ConnKey` is for.
    fn apply_effects(&mut self) {
        self.apply_effects_with_input(&[]);
    }

    /// [`Reactor::apply_effects`] after `on_recv`, whose `input` the
    /// service may send back by range (`Effect::SendInput`).
    fn apply_effects_with_input(&mut self, input: &[u8]) {
        let mut fx = std::mem::take(&mut self.fx);
        for effect in fx.drain() {
            match effect {
                Effect::Send { to, bytes } => self.send_bytes(to, bytes),
                Effect::SendInput { to, range } => match input.get(range) {
                    Some(bytes) => self.send_bytes(to, bytes),
                    None => debug_assert!(false, "SendInput outside on_recv"),
                },
                Effect::SendShared { to, bytes } => {
                    if let Some(conn) = live_mut(&mut self.conns, to)
                        && accepts_output(conn)
                    {
                        conn.out.push_shared(bytes);
                        self.dirty.push(to);
                    }
                }
                Effect::Close { to, reason } => {
                    if let Some(conn) = live_mut(&mut self.conns, to) {
                        conn.mark_closing(reason);
                        self.closing.push(to);
                        self.dirty.push(to);
                    }
                }
                Effect::PauseReading(to) => {
                    if let Some(conn) = live_mut(&mut self.conns, to) {
                        conn.reading = false;
                        self.dirty.push(to);
                    }
                }
                Effect::ResumeReading(to) => {
                    if let Some(conn) = live_mut(&mut self.conns, to)
                        && !conn.reading
                    {
                        conn.reading = true;
                        // Data may have waited while we did not read; no
                        // new edge will announce it.
                        self.again_reads.push(to);
                        self.dirty.push(to);
                    }
                }
                Effect::Record(event) => event::record(&event),
            }
        }
        self.fx = fx;
    }

    /// Write first: with nothing queued ahead, hand the bytes to the
    /// kernel now; queue only what it did not take (and then wait for
    /// WRITABLE).
    fn send_bytes(&mut self, to: ConnKey, bytes: &[u8]) {
        let Some(conn) = live_mut(&mut self.conns, to) else {
            return;
        };
        if !accepts_output(conn) {
            return;
        }
        let name = self.services[conn.service].name();
        let sent = if conn.out.is_empty() {
            write_now(conn, bytes, name, self.now)
        } else {
            0
        };
        if conn.closing.is_some_and(|r| !r.flushes_output()) {
            self.closing.push(to);
        } else if sent < bytes.len() {
            conn.out.push_copy(&bytes[sent..], &mut self.pool);
            self.dirty.push(to);
        }
    }

    // ----- timers ----------------------------------------------------------

    /// Step 4: close connections idle for `--idle-timeout`.
    fn fire_timers(&mut self) {
        let Some(idle) = self.config.idle_timeout else {
            return;
        };
        while let Some(key) = self.timers.pop_due(self.now) {
            let Some(conn) = live_mut(&mut self.conns, key) else {
                continue;
            };
            let due = conn.last_active + idle;
            if due <= self.now {
                conn.mark_closing(DisconnectReason::Idle);
                self.closing.push(key);
            } else {
                self.timers.schedule(due, key);
            }
        }
    }

    // ----- writing and closing ---------------------------------------------

    /// Step 5: write queued output, recompute interest, close what was
    /// marked. Closing can queue output for others (chat's "left" notice),
    /// so this repeats until nothing is left to do; each connection closes
    /// once, so it ends.
    fn flush_and_close(&mut self) {
        while !self.dirty.is_empty() || !self.closing.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            for key in dirty.drain(..) {
                self.flush_conn(key);
            }
            if self.dirty.is_empty() {
                self.dirty = dirty; // keep the capacity
            }
            let mut closing = std::mem::take(&mut self.closing);
            for key in closing.drain(..) {
                if self.live(key).is_some_and(Conn::ready_to_close) {
                    self.close_conn(key);
                }
            }
            if self.closing.is_empty() {
                self.closing = closing;
            }
        }
    }

    /// Writes a connection's queued output until it is sent or the kernel's
    /// send buffer is full, then tells the service if the backlog crossed
    /// `--max-backlog`, and updates the poll interest.
    fn flush_conn(&mut self, key: ConnKey) {
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        let service = conn.service;
        while !conn.out.is_empty() {
            match conn.out.write_to(&mut conn.stream, &mut self.pool) {
                Ok(0) => break,
                Ok(n) => conn.note_sent(n, self.services[service].name(), self.now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.out.clear();
                    conn.mark_closing(reason_for(&e));
                    break;
                }
            }
        }
        let unsent = conn.out.len();
        let max = self.config.max_backlog;
        // Report crossing up at once; report draining only at half the
        // limit, so a client near the line does not flap.
        let report = if !conn.over_backlog && unsent > max {
            Some(true)
        } else if conn.over_backlog && unsent <= max / 2 {
            Some(false)
        } else {
            None
        };
        if let Some(over) = report {
            conn.over_backlog = over;
            self.services[service].on_backlog(key, over, &mut self.fx);
            self.apply_effects();
        }
        let Some(conn) = live_mut(&mut self.conns, key) else {
            return;
        };
        let wanted = conn.interest();
        if wanted != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key.slot), wanted)
            {
                Ok(()) => conn.registered = wanted,
                Err(_) => conn.mark_closing(DisconnectReason::Error),
            }
        }
        if conn.ready_to_close() {
            self.closing.push(key);
        }
    }

    /// Closes, deregisters and logs one connection, then tells its service.
    fn close_conn(&mut self, key: ConnKey) {
        if self.live(key).is_none() {
            return;
        }
        let mut conn = self.conns.remove(key.slot);
        let reason = conn.closing.unwrap_or(DisconnectReason::Error);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if reason.flushes_output() {
            discard_unread(&mut conn.stream);
        }
        let service = conn.service;
        event::record(&Event::Disconnect {
            service: self.services[service].name(),
            conn: key.id,
            peer: conn.peer,
            reason,
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
            duration: self.now.duration_since(conn.opened),
        });
        drop(conn); // close(2): the descriptor is free again
        self.services[service].on_close(key, reason, &mut self.fx);
        self.apply_effects();
        if std::mem::take(&mut self.accept_paused) {
            // A descriptor is free: accept what waited in the listen queues.
            self.again_accepts.extend(0..self.listeners.len());
        }
    }

    fn live(&self, key: ConnKey) -> Option<&Conn> {
        self.conns.get(key.slot).filter(|c| c.key.id == key.id)
    }

    // ----- stopping --------------------------------------------------------

    fn signals_ready(&mut self) {
        let mut got = false;
        for signal in self.signals.pending() {
            if signal == SIGUSR1 {
                self.log.reopen();
            } else {
                got = true;
            }
        }
        if got {
            self.request_stop(StopReason::Signal);
        }
    }

    fn console_ready(&mut self) {
        if !self.console.open {
            return;
        }
        let input = self.console.read_ready(self.poll.registry());
        self.handle_console_input(input);
    }

    fn handle_console_input(&mut self, input: ConsoleInput) {
        for line in input.lines {
            if line.trim() == "exit" {
                self.request_stop(StopReason::Console);
            } else if !line.is_empty() {
                for service in &mut self.services {
                    service.on_console_line(&line, &mut self.fx);
                }
                self.apply_effects();
            }
        }
        self.again_console |= input.more;
    }

    /// The first request starts a graceful stop: stop accepting, let each
    /// service say goodbye, give pending output `--shutdown-grace`. A second
    /// request stops at once.
    fn request_stop(&mut self, reason: StopReason) {
        if let Phase::Draining { .. } = self.phase {
            self.close_all_now();
            self.phase = Phase::Done(reason);
            return;
        }
        for listener in self.listeners.iter_mut() {
            if let Some(mut l) = listener.take() {
                let _ = self.poll.registry().deregister(&mut l.socket);
            }
        }
        for service in &mut self.services {
            service.on_shutdown(&mut self.fx);
        }
        self.apply_effects();
        let keys: Vec<ConnKey> = self.conns.iter().map(|(_, c)| c.key).collect();
        for key in keys {
            if let Some(conn) = live_mut(&mut self.conns, key) {
                conn.mark_closing(DisconnectReason::Shutdown);
                self.closing.push(key);
                self.dirty.push(key);
            }
        }
        self.phase = Phase::Draining {
            reason,
            deadline: self.now + self.config.shutdown_grace,
        };
    }

    /// Closes every connection now, sent or not (the grace is over).
    fn close_all_now(&mut self) {
        let keys: Vec<ConnKey> = self.conns.iter().map(|(_, c)| c.key).collect();
        for key in keys {
            if let Some(conn) = live_mut(&mut self.conns, key) {
                conn.mark_closing(DisconnectReason::Shutdown);
                conn.out.clear();
            }
            self.close_conn(key);
        }
        self.log.flush();
    }
}

fn live_mut(conns: &mut Slab<Conn>, key: ConnKey) -> Option<&mut Conn> {
    conns.get_mut(key.slot).filter(|c| c.key.id == key.id)
}

/// Writes `bytes` straight to the socket; returns how many the kernel
/// took. A failed socket is marked for closing (its output is dropped).
fn write_now(conn: &mut Conn, bytes: &[u8], service: &'static str, now: Instant) -> usize {
    loop {
        match conn.stream.write(bytes) {
            Ok(n) => {
                if n > 0 {
                    conn.note_sent(n, service, now);
                }
                return n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                conn.mark_closing(reason_for(&e));
                return 0;
            }
        }
    }
}

/// Output is still accepted for a connection unless it is being dropped.
fn accepts_output(conn: &Conn) -> bool {
    conn.closing.is_none_or(DisconnectReason::flushes_output)
}

/// The disconnect reason a socket error stands for.
fn reason_for(e: &io::Error) -> DisconnectReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => DisconnectReason::Reset,
        _ => DisconnectReason::Error,
    }
}

/// Reads and drops what the peer sent that nobody will read. Closing a
/// socket with unread data makes the kernel send RST instead of FIN, and a
/// RST can destroy replies still on their way to the client.
fn discard_unread(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}
