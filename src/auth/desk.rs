//! The account desk: the room's account rules as a state machine, with no
//! sockets, no threads and no clock of its own.
//!
//! `service/chat.rs` owns the conversation (what a user sees, when they
//! join); the desk owns what is true about accounts: who is registered,
//! which tokens are valid, who is locked out, which connection has a job
//! on the worker and what it was for, and which connection logged in to
//! which account. Every method returns a plain answer that the room turns
//! into protocol lines (`* token …`, `! too many tries; wait 4s`).
//!
//! Time is passed in (`now: Instant`), as everywhere in the services. The
//! sessions file needs wall-clock time, so the desk keeps one anchor pair
//! (an `Instant` and the Unix time at that instant) and derives Unix time
//! from `now`; a test can start the wall clock anywhere.
//!
//! Jobs go out through a [`JobQueue`]; their answers come back through
//! [`AccountDesk::finish`]. A connection with a job out is *waiting*: the
//! lines it types meanwhile are held (see [`AccountDesk::hold`]) and
//! handled after the answer, in order. It is still read, so a FIN or a
//! reset closes it at once and the answer, when it comes, finds nothing;
//! only a connection that types more than [`HOLD_PAUSE_BYTES`] while
//! waiting is paused, so TCP holds the rest instead of memory.
//!
//! Changes to accounts or sessions mark the desk dirty; the room's
//! periodic tick takes [`AccountDesk::take_snapshot`] and hands the bytes to
//! the background writer. So the disk is never touched in a reactor turn.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::lockout::Lockout;
use super::store::{
    self, Account, Accounts, Lookup, MAX_ACCOUNTS, NameKey, Session, Sessions, Token, TokenHash,
};
use super::{Busy, Done, Job, JobQueue, Outcome, Secret, SnapshotSink, Work};
use crate::service::ConnKey;

/// Shortest password `/register` and `/passwd` accept, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bytes of lines held for one waiting connection past which the room
/// pauses reading it (backpressure: the rest waits in TCP buffers).
pub const HOLD_PAUSE_BYTES: usize = 16 * 1024;
/// A backstop: once paused, only the rest of the current read can arrive,
/// so this is never reached by a client the reactor reads in chunks.
const MAX_HELD_BYTES: usize = 1 << 20;

/// What the desk is configured with.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// `--accounts-file`; the sessions file is `sessions.tsv` beside it.
    pub accounts_path: PathBuf,
    /// `--session-ttl`: how long a token stays valid.
    pub session_ttl: Duration,
}

/// The serialized files, for the background writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub accounts: Option<(PathBuf, Vec<u8>)>,
    pub sessions: Option<(PathBuf, Vec<u8>)>,
}

/// What a job was for, so its answer can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// A password at the prompt for `name` (registered, key `key`).
    Login {
        name: Box<str>,
        key: Box<str>,
        ip: IpAddr,
    },
    /// `/register` by the holder of `name`.
    Register { name: Box<str>, key: Box<str> },
    /// `/passwd` for the account `key`.
    Passwd { key: Box<str> },
}

/// Account state of one connection; exists only while there is some.
#[derive(Debug, Default)]
struct ConnAccount {
    /// The account this connection logged in to (its key).
    account: Option<Box<str>>,
    /// The hash of the token this connection holds, for `/logout`.
    token: Option<TokenHash>,
    /// The registered name whose password was asked at the prompt.
    asked: Option<Box<str>>,
    /// The job out for this connection: its number and purpose.
    pending: Option<(u64, Purpose)>,
    /// Lines read while the job was out, replayed after the answer.
    held: Vec<Box<str>>,
    held_bytes: usize,
    /// The room paused reading because `held` grew past
    /// [`HOLD_PAUSE_BYTES`]; it resumes once the answer is in.
    held_paused: bool,
    /// The client's FIN came while the job was out: close after it.
    held_eof: bool,
}

/// What [`AccountDesk::hold`] did with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Kept,
    /// Kept, and the held lines just passed [`HOLD_PAUSE_BYTES`]: pause
    /// reading this connection.
    KeptPause,
    /// Dropped (the backstop bound).
    Dropped,
}

/// Why a password was refused before any hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The job queue is full.
    Busy,
    /// Locked for this long (rounded up to seconds).
    Locked(Duration),
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    TooShort,
    /// `/register`: the name is registered already.
    AlreadyRegistered,
    /// `/register`: the server holds [`MAX_ACCOUNTS`].
    TooManyAccounts,
    /// `/passwd`, `/logout`: this connection is not logged in.
    NotLoggedIn,
}

impl From<Busy> for Refusal {
    fn from(_: Busy) -> Refusal {
        Refusal::Busy
    }
}

/// The answer to a job, as the room needs it.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// Right password: join as `name`; give the client `token`.
    LoggedIn { name: Box<str>, token: Token },
    /// Wrong password for `name` (the lockout counted it).
    WrongPassword { name: Box<str> },
    /// `/register` done: the name is registered; give `token`.
    Registered { name: Box<str>, token: Token },
    /// `/passwd` done: every old token ended; here is a new one.
    PasswordChanged { name: Box<str>, token: Token },
    /// `/passwd` with a wrong OLD.
    PasswdWrong { name: Box<str> },
    /// Hashing failed, or a token could not be made: try again.
    Failed,
}

/// What `/token TOKEN` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLogin {
    /// A valid session of `name`.
    Valid { name: Box<str> },
    /// A session of `name` that expired (now removed).
    Expired { name: Box<str> },
    /// Not a token this server issued (or not a token at all).
    Unknown,
}

/// The account desk; see the module docs.
pub struct AccountDesk {
    config: DeskConfig,
    key_of: NameKey,
    accounts: Accounts,
    sessions: Sessions,
    lockout: Lockout,
    queue: Box<dyn JobQueue>,
    /// Where [`AccountDesk::flush`] sends changed files.
    sink: Option<Box<dyn SnapshotSink>>,
    conns: HashMap<ConnKey, ConnAccount>,
    next_job: u64,
    /// `Instant` ↔ Unix time, for expiry that survives a restart.
    clock: (Instant, u64),
    accounts_dirty: bool,
    sessions_dirty: bool,
    /// When the files were last handed to the sink: they are written at
    /// most once per [`SAVE_EVERY`].
    last_flush: Instant,
}

/// Changed files are handed to the writer at most this often.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for AccountDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of debug output too.
        f.debug_struct("AccountDesk")
            .field("accounts", &self.accounts.len())
            .field("sessions", &self.sessions.len())
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl AccountDesk {
    /// A desk over already-loaded stores. `clock` pairs an `Instant` with
    /// the Unix time in milliseconds at that instant (in the server:
    /// `(Instant::now(), unix_ms_now())`).
    pub fn new(
        config: DeskConfig,
        key_of: NameKey,
        accounts: Accounts,
        sessions: Sessions,
        queue: Box<dyn JobQueue>,
        clock: (Instant, u64),
    ) -> AccountDesk {
        AccountDesk {
            config,
            key_of,
            accounts,
            sessions,
            lockout: Lockout::new(),
            queue,
            sink: None,
            conns: HashMap::new(),
            next_job: 1,
            clock,
            accounts_dirty: false,
            sessions_dirty: false,
            // A first change is written at once.
            last_flush: clock.0.checked_sub(SAVE_EVERY).unwrap_or(clock.0),
        }
    }

    /// Loads the files named in `config` and builds the desk. Never fails;
    /// the strings are warnings for the log (one per damaged or unreadable
    /// file).
    pub fn load(
        config: DeskConfig,
        key_of: NameKey,
        queue: Box<dyn JobQueue>,
        clock: (Instant, u64),
    ) -> (AccountDesk, Vec<String>) {
        let (accounts, sessions, warnings) = store::load(&config.accounts_path, key_of, clock.1);
        let desk = AccountDesk::new(config, key_of, accounts, sessions, queue, clock);
        (desk, warnings)
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.clock;
        ms + now.saturating_duration_since(at).as_millis() as u64
    }

    fn key(&self, name: &str) -> Box<str> {
        (self.key_of)(name)
    }

    /// Whether `name` is registered.
    pub fn is_registered(&self, name: &str) -> bool {
        self.accounts.contains(&self.key(name))
    }

    /// Whether `conn` logged in to the account of `name`.
    pub fn owns(&self, conn: ConnKey, name: &str) -> bool {
        let key = self.key(name);
        self.conns
            .get(&conn)
            .and_then(|c| c.account.as_deref())
            .is_some_and(|a| *a == *key)
    }

    /// A registered name may be used by `conn` only if it logged in to it;
    /// a free name by anyone.
    pub fn may_use(&self, conn: ConnKey, name: &str) -> bool {
        !self.is_registered(name) || self.owns(conn, name)
    }

    /// Whether `name` may be tried from `ip` now (at the name prompt,
    /// before the password is asked).
    ///
    /// # Errors
    /// The time left on the lock.
    pub fn check_lock(&self, name: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.lockout.check(&self.key(name), ip, now)
    }

    /// A password typed for registered `name`: sends a verify job.
    ///
    /// # Errors
    /// Locked (meanwhile), or the queue is full.
    pub fn start_login(
        &mut self,
        conn: ConnKey,
        ip: IpAddr,
        name: &str,
        password: &str,
        now: Instant,
    ) -> Result<(), Refusal> {
        let key = self.key(name);
        self.lockout.begin(&key, ip, now).map_err(Refusal::Locked)?;
        // No account (it cannot vanish today, but the check must not
        // depend on that): the worker checks against a dummy hash, so the
        // answer takes the usual time and is "wrong".
        let phc = self.accounts.get(&key).map(|a| a.phc.clone());
        let purpose = Purpose::Login {
            name: name.into(),
            key: key.clone(),
            ip,
        };
        let work = Work::Verify {
            phc,
            password: Secret::new(password),
        };
        if let Err(busy) = self.submit(conn, purpose, work) {
            self.lockout.abandon(&key, ip);
            return Err(busy.into());
        }
        Ok(())
    }

    /// `/register PASSWORD` by the holder of `name`.
    ///
    /// # Errors
    /// Too short, already registered, too many accounts, or busy.
    pub fn start_register(
        &mut self,
        conn: ConnKey,
        name: &str,
        password: &str,
    ) -> Result<(), Refusal> {
        let key = self.key(name);
        if self.accounts.contains(&key) {
            return Err(Refusal::AlreadyRegistered);
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Refusal::TooShort);
        }
        if self.accounts.len() >= MAX_ACCOUNTS {
            return Err(Refusal::TooManyAccounts);
        }
        let purpose = Purpose::Register {
            name: name.into(),
            key,
        };
        let work = Work::Hash {
            password: Secret::new(password),
        };
        self.submit(conn, purpose, work).map_err(Into::into)
    }

    /// `/passwd OLD NEW` on the account `conn` logged in to.
    ///
    /// # Errors
    /// Not logged in, NEW too short, or busy.
    pub fn start_passwd(&mut self, conn: ConnKey, old: &str, new: &str) -> Result<(), Refusal> {
        let Some(key) = self.conns.get(&conn).and_then(|c| c.account.clone()) else {
            return Err(Refusal::NotLoggedIn);
        };
        let Some(account) = self.accounts.get(&key) else {
            return Err(Refusal::NotLoggedIn);
        };
        if new.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Refusal::TooShort);
        }
        let work = Work::Change {
            phc: account.phc.clone(),
            old: Secret::new(old),
            new: Secret::new(new),
        };
        self.submit(conn, Purpose::Passwd { key }, work)
            .map_err(Into::into)
    }

    fn submit(&mut self, conn: ConnKey, purpose: Purpose, work: Work) -> Result<(), Busy> {
        let id = self.next_job;
        self.queue.submit(Job {
            key: conn,
            id,
            work,
        })?;
        self.next_job += 1;
        let entry = self.conns.entry(conn).or_default();
        entry.pending = Some((id, purpose));
        Ok(())
    }

    /// Remembers that `conn` was asked the password of `name` (the room's
    /// state only says "password asked": the name lives here, so a
    /// connection's state stays small).
    pub fn ask(&mut self, conn: ConnKey, name: &str) {
        self.conns.entry(conn).or_default().asked = Some(name.into());
    }

    /// The name whose password `conn` was asked, once.
    pub fn take_asked(&mut self, conn: ConnKey) -> Option<Box<str>> {
        self.conns.get_mut(&conn)?.asked.take()
    }

    /// Whether `conn` has a job out (its lines are held meanwhile).
    pub fn is_waiting(&self, conn: ConnKey) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.pending.is_some())
    }

    /// Holds a line `conn` typed while its job is out.
    pub fn hold(&mut self, conn: ConnKey, line: &str) -> Hold {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Hold::Dropped;
        };
        if c.held_bytes + line.len() > MAX_HELD_BYTES {
            return Hold::Dropped;
        }
        c.held_bytes += line.len() + 1;
        c.held.push(line.into());
        if c.held_bytes > HOLD_PAUSE_BYTES && !c.held_paused {
            c.held_paused = true;
            return Hold::KeptPause;
        }
        Hold::Kept
    }

    /// The lines held for `conn`, in order, to handle now, and whether
    /// holding them had paused its reading.
    pub fn take_held(&mut self, conn: ConnKey) -> (Vec<Box<str>>, bool) {
        match self.conns.get_mut(&conn) {
            Some(c) => {
                c.held_bytes = 0;
                let paused = std::mem::take(&mut c.held_paused);
                (std::mem::take(&mut c.held), paused)
            }
            None => (Vec::new(), false),
        }
    }

    /// The client sent FIN while its job is out: the room closes it once
    /// the answer is handled.
    pub fn hold_eof(&mut self, conn: ConnKey) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.held_eof = true;
        }
    }

    /// Whether a FIN was held for `conn` (once).
    pub fn take_eof(&mut self, conn: ConnKey) -> bool {
        self.conns
            .get_mut(&conn)
            .is_some_and(|c| std::mem::take(&mut c.held_eof))
    }

    /// Reading of `conn` stays paused for its next job (a replayed line
    /// started one while the connection was paused for holding).
    pub fn keep_paused(&mut self, conn: ConnKey) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.held_paused = true;
        }
    }

    /// Whether the room paused `conn` for holding lines (its resume is
    /// the answer's business, not the rate limiter's).
    pub fn is_held_paused(&self, conn: ConnKey) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.held_paused)
    }

    /// Applies a job's answer. `None` when it is stale: the connection
    /// has no job of that number (it closed, and the reactor missed it).
    pub fn finish(&mut self, done: Done, now: Instant) -> Option<Finished> {
        let c = self.conns.get_mut(&done.key)?;
        match &c.pending {
            Some((id, _)) if *id == done.id => {}
            _ => return None,
        }
        let (_, purpose) = c.pending.take()?;
        Some(match (purpose, done.outcome) {
            (Purpose::Login { name, key, ip }, Outcome::Verified(right)) => {
                self.lockout.end(&key, ip, right, now);
                if !right {
                    return Some(Finished::WrongPassword { name });
                }
                // Show the name as registered, whatever case was typed.
                let name = self.accounts.get(&key).map_or(name, |a| a.name.clone());
                match self.new_session(done.key, &key, &name, now) {
                    Some(token) => Finished::LoggedIn { name, token },
                    None => Finished::Failed,
                }
            }
            (Purpose::Register { name, key }, Outcome::Hashed(Some(phc))) => {
                if self.accounts.contains(&key) {
                    // Cannot happen while the room pauses the holder, but
                    // an existing account is never overwritten.
                    return Some(Finished::Failed);
                }
                self.accounts.insert(
                    key.clone(),
                    Account {
                        name: name.clone(),
                        phc,
                    },
                );
                self.accounts_dirty = true;
                match self.new_session(done.key, &key, &name, now) {
                    Some(token) => Finished::Registered { name, token },
                    None => Finished::Failed,
                }
            }
            (Purpose::Passwd { key }, Outcome::Changed(result)) => {
                let Some(account) = self.accounts.get(&key) else {
                    return Some(Finished::Failed);
                };
                let name = account.name.clone();
                match result {
                    Ok(phc) => {
                        self.accounts.insert(
                            key.clone(),
                            Account {
                                name: name.clone(),
                                phc,
                            },
                        );
                        self.accounts_dirty = true;
                        // Every token of the account ends, this
                        // connection's too; it gets a fresh one.
                        self.sessions.remove_account(&key);
                        self.sessions_dirty = true;
                        match self.new_session(done.key, &key, &name, now) {
                            Some(token) => Finished::PasswordChanged { name, token },
                            None => Finished::Failed,
                        }
                    }
                    Err(true) => Finished::PasswdWrong { name },
                    Err(false) => Finished::Failed,
                }
            }
            _ => Finished::Failed,
        })
    }

    /// Makes a token for `conn`, logged in to `key`.
    fn new_session(&mut self, conn: ConnKey, key: &str, name: &str, now: Instant) -> Option<Token> {
        let token = Token::generate().ok()?;
        let expires_ms = self
            .unix_ms(now)
            .saturating_add(self.config.session_ttl.as_millis() as u64);
        let hash = token.hash();
        self.sessions.insert(
            hash,
            Session {
                key: key.into(),
                name: name.into(),
                expires_ms,
            },
        );
        self.sessions_dirty = true;
        let c = self.conns.entry(conn).or_default();
        c.account = Some(key.into());
        c.token = Some(hash);
        Some(token)
    }

    /// `/token TOKEN` at the name prompt. A valid token logs `conn` in to
    /// its account (the room still checks the name is free).
    pub fn token_login(&mut self, conn: ConnKey, text: &str, now: Instant) -> TokenLogin {
        let Some(token) = Token::parse(text) else {
            return TokenLogin::Unknown;
        };
        let hash = token.hash();
        match self.sessions.lookup(hash, self.unix_ms(now)) {
            Lookup::Valid(session) => {
                let name = self
                    .accounts
                    .get(&session.key)
                    .map_or(session.name.clone(), |a| a.name.clone());
                let c = self.conns.entry(conn).or_default();
                c.account = Some(session.key);
                c.token = Some(hash);
                TokenLogin::Valid { name }
            }
            Lookup::Expired(session) => {
                self.sessions_dirty = true;
                TokenLogin::Expired { name: session.name }
            }
            Lookup::Unknown => TokenLogin::Unknown,
        }
    }

    /// Undoes a [`AccountDesk::token_login`] whose name turned out to be
    /// taken: the connection is not logged in after all (the session
    /// itself stays valid).
    pub fn cancel_login(&mut self, conn: ConnKey) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.account = None;
            c.token = None;
        }
    }

    /// `/logout`: ends this connection's token; it is no longer logged in
    /// (but keeps its name for this connection). Returns the account's
    /// name.
    ///
    /// # Errors
    /// [`Refusal::NotLoggedIn`].
    pub fn logout(&mut self, conn: ConnKey) -> Result<Box<str>, Refusal> {
        let c = self.conns.get_mut(&conn).ok_or(Refusal::NotLoggedIn)?;
        let key = c.account.take().ok_or(Refusal::NotLoggedIn)?;
        if let Some(hash) = c.token.take()
            && self.sessions.remove(hash).is_some()
        {
            self.sessions_dirty = true;
        }
        Ok(self
            .accounts
            .get(&key)
            .map_or_else(|| key.clone(), |a| a.name.clone()))
    }

    /// The connection closed: forget it. A job still out is abandoned (its
    /// answer will find no pending job) and does not count as a failure.
    pub fn forget(&mut self, conn: ConnKey) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some((_, Purpose::Login { key, ip, .. })) = c.pending
        {
            self.lockout.abandon(&key, ip);
        }
    }

    /// The files that changed since the last snapshot, serialized (sessions
    /// expired by `now` are dropped on the way).
    pub fn take_snapshot(&mut self, now: Instant) -> Option<Snapshot> {
        if !self.accounts_dirty && !self.sessions_dirty {
            return None;
        }
        let accounts = std::mem::take(&mut self.accounts_dirty)
            .then(|| (self.config.accounts_path.clone(), self.accounts.serialize()));
        let sessions = std::mem::take(&mut self.sessions_dirty).then(|| {
            let now_ms = self.unix_ms(now);
            self.sessions.prune(now_ms);
            (
                store::sessions_path(&self.config.accounts_path),
                self.sessions.serialize(now_ms),
            )
        });
        Some(Snapshot { accounts, sessions })
    }

    /// Sets where [`AccountDesk::flush`] sends changed files.
    pub fn set_sink(&mut self, sink: Box<dyn SnapshotSink>) {
        self.sink = Some(sink);
    }

    /// When [`AccountDesk::flush`] has work: a second after the last
    /// flush, if anything changed since (`None`: nothing to write).
    pub fn next_flush(&self) -> Option<Instant> {
        let dirty = self.accounts_dirty || self.sessions_dirty;
        (dirty && self.sink.is_some()).then_some(self.last_flush + SAVE_EVERY)
    }

    /// Hands the changed files (if any) to the sink; without a sink they
    /// stay dirty.
    pub fn flush(&mut self, now: Instant) {
        if self.sink.is_none() {
            return;
        }
        let Some(snapshot) = self.take_snapshot(now) else {
            return;
        };
        self.last_flush = now;
        if let Some(sink) = self.sink.as_mut() {
            for (path, bytes) in [snapshot.accounts, snapshot.sessions].into_iter().flatten() {
                sink.save(&path, bytes);
            }
        }
    }

    /// Registered accounts.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hasher::FakeHasher;
    use crate::auth::worker::perform;
    use std::cell::RefCell;
    use std::rc::Rc;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[derive(Clone, Default)]
    struct VecQueue {
        jobs: Rc<RefCell<Vec<Job>>>,
        full: Rc<RefCell<bool>>,
    }

    impl JobQueue for VecQueue {
        fn submit(&mut self, job: Job) -> Result<(), Busy> {
            if *self.full.borrow() {
                return Err(Busy);
            }
            self.jobs.borrow_mut().push(job);
            Ok(())
        }
    }

    fn key_of(name: &str) -> Box<str> {
        name.to_lowercase().into()
    }

    fn desk() -> (AccountDesk, VecQueue, Instant) {
        let q = VecQueue::default();
        let now = Instant::now();
        let d = AccountDesk::new(
            DeskConfig {
                accounts_path: "/nonexistent/accounts.tsv".into(),
                session_ttl: Duration::from_secs(60),
            },
            key_of,
            Accounts::default(),
            Sessions::default(),
            Box::new(q.clone()),
            (now, 1_000_000),
        );
        (d, q, now)
    }

    fn run_jobs(d: &mut AccountDesk, q: &VecQueue, now: Instant) -> Vec<Finished> {
        let jobs: Vec<Job> = q.jobs.borrow_mut().drain(..).collect();
        jobs.into_iter()
            .filter_map(|j| d.finish(perform(&FakeHasher, j), now))
            .collect()
    }

    const A: ConnKey = ConnKey { slot: 0, id: 1 };
    const B: ConnKey = ConnKey { slot: 1, id: 2 };

    fn register(d: &mut AccountDesk, q: &VecQueue, now: Instant) -> Token {
        d.start_register(A, "Alice", "password1").unwrap();
        assert!(d.is_waiting(A));
        match run_jobs(d, q, now).pop() {
            Some(Finished::Registered { name, token }) => {
                assert_eq!(&*name, "Alice");
                token
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn register_then_login_by_password_and_token() {
        let (mut d, q, now) = desk();
        assert_eq!(
            d.start_register(A, "Alice", "short"),
            Err(Refusal::TooShort)
        );
        let token = register(&mut d, &q, now);
        assert!(!d.is_waiting(A));
        assert!(d.is_registered("alice"));
        assert!(d.owns(A, "ALICE"));
        assert!(!d.may_use(B, "alice"));
        assert_eq!(
            d.start_register(A, "alice", "password2"),
            Err(Refusal::AlreadyRegistered)
        );
        // Password from another connection, in another case.
        d.start_login(B, IP, "ALICE", "password1", now).unwrap();
        match run_jobs(&mut d, &q, now).pop() {
            Some(Finished::LoggedIn { name, .. }) => assert_eq!(&*name, "Alice"),
            other => panic!("{other:?}"),
        }
        assert!(d.owns(B, "alice"));
        // Token resume.
        let c = ConnKey { slot: 2, id: 3 };
        assert_eq!(
            d.token_login(c, &token.to_hex(), now),
            TokenLogin::Valid {
                name: "Alice".into()
            }
        );
        assert!(d.owns(c, "alice"));
        assert_eq!(d.token_login(c, "nonsense", now), TokenLogin::Unknown);
    }

    #[test]
    fn tokens_expire_with_the_ttl() {
        let (mut d, q, now) = desk();
        let token = register(&mut d, &q, now);
        let later = now + Duration::from_secs(60);
        assert_eq!(
            d.token_login(B, &token.to_hex(), later),
            TokenLogin::Expired {
                name: "Alice".into()
            }
        );
        assert_eq!(
            d.token_login(B, &token.to_hex(), later),
            TokenLogin::Unknown
        );
    }

    #[test]
    fn wrong_passwords_lock_after_five() {
        let (mut d, q, now) = desk();
        register(&mut d, &q, now);
        for i in 0..5 {
            assert_eq!(d.check_lock("alice", IP, now), Ok(()), "try {i}");
            d.start_login(B, IP, "alice", "nope-nope", now).unwrap();
            assert_eq!(
                run_jobs(&mut d, &q, now),
                vec![Finished::WrongPassword {
                    name: "alice".into()
                }]
            );
        }
        assert_eq!(d.check_lock("alice", IP, now), Err(Duration::from_secs(1)));
        assert_eq!(
            d.start_login(B, IP, "alice", "password1", now),
            Err(Refusal::Locked(Duration::from_secs(1)))
        );
        assert!(q.jobs.borrow().is_empty(), "a refused try costs no hash");
    }

    #[test]
    fn passwd_ends_every_token_and_logout_ends_one() {
        let (mut d, q, now) = desk();
        let first = register(&mut d, &q, now);
        d.start_login(B, IP, "alice", "password1", now).unwrap();
        run_jobs(&mut d, &q, now);
        assert_eq!(
            d.start_passwd(A, "password1", "short"),
            Err(Refusal::TooShort)
        );
        d.start_passwd(A, "wrong-old", "password2").unwrap();
        assert_eq!(
            run_jobs(&mut d, &q, now),
            vec![Finished::PasswdWrong {
                name: "Alice".into()
            }]
        );
        d.start_passwd(A, "password1", "password2").unwrap();
        let fresh = match run_jobs(&mut d, &q, now).pop() {
            Some(Finished::PasswordChanged { token, .. }) => token,
            other => panic!("{other:?}"),
        };
        let c = ConnKey { slot: 3, id: 9 };
        assert_eq!(d.token_login(c, &first.to_hex(), now), TokenLogin::Unknown);
        assert!(matches!(
            d.token_login(c, &fresh.to_hex(), now),
            TokenLogin::Valid { .. }
        ));
        // /logout ends c's token only.
        assert_eq!(d.logout(c), Ok("Alice".into()));
        assert_eq!(d.logout(c), Err(Refusal::NotLoggedIn));
        assert_eq!(d.token_login(c, &fresh.to_hex(), now), TokenLogin::Unknown);
        assert_eq!(
            d.start_passwd(c, "password2", "password3"),
            Err(Refusal::NotLoggedIn)
        );
    }

    #[test]
    fn busy_queue_and_stale_answers() {
        let (mut d, q, now) = desk();
        register(&mut d, &q, now);
        *q.full.borrow_mut() = true;
        assert_eq!(
            d.start_login(B, IP, "alice", "password1", now),
            Err(Refusal::Busy)
        );
        assert!(!d.is_waiting(B));
        *q.full.borrow_mut() = false;
        // A closed connection's answer finds nothing.
        d.start_login(B, IP, "alice", "password1", now).unwrap();
        d.forget(B);
        assert!(run_jobs(&mut d, &q, now).is_empty());
        assert!(!d.owns(B, "alice"));
    }

    #[test]
    fn held_lines_are_bounded_and_kept_in_order() {
        let (mut d, q, _now) = desk();
        d.start_register(A, "alice", "password1").unwrap();
        assert_eq!(d.hold(A, "one"), Hold::Kept);
        assert_eq!(d.hold(A, "two"), Hold::Kept);
        let line = "x".repeat(HOLD_PAUSE_BYTES / 2);
        assert_eq!(d.hold(A, &line), Hold::Kept);
        assert_eq!(d.hold(A, &line), Hold::KeptPause, "once, when passing");
        assert_eq!(d.hold(A, "three"), Hold::Kept);
        assert!(d.is_held_paused(A));
        let big = "x".repeat(MAX_HELD_BYTES);
        assert_eq!(d.hold(A, &big), Hold::Dropped);
        let (held, paused) = d.take_held(A);
        assert_eq!(held.len(), 5);
        assert_eq!((&*held[0], &*held[4]), ("one", "three"));
        assert!(paused);
        assert!(!d.is_held_paused(A));
        drop(q);
    }

    #[test]
    fn snapshots_only_when_something_changed() {
        let (mut d, q, now) = desk();
        assert_eq!(d.take_snapshot(now), None);
        let token = register(&mut d, &q, now);
        let snap = d.take_snapshot(now).unwrap();
        let (path, accounts) = snap.accounts.unwrap();
        assert!(path.ends_with("accounts.tsv"));
        assert_eq!(accounts, b"Alice\tfake$password1\n");
        let (path, sessions) = snap.sessions.unwrap();
        assert!(path.ends_with("sessions.tsv"));
        let text = String::from_utf8(sessions).unwrap();
        assert!(text.ends_with("\t1060000\tAlice\n"), "{text}");
        assert!(!text.contains(&token.to_hex()));
        assert_eq!(d.take_snapshot(now), None);
        d.logout(A).unwrap();
        let snap = d.take_snapshot(now).unwrap();
        assert!(snap.accounts.is_none());
        assert_eq!(snap.sessions.unwrap().1, b"");
    }
}
