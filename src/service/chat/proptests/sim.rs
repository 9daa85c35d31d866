//! A pretend reactor for the chat room, with the room's invariants checked
//! on every effect: the harness of the chat property tests (`proptests.rs`)
//! and of the `chat_room` fuzz target (`fuzz/fuzz_targets/chat_room.rs`).
//!
//! The same file is compiled in both places, so it uses only the public
//! API (`crate::` paths; the fuzz target makes them resolve by importing
//! `echochat`'s modules at its root). It plays the reactor as
//! `reactor/effects.rs` and `reactor/flush.rs` do, simply:
//!
//! - **Reading**: a connection the room paused (`PauseReading`) is not
//!   read; what its client sends meanwhile waits (TCP would hold it), and
//!   a FIN is seen only once the bytes before it are read.
//! - **Writing**: a normal client reads everything at the end of each
//!   turn; a *slow* client never reads, so its queue grows. The queue's
//!   cost is its bytes plus [`CHUNK_OVERHEAD`] per queued send (the
//!   reactor's `OutQueue::cost`, without its merging of small copies), and
//!   once it passes `--max-backlog` the room hears `on_backlog(over)` as
//!   soon as the answer that passed it is applied (`queued_output`).
//! - **Closing**: a `Close` is applied at the end of the turn with
//!   `on_close`, after the output is read for reasons that flush it (so a
//!   slow client that typed `/quit` stays half-closed, and the room must not
//!   talk to it meanwhile). Sends to a connection dropped without a flush
//!   are thrown away, as the reactor does.
//! - **Time** moves only in [`Step::Wait`]; a due `next_deadline` gets
//!   `on_timer`, after which the deadline must be in the future (else the
//!   reactor would spin).
//! - **Accounts** (when the setup has them): the worker thread is played
//!   by [`Step::Work`], which does the oldest waiting jobs with a hasher
//!   that only labels the password (a million times faster than Argon2,
//!   and the room cannot tell) and hands the answers back while the
//!   connection is live, as `reactor/worker.rs` does. Nothing is written to
//!   disk: the accounts file's path does not exist and saves are dropped.
//!   A typed `{token}` stands for the last token the room handed out.
//!
//! What is checked (a panic names the broken rule):
//! - everything a client is sent, telnet answers aside, is whole lines of
//!   valid UTF-8, each ending with `\n`, none empty, none longer than a
//!   line can be, with none of the characters DESIGN.md's rule 6 has
//!   removed (listed again here, not taken from `text.rs`); each UDP
//!   datagram is one such line;
//! - every line is a server line (`* `, `! `, `[server] `) or `NAME: text`
//!   where NAME is in the room right now and is not the receiver: user text
//!   can never forge a line or reach anyone as someone else;
//! - joined names pass `names::check_name` and are unique by
//!   `names::name_key` among TCP and UDP users together; the room's counts
//!   agree with the joins and leaves it announced;
//! - nothing is sent to a connection after the room closed it, and nothing
//!   at all after `on_close`; no connection is closed twice;
//! - a queue that passed its limit belongs to a connection that is closing,
//!   at the end of every turn;
//! - after `on_shutdown`, departures are not announced;
//! - no password ([`PASSWORDS`]) is ever in the log;
//! - every event's log line has no control character.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::desk::AccountDesk;
use crate::auth::hasher::PasswordHasher;
use crate::auth::store::{Accounts, Sessions};
use crate::auth::worker::perform;
use crate::auth::{Busy, DeskConfig, Job, JobQueue, SnapshotSink};
use crate::event::{DisconnectReason, Event};
use crate::names::{Names, check_name, name_key};
use crate::service::chat::{ChatConfig, ChatRoom, account_key};
use crate::service::rate::RateLimit;
use crate::service::{ConnKey, Effect, Effects, Service, UdpKey};
use crate::telnet::IAC;

/// What the model charges per queued send, beside its bytes (the
/// reactor's `conn::CHUNK_OVERHEAD`).
pub const CHUNK_OVERHEAD: usize = 64;

/// The passwords steps use. Each holds a `.`, so it can never be a name
/// (and turn up in the log as one), yet no blank, so `/passwd OLD NEW`
/// can take it: finding one in the log is a leak.
pub const PASSWORDS: &[&str] = &["correct.horse", "battery.staple"];

/// Jobs that may wait for the worker before the room hears `Busy`.
const JOBS_MAX: usize = 3;

/// The client addresses a step may pick from: a few IPv4 ones (so names
/// are remembered and handed back), IPv6, and an IPv4 client of a
/// dual-stack listener (the same IP as the first, as the room sees it).
pub fn ip(n: u8) -> IpAddr {
    match n % 5 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        2 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        3 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
    }
}

/// The room's settings for one run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub max_line_bytes: usize,
    pub max_backlog: usize,
    pub rate: RateLimit,
    /// `--udp-member-timeout` (`None`: never).
    pub udp_timeout: Option<Duration>,
    pub udp_max_members: usize,
    /// Chat accounts on (`--accounts-file`).
    pub accounts: bool,
}

impl Setup {
    /// No limit gets in the way: no pauses, no backlog drops.
    pub fn roomy() -> Setup {
        Setup {
            max_line_bytes: 4096,
            max_backlog: usize::MAX / 2,
            rate: RateLimit {
                per_second: 1e9,
                burst: 1e9,
            },
            udp_timeout: None,
            udp_max_members: 100,
            accounts: false,
        }
    }
}

/// One thing that happens to the room. `conn` picks one of the
/// connections the room still knows (modulo their number; none: nothing
/// happens); `peer` one of a few UDP addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A client connects from [`ip`]`(ip)`.
    Connect { ip: u8 },
    /// One `recv` from the client.
    Recv { conn: usize, bytes: Vec<u8> },
    /// Several `recv`s in one turn (the reactor reads until the socket is
    /// empty): a send that TCP delivered in pieces.
    Reads { conn: usize, pieces: Vec<Vec<u8>> },
    /// The client sends FIN.
    Eof { conn: usize },
    /// The socket fails (`reason=reset`): closed without the room asking.
    Reset { conn: usize },
    /// The connection was silent for the idle timeout. (Not generated
    /// yet: see `proptests.rs`.)
    #[allow(dead_code)]
    Idle { conn: usize },
    /// The client stops reading for good.
    Slow { conn: usize },
    /// One datagram on the UDP twin.
    Datagram { peer: u8, bytes: Vec<u8> },
    /// A line typed on the server's console.
    Console(String),
    /// Time passes.
    Wait { ms: u32 },
    /// The worker thread does the `jobs` oldest waiting jobs.
    Work { jobs: u8 },
    /// A graceful stop: the notice, then every connection closes.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Open,
    /// Closed by the room (`by_room`) or by the socket, in effect batch
    /// `generation`; `on_close` comes at the end of the turn (after the
    /// output is read, for reasons that flush).
    Closing {
        reason: DisconnectReason,
        generation: u64,
        by_room: bool,
    },
    /// `on_close` was called: the room must have forgotten it.
    Closed,
}

#[derive(Debug)]
struct Conn {
    key: ConnKey,
    state: State,
    /// The room did not pause it (over `--chat-rate`, or typing a lot
    /// while a hash is out).
    reading: bool,
    /// Bytes the client sent while it was not read.
    inbox: Vec<u8>,
    /// The client sent FIN (it sends nothing more).
    fin: bool,
    /// ... and the room has not seen it yet (it is behind `inbox`).
    eof_pending: bool,
    slow: bool,
    /// Unread output (bytes, sends) of a slow client.
    queued_bytes: usize,
    queued_sends: usize,
    /// `on_backlog(over)` was said.
    over: bool,
    /// Its name while in the room (from the room's `join`/`nick` events).
    name: Option<String>,
    /// Everything the room sent it, in order.
    transcript: Vec<u8>,
}

impl Conn {
    fn cost(&self) -> usize {
        self.queued_bytes + self.queued_sends * CHUNK_OVERHEAD
    }
}

/// An effect, copied out of the [`Effects`] buffer so the room can be
/// called again (`on_backlog`) while a batch is applied.
enum Owned {
    Send(ConnKey, Rc<[u8]>),
    Close(ConnKey, DisconnectReason),
    Pause(ConnKey),
    Resume(ConnKey),
    Record(Event),
    Datagram(SocketAddr, Vec<u8>),
}

/// Everything a run sent and logged, in order.
#[derive(Debug, PartialEq)]
pub struct Transcript {
    /// Bytes sent to each connection, by its log `conn` id.
    pub tcp: Vec<(u64, Vec<u8>)>,
    /// Datagrams sent to each address.
    pub udp: Vec<(SocketAddr, Vec<Vec<u8>>)>,
    pub events: Vec<Event>,
}

/// The pretend reactor around one [`ChatRoom`]; see the module docs.
pub struct Sim {
    pub chat: ChatRoom,
    setup: Setup,
    now: Instant,
    conns: Vec<Conn>,
    by_key: HashMap<ConnKey, usize>,
    /// UDP members by address, with their names (from the room's events).
    udp_names: HashMap<SocketAddr, String>,
    /// Every datagram sent to each address, in order.
    datagrams: HashMap<SocketAddr, Vec<Vec<u8>>>,
    /// Every event, in order.
    events: Vec<Event>,
    /// Numbers each call into the room; see `State::Closing`.
    generation: u64,
    /// `on_shutdown` was called: the run is over.
    stopped: bool,
    /// Queues that passed the limit during the batch being applied.
    backlog_due: Vec<ConnKey>,
    /// Jobs the room sent to the (pretend) worker thread, oldest first.
    jobs: Rc<RefCell<VecDeque<Job>>>,
    /// The last `* token TOKEN` the room sent anyone.
    token: Option<String>,
    /// Sends and datagrams the room asked for, even those thrown away.
    sends: usize,
}

/// The worker thread's queue, as the room sees it.
struct Queue(Rc<RefCell<VecDeque<Job>>>);

impl JobQueue for Queue {
    fn submit(&mut self, job: Job) -> Result<(), Busy> {
        let mut jobs = self.0.borrow_mut();
        if jobs.len() >= JOBS_MAX {
            return Err(Busy);
        }
        jobs.push_back(job);
        Ok(())
    }
}

/// The account files' writer: the sim keeps nothing.
struct Discard;

impl SnapshotSink for Discard {
    fn save(&mut self, _path: &Path, _bytes: Vec<u8>) {}
}

/// A "hash" that is only a label: the rules of the room do not depend on
/// how hard a hash is to reverse, only on what matches what.
struct Label;

impl PasswordHasher for Label {
    fn hash(&self, password: &str) -> Option<String> {
        Some(format!("label${password}"))
    }

    fn verify(&self, phc: &str, password: &str) -> bool {
        phc.strip_prefix("label$") == Some(password)
    }
}

impl Sim {
    pub fn new(setup: Setup) -> Sim {
        let mut chat = ChatRoom::new(
            ChatConfig {
                max_line_bytes: setup.max_line_bytes,
                rate: setup.rate,
            },
            Names::new(8),
        );
        chat.set_udp_limits(setup.udp_timeout, setup.udp_max_members);
        let now = Instant::now();
        let jobs = Rc::default();
        if setup.accounts {
            // Empty stores: nothing is read; saves go to `Discard`.
            let mut desk = AccountDesk::new(
                DeskConfig {
                    accounts_path: PathBuf::from("accounts.tsv"),
                    session_ttl: Duration::from_secs(60),
                },
                account_key,
                Accounts::default(),
                Sessions::default(),
                Box::new(Queue(Rc::clone(&jobs))),
                (now, 1_800_000_000_000),
            );
            desk.set_sink(Box::new(Discard));
            chat.enable_accounts(desk);
        }
        Sim {
            chat,
            setup,
            now,
            conns: Vec::new(),
            by_key: HashMap::new(),
            udp_names: HashMap::new(),
            datagrams: HashMap::new(),
            events: Vec::new(),
            generation: 0,
            stopped: false,
            backlog_due: Vec::new(),
            jobs,
            token: None,
            sends: 0,
        }
    }

    /// Plays one step and the end of its turn, checking everything.
    pub fn step(&mut self, step: &Step) {
        if self.stopped {
            return;
        }
        match step {
            Step::Connect { ip: n } => self.connect(*n),
            Step::Recv { conn, bytes } => {
                if let Some(i) = self.pick(*conn) {
                    self.recv(i, bytes);
                }
            }
            Step::Reads { conn, pieces } => {
                if let Some(i) = self.pick(*conn) {
                    for piece in pieces {
                        self.recv(i, piece);
                    }
                }
            }
            Step::Eof { conn } => {
                if let Some(i) = self.pick(*conn) {
                    let c = &mut self.conns[i];
                    c.eof_pending |= !c.fin;
                    c.fin = true;
                }
            }
            Step::Reset { conn } => {
                // Also a half-closed one whose client gives up reading.
                if let Some(i) = self.pick(*conn) {
                    let c = &mut self.conns[i];
                    c.state = match c.state {
                        State::Closing {
                            generation,
                            by_room,
                            ..
                        } => State::Closing {
                            reason: DisconnectReason::Reset,
                            generation,
                            by_room,
                        },
                        _ => State::Closing {
                            reason: DisconnectReason::Reset,
                            generation: self.generation,
                            by_room: false,
                        },
                    };
                }
            }
            Step::Idle { conn } => {
                if let Some(i) = self.pick(*conn)
                    && self.conns[i].state == State::Open
                {
                    let key = self.conns[i].key;
                    let idle = Duration::from_secs(7200);
                    self.call(|chat, _, fx| chat.on_idle(key, idle, fx));
                }
            }
            Step::Slow { conn } => {
                if let Some(i) = self.pick(*conn) {
                    self.conns[i].slow = true;
                }
            }
            Step::Datagram { peer, bytes } => {
                let peer = SocketAddr::new(ip(*peer), 50_000);
                self.call(|chat, now, fx| chat.on_datagram(UdpKey(0), peer, bytes, now, fx));
            }
            Step::Console(line) => self.call(|chat, _, fx| chat.on_console_line(line, fx)),
            Step::Wait { ms } => self.now += Duration::from_millis(u64::from(*ms)),
            Step::Work { jobs } => self.work(usize::from(*jobs)),
            Step::Shutdown => {
                self.shutdown();
                return;
            }
        }
        self.end_turn();
    }

    /// Plays every step.
    pub fn run(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
    }

    /// What each connection was sent (by its log `conn` id), what each UDP
    /// address was sent, and the events: what two runs of the same input
    /// must agree on.
    pub fn transcript(&self) -> Transcript {
        let mut udp: Vec<_> = self
            .datagrams
            .iter()
            .map(|(p, d)| (*p, d.clone()))
            .collect();
        udp.sort();
        Transcript {
            tcp: self
                .conns
                .iter()
                .map(|c| (c.key.id, c.transcript.clone()))
                .collect(),
            udp,
            events: self.events.clone(),
        }
    }

    /// The connection a step means: one of those `on_close` has not seen
    /// (the reactor would not call the room about the others).
    fn pick(&self, conn: usize) -> Option<usize> {
        let there = self.conns.iter().filter(|c| c.state != State::Closed);
        let n = there.count();
        if n == 0 {
            return None;
        }
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != State::Closed)
            .nth(conn % n)
            .map(|(i, _)| i)
    }

    fn connect(&mut self, n: u8) {
        let id = self.conns.len() as u64 + 1;
        // Slots are reused by the reactor; make them differ from ids.
        let key = ConnKey {
            slot: (id % 7) as usize,
            id,
        };
        self.by_key.insert(key, self.conns.len());
        self.conns.push(Conn {
            key,
            state: State::Open,
            reading: true,
            inbox: Vec::new(),
            fin: false,
            eof_pending: false,
            slow: false,
            queued_bytes: 0,
            queued_sends: 0,
            over: false,
            name: None,
            transcript: Vec::new(),
        });
        let peer = SocketAddr::new(ip(n), 40_000u16.wrapping_add(id as u16));
        self.call(|chat, now, fx| chat.on_open(key, peer, now, fx));
    }

    /// The client sent `bytes`: read now, unless the room paused it or it
    /// is closing (reading stops at once).
    fn recv(&mut self, i: usize, bytes: &[u8]) {
        let conn = &mut self.conns[i];
        if conn.state != State::Open || conn.fin {
            return;
        }
        let token = self.token.as_deref().unwrap_or("0");
        let bytes = replace(bytes, b"{token}", token.as_bytes());
        if !conn.reading || !conn.inbox.is_empty() {
            conn.inbox.extend_from_slice(&bytes);
            return;
        }
        let key = conn.key;
        self.call(|chat, now, fx| chat.on_recv(key, &bytes, now, fx));
    }

    /// The worker thread does up to `n` jobs; each answer goes back to the
    /// room if its connection is still there.
    fn work(&mut self, n: usize) {
        for _ in 0..n {
            let Some(job) = self.jobs.borrow_mut().pop_front() else {
                return;
            };
            let done = perform(&Label, job);
            let live = self
                .by_key
                .get(&done.key)
                .is_some_and(|&i| self.conns[i].state != State::Closed);
            if live {
                self.call(|chat, now, fx| chat.on_job_done(done, now, fx));
            }
        }
    }

    /// The end of a turn: read what waited, close what is ready, fire due
    /// timers; then check the turn's invariants.
    fn end_turn(&mut self) {
        // Bounded: every pass reads all of some inbox or finds nothing.
        loop {
            let mut progress = false;
            for i in 0..self.conns.len() {
                let c = &mut self.conns[i];
                if c.state != State::Open || !c.reading {
                    continue;
                }
                let key = c.key;
                if !c.inbox.is_empty() {
                    let bytes = std::mem::take(&mut c.inbox);
                    self.call(|chat, now, fx| chat.on_recv(key, &bytes, now, fx));
                    progress = true;
                } else if c.eof_pending {
                    c.eof_pending = false;
                    self.call(|chat, now, fx| chat.on_eof(key, now, fx));
                    progress = true;
                }
            }
            progress |= self.close_ready();
            if let Some(at) = self.chat.next_deadline()
                && at <= self.now
            {
                self.call(|chat, now, fx| chat.on_timer(now, fx));
                let next = self.chat.next_deadline();
                assert!(
                    next.is_none_or(|n| n > self.now),
                    "on_timer left a deadline that is already due: the reactor would spin"
                );
                progress = true;
            }
            if !progress {
                break;
            }
        }
        self.check_turn();
    }

    /// Drains normal readers and calls `on_close` for every closing
    /// connection whose output is read (or not owed). True if it did
    /// anything.
    fn close_ready(&mut self) -> bool {
        let mut did = false;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let State::Closing { reason, .. } = c.state else {
                continue;
            };
            if reason.flushes_output() && c.cost() > 0 {
                continue; // a slow reader that owes output: half-closed
            }
            self.close_now(i, reason);
            did = true;
        }
        did
    }

    fn shutdown(&mut self) {
        self.call(|chat, _, fx| chat.on_shutdown(fx));
        self.chat.on_stop(self.now);
        self.stopped = true;
        let sends_before = self.sends;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open {
                self.mark_closing(i, DisconnectReason::Shutdown, false);
            }
        }
        for i in 0..self.conns.len() {
            if let State::Closing { reason, .. } = self.conns[i].state {
                self.close_now(i, reason);
            }
        }
        assert_eq!(
            sends_before, self.sends,
            "departures announced during a stop"
        );
        assert_eq!(self.chat.connections(), 0, "the room forgot nobody");
    }

    /// `on_close`, as the reactor calls it once the socket is closed.
    fn close_now(&mut self, i: usize, reason: DisconnectReason) {
        let key = self.conns[i].key;
        self.call(|chat, _, fx| chat.on_close(key, reason, fx));
        let c = &mut self.conns[i];
        c.state = State::Closed;
        if let Some(name) = &c.name {
            panic!("{key:?} closed while in the room as {name:?}, with no leave event");
        }
    }

    fn mark_closing(&mut self, i: usize, reason: DisconnectReason, by_room: bool) {
        let c = &mut self.conns[i];
        match c.state {
            State::Open => {
                c.state = State::Closing {
                    reason,
                    generation: self.generation,
                    by_room,
                };
            }
            _ => panic!("{:?} closed twice ({reason:?} after {:?})", c.key, c.state),
        }
    }

    /// Calls into the room and applies what it answered.
    fn call(&mut self, f: impl FnOnce(&mut ChatRoom, Instant, &mut Effects)) {
        let mut fx = Effects::new();
        f(&mut self.chat, self.now, &mut fx);
        self.apply_all(fx);
    }

    /// Applies one answer of the room, then tells it of the queues that
    /// answer took over the limit (whose answers are applied the same way).
    fn apply_all(&mut self, mut fx: Effects) {
        let batch: Vec<Owned> = fx
            .drain()
            .map(|e| match e {
                Effect::Send { to, bytes } => Owned::Send(to, Rc::from(bytes)),
                Effect::SendShared { to, bytes } => Owned::Send(to, bytes),
                Effect::Close { to, reason } => Owned::Close(to, reason),
                Effect::PauseReading(to) => Owned::Pause(to),
                Effect::ResumeReading(to) => Owned::Resume(to),
                Effect::Record(event) => Owned::Record(event),
                Effect::SendTo { via, peer, bytes } => {
                    assert_eq!(via, UdpKey(0), "a datagram from another socket");
                    Owned::Datagram(peer, bytes.to_vec())
                }
                other => panic!("chat never sends input back: {other:?}"),
            })
            .collect();
        self.generation += 1;
        let generation = self.generation;
        for effect in batch {
            self.apply(generation, effect);
        }
        for key in std::mem::take(&mut self.backlog_due) {
            let mut fx = Effects::new();
            self.chat.on_backlog(key, true, &mut fx);
            self.apply_all(fx);
        }
    }

    fn conn_index(&self, key: ConnKey, what: &str) -> usize {
        let Some(&i) = self.by_key.get(&key) else {
            panic!("{what} for a connection never opened: {key:?}");
        };
        assert!(
            self.conns[i].state != State::Closed,
            "{what} for {key:?} after on_close"
        );
        i
    }

    fn apply(&mut self, generation: u64, effect: Owned) {
        match effect {
            Owned::Send(to, bytes) => self.send(generation, to, &bytes),
            Owned::Close(to, reason) => {
                let i = self.conn_index(to, "close");
                self.mark_closing(i, reason, true);
            }
            Owned::Pause(to) => {
                let i = self.conn_index(to, "pause");
                self.conns[i].reading = false;
            }
            Owned::Resume(to) => {
                let i = self.conn_index(to, "resume");
                self.conns[i].reading = true;
            }
            Owned::Record(event) => self.record(event),
            Owned::Datagram(peer, bytes) => {
                self.sends += 1;
                let me = self.udp_names.get(&peer).cloned();
                self.check_text(&bytes, me.as_deref(), "a datagram");
                assert_eq!(
                    bytes.iter().filter(|&&b| b == b'\n').count(),
                    1,
                    "a datagram is one line: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                self.datagrams.entry(peer).or_default().push(bytes);
            }
        }
    }

    fn send(&mut self, generation: u64, to: ConnKey, bytes: &[u8]) {
        self.sends += 1;
        let i = self.conn_index(to, "send");
        if let State::Closing {
            generation: closed_in,
            by_room,
            ..
        } = self.conns[i].state
        {
            // After the socket failed, the reactor drops what the room
            // sends until it hears (`on_close`); but once the room closed
            // a connection itself, it must not talk to it.
            assert!(
                !by_room || generation < closed_in,
                "sent to {to:?} after the room closed it: {:?}",
                String::from_utf8_lossy(bytes)
            );
            return;
        }
        let me = self.conns[i].name.clone();
        let text = strip_telnet(bytes);
        self.check_text(&text, me.as_deref(), "a connection");
        // Remember a token for a later `/token {token}`.
        if let Some(token) = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.strip_prefix("* token "))
            .next_back()
        {
            self.token = Some(token.to_string());
        }
        let c = &mut self.conns[i];
        c.transcript.extend_from_slice(bytes);
        if !c.slow {
            return; // written at once, and read
        }
        c.queued_bytes += bytes.len();
        c.queued_sends += 1;
        if c.cost() > self.setup.max_backlog && !c.over {
            c.over = true;
            self.backlog_due.push(to);
        }
    }

    /// Whole lines, valid UTF-8, filtered, bounded, and none forged.
    fn check_text(&self, text: &[u8], me: Option<&str>, to: &str) {
        if text.is_empty() {
            return;
        }
        let Ok(text) = std::str::from_utf8(text) else {
            panic!("invalid UTF-8 to {to}: {:?}", String::from_utf8_lossy(text));
        };
        assert!(text.ends_with('\n'), "to {to}, not a whole line: {text:?}");
        // A relayed line is a name (32 letters of 4 bytes at most) and a
        // line; `/who` is capped at max(--max-line, 1 KiB) plus its tail.
        let longest = self.setup.max_line_bytes.max(1024) + 200;
        for line in text.split_terminator('\n') {
            assert!(!line.is_empty(), "an empty line to {to}");
            assert!(line.len() <= longest, "a line of {} bytes", line.len());
            if let Some(c) = line.chars().find(|&c| forbidden(c)) {
                panic!("U+{:04X} reached {to}: {line:?}", u32::from(c));
            }
            if ["* ", "! ", "[server] "]
                .iter()
                .any(|p| line.starts_with(p))
            {
                continue;
            }
            let Some((from, _)) = line.split_once(": ") else {
                panic!("neither a server line nor NAME: text, to {to}: {line:?}");
            };
            assert!(
                self.in_room(from),
                "a line from {from:?}, who is not in the room, to {to}: {line:?}"
            );
            assert_ne!(Some(from), me, "a user was sent their own line: {line:?}");
        }
    }

    fn in_room(&self, name: &str) -> bool {
        self.conns.iter().any(|c| c.name.as_deref() == Some(name))
            || self.udp_names.values().any(|n| n == name)
    }

    /// Takes a name into the room: valid and free by its key.
    fn check_new_name(&self, name: &str, except: Option<&str>) {
        if let Err(e) = check_name(name) {
            panic!("{name:?} joined though {e}");
        }
        let key = name_key(name);
        let clash = self
            .conns
            .iter()
            .filter_map(|c| c.name.as_deref())
            .chain(self.udp_names.values().map(String::as_str))
            .filter(|&n| Some(n) != except)
            .find(|n| name_key(n) == key);
        if let Some(other) = clash {
            panic!("{name:?} joined beside {other:?}: the same key {key:?}");
        }
    }

    fn record(&mut self, event: Event) {
        let line = event.logfmt().to_string();
        assert!(!line.chars().any(char::is_control), "log line {line:?}");
        // (A console line is the operator's own text.)
        if !matches!(event, Event::Console { .. })
            && let Some(p) = PASSWORDS.iter().find(|p| line.contains(*p))
        {
            panic!("the password {p:?} is in the log: {line}");
        }
        match &event {
            Event::Join { conn, name, .. } => {
                let i = self.by_id(*conn);
                assert!(self.conns[i].name.is_none(), "joined twice: {line}");
                self.check_new_name(name, None);
                self.conns[i].name = Some(name.clone());
            }
            Event::Nick { conn, old, new, .. } => {
                let i = self.by_id(*conn);
                assert_eq!(self.conns[i].name.as_ref(), Some(old), "{line}");
                self.check_new_name(new, Some(old));
                self.conns[i].name = Some(new.clone());
            }
            Event::Leave { conn, name, .. } => {
                let i = self.by_id(*conn);
                assert_eq!(self.conns[i].name.as_ref(), Some(name), "{line}");
                self.conns[i].name = None;
            }
            Event::UdpJoin { peer, name } => {
                assert!(!self.udp_names.contains_key(peer), "joined twice: {line}");
                self.check_new_name(name, None);
                self.udp_names.insert(*peer, name.clone());
            }
            Event::UdpLeave { peer, name, .. } => {
                assert_eq!(self.udp_names.remove(peer).as_ref(), Some(name), "{line}");
            }
            Event::Auth { conn, .. } => {
                self.by_id(*conn);
            }
            Event::Pause { .. } | Event::Resume { .. } | Event::Console { .. } => {}
            other => panic!("an event the room never records: {other:?}"),
        }
        self.events.push(event);
    }

    fn by_id(&self, id: u64) -> usize {
        let Some(i) = self.conns.iter().position(|c| c.key.id == id) else {
            panic!("an event about conn={id}, never opened");
        };
        assert!(
            self.conns[i].state != State::Closed,
            "an event about closed conn={id}"
        );
        i
    }

    /// The turn is over: queues within their limit (or closing), and the
    /// room's counts as announced.
    fn check_turn(&self) {
        for c in &self.conns {
            if c.state == State::Open {
                assert!(
                    !c.over && c.cost() <= self.setup.max_backlog,
                    "{:?} is over --max-backlog ({} > {}) and still open",
                    c.key,
                    c.cost(),
                    self.setup.max_backlog
                );
            }
        }
        let open = self.conns.iter().filter(|c| c.state != State::Closed);
        assert_eq!(self.chat.connections(), open.count(), "connections");
        let joined = self.conns.iter().filter(|c| c.name.is_some()).count();
        assert_eq!(self.chat.online(), joined, "users in the room");
        assert_eq!(self.chat.udp_members(), self.udp_names.len(), "UDP members");
    }
}

/// DESIGN.md chat rule 6, written out again here rather than taken from
/// `text.rs`, so that a mistake there cannot hide itself.
fn forbidden(c: char) -> bool {
    matches!(c,
        '\0'..='\u{8}' | '\u{a}'..='\u{1f}' // C0 but tab
        | '\u{7f}'..='\u{9f}' // DEL and C1
        | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' // bidi
        | '\u{2028}' | '\u{2029}') // line and paragraph separators
}

/// `bytes` with every `from` replaced by `to`.
pub fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// `bytes` without the telnet answers in it (`IAC verb option`: valid
/// UTF-8 never holds byte 255, so they cannot be mistaken for text).
fn strip_telnet(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if b != IAC {
            text.push(b);
            rest = tail;
            continue;
        }
        assert!(
            tail.len() >= 2 && (251..=254).contains(&tail[0]),
            "a telnet answer that is not IAC WILL|WONT|DO|DONT option: {bytes:?}"
        );
        rest = &tail[2..];
    }
    text
}
