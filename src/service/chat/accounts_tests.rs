//! The room's account rules (DESIGN.md "Accounts (chat)"), driven in
//! memory: no sockets, no threads, no sleeps. The harness plays both the
//! reactor (applying effects, honouring pause/resume, dropping answers for
//! closed connections) and the worker thread (running queued jobs with a
//! fake hasher when the test says so), so a test decides exactly when a
//! hash "finishes".

use super::*;
use crate::auth::desk::unix_ms_now;
use crate::auth::hasher::FakeHasher;
use crate::auth::store::{Accounts, Sessions};
use crate::auth::worker::perform;
use crate::auth::{Busy, DeskConfig, Job, JobQueue, SnapshotSink};
use crate::service::Effect;
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The job queue as the room sees it; the test drains it.
#[derive(Clone, Default)]
struct Queue {
    jobs: Rc<RefCell<Vec<Job>>>,
    /// Refuse jobs past this many waiting (`None`: no limit).
    capacity: Rc<RefCell<Option<usize>>>,
}

impl JobQueue for Queue {
    fn submit(&mut self, job: Job) -> Result<(), Busy> {
        let mut jobs = self.jobs.borrow_mut();
        if self.capacity.borrow().is_some_and(|c| jobs.len() >= c) {
            return Err(Busy);
        }
        jobs.push(job);
        Ok(())
    }
}

/// One file handed to the writer: its path and contents.
type Saved = (PathBuf, Vec<u8>);

/// Collects what the room hands to the background writer.
#[derive(Clone, Default)]
struct Sink {
    saved: Rc<RefCell<Vec<Saved>>>,
}

impl SnapshotSink for Sink {
    fn save(&mut self, path: &Path, bytes: Vec<u8>) {
        self.saved.borrow_mut().push((path.to_path_buf(), bytes));
    }
}

struct Room {
    chat: ChatRoom,
    fx: Effects,
    now: Instant,
    next_id: u64,
    out: HashMap<ConnKey, Vec<u8>>,
    gone: HashSet<ConnKey>,
    paused: HashSet<ConnKey>,
    closed: Vec<(ConnKey, DisconnectReason)>,
    events: Vec<Event>,
    queue: Queue,
    sink: Sink,
}

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";
const PASSWORD: &str = "correct-horse";
const NO_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 1e9,
    burst: 1e9,
};

impl Room {
    fn new() -> Room {
        let mut chat = ChatRoom::new(
            ChatConfig {
                max_line_bytes: 4096,
                rate: NO_RATE_LIMIT,
            },
            Names::new(100),
        );
        let queue = Queue::default();
        let sink = Sink::default();
        let now = Instant::now();
        // Empty stores: the room's rules are tested with no file at all
        // (loading and saving are the shell's and the writer's).
        let mut desk = AccountDesk::new(
            DeskConfig {
                accounts_path: "accounts.tsv".into(),
                session_ttl: Duration::from_secs(60),
            },
            account_key,
            Accounts::default(),
            Sessions::default(),
            Box::new(queue.clone()),
            (now, unix_ms_now()),
        );
        desk.set_sink(Box::new(sink.clone()));
        chat.enable_accounts(desk);
        Room {
            chat,
            fx: Effects::new(),
            now,
            next_id: 0,
            out: HashMap::new(),
            gone: HashSet::new(),
            paused: HashSet::new(),
            closed: Vec::new(),
            events: Vec::new(),
            queue,
            sink,
        }
    }

    fn connect(&mut self, ip: &str) -> ConnKey {
        self.next_id += 1;
        let key = ConnKey {
            slot: (self.next_id % 5) as usize,
            id: self.next_id,
        };
        let peer = SocketAddr::new(ip.parse().unwrap(), 40_000);
        self.chat.on_open(key, peer, self.now, &mut self.fx);
        self.pump();
        key
    }

    /// Connects and takes the free name `name`; the newcomer's output is
    /// cleared.
    fn join(&mut self, ip: &str, name: &str) -> ConnKey {
        let key = self.connect(ip);
        self.send(key, format!("{name}\n").as_bytes());
        assert_eq!(self.lines(key).last().unwrap(), &format!("* hello, {name}"));
        key
    }

    #[track_caller]
    fn send(&mut self, key: ConnKey, bytes: &[u8]) {
        // The reactor does not read a paused connection.
        assert!(!self.paused.contains(&key), "read while paused: {key:?}");
        self.chat.on_recv(key, bytes, self.now, &mut self.fx);
        self.pump();
    }

    /// The worker thread's turn: every queued job is hashed, and each
    /// answer goes to the room if its connection is still open (the
    /// reactor's check). Returns how many jobs ran.
    fn run_jobs(&mut self) -> usize {
        let jobs: Vec<Job> = self.queue.jobs.borrow_mut().drain(..).collect();
        let n = jobs.len();
        for job in jobs {
            let done = perform(&FakeHasher, job);
            if !self.gone.contains(&done.key) {
                self.chat.on_job_done(done, self.now, &mut self.fx);
                self.pump();
            }
        }
        n
    }

    fn pump(&mut self) {
        loop {
            let mut closing = Vec::new();
            for effect in self.fx.drain() {
                match effect {
                    Effect::Send { to, bytes } => {
                        assert!(!self.gone.contains(&to), "send to closed {to:?}");
                        self.out.entry(to).or_default().extend_from_slice(bytes);
                    }
                    Effect::SendShared { to, bytes } => {
                        assert!(!self.gone.contains(&to), "send to closed {to:?}");
                        self.out.entry(to).or_default().extend_from_slice(&bytes);
                    }
                    Effect::Close { to, reason } => closing.push((to, reason)),
                    Effect::PauseReading(to) => {
                        assert!(self.paused.insert(to), "paused twice");
                    }
                    Effect::ResumeReading(to) => {
                        assert!(self.paused.remove(&to), "resumed but not paused");
                    }
                    Effect::Record(event) => self.events.push(event),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if closing.is_empty() {
                return;
            }
            for (key, reason) in closing {
                assert!(self.gone.insert(key), "closed twice");
                self.closed.push((key, reason));
                self.chat.on_close(key, reason, &mut self.fx);
            }
        }
    }

    /// The reactor closes a connection on its own (reset, idle).
    fn drop_conn(&mut self, key: ConnKey) {
        self.gone.insert(key);
        self.paused.remove(&key);
        self.chat
            .on_close(key, DisconnectReason::Reset, &mut self.fx);
        self.pump();
    }

    fn lines(&mut self, key: ConnKey) -> Vec<String> {
        let bytes = self.out.remove(&key).unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// The `auth` events so far, as `(how, result, name)`.
    fn auths(&mut self) -> Vec<(&'static str, &'static str, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Auth {
                    how, result, name, ..
                } => Some((how.as_str(), result.as_str(), name.clone())),
                _ => None,
            })
            .collect()
    }

    /// alice joins from A and registers `PASSWORD`; returns her key and
    /// token, with outputs and events cleared.
    fn registered_alice(&mut self) -> (ConnKey, String) {
        let a = self.join(A, "alice");
        self.send(a, format!("/register {PASSWORD}\n").as_bytes());
        assert!(self.lines(a).is_empty(), "no answer before the hash");
        assert_eq!(self.run_jobs(), 1);
        let out = self.lines(a);
        assert_eq!(out[0], "* alice is registered");
        let token = token_of(&out[1]);
        self.events.clear();
        self.out.clear();
        (a, token)
    }
}

/// The token of a `* token TOKEN` line: 32 lowercase hex digits.
#[track_caller]
fn token_of(line: &str) -> String {
    let token = line
        .strip_prefix("* token ")
        .unwrap_or_else(|| panic!("not a token line: {line:?}"));
    assert_eq!(token.len(), 32, "{token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    token.to_string()
}

fn lines(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn register_then_log_in_with_the_password() {
    let mut r = Room::new();
    let a = r.join(A, "alice");
    r.send(a, b"/register short\n/register\n");
    assert_eq!(
        r.lines(a),
        lines(&[
            "! a password has at least 8 characters",
            "! usage: /register PASSWORD"
        ])
    );
    assert_eq!(r.run_jobs(), 0, "nothing hashed");
    r.send(a, format!("/register {PASSWORD}\n").as_bytes());
    r.run_jobs();
    let out = r.lines(a);
    assert_eq!(out[0], "* alice is registered");
    token_of(&out[1]);
    assert_eq!(r.auths(), vec![("register", "ok", "alice".into())]);
    r.send(a, b"/register another-one\n");
    assert_eq!(
        r.lines(a),
        lines(&["! alice is registered already; /passwd OLD NEW changes its password"])
    );
    r.send(a, b"/quit\n");

    // Someone (from another IP) gives the name: the password is asked.
    let b = r.join(B, "bob");
    let c = r.connect(C);
    r.lines(c);
    r.send(c, b"ALICE\n");
    assert_eq!(r.lines(c), lines(&["* ALICE is registered; password?"]));
    r.send(c, format!("  {PASSWORD} \r\n").as_bytes());
    assert!(r.lines(b).is_empty(), "not joined before the answer");
    r.run_jobs();
    let out = r.lines(c);
    // Shown as registered, whatever case was typed.
    assert_eq!(out[0], "* hello, alice");
    token_of(&out[1]);
    assert_eq!(out.len(), 2);
    assert_eq!(r.lines(b), lines(&["* alice joined"]));
    assert!(r.auths().contains(&("password", "ok", "alice".into())));
}

#[test]
fn a_wrong_password_asks_for_the_name_again() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let c = r.connect(C);
    r.lines(c);
    r.send(c, b"alice\nnot it at all\n");
    r.run_jobs();
    assert_eq!(
        r.lines(c),
        lines(&[
            "* alice is registered; password?",
            "! wrong password",
            "* what is your name?"
        ])
    );
    assert_eq!(r.auths(), vec![("password", "wrong", "alice".into())]);
    // The prompt is a name prompt again: a free name joins.
    r.send(c, b"carol\n");
    assert_eq!(r.lines(c), lines(&["* hello, carol"]));
    // `exit` at the password prompt leaves, as at the name prompt.
    let d = r.connect(B);
    r.send(d, b"alice\nexit\n");
    assert_eq!(r.closed.last(), Some(&(d, DisconnectReason::Exit)));
    assert_eq!(r.run_jobs(), 0);
}

#[test]
fn five_wrong_passwords_lock_the_name_for_that_ip() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let c = r.connect(C);
    r.lines(c);
    for _ in 0..5 {
        r.send(c, b"alice\nwrong-password\n");
        r.run_jobs();
        assert_eq!(r.lines(c)[1], "! wrong password");
    }
    // Locked: refused at the name, no password asked, nothing hashed.
    r.send(c, b"alice\n");
    assert_eq!(
        r.lines(c),
        lines(&["! too many tries; wait 1s", "* what is your name?"])
    );
    assert_eq!(r.run_jobs(), 0);
    assert_eq!(
        r.auths().last(),
        Some(&("password", "locked", "alice".into()))
    );
    // Another IP is not locked.
    let d = r.connect(B);
    r.lines(d);
    r.send(d, b"alice\n");
    assert_eq!(r.lines(d), lines(&["* alice is registered; password?"]));
    r.drop_conn(d);
    // A refused try is not a failure: after 1 s one more try, and its
    // failure doubles the lock.
    r.now += Duration::from_millis(999);
    r.send(c, b"alice\n");
    assert_eq!(r.lines(c)[0], "! too many tries; wait 1s");
    r.now += Duration::from_millis(1);
    r.send(c, b"alice\nwrong-again\n");
    r.run_jobs();
    assert_eq!(r.lines(c)[1], "! wrong password");
    r.send(c, b"alice\n");
    assert_eq!(r.lines(c)[0], "! too many tries; wait 2s");
    // The right password after the lock clears it.
    r.now += Duration::from_secs(2);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    r.run_jobs();
    assert_eq!(r.lines(c)[1], "* hello, alice");
}

#[test]
fn token_at_the_prompt_resumes_the_session() {
    let mut r = Room::new();
    let (a, token) = r.registered_alice();
    // The holder is online: the name is taken, token or not.
    let c = r.connect(C);
    r.lines(c);
    r.send(c, format!("/token {token}\n").as_bytes());
    assert_eq!(
        r.lines(c),
        lines(&["! the name alice is taken", "* what is your name?"])
    );
    r.send(a, b"/quit\n");
    r.send(c, format!("/TOKEN {}\n", token.to_uppercase()).as_bytes());
    assert_eq!(r.lines(c), lines(&["* hello, alice"]));
    assert_eq!(r.auths(), vec![("token", "ok", "alice".into())]);
    assert_eq!(r.run_jobs(), 0, "a token costs no hash");
    // Unknown tokens, and junk.
    for bad in [
        "/token 00000000000000000000000000000000",
        "/token nope",
        "/token",
    ] {
        let d = r.connect(B);
        r.lines(d);
        r.send(d, format!("{bad}\n").as_bytes());
        assert_eq!(
            r.lines(d),
            lines(&["! unknown or expired token", "* what is your name?"]),
            "{bad}"
        );
        r.drop_conn(d);
    }
    // In the room, /token is not a login.
    r.send(c, format!("/token {token}\n").as_bytes());
    assert_eq!(
        r.lines(c),
        lines(&["! /token works at the name prompt; you are in the room already"])
    );
}

#[test]
fn tokens_expire_after_the_session_ttl() {
    let mut r = Room::new();
    let (a, token) = r.registered_alice();
    r.send(a, b"/quit\n");
    r.now += Duration::from_secs(60);
    let c = r.connect(C);
    r.lines(c);
    r.send(c, format!("/token {token}\n").as_bytes());
    assert_eq!(
        r.lines(c),
        lines(&["! unknown or expired token", "* what is your name?"])
    );
    assert_eq!(r.auths(), vec![("token", "expired", "alice".into())]);
}

#[test]
fn passwd_ends_every_token_and_logout_ends_its_own() {
    let mut r = Room::new();
    let (a, first) = r.registered_alice();
    r.send(a, b"/passwd\n/passwd only-one\n");
    assert_eq!(
        r.lines(a),
        lines(&["! usage: /passwd OLD NEW", "! usage: /passwd OLD NEW"])
    );
    r.send(a, format!("/passwd {PASSWORD} short\n").as_bytes());
    assert_eq!(
        r.lines(a),
        lines(&["! a password has at least 8 characters"])
    );
    r.send(a, b"/passwd wrong-old new-password\n");
    r.run_jobs();
    assert_eq!(r.lines(a), lines(&["! wrong password"]));
    assert_eq!(r.auths(), vec![("passwd", "wrong", "alice".into())]);
    r.send(a, format!("/passwd {PASSWORD} new password\n").as_bytes());
    r.run_jobs();
    let out = r.lines(a);
    assert_eq!(out[0], "* password changed");
    let fresh = token_of(&out[1]);
    assert_eq!(r.auths().last(), Some(&("passwd", "ok", "alice".into())));
    // The old token ended; the new one works.
    r.send(a, b"/quit\n");
    let c = r.connect(C);
    r.lines(c);
    r.send(c, format!("/token {first}\n").as_bytes());
    assert_eq!(r.lines(c)[0], "! unknown or expired token");
    r.send(c, format!("/token {fresh}\n").as_bytes());
    assert_eq!(r.lines(c), lines(&["* hello, alice"]));
    // /logout ends this token, not the connection's name.
    r.send(c, b"/logout\n");
    assert_eq!(r.lines(c), lines(&["* logged out"]));
    assert_eq!(r.auths().last(), Some(&("logout", "ok", "alice".into())));
    r.send(c, b"/logout\n/passwd new-password newer-password\n");
    let not_in = "! you are not logged in; /register PASSWORD protects your name";
    assert_eq!(r.lines(c), lines(&[not_in, not_in]));
    r.send(c, b"/who\n");
    assert_eq!(r.lines(c), lines(&["* online: alice"]));
    r.send(c, b"/quit\n");
    let d = r.connect(B);
    r.lines(d);
    r.send(d, format!("/token {fresh}\n").as_bytes());
    assert_eq!(r.lines(d)[0], "! unknown or expired token");
    // The new password (with its inner space) works, the old one not.
    r.send(d, format!("alice\n{PASSWORD}\n").as_bytes());
    r.run_jobs();
    assert_eq!(r.lines(d)[1], "! wrong password");
    r.send(d, b"alice\nnew password\n");
    r.run_jobs();
    assert_eq!(r.lines(d)[1], "* hello, alice");
}

#[test]
fn registered_names_are_not_handed_out_by_ip() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    // Same IP as alice: no welcome back, the name prompt instead.
    let again = r.connect(A);
    assert_eq!(
        r.lines(again),
        lines(&["* welcome to echochat; what is your name?"])
    );
    assert!(r.events.iter().all(|e| !matches!(e, Event::Join { .. })));
    // An unregistered remembered name is still welcomed back.
    let b = r.join(B, "bob");
    r.send(b, b"/quit\n");
    let b2 = r.connect(B);
    assert_eq!(
        r.lines(b2),
        lines(&["* welcome back, bob", "* not bob? type /nick NEWNAME"])
    );
}

#[test]
fn nick_to_a_registered_name_is_refused_unless_it_is_yours() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    let b = r.join(B, "bob");
    r.send(a, b"/quit\n");
    r.lines(b);
    r.send(b, b"/nick Alice\n");
    assert_eq!(
        r.lines(b),
        lines(&["! the name Alice is registered to someone else"])
    );
    // The owner may leave the name and take it back.
    let c = r.connect(C);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    r.run_jobs();
    r.lines(c);
    r.send(c, b"/nick ally\n/nick alice\n");
    assert_eq!(
        r.lines(c),
        lines(&["* you are now ally", "* you are now alice"])
    );
}

#[test]
fn a_full_queue_answers_busy() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    *r.queue.capacity.borrow_mut() = Some(1);
    let c = r.connect(C);
    let d = r.connect(B);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    r.send(d, format!("alice\n{PASSWORD}\n").as_bytes());
    let out = r.lines(d);
    assert_eq!(
        &out[out.len() - 2..],
        ["! busy, try again", "* what is your name?"]
    );
    assert!(!r.paused.contains(&d), "nothing to wait for");
    r.run_jobs();
    assert_eq!(r.lines(c).last().unwrap().len(), "* token ".len() + 32);
}

#[test]
fn lines_typed_while_hashing_are_handled_after_the_answer() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let b = r.join(B, "bob");
    let c = r.connect(C);
    r.lines(c);
    // One read brings the name, the password and two more lines.
    r.send(c, format!("alice\n{PASSWORD}\n/who\nhi all\n").as_bytes());
    assert_eq!(r.lines(c), lines(&["* alice is registered; password?"]));
    assert!(r.lines(b).is_empty());
    r.run_jobs();
    let out = r.lines(c);
    assert_eq!(out[0], "* hello, alice");
    assert!(out[1].starts_with("* token "));
    assert_eq!(out[2], "* online: alice, bob");
    assert_eq!(r.lines(b), lines(&["* alice joined", "alice: hi all"]));
    // A held line may start another job: the rest waits for it.
    r.send(c, b"/passwd wrong-one new-password\n/who\n");
    assert!(r.lines(c).is_empty());
    r.run_jobs();
    assert_eq!(
        r.lines(c),
        lines(&["! wrong password", "* online: alice, bob"])
    );
}

#[test]
fn typing_a_lot_while_hashing_pauses_reading_until_the_answer() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let b = r.join(B, "bob");
    let c = r.connect(C);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    r.lines(c);
    let line = format!("{}\n", "x".repeat(1000));
    let mut sent = 0;
    while !r.paused.contains(&c) {
        r.send(c, line.as_bytes());
        sent += 1;
        assert!(sent < 100, "never paused");
    }
    assert!(sent > 10, "paused only past 16 KiB ({sent} lines)");
    assert!(r.lines(b).is_empty());
    r.run_jobs();
    assert!(!r.paused.contains(&c), "the answer resumes reading");
    assert_eq!(r.lines(b).len(), 1 + sent, "joined, then every line");
}

#[test]
fn a_fin_while_hashing_waits_for_the_answer() {
    let mut r = Room::new();
    let a = r.join(A, "alice");
    // A script: register, then end of input (FIN) at once.
    r.send(a, format!("/register {PASSWORD}\n/who").as_bytes());
    r.chat.on_eof(a, r.now, &mut r.fx);
    r.pump();
    assert!(r.closed.is_empty(), "the answer is still owed");
    r.run_jobs();
    let out = r.lines(a);
    assert_eq!(out[0], "* alice is registered");
    token_of(&out[1]);
    assert_eq!(out[2], "* online: alice", "the unterminated last line too");
    assert_eq!(r.closed, vec![(a, DisconnectReason::Eof)]);
}

#[test]
fn a_reset_while_hashing_drops_the_answer() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let c = r.connect(C);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    // The reactor reads ECONNRESET while the hash is computed.
    r.drop_conn(c);
    // The answer comes for a closed connection: the reactor drops it.
    assert_eq!(r.run_jobs(), 1);
    assert!(r.auths().is_empty());
    assert_eq!(r.chat.online(), 0);
}

#[test]
fn an_answer_for_a_closed_connection_is_dropped() {
    let mut r = Room::new();
    let (a, _) = r.registered_alice();
    r.send(a, b"/quit\n");
    let c = r.connect(C);
    r.send(c, format!("alice\n{PASSWORD}\n").as_bytes());
    r.drop_conn(c);
    r.out.clear();
    // The reactor would not deliver it; even if it did, nothing happens.
    let job = r.queue.jobs.borrow_mut().pop().unwrap();
    r.chat
        .on_job_done(perform(&FakeHasher, job), r.now, &mut r.fx);
    r.pump();
    assert!(r.out.is_empty(), "{:?}", r.out);
    assert!(r.auths().is_empty());
    assert_eq!(r.chat.online(), 0);
    // The name is free to log in to again, and the abandoned try did not
    // count as a failure.
    let d = r.connect(C);
    r.send(d, format!("alice\n{PASSWORD}\n").as_bytes());
    r.run_jobs();
    assert_eq!(r.lines(d)[2], "* hello, alice");
}

#[test]
fn files_go_to_the_writer_on_tick_and_hold_no_secret() {
    let mut r = Room::new();
    let (a, token) = r.registered_alice();
    // Due at once (nothing was written in the last second).
    assert!(r.chat.next_deadline().is_some_and(|at| at <= r.now));
    r.chat.on_timer(r.now, &mut r.fx);
    let saved = r.sink.saved.borrow_mut().drain(..).collect::<Vec<_>>();
    assert_eq!(saved.len(), 2, "accounts and sessions");
    let accounts = String::from_utf8(saved[0].1.clone()).unwrap();
    assert!(saved[0].0.ends_with("accounts.tsv"));
    assert_eq!(accounts, format!("alice\tfake${PASSWORD}\n"));
    let sessions = String::from_utf8(saved[1].1.clone()).unwrap();
    assert!(saved[1].0.ends_with("sessions.tsv"));
    assert!(!sessions.contains(&token), "only the token's hash is kept");
    assert!(sessions.ends_with("\talice\n"));
    // Nothing changed: nothing to write, no deadline.
    assert_eq!(r.chat.next_deadline(), None);
    r.chat.on_timer(r.now, &mut r.fx);
    assert!(r.sink.saved.borrow().is_empty());
    // A change within the second waits for the second to pass.
    r.send(a, b"/logout\n");
    assert_eq!(r.chat.next_deadline(), Some(r.now + Duration::from_secs(1)));
    r.now += Duration::from_secs(1);
    r.chat.on_timer(r.now, &mut r.fx);
    assert_eq!(r.sink.saved.borrow().len(), 1, "sessions only");
    r.sink.saved.borrow_mut().clear();
    // No event line carries a password or a token.
    r.send(a, b"/passwd wrong-old another-pass\n");
    r.run_jobs();
    for event in &r.events {
        let line = event.logfmt().to_string();
        for secret in [PASSWORD, "wrong-old", "another-pass", &token] {
            assert!(!line.contains(secret), "{line}");
        }
    }
}

#[test]
fn without_accounts_the_commands_say_so() {
    let mut chat = ChatRoom::new(
        ChatConfig {
            max_line_bytes: 4096,
            rate: NO_RATE_LIMIT,
        },
        Names::new(100),
    );
    let mut fx = Effects::new();
    let key = ConnKey { slot: 0, id: 1 };
    let peer = SocketAddr::new(A.parse().unwrap(), 1);
    chat.on_open(key, peer, Instant::now(), &mut fx);
    chat.on_recv(
        key,
        b"alice\n/register password1\n",
        Instant::now(),
        &mut fx,
    );
    let sent: Vec<u8> = fx
        .drain()
        .filter_map(|e| match e {
            Effect::Send { bytes, .. } => Some(bytes.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let text = String::from_utf8(sent).unwrap();
    assert!(
        text.ends_with("! accounts are not enabled on this server\n"),
        "{text}"
    );
}
