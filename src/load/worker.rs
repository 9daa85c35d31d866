//! The one event loop every load scenario runs on, the connect ramp, and the
//! small [`Scenario`] trait through which echo, chat and connect differ.
//!
//! A thread's run has four phases, the same for every scenario:
//! 1. **Ramp**: open this thread's connections, at most `burst` connects
//!    (and handshakes) in flight at once. A connect that does not finish
//!    within [`CONNECT_TIMEOUT`], or a session that does not start within
//!    [`HANDSHAKE_TIMEOUT`], fails as `timed_out`; so does everything still
//!    unconnected when the ramp's share of `--duration` runs out.
//! 2. **Wait** for the other threads (a barrier), so the load starts at
//!    once everywhere.
//! 3. **Load** until the run's fixed end: the scenario sends (closed loop:
//!    when a reply came back; open loop: when the schedule says).
//! 4. **Drain**: at most [`DRAIN`] for what is still under way.
//!
//! The loop owns the sockets, in a table of [`Slot`]s indexed by mio token;
//! a scenario keeps its per-connection state in `Slot::conn` and its
//! thread-wide state in itself. The loop calls the scenario when a connect
//! finished ([`Scenario::on_connected`]), when a socket is ready
//! ([`Scenario::on_ready`]), when the load starts, and at the scenario's
//! next wakeup; the scenario calls back into [`Core`] to say a session is
//! up, answered, ended, or closed — and the core does the counting, so a
//! failure is classified the same way in every scenario.
//!
//! Adding a scenario is a new `Scenario` impl and a line in `mod.rs`. A
//! datagram scenario (`udp.rs`) has no connect and no ramp: it opens its
//! own sockets when the load starts and hands each to the core with
//! [`Core::add_up`], so the counting, the schedule and the drain stay the
//! same. Read `echo.rs` next for the simplest scenario.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token};

use super::connect::{self, Target};
use super::progress::{self, Shared};
use super::stats::{ConnectCause, Stats};
use super::{DRAIN, Error};

/// How long a TCP connect may take before it counts as timed out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a session may take to start after the TCP connect (chat's name
/// handshake, connect's round trip and close).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How the server turns a connection down when it is at `--max-clients`
/// (DESIGN.md: `! server full, try again later`).
const FULL_NOTICE: &[u8] = b"! server full";
/// A thread with nothing due still looks around this often (the barrier,
/// the drain's shared counters).
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often the barrier and the drain look at the other threads.
const SHARED_POLL: Duration = Duration::from_millis(2);

/// One thread's share of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This thread's index, `0..threads`.
    pub thread: usize,
    pub threads: usize,
    /// Global client indices, `thread, thread + T, thread + 2T, ...`.
    pub clients: Vec<usize>,
    /// The ramp opens `clients` (echo, chat); otherwise the scenario opens
    /// connections itself during the load (connect).
    pub ramp: bool,
    /// This thread's share of `--connect-burst`.
    pub burst: usize,
    /// When the run started (the ramp is measured from here).
    pub started: Instant,
    /// Connects still under way now fail as `timed_out`.
    pub ramp_end: Instant,
    /// The load phase ends here whatever the ramp took: `--duration` is
    /// kept.
    pub load_end: Instant,
}

/// What one thread hands back.
#[derive(Debug, Default)]
pub struct ThreadResult {
    pub stats: Stats,
    /// Time from the run's start until this thread's connections were up.
    pub ramp: Duration,
    /// The ramp ran out of time and gave up on some connections.
    pub ramp_cut: bool,
    /// Length of this thread's load phase.
    pub load: Duration,
    /// Load phase plus drain: the wall time `cpu` was spent in.
    pub busy: Duration,
    /// This thread's CPU time over `busy`.
    pub cpu: Duration,
}

/// What an event said about a socket.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The event also reported FIN or an error, which, unlike new bytes,
    /// raises no further edge once this one is consumed: read on to find it.
    pub hup: bool,
}

/// Where a slot's connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// No connection (not started, or closed).
    Free,
    /// TCP connect in flight.
    Connecting,
    /// TCP connected; the session has not started yet (chat's name
    /// handshake, connect's round trip).
    Handshake,
    /// The session is up and counted in `connected`.
    Up,
    /// At the very end: FIN sent, reading (and discarding) until the
    /// server's.
    Leaving,
}

/// How a connection ended, as the scenario saw it.
#[derive(Debug)]
pub enum Why {
    /// The server closed (read returned 0, or a write returned 0).
    Eof,
    Error(io::Error),
    /// Our own deadline passed.
    TimedOut,
}

/// One connection of the thread, indexed by its mio token.
pub struct Slot<C> {
    /// Global client index: seeds message content, names, source address.
    pub client: usize,
    pub stream: Option<TcpStream>,
    pub state: SlotState,
    /// Bumped at every open, so a deadline of an earlier connection in a
    /// reused slot is recognised as stale.
    generation: u32,
    /// The session got at least one verified answer: a close after this
    /// is an io error, a close before it a failed session.
    answered: bool,
    /// Whether the server's first bytes spell `! server full`; feed it what
    /// arrives before the first answer.
    pub full: FullWatch,
    /// The scenario's own state for this connection.
    pub conn: C,
}

impl<C> Slot<C> {
    fn new(client: usize, conn: C) -> Slot<C> {
        Slot {
            client,
            stream: None,
            state: SlotState::Free,
            generation: 0,
            answered: false,
            full: FullWatch::default(),
            conn,
        }
    }

    /// Whether the session has had a verified answer.
    pub fn is_answered(&self) -> bool {
        self.answered
    }
}

/// Recognises the server's `! server full` notice at the start of what it
/// sent, however the bytes were split across reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct FullWatch {
    /// Bytes of [`FULL_NOTICE`] matched so far; `u8::MAX` once something
    /// else came.
    matched: u8,
}

impl FullWatch {
    /// The next bytes the server sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        let m = usize::from(self.matched);
        if m >= FULL_NOTICE.len() {
            return;
        }
        let n = bytes.len().min(FULL_NOTICE.len() - m);
        self.matched = if bytes[..n] == FULL_NOTICE[m..m + n] {
            (m + n) as u8 // at most FULL_NOTICE.len(), well below 255
        } else {
            u8::MAX
        };
    }

    pub fn said_full(&self) -> bool {
        usize::from(self.matched) == FULL_NOTICE.len()
    }

    /// Everything fed so far is (the start of) the notice.
    pub fn may_be_full(&self) -> bool {
        self.matched > 0 && usize::from(self.matched) <= FULL_NOTICE.len()
    }
}

/// What a scenario adds to the loop. Every method gets the [`Core`] to
/// read and write its sockets and to report what happened.
pub trait Scenario {
    /// Per-connection state, in [`Slot::conn`].
    type Conn;

    /// State for a new connection of global client `client`.
    fn new_conn(&mut self, client: usize) -> Self::Conn;

    /// Slot `i`'s TCP connect finished (its state is `Handshake`). Call
    /// [`Core::session_up`] when the session counts as connected.
    fn on_connected(&mut self, core: &mut Core<'_, Self::Conn>, i: usize, ready: Ready);

    /// Slot `i` (in `Handshake` or `Up`) is readable or writable.
    fn on_ready(&mut self, core: &mut Core<'_, Self::Conn>, i: usize, ready: Ready);

    /// Every thread is ready: the load phase starts at `now`.
    fn on_load_start(&mut self, core: &mut Core<'_, Self::Conn>, now: Instant);

    /// When the scenario next wants [`on_wakeup`](Scenario::on_wakeup)
    /// during the load (the next send of a schedule); `None`: only events.
    fn next_wakeup(&self, _core: &Core<'_, Self::Conn>) -> Option<Instant> {
        None
    }

    /// The wakeup time has come (`now` is at or past it).
    fn on_wakeup(&mut self, _core: &mut Core<'_, Self::Conn>, _now: Instant) {}

    /// Nothing this thread waits for is under way any more: the drain may
    /// end early.
    fn drained(&self, core: &Core<'_, Self::Conn>) -> bool;

    /// After the drain: final counts into `core.stats`, a polite goodbye.
    ///
    /// # Errors
    /// The poll failed.
    fn finish(
        &mut self,
        _core: &mut Core<'_, Self::Conn>,
        _events: &mut Events,
    ) -> Result<(), Error> {
        Ok(())
    }
}

/// Counter values already added to the shared ones.
#[derive(Debug, Default)]
struct Published {
    messages: u64,
    delivered: u64,
    errors: u64,
}

/// The thread's sockets, counters and connect bookkeeping: what every
/// scenario shares.
pub struct Core<'a, C> {
    pub target: &'a Target,
    pub shared: &'a Shared,
    pub stats: Stats,
    pub slots: Vec<Slot<C>>,
    /// Slots in `Connecting` or `Handshake`.
    pub in_flight: usize,
    poll: Poll,
    /// Slots free for reuse by [`Core::open_new`].
    free: Vec<usize>,
    /// Slots freed during this batch of events: an event later in the same
    /// batch may still name the old connection, so they are reused only
    /// after it.
    released: Vec<usize>,
    /// (deadline, slot, generation) of connects in flight, in deadline
    /// order: every entry is its start plus the same timeout.
    connect_deadlines: VecDeque<(Instant, usize, u32)>,
    /// The same for handshakes.
    handshake_deadlines: VecDeque<(Instant, usize, u32)>,
    loading: bool,
    load_end: Instant,
    thread: usize,
    published: Published,
    next_latency_publish: Instant,
}

impl<'a, C> Core<'a, C> {
    fn new(
        target: &'a Target,
        shared: &'a Shared,
        plan: &Plan,
        mut new_conn: impl FnMut(usize) -> C,
    ) -> Result<Self, Error> {
        let poll =
            Poll::new().map_err(|e| Error::new(format!("cannot create a poll instance: {e}")))?;
        let ramp_clients = if plan.ramp { &plan.clients[..] } else { &[] };
        let slots = ramp_clients
            .iter()
            .map(|&client| Slot::new(client, new_conn(client)))
            .collect();
        Ok(Core {
            target,
            shared,
            stats: Stats::new(),
            slots,
            in_flight: 0,
            poll,
            free: Vec::new(),
            released: Vec::new(),
            connect_deadlines: VecDeque::new(),
            handshake_deadlines: VecDeque::new(),
            loading: false,
            load_end: plan.load_end,
            thread: plan.thread,
            published: Published::default(),
            next_latency_publish: Instant::now(),
        })
    }

    /// The load phase is on at `now`: new messages may be sent.
    pub fn loading(&self, now: Instant) -> bool {
        self.loading && now < self.load_end
    }

    /// When the load phase ends (sends due after it are never made).
    pub fn load_end(&self) -> Instant {
        self.load_end
    }

    /// Slots holding a connection (any state but `Free`).
    pub fn open_slots(&self) -> usize {
        self.slots.len() - self.free.len() - self.released.len()
    }

    /// Start the connect of slot `i`, whose `client` is set. A connect that
    /// fails at once is counted and leaves the slot free.
    fn open(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        slot.generation = slot.generation.wrapping_add(1);
        slot.answered = false;
        slot.full = FullWatch::default();
        match connect::start_registered(self.target, slot.client, self.poll.registry(), Token(i)) {
            Ok(stream) => {
                slot.stream = Some(stream);
                slot.state = SlotState::Connecting;
                self.connect_deadlines
                    .push_back((now + CONNECT_TIMEOUT, i, slot.generation));
                self.in_flight += 1;
            }
            Err(cause) => {
                self.released.push(i);
                self.count_failure(cause);
            }
        }
    }

    /// Open a connection for `client` in a fresh (or reused) slot; `None`
    /// when the connect failed at once (it is counted).
    pub fn open_new(&mut self, client: usize, conn: C, now: Instant) -> Option<usize> {
        let i = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i];
                slot.client = client;
                slot.conn = conn;
                i
            }
            None => {
                self.slots.push(Slot::new(client, conn));
                self.slots.len() - 1
            }
        };
        self.open(i, now);
        (self.slots[i].state == SlotState::Connecting).then_some(i)
    }

    /// The poll's registry: a datagram scenario registers its own sockets
    /// here under `Token(i)` for the slot `i` that [`Core::add_up`] gives.
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// The index the next [`Core::add_up`] or [`Core::add_failed`] slot
    /// will have (its token).
    pub fn next_slot(&self) -> usize {
        self.slots.len()
    }

    /// A session with no TCP connect: a datagram scenario's socket, opened
    /// and registered by the scenario (which keeps it in `conn`), is up at
    /// once and counted in `connected`. Slots are appended, never reused,
    /// so slot `i` is the thread's `i`-th client.
    pub fn add_up(&mut self, client: usize, conn: C) -> usize {
        let mut slot = Slot::new(client, conn);
        slot.state = SlotState::Up;
        self.slots.push(slot);
        self.stats.connected += 1;
        Shared::add(&self.shared.connected, 1);
        self.slots.len() - 1
    }

    /// The datagram scenario's socket could not be opened: a free slot, so
    /// that slot indices still follow the thread's clients, and a failure
    /// counted by `cause`.
    pub fn add_failed(&mut self, client: usize, conn: C, cause: ConnectCause) -> usize {
        self.slots.push(Slot::new(client, conn));
        self.count_failure(cause);
        self.slots.len() - 1
    }

    fn count_failure(&mut self, cause: ConnectCause) {
        self.stats.connect_failed(cause);
        Shared::add(&self.shared.failed, 1);
    }

    /// A WRITABLE (or error) event on a connecting slot: `true` when the
    /// connect finished and the slot moved to `Handshake`.
    fn finish_connect(&mut self, i: usize, now: Instant) -> bool {
        let Some(stream) = self.slots[i].stream.as_ref() else {
            return false;
        };
        match connect::finish(stream) {
            Ok(false) => false,
            Ok(true) => {
                let slot = &mut self.slots[i];
                slot.state = SlotState::Handshake;
                self.handshake_deadlines
                    .push_back((now + HANDSHAKE_TIMEOUT, i, slot.generation));
                true
            }
            Err(cause) => {
                self.drop_slot(i);
                self.in_flight -= 1;
                self.count_failure(cause);
                false
            }
        }
    }

    /// Slot `i`'s session started: it counts as connected.
    pub fn session_up(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.state == SlotState::Handshake {
            slot.state = SlotState::Up;
            self.in_flight -= 1;
            self.stats.connected += 1;
            Shared::add(&self.shared.connected, 1);
        }
    }

    /// Slot `i` got a verified answer: a close from now on is an io error,
    /// not a session the server turned down.
    pub fn answered(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.answered {
            slot.answered = true;
            self.stats.served += 1;
        }
    }

    /// Close slot `i` for `why`. Before its session started, or before its
    /// first verified answer, that is a failed connect (by cause: `full`
    /// if the server said so); after, an io error.
    pub fn close(&mut self, i: usize, why: Why) {
        let slot = &self.slots[i];
        let state = slot.state;
        let cause = if slot.full.said_full() {
            ConnectCause::Full
        } else {
            match &why {
                Why::Eof => ConnectCause::Closed,
                Why::Error(e) => ConnectCause::of(e),
                Why::TimedOut => ConnectCause::TimedOut,
            }
        };
        let answered = slot.answered;
        self.drop_slot(i);
        match state {
            SlotState::Free | SlotState::Leaving => {}
            SlotState::Connecting | SlotState::Handshake => {
                self.in_flight -= 1;
                self.count_failure(cause);
            }
            SlotState::Up if !answered => {
                self.stats.connected -= 1;
                self.shared.connected.fetch_sub(1, Ordering::Relaxed);
                self.count_failure(cause);
            }
            SlotState::Up => self.stats.io_errors += 1,
        }
    }

    /// Slot `i`'s session ended as planned (connect's cycle): no counting.
    pub fn end(&mut self, i: usize) {
        if self.slots[i].state == SlotState::Handshake {
            self.in_flight -= 1;
        }
        self.drop_slot(i);
    }

    fn drop_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.state != SlotState::Free {
            // Dropping the stream closes the descriptor, which also removes
            // it from the epoll set.
            slot.stream = None;
            slot.state = SlotState::Free;
            self.released.push(i);
        }
    }

    /// Fail connects and handshakes still in flight at their deadline.
    fn expire(&mut self, now: Instant) {
        for handshake in [false, true] {
            loop {
                let queue = if handshake {
                    &mut self.handshake_deadlines
                } else {
                    &mut self.connect_deadlines
                };
                let Some(&(deadline, i, generation)) = queue.front() else {
                    break;
                };
                if deadline > now {
                    break;
                }
                queue.pop_front();
                let slot = &self.slots[i];
                let want = if handshake {
                    SlotState::Handshake
                } else {
                    SlotState::Connecting
                };
                // Stale if that connect already moved on.
                if slot.generation == generation && slot.state == want {
                    self.close(i, Why::TimedOut);
                }
            }
        }
    }

    /// The earliest connect or handshake deadline (possibly stale: waking
    /// early for one is harmless).
    fn next_deadline(&self) -> Option<Instant> {
        [&self.connect_deadlines, &self.handshake_deadlines]
            .iter()
            .filter_map(|q| q.front().map(|e| e.0))
            .min()
    }

    /// The ramp ran out of time: connects under way and those never started
    /// fail as `timed_out`.
    fn cut_ramp(&mut self, next_start: usize) {
        for i in 0..next_start.min(self.slots.len()) {
            if matches!(
                self.slots[i].state,
                SlotState::Connecting | SlotState::Handshake
            ) {
                self.close(i, Why::TimedOut);
            }
        }
        for _ in next_start..self.slots.len() {
            self.count_failure(ConnectCause::TimedOut);
        }
    }

    /// End of a batch of events: freed slots become reusable, and the
    /// counters the progress line and the other threads read are published.
    fn after_batch(&mut self, now: Instant) {
        self.free.append(&mut self.released);
        self.publish();
        if self.shared.live && now >= self.next_latency_publish {
            self.shared
                .publish_latency(self.thread, &self.stats.latency_us);
            self.next_latency_publish = now + progress::REFRESH;
        }
    }

    fn publish(&mut self) {
        let s = &self.stats;
        let p = &mut self.published;
        let errors = s.verify_errors + s.io_errors;
        Shared::add(&self.shared.messages, s.messages - p.messages);
        Shared::add(&self.shared.delivered, s.delivered - p.delivered);
        Shared::add(&self.shared.errors, errors.saturating_sub(p.errors));
        p.messages = s.messages;
        p.delivered = s.delivered;
        p.errors = errors;
    }

    /// Leave politely: send FIN on every session that is up and read (and
    /// discard) until the server's, bounded by `timeout`. Closing a socket
    /// with unread bytes in its receive queue makes the kernel send RST,
    /// and the server would log the client as `reason=reset`.
    ///
    /// # Errors
    /// The poll failed.
    pub fn leave(&mut self, events: &mut Events, timeout: Duration) -> Result<(), Error> {
        let mut leaving = 0;
        for slot in &mut self.slots {
            if slot.state == SlotState::Up
                && let Some(stream) = slot.stream.as_ref()
                && stream.shutdown(std::net::Shutdown::Write).is_ok()
            {
                slot.state = SlotState::Leaving;
                leaving += 1;
            }
        }
        let mut scratch = vec![0u8; 16 * 1024];
        let deadline = Instant::now() + timeout;
        while leaving > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            poll_once(&mut self.poll, events, deadline - now)?;
            for ev in events.iter() {
                let Some(slot) = self.slots.get_mut(ev.token().0) else {
                    continue;
                };
                if slot.state == SlotState::Leaving
                    && drain_to_eof(slot.stream.as_mut(), &mut scratch)
                {
                    slot.stream = None;
                    slot.state = SlotState::Free;
                    leaving -= 1;
                }
            }
        }
        Ok(())
    }
}

/// Write as much of `bytes` as the socket takes now: the count written
/// (short at `WouldBlock`), or why the connection is over.
pub fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> Result<usize, Why> {
    use std::io::Write;
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(Why::Eof),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Why::Error(e)),
        }
    }
    Ok(done)
}

/// Read and discard until `WouldBlock`; true at EOF or on an error.
fn drain_to_eof(stream: Option<&mut TcpStream>, scratch: &mut [u8]) -> bool {
    let Some(stream) = stream else { return true };
    loop {
        match stream.read(scratch) {
            Ok(0) => return true,
            // Not lean on purpose: FIN may sit behind these bytes and would
            // raise no new edge.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// One poll, retried on `EINTR` (a signal is not an error).
fn poll_once(poll: &mut Poll, events: &mut Events, timeout: Duration) -> Result<(), Error> {
    loop {
        match poll.poll(events, Some(timeout)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::new(format!("poll failed: {e}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ramp,
    WaitOthers,
    Load,
    Drain,
}

/// Run one thread's share of the run with `scenario`.
///
/// # Errors
/// The poll instance could not be created or polled.
pub fn run_thread<S: Scenario>(
    mut scenario: S,
    target: &Target,
    plan: &Plan,
    shared: &Shared,
) -> Result<ThreadResult, Error> {
    let mut core = Core::new(target, shared, plan, |client| scenario.new_conn(client))?;
    let mut events = Events::with_capacity(1024);
    let mut result = ThreadResult::default();
    let mut phase = Phase::Ramp;
    let mut next_start = 0;
    let mut load_start = None;
    let mut cpu_at_load = Duration::ZERO;
    let mut drain_end = plan.load_end + DRAIN;
    loop {
        let now = Instant::now();
        core.expire(now);
        let wake = match phase {
            Phase::Ramp => {
                while core.in_flight < plan.burst && next_start < core.slots.len() {
                    core.open(next_start, now);
                    next_start += 1;
                }
                if now >= plan.ramp_end && (core.in_flight > 0 || next_start < core.slots.len()) {
                    core.cut_ramp(next_start);
                    next_start = core.slots.len();
                    result.ramp_cut = true;
                }
                if next_start == core.slots.len() && core.in_flight == 0 {
                    result.ramp = now - plan.started;
                    phase = Phase::WaitOthers;
                    core.publish();
                    shared.ready_threads.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                plan.ramp_end
            }
            Phase::WaitOthers => {
                if shared.all_ready() {
                    if plan.ramp && Shared::get(&shared.connected) == 0 {
                        // Nothing to drive anywhere: report the ramp.
                        break;
                    }
                    let now = Instant::now();
                    load_start = Some(now);
                    cpu_at_load = crate::sys::thread_cpu_time();
                    core.loading = true;
                    phase = Phase::Load;
                    scenario.on_load_start(&mut core, now);
                    continue;
                }
                now + SHARED_POLL
            }
            Phase::Load => {
                if now >= plan.load_end {
                    result.load = now - load_start.unwrap_or(now);
                    core.loading = false;
                    phase = Phase::Drain;
                    drain_end = now + DRAIN;
                    core.publish();
                    shared.sending_done.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                if scenario.next_wakeup(&core).is_some_and(|t| t <= now) {
                    scenario.on_wakeup(&mut core, now);
                }
                scenario
                    .next_wakeup(&core)
                    .map_or(plan.load_end, |t| t.min(plan.load_end))
            }
            Phase::Drain => {
                if now >= drain_end || scenario.drained(&core) {
                    break;
                }
                // Other threads' progress shows only in the shared
                // counters, so look again soon.
                drain_end.min(now + SHARED_POLL)
            }
        };
        let wake = core.next_deadline().map_or(wake, |d| d.min(wake));
        let timeout = wake.saturating_duration_since(now).min(IDLE_POLL);
        poll_once(&mut core.poll, &mut events, timeout)?;
        let now = Instant::now();
        for ev in events.iter() {
            let i = ev.token().0;
            let hup = ev.is_read_closed() || ev.is_error();
            let ready = Ready {
                readable: ev.is_readable() || hup,
                writable: ev.is_writable(),
                hup,
            };
            match core.slots.get(i).map(|s| s.state) {
                Some(SlotState::Connecting) if core.finish_connect(i, now) => {
                    scenario.on_connected(&mut core, i, ready);
                }
                Some(SlotState::Handshake | SlotState::Up) => {
                    scenario.on_ready(&mut core, i, ready);
                }
                _ => {}
            }
        }
        core.after_batch(now);
    }
    if let Some(t0) = load_start {
        result.busy = t0.elapsed();
        result.cpu = crate::sys::thread_cpu_time().saturating_sub(cpu_at_load);
    }
    scenario.finish(&mut core, &mut events)?;
    core.publish();
    result.stats = core.stats;
    Ok(result)
}
