//! The chat service: a room of named users, as a pure state machine.
//!
//! Like the echo service it never touches a socket: the reactor hands it
//! bytes and lifecycle news, and it answers with [`Effects`]. Each
//! connection's bytes go through its own [`TelnetFilter`] (`telnet.rs`),
//! which takes out the telnet commands a `telnet` client mixes in and
//! answers them to that client only, then through its own [`LineDecoder`]
//! (`codec.rs`), which turns whatever one `recv` returned into whole lines
//! (any line ending; backspace and DEL applied); every line is then
//! handled by the rules of `DESIGN.md` ("Chat protocol"):
//!
//! 1. On connect, a client whose IP is in the names file (`names.rs`) and
//!    whose remembered name is free gets `* welcome back, NAME` and
//!    `* not NAME? type /nick NEWNAME` (one machine may serve several
//!    people: a lab PC, the teacher's terminals) and joins at once;
//!    otherwise `* welcome to echochat; what is your name?`, and each
//!    line is a name candidate until one is good (`* hello, NAME`). A bad or
//!    taken name gets one `! reason` line and `* what is your name?`. A lone
//!    `exit` at the prompt disconnects (`reason=exit`).
//! 2. Joining sends `* NAME joined` to everyone else.
//! 3. Any other line goes to every other user as `NAME: text`.
//! 4. `/nick NEW`, `/who`, `/msg NAME text`, `/help`, `/quit` (and a lone
//!    `exit`); leaving, for any reason, sends `* NAME left` to the others.
//! 5. Errors are one `! ` line and the connection stays open.
//! 6. Control characters, bidi controls and line/paragraph separators are
//!    removed from relayed text and refused in names (`text.rs`).
//! 7. Before the server itself closes a joined user it says why, in one
//!    last line: `* bye, NAME` (`/quit`, `exit`), `* disconnected: idle for
//!    DURATION`, `* kicked by the server: reason`, `* server shutting down`.
//!    A receiver cut for backlog gets none: it is not reading.
//! 8. Console lines go to every joined user as `[server] text`; the
//!    teacher's `/who` and `/kick` are answered here too
//!    ([`Service::on_console_command`]), since only the room knows who is
//!    in it.
//! 9. Accounts ("Accounts (chat)"): `/register`, the password prompt for
//!    registered names, `/token`, `/passwd`, `/logout`. The rules of what
//!    is true live in `auth/desk.rs`; this file says it on the wire. A
//!    password goes to the worker thread as a job, and what the user types
//!    meanwhile waits until [`Service::on_job_done`] brings the answer
//!    (see "Accounts" below).
//!
//! Choices where the contract is silent:
//! - **Names** follow `names.rs` (letters and digits of one script, `_`,
//!   `-`; no invisible characters or mark stacks); spaces and tabs around a
//!   name candidate are trimmed. Uniqueness is by [`name_key`] (NFKC, case
//!   folding, confusable skeleton), and `/nick` may change one's own name to
//!   another with the same key (`alice` to `Alice`).
//! - **Persistence**: the room does no file IO. It remembers names by IP in
//!   [`Names`] (memory, loaded by the shell before the room is built), and
//!   on a change it only marks itself changed; the shell polls
//!   [`ChatRoom::take_names_snapshot`] at most once a second and hands the
//!   bytes to a background saver (`persist.rs`).
//! - **Empty lines** never reach the room (the decoder drops them), and
//!   lines that are empty once control characters are removed, or only
//!   whitespace, are ignored in the room; at the name prompt such a line is
//!   a bad name like any other.
//! - **Silence means success** for the sender of a message or a whisper:
//!   as with `NAME: text`, the sender gets no copy. `/nick` answers
//!   `* you are now NEW`.
//! - **Goodbye lines** (rule 7) go to joined users; a lone `exit` at the
//!   name or password prompt closes quietly (there is no NAME to say bye
//!   to). The idle line goes to every chat connection, joined or not: an
//!   `nc` user left at the prompt deserves to know why it was closed too.
//!   The line is queued before the close, and an idle, kicked or quitting
//!   connection is closed only after its output is sent.
//! - **The console's `/who`** lists each user (TCP and UDP) with IP,
//!   transport, connected time and idle time, where idle means "since this
//!   user last sent anything" (what a teacher wants to know), not the
//!   reactor's idle timer (which room traffic to the user also resets).
//!   Connections still at the name prompt are counted on a last line. A
//!   load test's ten thousand users are cut to the first
//!   [`CONSOLE_WHO_MAX`] by name, so a stray `/who` cannot flood the
//!   terminal (a blocking stdout would stall the loop).
//! - **`/kick NAME`** finds the user as `/msg` does (name key: case and
//!   look-alikes do not matter); the others see `* NAME left`, as for any
//!   departure.
//! - **`/who`** lists names sorted case-insensitively, the asker included.
//!   In a huge room (a load test) the line is capped near `max_line_bytes`
//!   (at least 1 KiB) and ends `..., and N more`, so a client's own line
//!   limit never rejects it.
//! - **Commands** are matched without regard to ASCII case (`/WHO` works);
//!   anything after `/who`, `/help` or `/quit` is ignored.
//! - **Unterminated last line**: when the peer sends FIN, a last line
//!   without `\n` is still handled, then the connection closes (`eof`).
//! - **Console lines** go to joined users only (a connection still at the
//!   name prompt is not in the room); `* server shutting down` goes to every
//!   chat connection. During a shutdown, departures are not announced, so
//!   closing N users does not send N² `left` lines.
//! - A user the server drops (backlog, FIN, `/quit`) leaves the room at
//!   once, so nothing more is queued for a connection that is closing.
//!
//! Costs: a connection holds a `Member` (128 bytes on x86-64: its IP,
//! its decoder, its stage and name, and two times in seconds for `/who`)
//! — the decoder's buffer exists only while a line spans
//! two reads. A broadcast line is formatted once into an `Rc<[u8]>` and the
//! same buffer is queued for every receiver, so a message to N users costs
//! one allocation, not N copies. Handling lines allocates nothing else on
//! the message path.
//!
//! Accounts, where the contract is silent:
//! - **Passwords** are the rest of the line, blanks around it trimmed (the
//!   same at `/register`, at the prompt and in `/passwd`'s NEW). A lone
//!   `exit` at the password prompt disconnects, as at the name prompt.
//! - **While a hash is computed** for a connection, the lines it types are
//!   held and handled after the answer, in order. It is still read, so a
//!   client that resets meanwhile is closed at once and the answer
//!   dropped; past 16 KiB of held lines its reading pauses (TCP holds the
//!   rest). A FIN is a half-close: it waits behind the answer, which the
//!   client may still read (`printf 'bob\n/register pw\n' | nc` works).
//! - **A token login** (`/token`) sends `* hello, NAME` only: the client
//!   already holds its token. `/passwd` ends every token of the account
//!   and gives the connection a fresh one (`* token TOKEN` after
//!   `* password changed`), so the bundled client keeps working.
//! - **`/logout`** ends the token and the login, not the name: the user
//!   stays in the room under it for this connection.
//!
//! Read `names.rs` for the name rules and the names file, then the tests at
//! the bottom: a room of three users driven entirely in memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::auth::desk::{Finished, Hold, Refusal, TokenLogin};
use crate::auth::{AccountDesk, AuthHow, AuthResult, Done};
use crate::codec::{Line, LineDecoder};
use crate::event::{DisconnectReason, Event, PauseWhy};
use crate::names::{Names, check_name, name_key};
use crate::service::rate::{RateLimit, TokenBucket};
use crate::service::{ConnKey, ConsoleCommand, Effects, Service, UdpKey};
use crate::telnet::{Piece, TelnetFilter};
use crate::text::{has_visible, push_filtered};

mod udp;
pub use udp::DEFAULT_MEMBER_TIMEOUT;

/// What the chat room needs from the command line.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `--max-line`: the longest line accepted, terminator not counted.
    pub max_line_bytes: usize,
    /// `--chat-rate` and `--chat-burst`: lines a user may send.
    pub rate: RateLimit,
}

const GREETING: &[u8] = b"* welcome to echochat; what is your name?\n";
const ASK_AGAIN: &[u8] = b"* what is your name?\n";
const SHUTTING_DOWN: &[u8] = b"* server shutting down\n";
const INVALID_UTF8: &[u8] = b"! invalid UTF-8, line ignored\n";
const HELP: &[u8] = b"* commands:\n\
* /nick NEW       change your name\n\
* /who            list who is online\n\
* /msg NAME text  send text to one user only\n\
* /register PASSWORD  protect your name (8 or more characters)\n\
* /passwd OLD NEW     change your password\n\
* /logout             end this session's token\n\
* /help           this list\n\
* /quit or exit   leave the chat\n\
* any other line goes to everyone else\n";

/// The `/who` line is capped at `max_line_bytes`, but never below this.
const WHO_MIN_BYTES: usize = 1024;

/// Bytes read from one chat connection per turn (see `read_budget`).
const CHAT_READ_BUDGET: usize = 1024;

/// Users the console's `/who` lists at most (see the module docs).
pub const CONSOLE_WHO_MAX: usize = 200;
const BUSY: &[u8] = b"! busy, try again\n";
const WRONG_PASSWORD: &[u8] = b"! wrong password\n";
const NOT_LOGGED_IN: &[u8] = b"! you are not logged in; /register PASSWORD protects your name\n";
const NO_ACCOUNTS: &[u8] = b"! accounts are not enabled on this server\n";
const SHORT_PASSWORD: &[u8] = b"! a password has at least 8 characters\n";
const HASH_FAILED: &[u8] = b"! that did not work; try again\n";

/// The chat room; see the module docs.
#[derive(Debug)]
pub struct ChatRoom {
    /// `--max-line`, for each new connection's decoder and the error text.
    max_line_bytes: usize,
    /// Remembered names by IP, updated on every name choice or change.
    names: Names,
    /// `names` changed since the last snapshot was taken.
    names_changed: bool,
    /// Every open chat connection, joined or not.
    members: HashMap<ConnKey, Member>,
    /// Joined users by [`name_key`]: uniqueness, `/msg` lookup, and the
    /// list of receivers for a broadcast.
    online: HashMap<Box<str>, ConnKey>,
    /// Reused to format lines, so a message costs only its shared buffer.
    scratch: Vec<u8>,
    /// A graceful stop began: departures are no longer announced.
    shutting_down: bool,
    /// Accounts, when enabled (`enable_accounts`): registered names,
    /// sessions, lockout, and the jobs out on the worker thread.
    desk: Option<AccountDesk>,
    /// The time of the call being handled (services are given `now`;
    /// the line handlers read it from here).
    now: Instant,
    /// `--chat-rate` / `--chat-burst`.
    rate: RateLimit,
    /// Users not read until their allowance refills, by when it will have.
    paused: BinaryHeap<Reverse<(Instant, ConnKey)>>,
    /// Lines handled in the current `on_recv` (what the bucket is charged).
    lines_this_read: usize,
    /// Members who chat over UDP (`chat/udp.rs`).
    udp: udp::UdpMembers,
    /// Lines and datagrams users sent, for `/stats` and the status page.
    messages: u64,
    /// Account attempts that failed (wrong, locked, expired), for
    /// `/metrics`' `auth_failures` (counted only once accounts are on).
    auth_failures: u64,
    /// When the room was made: members' times are kept as seconds after it.
    epoch: Instant,
}

/// One chat connection.
#[derive(Debug)]
struct Member {
    /// The client's IP, the key of the names file.
    ip: IpAddr,
    /// Takes telnet commands out of this connection's bytes and answers
    /// them (one pointer until the client sends its first IAC).
    telnet: TelnetFilter,
    /// Splits what the user typed into lines.
    decoder: LineDecoder,
    /// Where the connection is in the protocol.
    stage: Stage,
    /// Lines this user may still send now (see `rate.rs`).
    bucket: TokenBucket,
    /// Not read until `bucket` refills (`pause why=rate`).
    rate_paused: bool,
    /// When it connected, in whole seconds after the room's `epoch` (the
    /// console's `/who`; 4 bytes, not an `Instant`'s 16: every connection
    /// pays for it).
    since_s: u32,
    /// When it last sent anything, the same way (`/who`'s "idle").
    heard_s: u32,
}

#[derive(Debug)]
enum Stage {
    /// Asked for a name; every line is a candidate.
    Naming,
    /// Gave a registered name (kept by the account desk); the next line
    /// is its password.
    Password,
    /// In the room under this name.
    Joined { name: Box<str> },
    /// Left (or is being closed): its input is ignored, nothing is sent.
    Left,
}

impl ChatRoom {
    /// A room that starts with the remembered `names` (loaded by the
    /// shell: see `Names::load`; `Names::new` for none).
    pub fn new(config: ChatConfig, names: Names) -> ChatRoom {
        ChatRoom {
            max_line_bytes: config.max_line_bytes,
            names,
            names_changed: false,
            members: HashMap::new(),
            online: HashMap::new(),
            scratch: Vec::new(),
            shutting_down: false,
            desk: None,
            now: Instant::now(),
            udp: udp::UdpMembers::default(),
            rate: config.rate,
            paused: BinaryHeap::new(),
            lines_this_read: 0,
            messages: 0,
            auth_failures: 0,
            epoch: Instant::now(),
        }
    }

    /// Whether the remembered names changed since the last snapshot.
    pub fn names_changed(&self) -> bool {
        self.names_changed
    }

    /// The names file's new content if the names changed since the last
    /// call, else `None`. The shell calls this at most once a second and
    /// saves the bytes off the reactor's thread; the cost here is one walk
    /// of the memory (bounded by `--names-max`).
    pub fn take_names_snapshot(&mut self) -> Option<Vec<u8>> {
        std::mem::take(&mut self.names_changed).then(|| self.names.to_bytes())
    }

    /// The remembered names (for the shell and tests).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Turns on accounts (`/register`, passwords, tokens) with a desk the
    /// shell built: it loaded the files and gave the desk its job queue and
    /// its writer, so the room itself never touches the disk.
    pub fn enable_accounts(&mut self, desk: AccountDesk) {
        self.desk = Some(desk);
    }

    /// `now` as a member's time (see `Member::since_s`).
    fn seconds(&self, now: Instant) -> u32 {
        seconds_after(self.epoch, now)
    }

    /// Open chat connections (joined or still at the name prompt).
    pub fn connections(&self) -> usize {
        self.members.len()
    }

    /// Users in the room.
    pub fn online(&self) -> usize {
        self.online.len()
    }

    /// One decoded line from `key`.
    fn on_line(&mut self, key: ConnKey, line: Line<'_>, fx: &mut Effects) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        let naming = match member.stage {
            Stage::Left => return,
            Stage::Naming | Stage::Password => true,
            Stage::Joined { .. } => false,
        };
        if let Some(desk) = self.desk.as_mut()
            && desk.is_waiting(key)
        {
            // A hash for this connection is being computed: keep what it
            // typed meanwhile for after the answer (see `job_done`).
            match line {
                Line::Text(text) => match desk.hold(key, text) {
                    Hold::Kept => {}
                    // Typing a lot while waiting: let TCP hold the rest.
                    Hold::KeptPause => fx.pause_reading(key),
                    Hold::Dropped => {
                        fx.send(key, b"! too much typed while waiting; line dropped\n");
                    }
                },
                Line::TooLong | Line::InvalidUtf8(_) => {
                    fx.send(key, b"! line ignored while your password is checked\n");
                }
            }
            return;
        }
        if let Stage::Password = member.stage {
            let name = self
                .desk
                .as_mut()
                .and_then(|d| d.take_asked(key))
                .unwrap_or_default();
            if let Line::Text(text) = line {
                self.on_password(key, &name, text, fx);
            } else {
                // Not a possible password (invalid UTF-8, too long): a
                // wrong one, refused without hashing or counting.
                fx.send(key, WRONG_PASSWORD);
                self.ask_name_again(key, fx);
            }
            return;
        }
        match line {
            Line::TooLong => {
                self.scratch.clear();
                push_all(
                    &mut self.scratch,
                    &[
                        "! line too long (over ",
                        &self.max_line_bytes.to_string(),
                        " bytes), ignored\n",
                    ],
                );
                fx.send(key, &self.scratch);
                if naming {
                    fx.send(key, ASK_AGAIN);
                }
            }
            Line::InvalidUtf8(_) => {
                fx.send(key, INVALID_UTF8);
                if naming {
                    fx.send(key, ASK_AGAIN);
                }
            }
            Line::Text(text) if naming => self.on_name_candidate(key, text, fx),
            Line::Text(text) => self.on_room_line(key, text, fx),
        }
    }

    fn on_name_candidate(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        if text == "exit" {
            self.drop_member(key, DisconnectReason::Exit, fx);
            return;
        }
        if let Some(token) = strip_command(text, "/token") {
            self.on_token(key, token, fx);
            return;
        }
        let name = text.trim_matches(is_blank);
        if let Err(e) = check_name(name) {
            self.reply(key, &["! ", &e.to_string()], fx);
            fx.send(key, ASK_AGAIN);
        } else if self.name_taken(name_key(name).as_str()) {
            self.reply(key, &["! the name ", name, " is taken"], fx);
            fx.send(key, ASK_AGAIN);
        } else if self.desk.as_ref().is_some_and(|d| d.is_registered(name)) {
            self.ask_password(key, name, fx);
        } else {
            self.join(key, name, "* hello, ", fx);
        }
    }

    /// Puts `key` in the room as `name` (already checked and free).
    fn join(&mut self, key: ConnKey, name: &str, greeting: &str, fx: &mut Effects) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        member.stage = Stage::Joined { name: name.into() };
        let ip = member.ip;
        self.online.insert(name_key(name).into(), key);
        self.reply(key, &[greeting, name], fx);
        self.broadcast(Some(key), &["* ", name, " joined"], fx);
        fx.record(Event::Join {
            service: "chat",
            conn: key.id,
            name: name.to_string(),
        });
        self.remember(ip, name);
    }

    /// Remembers the name for the IP, in memory only: the shell saves a
    /// snapshot later, off the hot path.
    fn remember(&mut self, ip: IpAddr, name: &str) {
        self.names_changed |= self.names.remember(ip, name);
    }

    fn on_room_line(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        if text == "exit" {
            self.quit(key, fx);
        } else if text.starts_with('/') {
            self.on_command(key, text, fx);
        } else if has_visible(text) {
            self.relay(key, text, fx);
        }
    }

    /// `NAME: text` to every other user: the hot path, formatted once into
    /// a shared buffer.
    fn relay(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        if self.online.len() + self.udp.len() < 2 {
            return; // nobody to hear it
        }
        let Some(Member {
            stage: Stage::Joined { name },
            ..
        }) = self.members.get(&key)
        else {
            return;
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(name.as_bytes());
        self.scratch.extend_from_slice(b": ");
        push_filtered(&mut self.scratch, text);
        self.scratch.push(b'\n');
        send_to_room(&self.online, Some(key), &self.scratch, fx);
        self.udp.send_all(None, &self.scratch, fx);
    }

    fn on_command(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        let (command, rest) = match text.split_once(is_blank) {
            Some((c, r)) => (c, r.trim_matches(is_blank)),
            None => (text, ""),
        };
        let is = |word: &str| command.eq_ignore_ascii_case(word);
        if is("/nick") {
            self.nick(key, rest, fx);
        } else if is("/who") {
            self.who(key, fx);
        } else if is("/msg") {
            self.whisper(key, rest, fx);
        } else if is("/help") {
            fx.send(key, HELP);
        } else if is("/quit") {
            self.quit(key, fx);
        } else if is("/register") {
            self.register(key, rest, fx);
        } else if is("/passwd") {
            self.passwd(key, rest, fx);
        } else if is("/logout") {
            self.logout(key, fx);
        } else if is("/token") {
            fx.send(
                key,
                b"! /token works at the name prompt; you are in the room already\n",
            );
        } else {
            fx.send(key, self.unknown_command(command));
        }
    }

    /// `! unknown command /x; /help lists them`, formatted in `scratch`
    /// (the command filtered like any text a user sends).
    fn unknown_command(&mut self, command: &str) -> &[u8] {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"! unknown command ");
        push_filtered(&mut self.scratch, command);
        self.scratch.extend_from_slice(b"; /help lists them\n");
        &self.scratch
    }

    fn nick(&mut self, key: ConnKey, new: &str, fx: &mut Effects) {
        if new.is_empty() {
            fx.send(key, b"! usage: /nick NEW\n");
            return;
        }
        if let Err(e) = check_name(new) {
            self.reply(key, &["! ", &e.to_string()], fx);
            return;
        }
        let Some(Member {
            stage: Stage::Joined { name },
            ip,
            ..
        }) = self.members.get_mut(&key)
        else {
            return;
        };
        if **name == *new {
            self.reply(key, &["* you are already ", new], fx);
            return;
        }
        let (old_key, new_key) = (name_key(name), name_key(new));
        // Field by field (not `name_taken`): `name` still borrows `members`.
        let taken = self.online.contains_key(new_key.as_str()) || self.udp.taken(new_key.as_str());
        if old_key != new_key && taken {
            self.reply(key, &["! the name ", new, " is taken"], fx);
            return;
        }
        if let Some(desk) = &self.desk
            && !desk.may_use(key, new)
        {
            self.reply(
                key,
                &["! the name ", new, " is registered to someone else"],
                fx,
            );
            return;
        }
        let old = std::mem::replace(name, new.into());
        let ip = *ip;
        self.online.remove(old_key.as_str());
        self.online.insert(new_key.into(), key);
        self.reply(key, &["* you are now ", new], fx);
        self.broadcast(Some(key), &["* ", &old, " is now ", new], fx);
        fx.record(Event::Nick {
            service: "chat",
            conn: key.id,
            old: old.into(),
            new: new.to_string(),
        });
        self.remember(ip, new);
    }

    fn who(&mut self, key: ConnKey, fx: &mut Effects) {
        self.format_who();
        fx.send(key, &self.scratch);
    }

    /// The `/who` line into `self.scratch`: TCP and UDP users.
    fn format_who(&mut self) {
        let mut list: Vec<&str> = self
            .online
            .values()
            .filter_map(|k| match &self.members.get(k)?.stage {
                Stage::Joined { name } => Some(&**name),
                _ => None,
            })
            .chain(self.udp.names())
            .collect();
        list.sort_by_cached_key(|n| n.to_lowercase());
        let budget = self.max_line_bytes.max(WHO_MIN_BYTES);
        self.scratch.clear();
        self.scratch.extend_from_slice(b"* online: ");
        for (i, name) in list.iter().enumerate() {
            // Room for ", NAME" and a ", ... and N more" tail.
            if i > 0 && self.scratch.len() + 2 + name.len() + 32 > budget {
                push_all(
                    &mut self.scratch,
                    &[", ... and ", &(list.len() - i).to_string(), " more"],
                );
                break;
            }
            if i > 0 {
                self.scratch.extend_from_slice(b", ");
            }
            self.scratch.extend_from_slice(name.as_bytes());
        }
        self.scratch.push(b'\n');
    }

    /// `/msg NAME text`: `* SENDER whispers: text` to NAME only.
    fn whisper(&mut self, key: ConnKey, rest: &str, fx: &mut Effects) {
        let (target, text) = rest.split_once(is_blank).unwrap_or((rest, ""));
        if target.is_empty() || !has_visible(text) {
            fx.send(key, b"! usage: /msg NAME text\n");
            return;
        }
        if check_name(target).is_err() {
            // Not a possible name: do not echo arbitrary bytes back.
            fx.send(key, b"! no such user\n");
            return;
        }
        let Some(&to) = self.online.get(name_key(target).as_str()) else {
            if !self.whisper_udp(key, target, text, fx) {
                self.reply(key, &["! no such user: ", target], fx);
            }
            return;
        };
        let Some(Member {
            stage: Stage::Joined { name },
            ..
        }) = self.members.get(&key)
        else {
            return;
        };
        self.scratch.clear();
        push_all(&mut self.scratch, &["* ", name, " whispers: "]);
        push_filtered(&mut self.scratch, text.trim_start_matches(is_blank));
        self.scratch.push(b'\n');
        fx.send(to, &self.scratch);
    }

    /// Whether `key` is connected and not closing.
    fn is_open(&self, key: ConnKey) -> bool {
        self.members
            .get(&key)
            .is_some_and(|m| !matches!(m.stage, Stage::Left))
    }

    /// `/quit` or `exit` in the room: `* bye, NAME`, then the close.
    fn quit(&mut self, key: ConnKey, fx: &mut Effects) {
        if let Some(Member {
            stage: Stage::Joined { name },
            ..
        }) = self.members.get(&key)
        {
            let name = name.clone();
            self.reply(key, &["* bye, ", &name], fx);
        }
        self.drop_member(key, DisconnectReason::Exit, fx);
    }

    /// The console's `/kick NAME [reason]`: the user is told why and
    /// closed (`reason=kicked`). False if nobody, TCP or UDP, has the name.
    fn kick(
        &mut self,
        name: &str,
        reason: Option<&str>,
        out: &mut String,
        fx: &mut Effects,
    ) -> bool {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"* kicked by the server");
        if let Some(reason) = reason.filter(|r| has_visible(r)) {
            // The teacher's text, filtered like any other relayed text.
            self.scratch.extend_from_slice(b": ");
            push_filtered(&mut self.scratch, reason);
        }
        self.scratch.push(b'\n');
        let folded = name_key(name);
        let Some(&key) = self.online.get(folded.as_str()) else {
            return self.udp_kick(&folded, out, fx);
        };
        if let Some(Member {
            stage: Stage::Joined { name },
            ip,
            ..
        }) = self.members.get(&key)
        {
            let _ = writeln!(out, "kicked {name} ({ip}, tcp)");
        }
        fx.send(key, &self.scratch);
        self.drop_member(key, DisconnectReason::Kicked, fx);
        true
    }

    /// The console's `/who`: one row per user, TCP and UDP, sorted by name
    /// like the room's `/who`; see the module docs.
    fn console_who(&self, now: Instant, out: &mut String) {
        let mut rows: Vec<WhoRow<'_>> = self
            .members
            .values()
            .filter_map(|m| match &m.stage {
                Stage::Joined { name } => Some(WhoRow {
                    name,
                    ip: m.ip,
                    transport: "tcp",
                    since: self.epoch + Duration::from_secs(m.since_s.into()),
                    last_heard: self.epoch + Duration::from_secs(m.heard_s.into()),
                }),
                _ => None,
            })
            .chain(self.udp.who_rows())
            .collect();
        let waiting = self
            .members
            .values()
            .filter(|m| matches!(m.stage, Stage::Naming | Stage::Password))
            .count();
        rows.sort_by_cached_key(|r| r.name.to_lowercase());
        match rows.len() {
            0 => out.push_str("who: nobody in the chat room\n"),
            1 => out.push_str("who: 1 user in the chat room\n"),
            n => {
                let _ = writeln!(out, "who: {n} users in the chat room");
            }
        }
        let shown = &rows[..rows.len().min(CONSOLE_WHO_MAX)];
        let name_width = shown
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0);
        let ips: Vec<String> = shown.iter().map(|r| r.ip.to_string()).collect();
        let ip_width = ips.iter().map(String::len).max().unwrap_or(0);
        for (row, ip) in shown.iter().zip(&ips) {
            let _ = writeln!(
                out,
                "  {:<name_width$}  {:<ip_width$}  {}  connected {}  idle {}",
                row.name,
                ip,
                row.transport,
                whole_seconds(now.saturating_duration_since(row.since)),
                whole_seconds(now.saturating_duration_since(row.last_heard)),
            );
        }
        if rows.len() > shown.len() {
            let _ = writeln!(out, "  ... and {} more", rows.len() - shown.len());
        }
        match waiting {
            0 => {}
            1 => out.push_str("  (and 1 connection at the name prompt)\n"),
            n => {
                let _ = writeln!(out, "  (and {n} connections at the name prompt)");
            }
        }
    }

    /// Charges the user's allowance for the lines of one read; overdrawn,
    /// the user is not read again until it refills (`/nick` and other
    /// commands count as lines too).
    fn charge(&mut self, key: ConnKey, now: Instant, fx: &mut Effects) {
        let lines = std::mem::take(&mut self.lines_this_read);
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        if lines == 0 || member.rate_paused || matches!(member.stage, Stage::Left) {
            return;
        }
        if !member.bucket.spend(lines, self.rate, now) {
            member.rate_paused = true;
            fx.pause_reading(key);
            fx.record(Event::Pause {
                service: "chat",
                conn: key.id,
                why: PauseWhy::Rate,
            });
            self.paused
                .push(Reverse((member.bucket.ready_at(self.rate), key)));
        }
    }

    /// The user leaves the room now and the connection is closed: nothing
    /// more is queued for it, and its later input is ignored.
    fn drop_member(&mut self, key: ConnKey, reason: DisconnectReason, fx: &mut Effects) {
        if matches!(
            self.members.get(&key),
            Some(Member {
                stage: Stage::Left,
                ..
            }) | None
        ) {
            return; // already closing
        }
        self.leave(key, fx);
        fx.close(key, reason);
    }

    /// Takes `key` out of the room (if it was in) and tells the others.
    fn leave(&mut self, key: ConnKey, fx: &mut Effects) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        let Stage::Joined { name } = std::mem::replace(&mut member.stage, Stage::Left) else {
            return;
        };
        let name_key = name_key(&name);
        if self.online.get(name_key.as_str()) == Some(&key) {
            self.online.remove(name_key.as_str());
        }
        if !self.shutting_down {
            self.broadcast(None, &["* ", &name, " left"], fx);
        }
        fx.record(Event::Leave {
            service: "chat",
            conn: key.id,
            name: name.into(),
        });
    }

    /// One line (`parts` joined, plus `\n`) to one connection.
    fn reply(&mut self, key: ConnKey, parts: &[&str], fx: &mut Effects) {
        self.scratch.clear();
        push_all(&mut self.scratch, parts);
        self.scratch.push(b'\n');
        fx.send(key, &self.scratch);
    }

    /// One line (`parts` joined, plus `\n`) to every joined user but
    /// `except`.
    fn broadcast(&mut self, except: Option<ConnKey>, parts: &[&str], fx: &mut Effects) {
        self.scratch.clear();
        push_all(&mut self.scratch, parts);
        self.scratch.push(b'\n');
        send_to_room(&self.online, except, &self.scratch, fx);
        self.udp.send_all(None, &self.scratch, fx);
    }
}

// ----- accounts ---------------------------------------------------------------
//
// What is true about accounts is decided in `auth/desk.rs`; these methods
// say it on the wire, log the `auth` event, and pause or resume reading
// around a job on the worker thread.

impl ChatRoom {
    /// A registered, free name at the prompt: ask for its password, unless
    /// this IP is locked out of it (then refuse without asking).
    fn ask_password(&mut self, key: ConnKey, name: &str, fx: &mut Effects) {
        let (Some(desk), Some(member)) = (self.desk.as_ref(), self.members.get(&key)) else {
            return;
        };
        if let Err(wait) = desk.check_lock(name, member.ip, self.now) {
            self.refuse_locked(key, name, wait, fx);
            return;
        }
        if let Some(desk) = self.desk.as_mut() {
            desk.ask(key, name);
        }
        if let Some(member) = self.members.get_mut(&key) {
            member.stage = Stage::Password;
        }
        self.reply(key, &["* ", name, " is registered; password?"], fx);
    }

    fn refuse_locked(
        &mut self,
        key: ConnKey,
        name: &str,
        wait: std::time::Duration,
        fx: &mut Effects,
    ) {
        let wait = humantime::format_duration(wait).to_string();
        self.reply(key, &["! too many tries; wait ", &wait], fx);
        self.record_auth(key, name, AuthHow::Password, AuthResult::Locked, fx);
        self.ask_name_again(key, fx);
    }

    /// Back to the name prompt.
    fn ask_name_again(&mut self, key: ConnKey, fx: &mut Effects) {
        if let Some(member) = self.members.get_mut(&key) {
            member.stage = Stage::Naming;
        }
        fx.send(key, ASK_AGAIN);
    }

    /// The line after `* NAME is registered; password?`.
    fn on_password(&mut self, key: ConnKey, name: &str, text: &str, fx: &mut Effects) {
        if text == "exit" {
            self.drop_member(key, DisconnectReason::Exit, fx);
            return;
        }
        let (Some(desk), Some(member)) = (self.desk.as_mut(), self.members.get(&key)) else {
            return;
        };
        let password = text.trim_matches(is_blank);
        match desk.start_login(key, member.ip, name, password, self.now) {
            Ok(()) => {}
            Err(Refusal::Locked(wait)) => self.refuse_locked(key, name, wait, fx),
            Err(_) => {
                fx.send(key, BUSY);
                self.ask_name_again(key, fx);
            }
        }
    }

    /// `/token TOKEN` at the name prompt.
    fn on_token(&mut self, key: ConnKey, token: &str, fx: &mut Effects) {
        let Some(desk) = self.desk.as_mut() else {
            fx.send(key, NO_ACCOUNTS);
            fx.send(key, ASK_AGAIN);
            return;
        };
        match desk.token_login(key, token, self.now) {
            TokenLogin::Valid { name } => {
                // TCP or UDP (`name_taken`, field by field: `desk` borrows).
                let key_of = name_key(&name);
                if self.online.contains_key(key_of.as_str()) || self.udp.taken(&key_of) {
                    desk.cancel_login(key);
                    self.reply(key, &["! the name ", &name, " is taken"], fx);
                    fx.send(key, ASK_AGAIN);
                    return;
                }
                self.record_auth(key, &name, AuthHow::Token, AuthResult::Ok, fx);
                self.join(key, &name, "* hello, ", fx);
            }
            TokenLogin::Expired { name } => {
                fx.send(key, b"! unknown or expired token\n");
                fx.send(key, ASK_AGAIN);
                self.record_auth(key, &name, AuthHow::Token, AuthResult::Expired, fx);
            }
            TokenLogin::Unknown => {
                fx.send(key, b"! unknown or expired token\n");
                fx.send(key, ASK_AGAIN);
                self.record_auth(key, "", AuthHow::Token, AuthResult::Wrong, fx);
            }
        }
    }

    /// `/register PASSWORD`: protect the name this user holds.
    fn register(&mut self, key: ConnKey, password: &str, fx: &mut Effects) {
        let Some(Member {
            stage: Stage::Joined { name },
            ..
        }) = self.members.get(&key)
        else {
            return;
        };
        let name = name.clone();
        let Some(desk) = self.desk.as_mut() else {
            fx.send(key, NO_ACCOUNTS);
            return;
        };
        if password.is_empty() {
            fx.send(key, b"! usage: /register PASSWORD\n");
            return;
        }
        match desk.start_register(key, &name, password) {
            Ok(()) => {}
            Err(Refusal::TooShort) => fx.send(key, SHORT_PASSWORD),
            Err(Refusal::AlreadyRegistered) => self.reply(
                key,
                &[
                    "! ",
                    &name,
                    " is registered already; /passwd OLD NEW changes its password",
                ],
                fx,
            ),
            Err(Refusal::TooManyAccounts) => {
                fx.send(key, b"! this server holds too many accounts\n");
            }
            Err(_) => fx.send(key, BUSY),
        }
    }

    /// `/passwd OLD NEW`.
    fn passwd(&mut self, key: ConnKey, rest: &str, fx: &mut Effects) {
        let Some(desk) = self.desk.as_mut() else {
            fx.send(key, NO_ACCOUNTS);
            return;
        };
        let Some((old, new)) = rest.split_once(is_blank) else {
            fx.send(key, b"! usage: /passwd OLD NEW\n");
            return;
        };
        match desk.start_passwd(key, old, new.trim_matches(is_blank)) {
            Ok(()) => {}
            Err(Refusal::NotLoggedIn) => fx.send(key, NOT_LOGGED_IN),
            Err(Refusal::TooShort) => fx.send(key, SHORT_PASSWORD),
            Err(_) => fx.send(key, BUSY),
        }
    }

    /// `/logout`: end this connection's token.
    fn logout(&mut self, key: ConnKey, fx: &mut Effects) {
        let Some(desk) = self.desk.as_mut() else {
            fx.send(key, NO_ACCOUNTS);
            return;
        };
        match desk.logout(key) {
            Ok(name) => {
                fx.send(key, b"* logged out\n");
                self.record_auth(key, &name, AuthHow::Logout, AuthResult::Ok, fx);
            }
            Err(_) => fx.send(key, NOT_LOGGED_IN),
        }
    }

    /// A job's answer is back (the reactor checked the connection is still
    /// there; the desk checks it is the job it waits for).
    fn job_done(&mut self, done: Done, fx: &mut Effects) {
        let key = done.key;
        let Some(desk) = self.desk.as_mut() else {
            return;
        };
        let Some(finished) = desk.finish(done, self.now) else {
            return; // stale: not the job this connection waits for
        };
        if !self.is_open(key) {
            // Gone, or being closed by the room (dropped for backlog, say):
            // the answer comes too late to matter.
            return;
        }
        match finished {
            Finished::LoggedIn { name, token } => {
                if self.name_taken(&name_key(&name)) {
                    // Someone logged in to it meanwhile on another
                    // connection: this one is not in after all.
                    if let Some(desk) = self.desk.as_mut() {
                        desk.cancel_login(key);
                    }
                    self.reply(key, &["! the name ", &name, " is taken"], fx);
                    self.ask_name_again(key, fx);
                } else {
                    self.record_auth(key, &name, AuthHow::Password, AuthResult::Ok, fx);
                    self.join(key, &name, "* hello, ", fx);
                    self.reply(key, &["* token ", &token.to_hex()], fx);
                }
            }
            Finished::WrongPassword { name } => {
                fx.send(key, WRONG_PASSWORD);
                self.record_auth(key, &name, AuthHow::Password, AuthResult::Wrong, fx);
                self.ask_name_again(key, fx);
            }
            Finished::Registered { name, token } => {
                self.reply(key, &["* ", &name, " is registered"], fx);
                self.reply(key, &["* token ", &token.to_hex()], fx);
                self.record_auth(key, &name, AuthHow::Register, AuthResult::Ok, fx);
            }
            Finished::PasswordChanged { name, token } => {
                fx.send(key, b"* password changed\n");
                self.reply(key, &["* token ", &token.to_hex()], fx);
                self.record_auth(key, &name, AuthHow::Passwd, AuthResult::Ok, fx);
            }
            Finished::PasswdWrong { name } => {
                fx.send(key, WRONG_PASSWORD);
                self.record_auth(key, &name, AuthHow::Passwd, AuthResult::Wrong, fx);
            }
            Finished::Failed => {
                fx.send(key, HASH_FAILED);
                if matches!(
                    self.members.get(&key).map(|m| &m.stage),
                    Some(Stage::Password)
                ) {
                    self.ask_name_again(key, fx);
                }
            }
        }
        self.resume_after_job(key, fx);
    }

    /// The lines held while the job was out are handled now, in order
    /// (one of them may start another job: the rest are held again), and
    /// reading resumes if holding had paused it.
    fn resume_after_job(&mut self, key: ConnKey, fx: &mut Effects) {
        let (held, was_paused) = match self.desk.as_mut() {
            Some(desk) => desk.take_held(key),
            None => (Vec::new(), false),
        };
        for line in held {
            self.on_line(key, Line::Text(&line), fx);
        }
        if let Some(desk) = self.desk.as_mut()
            && desk.take_eof(key)
        {
            if desk.is_waiting(key) {
                desk.hold_eof(key); // after the next answer, then
            } else {
                self.drop_member(key, DisconnectReason::Eof, fx);
                return;
            }
        }
        if !was_paused {
            return;
        }
        if let Some(desk) = self.desk.as_mut()
            && desk.is_waiting(key)
        {
            desk.keep_paused(key); // the next answer resumes it
            return;
        }
        // Over the chat rate as well: its timer resumes it.
        if !self.members.get(&key).is_some_and(|m| m.rate_paused) {
            fx.resume_reading(key);
        }
    }

    fn record_auth(
        &mut self,
        key: ConnKey,
        name: &str,
        how: AuthHow,
        result: AuthResult,
        fx: &mut Effects,
    ) {
        if result != AuthResult::Ok {
            self.auth_failures += 1;
        }
        fx.record(Event::Auth {
            service: "chat",
            conn: key.id,
            name: name.to_string(),
            how,
            result,
        });
    }
}

/// Accounts are keyed like names in the room ([`name_key`]), so `Alice`
/// and a look-alike `Аlice` are one account.
pub fn account_key(name: &str) -> Box<str> {
    name_key(name).into_boxed_str()
}

/// `Some(rest)` when `text` is the command `word` (any ASCII case)
/// followed by blanks and `rest`, or by nothing.
fn strip_command<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let (command, rest) = match text.split_once(is_blank) {
        Some((c, r)) => (c, r.trim_matches(is_blank)),
        None => (text, ""),
    };
    command.eq_ignore_ascii_case(word).then_some(rest)
}

/// Queues `line` for every joined user but `except`, as one shared buffer
/// (allocated only if someone will receive it).
fn send_to_room(
    online: &HashMap<Box<str>, ConnKey>,
    except: Option<ConnKey>,
    line: &[u8],
    fx: &mut Effects,
) {
    let mut shared: Option<Rc<[u8]>> = None;
    for &to in online.values() {
        if Some(to) != except {
            let bytes = shared.get_or_insert_with(|| Rc::from(line));
            fx.send_shared(to, bytes);
        }
    }
}

/// The separators of words in a command and around a name. Not
/// `char::is_whitespace`: that includes U+0085 (NEL), a C1 control that
/// must make a name invalid rather than be trimmed off it.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// One row of the console's `/who`.
struct WhoRow<'a> {
    name: &'a str,
    ip: IpAddr,
    /// `tcp` or `udp`.
    transport: &'static str,
    since: Instant,
    last_heard: Instant,
}

/// `t` as whole seconds after `epoch` (a room lives far less than the
/// 136 years a `u32` holds; past that it stays at the maximum).
fn seconds_after(epoch: Instant, t: Instant) -> u32 {
    u32::try_from(t.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

/// A duration in whole seconds, as `humantime` writes it (`1h 2m 3s`).
fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn push_all(buf: &mut Vec<u8>, parts: &[&str]) {
    for part in parts {
        buf.extend_from_slice(part.as_bytes());
    }
}

impl Service for ChatRoom {
    fn name(&self) -> &'static str {
        "chat"
    }

    /// Users in the room (TCP and UDP) and the lines they sent, for the
    /// status page, `/metrics` and the console's `/stats`.
    fn report(&self) -> crate::status::ServiceReport {
        crate::status::ServiceReport {
            users: Some((self.online.len() + self.udp.len()) as u64),
            messages: Some(self.messages),
            auth_failures: self.desk.is_some().then_some(self.auth_failures),
            ..Default::default()
        }
    }

    /// Rule 7's idle line, then the close (after the line is sent).
    fn on_idle(&mut self, key: ConnKey, idle: Duration, fx: &mut Effects) {
        if !self.is_open(key) {
            fx.close(key, DisconnectReason::Idle);
            return;
        }
        let idle = humantime::format_duration(idle).to_string();
        self.reply(key, &["* disconnected: idle for ", &idle], fx);
        self.drop_member(key, DisconnectReason::Idle, fx);
    }

    fn on_console_command(
        &mut self,
        command: ConsoleCommand<'_>,
        now: Instant,
        out: &mut String,
        fx: &mut Effects,
    ) -> bool {
        match command {
            ConsoleCommand::Who => {
                self.console_who(now, out);
                true
            }
            ConsoleCommand::Kick { name, reason } => self.kick(name, reason, out, fx),
        }
    }

    fn on_open(&mut self, key: ConnKey, peer: SocketAddr, now: Instant, fx: &mut Effects) {
        self.now = now;
        // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d;
        // remember it as a.b.c.d either way.
        let ip = peer.ip().to_canonical();
        self.members.insert(
            key,
            Member {
                ip,
                telnet: TelnetFilter::new(),
                decoder: LineDecoder::new(self.max_line_bytes),
                stage: Stage::Naming,
                bucket: TokenBucket::new(self.rate, now),
                rate_paused: false,
                since_s: self.seconds(now),
                heard_s: self.seconds(now),
            },
        );
        // A registered name is never handed out by IP: an IP is not a
        // person (a NAT, a lab machine); only a password or token is.
        let remembered = self
            .names
            .get(ip)
            .filter(|name| !self.name_taken(name_key(name).as_str()))
            .filter(|name| !self.desk.as_ref().is_some_and(|d| d.is_registered(name)))
            .map(Box::<str>::from);
        match remembered {
            Some(name) => {
                self.join(key, &name, "* welcome back, ", fx);
                // An IP is not a person: whoever sits at that machine now
                // is told how to be someone else.
                self.reply(key, &["* not ", &name, "? type /nick NEWNAME"], fx);
            }
            None => fx.send(key, GREETING),
        }
    }

    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], now: Instant, fx: &mut Effects) {
        self.now = now;
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        if matches!(member.stage, Stage::Left) {
            return;
        }
        member.heard_s = seconds_after(self.epoch, now);
        // Lend the filter and decoder out so the line handler may use the
        // whole room; `new` allocates nothing for either.
        let mut telnet = std::mem::take(&mut member.telnet);
        let mut decoder = std::mem::replace(&mut member.decoder, LineDecoder::new(0));
        self.lines_this_read = 0;
        telnet.feed(bytes, |piece| match piece {
            Piece::Data(typed) => decoder.feed(typed, |line| {
                self.lines_this_read += 1;
                self.on_line(key, line, fx);
            }),
            // Negotiation answers go to this client only, and only while
            // it is still here (a line before may have been `/quit`).
            Piece::Reply(reply) => {
                if self.is_open(key) {
                    fx.send(key, &reply);
                }
            }
        });
        if let Some(member) = self.members.get_mut(&key) {
            member.telnet = telnet;
            member.decoder = decoder;
        }
        self.messages += self.lines_this_read as u64;
        self.charge(key, now, fx);
    }

    /// The earliest of: a paused user's allowance refills, a UDP member
    /// may expire, the account files are due to be saved.
    /// One `--read-chunk` (at least 1 KiB) per connection per turn: a chat
    /// line is short, and each one may cost a delivery to every user, so a
    /// sender with a full pipe (a flooder, a `/nick` storm) is served a
    /// piece at a time between everyone else's turns.
    fn read_budget(&self) -> Option<usize> {
        Some(CHAT_READ_BUDGET)
    }

    fn next_deadline(&self) -> Option<Instant> {
        // Changed account files are handed to the writer at most once a
        // second, from here: never per login, never on the hot path.
        let save = self.desk.as_ref().and_then(AccountDesk::next_flush);
        [
            self.paused.peek().map(|Reverse((at, _))| *at),
            self.udp_deadline(),
            save,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Resumes reading the users whose allowance has refilled, drops UDP
    /// members silent too long, and hands changed account files to the
    /// writer.
    fn on_timer(&mut self, now: Instant, fx: &mut Effects) {
        self.udp_expire(now, fx);
        if let Some(desk) = self.desk.as_mut()
            && desk.next_flush().is_some_and(|at| at <= now)
        {
            desk.flush(now);
        }
        while let Some(Reverse((at, key))) = self.paused.peek().copied() {
            if at > now {
                break;
            }
            self.paused.pop();
            let Some(member) = self.members.get_mut(&key) else {
                continue; // gone meanwhile
            };
            if member.bucket.spend(0, self.rate, now) {
                member.rate_paused = false;
                // Paused for lines held during a hash as well: the
                // answer resumes it (`resume_after_job`).
                if !self.desk.as_ref().is_some_and(|d| d.is_held_paused(key)) {
                    fx.resume_reading(key);
                }
                fx.record(Event::Resume {
                    service: "chat",
                    conn: key.id,
                });
            } else {
                let at = member.bucket.ready_at(self.rate);
                self.paused.push(Reverse((at, key)));
            }
        }
    }

    fn on_eof(&mut self, key: ConnKey, now: Instant, fx: &mut Effects) {
        self.now = now;
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        let mut decoder = std::mem::replace(&mut member.decoder, LineDecoder::new(0));
        decoder.finish(|line| self.on_line(key, line, fx));
        if let Some(desk) = self.desk.as_mut()
            && desk.is_waiting(key)
        {
            // FIN is a half-close: the client may still read, and the
            // answer to its password or `/register` is owed (as echo owes
            // what it read). Close after the answer (`resume_after_job`).
            // A client that is really gone resets instead, and the
            // reactor closes it at once; the answer is then dropped.
            desk.hold_eof(key);
            return;
        }
        self.drop_member(key, DisconnectReason::Eof, fx);
    }

    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects) {
        // Chat drops a receiver that does not read rather than pausing the
        // room for it or buffering without end (DESIGN.md, "Limits").
        if over {
            self.drop_member(key, DisconnectReason::Backlog, fx);
        }
    }

    fn on_close(&mut self, key: ConnKey, _reason: DisconnectReason, fx: &mut Effects) {
        self.leave(key, fx);
        self.members.remove(&key);
        if let Some(desk) = self.desk.as_mut() {
            // A job still out for it is abandoned: its answer finds
            // nothing and is dropped.
            desk.forget(key);
        }
    }

    fn on_stop(&mut self, now: Instant) {
        // The last changes may be younger than a second: write them now.
        if let Some(desk) = self.desk.as_mut() {
            desk.flush(now);
        }
    }

    fn on_job_done(&mut self, done: Done, now: Instant, fx: &mut Effects) {
        self.now = now;
        self.job_done(done, fx);
    }

    fn on_console_line(&mut self, line: &str, fx: &mut Effects) {
        fx.record(Event::Console {
            text: line.to_string(),
        });
        if !has_visible(line) {
            return;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(b"[server] ");
        push_filtered(&mut self.scratch, line);
        self.scratch.push(b'\n');
        send_to_room(&self.online, None, &self.scratch, fx);
        self.udp.send_all(None, &self.scratch, fx);
    }

    fn on_shutdown(&mut self, fx: &mut Effects) {
        self.shutting_down = true;
        let notice: Rc<[u8]> = Rc::from(SHUTTING_DOWN);
        for (&key, member) in &self.members {
            if !matches!(member.stage, Stage::Left) {
                fx.send_shared(key, &notice);
            }
        }
        self.udp_shutdown(fx);
    }

    fn on_datagram(
        &mut self,
        via: UdpKey,
        peer: SocketAddr,
        bytes: &[u8],
        now: Instant,
        fx: &mut Effects,
    ) {
        self.udp_datagram(via, peer, bytes, now, fx);
    }

    fn snapshot_pending(&self) -> bool {
        self.names_changed
    }

    fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        self.take_names_snapshot()
    }
}

/// The account rules of the room, driven in memory with a fake hasher.
#[cfg(test)]
mod accounts_tests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    //! A chat room driven entirely in memory: no sockets, no sleeps. The
    //! `Room` harness plays the reactor: it applies the effects (collecting
    //! each connection's output), and calls `on_close` for every close, as
    //! the reactor does at the end of its turn.

    use super::*;
    use crate::service::Effect;
    use std::collections::HashSet;

    struct Room {
        chat: ChatRoom,
        fx: Effects,
        now: Instant,
        next_id: u64,
        /// Bytes queued for each connection, not yet read by the test.
        out: HashMap<ConnKey, Vec<u8>>,
        closed: Vec<(ConnKey, DisconnectReason)>,
        gone: HashSet<ConnKey>,
        events: Vec<Event>,
    }

    impl Room {
        /// A room remembering `names`; no file is involved (the shell's
        /// job), so these tests create none.
        fn with_names(names: Names, max_line_bytes: usize) -> Room {
            let chat = ChatRoom::new(
                ChatConfig {
                    max_line_bytes,
                    rate: RateLimit {
                        per_second: 1e9,
                        burst: 1e9,
                    },
                },
                names,
            );
            Room {
                chat,
                fx: Effects::new(),
                now: Instant::now(),
                next_id: 0,
                out: HashMap::new(),
                closed: Vec::new(),
                gone: HashSet::new(),
                events: Vec::new(),
            }
        }

        fn new() -> Room {
            Room::with_max_line(4096)
        }

        fn with_max_line(max_line_bytes: usize) -> Room {
            Room::with_names(Names::new(10_000), max_line_bytes)
        }

        fn connect(&mut self, ip: &str) -> ConnKey {
            self.next_id += 1;
            // Slots are reused by the reactor; make them differ from ids.
            let key = ConnKey {
                slot: (self.next_id % 7) as usize,
                id: self.next_id,
            };
            let peer = SocketAddr::new(ip.parse().unwrap(), 40_000);
            self.chat.on_open(key, peer, self.now, &mut self.fx);
            self.pump();
            key
        }

        /// Connects and chooses `name`; the newcomer's output is cleared.
        fn join(&mut self, ip: &str, name: &str) -> ConnKey {
            let key = self.connect(ip);
            self.send(key, format!("{name}\n").as_bytes());
            assert_eq!(self.lines(key).last().unwrap(), &format!("* hello, {name}"));
            key
        }

        fn send(&mut self, key: ConnKey, bytes: &[u8]) {
            self.chat.on_recv(key, bytes, self.now, &mut self.fx);
            self.pump();
        }

        fn eof(&mut self, key: ConnKey) {
            self.chat.on_eof(key, self.now, &mut self.fx);
            self.pump();
        }

        /// Applies effects like the reactor, then closes what was closed.
        fn pump(&mut self) {
            loop {
                let mut closing = Vec::new();
                for effect in self.fx.drain() {
                    match effect {
                        Effect::Send { to, bytes } => {
                            assert!(!self.gone.contains(&to), "send to closed {to:?}");
                            assert!(!closing.iter().any(|(k, _)| *k == to), "send after close");
                            self.out.entry(to).or_default().extend_from_slice(bytes);
                        }
                        Effect::SendShared { to, bytes } => {
                            assert!(!self.gone.contains(&to), "send to closed {to:?}");
                            assert!(!closing.iter().any(|(k, _)| *k == to), "send after close");
                            self.out.entry(to).or_default().extend_from_slice(&bytes);
                        }
                        Effect::Close { to, reason } => closing.push((to, reason)),
                        Effect::Record(event) => {
                            let line = event.logfmt().to_string();
                            assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
                            self.events.push(event);
                        }
                        other => panic!("chat never pauses reading: {other:?}"),
                    }
                }
                if closing.is_empty() {
                    return;
                }
                for (key, reason) in closing {
                    assert!(self.gone.insert(key), "closed twice: {key:?}");
                    self.closed.push((key, reason));
                    self.chat.on_close(key, reason, &mut self.fx);
                }
            }
        }

        /// The lines sent to `key` since the last call; each must end in `\n`.
        fn lines(&mut self, key: ConnKey) -> Vec<String> {
            let bytes = self.out.remove(&key).unwrap_or_default();
            if bytes.is_empty() {
                return Vec::new();
            }
            assert_eq!(bytes.last(), Some(&b'\n'), "every line ends with \\n");
            let text = String::from_utf8(bytes).unwrap();
            text.lines().map(str::to_string).collect()
        }

        fn clear(&mut self) {
            self.out.clear();
            self.events.clear();
        }

        fn reason(&self, key: ConnKey) -> Option<DisconnectReason> {
            self.closed.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
        }
    }

    fn lines(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const A: &str = "10.0.0.1";
    const B: &str = "10.0.0.2";
    const C: &str = "10.0.0.3";

    /// alice, bob and carol joined; outputs and events cleared.
    fn three() -> (Room, ConnKey, ConnKey, ConnKey) {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.join(B, "bob");
        let c = r.join(C, "carol");
        r.clear();
        (r, a, b, c)
    }

    #[test]
    fn rule1_greeting_and_name_rules() {
        let mut r = Room::new();
        let a = r.join(A, "Alice");
        r.clear();
        let b = r.connect(B);
        assert_eq!(
            r.lines(b),
            lines(&["* welcome to echochat; what is your name?"])
        );
        let again = "* what is your name?";
        for (bad, why) in [
            (" ", "! a name has 1 to 32 characters"),
            (&"x".repeat(33), "! a name has 1 to 32 characters"),
            (
                "two words",
                "! a name may only hold letters, digits, _ and - (not U+0020)",
            ),
            (
                "esc\x1b[2J",
                "! a name may only hold letters, digits, _ and - (not U+001B)",
            ),
            (
                "a=b",
                "! a name may only hold letters, digits, _ and - (not U+003D)",
            ),
            (
                "c1\u{85}",
                "! a name may only hold letters, digits, _ and - (not U+0085)",
            ),
            (
                "rtl\u{202E}",
                "! a name may only hold letters, digits, _ and - (not U+202E)",
            ),
            (
                "\u{3164}",
                "! a name may not hold invisible characters (U+3164)",
            ),
            ("aLICE", "! the name aLICE is taken"),
        ] {
            r.send(b, format!("{bad}\n").as_bytes());
            assert_eq!(r.lines(b), lines(&[why, again]), "name {bad:?}");
        }
        assert!(r.lines(a).is_empty(), "nothing reaches the room");
        assert!(r.events.is_empty());
        // Spaces around a name are trimmed; any script's letters are fine.
        r.send(b, "  Олена_2-я \r\n".as_bytes());
        assert_eq!(r.lines(b), lines(&["* hello, Олена_2-я"]));
        assert_eq!(
            r.events,
            vec![Event::Join {
                service: "chat",
                conn: b.id,
                name: "Олена_2-я".into()
            }]
        );
        assert_eq!(r.chat.online(), 2);
    }

    #[test]
    fn rule1_exit_at_the_prompt_disconnects_quietly() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.connect(B);
        r.clear();
        r.send(b, b"exit\r\nignored\n");
        assert_eq!(r.reason(b), Some(DisconnectReason::Exit));
        assert!(r.lines(b).is_empty());
        assert!(r.lines(a).is_empty(), "never joined, so no `left`");
        assert!(r.events.is_empty());
        assert_eq!(r.chat.connections(), 1);
        // Only the exact line `exit` leaves; `Exit` is a name like any other.
        let c = r.connect(C);
        r.send(c, b"Exit\n");
        assert_eq!(r.lines(c).last().unwrap(), "* hello, Exit");
    }

    #[test]
    fn rule2_joining_is_announced_to_the_others() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.join(B, "bob");
        assert_eq!(r.lines(a), lines(&["* bob joined"]));
        assert!(r.lines(b).is_empty());
    }

    #[test]
    fn rule3_messages_go_to_every_other_user() {
        let (mut r, a, b, c) = three();
        r.send(a, b"hello there\n");
        assert!(r.lines(a).is_empty(), "no echo to the sender");
        assert_eq!(r.lines(b), lines(&["alice: hello there"]));
        assert_eq!(r.lines(c), lines(&["alice: hello there"]));
        // Empty and blank lines are ignored.
        r.send(b, b"\n   \n\t\r\n\x1b\n");
        assert!(r.out.is_empty(), "{:?}", r.out);
    }

    #[test]
    fn a_broadcast_is_one_shared_buffer() {
        let (mut r, a, _b, _c) = three();
        r.chat.on_recv(a, b"hi\n", r.now, &mut r.fx);
        let shared: Vec<Rc<[u8]>> =
            r.fx.drain()
                .filter_map(|e| match e {
                    Effect::SendShared { bytes, .. } => Some(bytes),
                    _ => None,
                })
                .collect();
        assert_eq!(shared.len(), 2);
        assert!(Rc::ptr_eq(&shared[0], &shared[1]), "no per-receiver copy");
        assert_eq!(&*shared[0], b"alice: hi\n");
    }

    #[test]
    fn rule4_nick() {
        let (mut r, a, b, c) = three();
        r.send(a, b"/nick Alicia\n");
        assert_eq!(r.lines(a), lines(&["* you are now Alicia"]));
        assert_eq!(r.lines(b), lines(&["* alice is now Alicia"]));
        assert_eq!(r.lines(c), lines(&["* alice is now Alicia"]));
        assert_eq!(
            r.events,
            vec![Event::Nick {
                service: "chat",
                conn: a.id,
                old: "alice".into(),
                new: "Alicia".into()
            }]
        );
        r.clear();
        r.send(
            a,
            "/nick BOB\n/nick\n/nick a b\n/nick x\u{85}\n/nick Alicia\n".as_bytes(),
        );
        assert_eq!(
            r.lines(a),
            lines(&[
                "! the name BOB is taken",
                "! usage: /nick NEW",
                "! a name may only hold letters, digits, _ and - (not U+0020)",
                "! a name may only hold letters, digits, _ and - (not U+0085)",
                "* you are already Alicia",
            ])
        );
        assert!(r.lines(b).is_empty());
        // Changing only the case of one's own name is allowed.
        r.send(a, b"/nick ALICIA\n");
        assert_eq!(r.lines(b), lines(&["* Alicia is now ALICIA"]));
        // The old name is free again; the new one is taken.
        let d = r.connect("10.0.0.4");
        r.send(d, b"alicia\nalice\n");
        assert_eq!(
            r.lines(d),
            lines(&[
                "* welcome to echochat; what is your name?",
                "! the name alicia is taken",
                "* what is your name?",
                "* hello, alice",
            ])
        );
        // Messages carry the new name.
        r.clear();
        r.send(a, b"hi\n");
        assert_eq!(r.lines(b), lines(&["ALICIA: hi"]));
    }

    #[test]
    fn rule4_who_lists_everyone_sorted() {
        let (mut r, _a, b, _c) = three();
        let d = r.join("10.0.0.4", "Bea");
        r.clear();
        r.send(b, b"/who\n");
        assert_eq!(r.lines(b), lines(&["* online: alice, Bea, bob, carol"]));
        r.send(d, b"/WHO ignored args\n");
        assert_eq!(r.lines(d), lines(&["* online: alice, Bea, bob, carol"]));
    }

    #[test]
    fn rule4_who_is_capped_in_a_huge_room() {
        let mut r = Room::with_max_line(64);
        let mut first = None;
        for i in 0..200 {
            let key = r.join(
                &format!("10.1.{}.{}", i / 256, i % 256),
                &format!("user{i:03}"),
            );
            first.get_or_insert(key);
        }
        let first = first.unwrap();
        r.clear();
        r.send(first, b"/who\n");
        let who = r.lines(first);
        assert_eq!(who.len(), 1);
        assert!(
            who[0].starts_with("* online: user000, user001, "),
            "{}",
            who[0]
        );
        assert!(who[0].len() <= WHO_MIN_BYTES, "{}", who[0].len());
        let more: usize = who[0]
            .rsplit(", ... and ")
            .next()
            .and_then(|t| t.strip_suffix(" more"))
            .unwrap()
            .parse()
            .unwrap();
        let listed = who[0].matches("user").count();
        assert_eq!(listed + more, 200);
    }

    #[test]
    fn rule4_msg_whispers_to_one_user() {
        let (mut r, a, b, c) = three();
        r.send(a, b"/msg BOB  psst, \x1b[1mhere\n");
        assert!(r.lines(a).is_empty());
        assert_eq!(r.lines(b), lines(&["* alice whispers: psst, [1mhere"]));
        assert!(r.lines(c).is_empty());
        r.send(a, b"/msg dave hi\n/msg bob\n/msg\n/msg b=b hi\n");
        assert_eq!(
            r.lines(a),
            lines(&[
                "! no such user: dave",
                "! usage: /msg NAME text",
                "! usage: /msg NAME text",
                "! no such user",
            ])
        );
        assert!(r.out.is_empty());
    }

    #[test]
    fn rule4_help_and_unknown_commands() {
        let (mut r, a, b, _c) = three();
        r.send(a, b"/help\n");
        let help = r.lines(a);
        assert!(help.len() > 3);
        assert!(help.iter().all(|l| l.starts_with("* ")), "{help:?}");
        for cmd in ["/nick", "/who", "/msg", "/help", "/quit"] {
            assert!(help.iter().any(|l| l.contains(cmd)), "{cmd} in help");
        }
        r.send(a, b"/dance\x1b[2J now\n/\n");
        assert_eq!(
            r.lines(a),
            lines(&[
                "! unknown command /dance[2J; /help lists them",
                "! unknown command /; /help lists them",
            ])
        );
        assert!(r.lines(b).is_empty());
        assert!(r.closed.is_empty(), "errors keep the connection open");
    }

    #[test]
    fn rule4_quit_and_exit_leave_the_room() {
        let (mut r, a, b, c) = three();
        r.send(a, b"/quit\nstill here?\n");
        assert_eq!(r.reason(a), Some(DisconnectReason::Exit));
        assert_eq!(r.lines(a), lines(&["* bye, alice"]), "rule 7's goodbye");
        assert_eq!(r.lines(b), lines(&["* alice left"]));
        assert_eq!(r.lines(c), lines(&["* alice left"]));
        assert_eq!(
            r.events,
            vec![Event::Leave {
                service: "chat",
                conn: a.id,
                name: "alice".into()
            }]
        );
        r.send(b, b"exit\r\n");
        assert_eq!(r.reason(b), Some(DisconnectReason::Exit));
        assert_eq!(r.lines(b), lines(&["* bye, bob"]));
        assert_eq!(r.lines(c), lines(&["* bob left"]));
        // `exit` must be the whole line to mean /quit.
        r.send(c, b"exit now\n");
        assert!(r.reason(c).is_none());
        assert_eq!(r.chat.online(), 1);
        assert_eq!(r.chat.connections(), 1);
    }

    #[test]
    fn rule4_leaving_for_any_reason_is_announced() {
        let (mut r, a, b, c) = three();
        // FIN: an unterminated last line is still delivered, then eof.
        r.send(a, b"last wor");
        r.send(a, b"ds");
        r.eof(a);
        assert_eq!(r.reason(a), Some(DisconnectReason::Eof));
        assert_eq!(r.lines(b), lines(&["alice: last words", "* alice left"]));
        // The reactor closes one on its own (reset, idle, error).
        r.chat.on_close(b, DisconnectReason::Reset, &mut r.fx);
        r.gone.insert(b);
        r.pump();
        assert_eq!(
            r.lines(c),
            lines(&["alice: last words", "* alice left", "* bob left"])
        );
        let leaves = r
            .events
            .iter()
            .filter(|e| matches!(e, Event::Leave { .. }))
            .count();
        assert_eq!(leaves, 2);
        assert_eq!(r.chat.online(), 1);
    }

    #[test]
    fn rule5_errors_keep_the_connection_open() {
        let mut r = Room::with_max_line(16);
        let a = r.join(A, "alice");
        let b = r.join(B, "bob");
        r.clear();
        r.send(a, b"0123456789abcdefXX\nok\n\xfe oops\r\nfine\n");
        assert_eq!(
            r.lines(a),
            lines(&[
                "! line too long (over 16 bytes), ignored",
                "! invalid UTF-8, line ignored"
            ])
        );
        assert_eq!(r.lines(b), lines(&["alice: ok", "alice: fine"]));
        // Exactly 16 bytes (terminator not counted) is fine.
        r.send(a, b"0123456789abcdef\r\n");
        assert_eq!(r.lines(b), lines(&["alice: 0123456789abcdef"]));
        // At the prompt the error is followed by the question again.
        let c = r.connect(C);
        r.lines(c);
        r.send(c, b"\xc3\n");
        r.send(c, &[b'x'; 40]);
        r.send(c, b"\n");
        assert_eq!(
            r.lines(c),
            lines(&[
                "! invalid UTF-8, line ignored",
                "* what is your name?",
                "! line too long (over 16 bytes), ignored",
                "* what is your name?",
            ])
        );
        assert!(r.closed.is_empty());
    }

    #[test]
    fn rule6_control_characters_are_removed() {
        let (mut r, a, b, _c) = three();
        r.send(
            a,
            "red\x1b[31m bell\x07 vt\x0b c1\u{9b}2J nul\0 tab\tff\x0cend ok ✓\n".as_bytes(),
        );
        assert_eq!(
            r.lines(b),
            lines(&["alice: red[31m bell vt c12J nul tab\tffend ok ✓"])
        );
    }

    #[test]
    fn crlf_input() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.connect(B);
        r.send(b, b"bob\r\nhi\r\n/who\r\n");
        assert_eq!(
            r.lines(b),
            lines(&[
                "* welcome to echochat; what is your name?",
                "* hello, bob",
                "* online: alice, bob",
            ])
        );
        assert_eq!(r.lines(a), lines(&["* bob joined", "bob: hi"]));
    }

    /// The same exchange, with carol's input split at every byte position
    /// (inside `\r\n`, inside multi-byte characters), gives the same output.
    #[test]
    fn input_split_at_every_position() {
        let input =
            "carol\r\nhé ✓\r\n/msg alice psst\n/who\r\n\x1b[2Jbye\n/nick Кароль\n".as_bytes();
        let run = |chunks: &[&[u8]]| {
            let mut r = Room::new();
            let a = r.join(A, "alice");
            let b = r.join(B, "bob");
            let c = r.connect(C);
            r.clear();
            for chunk in chunks {
                r.send(c, chunk);
            }
            (r.lines(a), r.lines(b), r.lines(c))
        };
        let whole = run(&[input]);
        assert_eq!(
            whole.0,
            lines(&[
                "* carol joined",
                "carol: hé ✓",
                "* carol whispers: psst",
                "carol: [2Jbye",
                "* carol is now Кароль",
            ])
        );
        assert_eq!(
            whole.1,
            lines(&[
                "* carol joined",
                "carol: hé ✓",
                "carol: [2Jbye",
                "* carol is now Кароль"
            ])
        );
        assert_eq!(
            whole.2,
            lines(&[
                "* hello, carol",
                "* online: alice, bob, carol",
                "* you are now Кароль"
            ])
        );
        for i in 0..=input.len() {
            let (x, y) = input.split_at(i);
            assert_eq!(run(&[x, y]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "byte by byte");
    }

    /// What Linux `telnet` sends when its user types "ту" then Enter (the
    /// second byte of у taken for Ctrl-C: issue 9), then, once BINARY is
    /// agreed, a whole Cyrillic line.
    #[test]
    fn telnet_is_answered_to_the_sender_and_never_relayed() {
        use crate::telnet::{BINARY, DO, IAC, TIMING_MARK, WILL};
        let (mut r, a, b, c) = three();
        r.send(a, b"\xd1\x82\xd1\xff\xf4\xff\xfd\x06\r\n");
        let mut expected = vec![IAC, DO, BINARY, IAC, WILL, TIMING_MARK];
        expected.extend_from_slice(INVALID_UTF8);
        assert_eq!(r.out.remove(&a).unwrap_or_default(), expected);
        assert!(r.lines(b).is_empty() && r.lines(c).is_empty());
        r.send(a, &[IAC, WILL, BINARY]);
        assert!(r.out.remove(&a).is_none(), "an agreement is not answered");
        r.send(a, "привіт усім\n".as_bytes());
        r.send(
            a,
            &[
                "і ще".as_bytes(),
                b"\xff\xf4\xff\xfd\x06",
                " раз\r\n".as_bytes(),
            ]
            .concat(),
        );
        assert_eq!(
            r.lines(b),
            lines(&["alice: привіт усім", "alice: і ще раз"])
        );
        assert_eq!(
            r.out.remove(&a).unwrap_or_default(),
            [IAC, WILL, TIMING_MARK]
        );
        // A reply due after `/quit` in the same read is not sent (the
        // harness fails on a send after a close): the goodbye is the last.
        r.send(a, b"/quit\n\xff\xfd\x06");
        assert_eq!(r.reason(a), Some(DisconnectReason::Exit));
        assert_eq!(r.lines(a), lines(&["* bye, alice"]));
    }

    /// A character-at-a-time client (Windows telnet, PuTTY): every key is
    /// one read, typos are fixed with backspace or DEL, and Enter is `\r\0`
    /// or a lone `\r`.
    #[test]
    fn keys_one_at_a_time_with_backspace_and_bare_returns() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.connect(B);
        r.clear();
        let keys: &[&[u8]] = &[
            b"h",
            b"e",
            b"l",
            b"x",
            b"\x08",
            b"l",
            b"o",
            b"\r",
            b"\0",
            b"h",
            b"i",
            b" ",
            b"t",
            b"y",
            b"p",
            b"o",
            b"x",
            b"\x7f",
            b"o",
            b"\r",
            "О".as_bytes(),
            "к".as_bytes(),
            "ь".as_bytes(),
            b"\x7f",
            b"!",
            b"\r",
            b"\n",
            b"\r",
        ];
        for key in keys {
            r.send(b, key);
        }
        assert_eq!(r.lines(b), lines(&["* hello, hello"]));
        assert_eq!(
            r.lines(a),
            lines(&["* hello joined", "hello: hi typoo", "hello: Ок!"])
        );
    }

    #[test]
    fn backlog_closes_the_slow_reader_only() {
        let (mut r, a, b, c) = three();
        r.chat.on_backlog(b, false, &mut r.fx);
        r.pump();
        assert!(
            r.closed.is_empty(),
            "draining back is not a reason to close"
        );
        r.chat.on_backlog(b, true, &mut r.fx);
        r.pump();
        assert_eq!(r.closed, vec![(b, DisconnectReason::Backlog)]);
        assert_eq!(r.lines(a), lines(&["* bob left"]));
        r.send(c, b"still here\n");
        assert_eq!(r.lines(a), lines(&["carol: still here"]));
        assert!(r.lines(b).is_empty());
    }

    #[test]
    fn shutdown_notice_reaches_every_connection() {
        let (mut r, a, b, c) = three();
        let d = r.connect("10.0.0.4"); // still at the name prompt
        r.clear();
        r.chat.on_shutdown(&mut r.fx);
        r.pump();
        for key in [a, b, c, d] {
            assert_eq!(r.lines(key), lines(&["* server shutting down"]));
        }
        // The reactor then closes everyone; no `left` storm.
        for key in [a, b, c, d] {
            r.chat.on_close(key, DisconnectReason::Shutdown, &mut r.fx);
            r.gone.insert(key);
        }
        r.pump();
        assert!(r.out.is_empty(), "{:?}", r.out);
        let leaves = r
            .events
            .iter()
            .filter(|e| matches!(e, Event::Leave { .. }))
            .count();
        assert_eq!(leaves, 3, "still logged");
        assert_eq!(r.chat.connections(), 0);
    }

    #[test]
    fn rule7_idle_users_are_told_why_before_the_close() {
        let (mut r, a, b, c) = three();
        let d = r.connect("10.0.0.4"); // at the name prompt
        r.clear();
        r.chat.on_idle(a, Duration::from_secs(2 * 3600), &mut r.fx);
        r.pump();
        assert_eq!(r.lines(a), lines(&["* disconnected: idle for 2h"]));
        assert_eq!(r.reason(a), Some(DisconnectReason::Idle));
        assert_eq!(r.lines(b), lines(&["* alice left"]));
        assert_eq!(r.lines(c), lines(&["* alice left"]));
        // Someone still at the prompt is told too.
        r.chat.on_idle(d, Duration::from_secs(90), &mut r.fx);
        r.pump();
        assert_eq!(r.lines(d), lines(&["* disconnected: idle for 1m 30s"]));
        assert_eq!(r.reason(d), Some(DisconnectReason::Idle));
        assert!(r.lines(b).is_empty(), "nobody left the room");
    }

    /// The console's commands as the reactor calls them: the answer text
    /// and what happened in the room.
    fn console(r: &mut Room, command: ConsoleCommand<'_>) -> (bool, String) {
        let mut out = String::new();
        let answered = r
            .chat
            .on_console_command(command, r.now, &mut out, &mut r.fx);
        r.pump();
        (answered, out)
    }

    #[test]
    fn rule7_kick_tells_the_user_why_and_closes_it() {
        let (mut r, a, b, c) = three();
        let kick = |name, reason| ConsoleCommand::Kick { name, reason };
        let (answered, out) = console(&mut r, kick("ALICE", Some("spam\x1b[2J, twice")));
        assert!(answered);
        assert_eq!(out, "kicked alice (10.0.0.1, tcp)\n");
        assert_eq!(
            r.lines(a),
            lines(&["* kicked by the server: spam[2J, twice"]),
            "found by name key; the reason is filtered like relayed text"
        );
        assert_eq!(r.reason(a), Some(DisconnectReason::Kicked));
        assert_eq!(r.lines(b), lines(&["* alice left"]));
        assert_eq!(r.lines(c), lines(&["* alice left"]));
        // Without a reason (or a blank one), the short line.
        let (answered, _) = console(&mut r, kick("bob", Some("  ")));
        assert!(answered);
        assert_eq!(r.lines(b), lines(&["* kicked by the server"]));
        assert_eq!(r.reason(b), Some(DisconnectReason::Kicked));
        assert_eq!(r.lines(c), lines(&["* bob left"]));
        // Nobody by that name (or not a name at all): not answered, so
        // the console says so; nothing happens in the room.
        for name in ["alice", "zed", "\u{202e}x"] {
            let (answered, out) = console(&mut r, kick(name, None));
            assert!(!answered, "{name}");
            assert_eq!(out, "");
        }
        assert!(r.lines(c).is_empty());
        assert_eq!(r.chat.online(), 1);
    }

    #[test]
    fn console_who_lists_ip_connected_and_idle_times() {
        let mut r = Room::new();
        let t0 = r.now;
        let a = r.join(A, "alice");
        r.now = t0 + Duration::from_secs(65);
        let _b = r.join(B, "Bob");
        let _prompt = r.connect(C);
        r.now = t0 + Duration::from_secs(100);
        r.send(a, b"hi\n");
        r.now = t0 + Duration::from_secs(130);
        r.clear();
        let (answered, out) = console(&mut r, ConsoleCommand::Who);
        assert!(answered);
        assert_eq!(
            out,
            "who: 2 users in the chat room\n\
             \x20 alice  10.0.0.1  tcp  connected 2m 10s  idle 30s\n\
             \x20 Bob    10.0.0.2  tcp  connected 1m 5s  idle 1m 5s\n\
             \x20 (and 1 connection at the name prompt)\n"
        );
        assert!(r.out.is_empty(), "nothing is sent to anyone");

        let mut empty = Room::new();
        let (answered, out) = console(&mut empty, ConsoleCommand::Who);
        assert!(answered, "chat answers even when nobody is there");
        assert_eq!(out, "who: nobody in the chat room\n");
    }

    #[test]
    fn console_who_is_capped_for_a_load_test() {
        let mut r = Room::new();
        for i in 0..CONSOLE_WHO_MAX + 5 {
            let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            r.join(&ip, &format!("u{i:04}"));
        }
        let (_, out) = console(&mut r, ConsoleCommand::Who);
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 1 + CONSOLE_WHO_MAX + 1);
        assert_eq!(rows[1].split_whitespace().next(), Some("u0000"));
        assert_eq!(rows.last(), Some(&"  ... and 5 more"));
    }

    #[test]
    fn report_counts_users_and_lines() {
        let (mut r, a, _b, _c) = three();
        r.send(a, b"one\ntwo\n/who\n");
        let report = r.chat.report();
        assert_eq!(report.users, Some(3));
        // The three names typed at the prompt count too: every line does.
        assert_eq!(report.messages, Some(6));
    }

    #[test]
    fn console_lines_go_to_joined_users() {
        let (mut r, a, b, c) = three();
        let d = r.connect("10.0.0.4");
        r.clear();
        r.chat.on_console_line("class starts \x1b[5mnow", &mut r.fx);
        r.pump();
        for key in [a, b, c] {
            assert_eq!(r.lines(key), lines(&["[server] class starts [5mnow"]));
        }
        assert!(r.lines(d).is_empty(), "not in the room yet");
        assert_eq!(
            r.events,
            vec![Event::Console {
                text: "class starts \x1b[5mnow".into()
            }]
        );
    }

    #[test]
    fn names_are_remembered_across_rooms() {
        let mut r = Room::new();
        assert!(!r.chat.names_changed());
        assert_eq!(r.chat.take_names_snapshot(), None, "nothing to save yet");
        let a = r.join(A, "alice");
        let b = r.join(B, "bob");
        r.send(b, b"/nick robert\n");
        // Two IPs may remember the same name; only connected names are unique.
        r.send(a, b"/quit\n");
        let c = r.join(C, "alice");
        let _ = (a, b, c);
        assert!(r.chat.names_changed());
        // Least recently seen first: the file order is the recency.
        let snapshot = r.chat.take_names_snapshot().expect("changed");
        assert_eq!(
            String::from_utf8(snapshot.clone()).unwrap(),
            "10.0.0.1\talice\n10.0.0.2\trobert\n10.0.0.3\talice\n"
        );
        assert_eq!(r.chat.take_names_snapshot(), None, "taken once");
        drop(r);

        // A new server process loading what the shell saved.
        let (names, damage) = Names::parse(&snapshot, 10_000);
        assert_eq!(damage, None);
        let mut r = Room::with_names(names, 4096);
        let b = r.connect(B);
        assert_eq!(
            r.lines(b),
            lines(&["* welcome back, robert", "* not robert? type /nick NEWNAME"])
        );
        assert_eq!(
            r.events,
            vec![Event::Join {
                service: "chat",
                conn: b.id,
                name: "robert".into()
            }]
        );
        let a = r.connect(A);
        assert_eq!(
            r.lines(a),
            lines(&["* welcome back, alice", "* not alice? type /nick NEWNAME"])
        );
        assert_eq!(r.lines(b), lines(&["* alice joined"]));
        // carol's remembered "alice" is taken now: she is asked instead.
        let c = r.connect(C);
        assert_eq!(
            r.lines(c),
            lines(&["* welcome to echochat; what is your name?"])
        );
        r.send(c, b"carol\n");
        assert_eq!(r.lines(c), lines(&["* hello, carol"]));
        // An IPv4 client seen through a dual-stack socket is the same IP.
        r.send(b, b"/quit\n");
        let b2 = r.connect("::ffff:10.0.0.2");
        assert_eq!(
            r.lines(b2),
            lines(&["* welcome back, robert", "* not robert? type /nick NEWNAME"])
        );
    }

    #[test]
    fn welcome_back_skips_a_name_taken_by_a_look_alike() {
        let mut names = Names::new(10);
        names.remember(A.parse().unwrap(), "alice");
        let mut r = Room::with_names(names, 4096);
        // Someone else holds a name with alice's key.
        let b = r.join(B, "ＡＬＩＣＥ");
        let a = r.connect(A);
        assert_eq!(
            r.lines(a),
            lines(&["* welcome to echochat; what is your name?"])
        );
        assert!(r.lines(b).is_empty());
    }

    #[test]
    fn look_alike_names_cannot_join_beside_the_original() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        let b = r.connect(B);
        r.clear();
        let taken = |n: &str| format!("! the name {n} is taken");
        for twin in ["ALICE", "ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "al\u{131}ce", "a1ice"] {
            r.send(b, format!("{twin}\n").as_bytes());
            assert_eq!(r.lines(b), lines(&[&taken(twin), "* what is your name?"]));
        }
        // Cyrillic а among Latin letters is refused before uniqueness.
        r.send(b, "\u{430}lice\n".as_bytes());
        assert_eq!(
            r.lines(b)[0],
            "! a name's letters must all be of one script (not Latin and Cyrillic together, say)"
        );
        // Kelvin sign against Latin K, via /nick too.
        let k = r.join(C, "Kate");
        r.send(b, "\u{212A}ate\n".as_bytes());
        assert_eq!(
            r.lines(b),
            lines(&[&taken("\u{212A}ate"), "* what is your name?"])
        );
        r.send(k, "/nick \u{212A}ATE\n".as_bytes());
        assert_eq!(
            r.lines(k),
            lines(&["* you are now \u{212A}ATE"]),
            "one's own key"
        );
        r.send(k, "/nick ａｌｉｃｅ\n".as_bytes());
        assert_eq!(r.lines(k), lines(&[&taken("ａｌｉｃｅ")]));
        // A whisper finds the user by key, and the name shown is as typed.
        r.clear();
        r.send(k, "/msg ＡＬＩＣＥ hi\n".as_bytes());
        assert_eq!(r.lines(a), lines(&["* \u{212A}ATE whispers: hi"]));
        assert!(r.closed.is_empty());
    }

    #[test]
    fn rule6_bidi_controls_and_separators_are_removed_everywhere() {
        let (mut r, a, b, c) = three();
        let hostile =
            "x\u{202E}evil\u{2066}\u{2069}\u{200E}\u{200F}\u{2028}y\u{2029}z\x1b[2J\u{9b}";
        let clean = "xevilyz[2J";
        // A message, a whisper, an unknown command, a console line.
        r.send(a, format!("{hostile}\n").as_bytes());
        assert_eq!(r.lines(b), lines(&[&format!("alice: {clean}")]));
        r.send(a, format!("/msg bob {hostile}\n").as_bytes());
        assert_eq!(r.lines(b), lines(&[&format!("* alice whispers: {clean}")]));
        r.send(a, format!("/{hostile} now\n").as_bytes());
        assert_eq!(
            r.lines(a),
            lines(&[&format!("! unknown command /{clean}; /help lists them")])
        );
        r.clear();
        r.chat.on_console_line(hostile, &mut r.fx);
        r.pump();
        assert_eq!(r.lines(c), lines(&[&format!("[server] {clean}")]));
        // A line of nothing but such characters is not relayed at all.
        r.clear();
        r.send(a, "\u{202E}\u{2028}\u{2029}\n".as_bytes());
        assert!(r.out.is_empty(), "{:?}", r.out);
        // Every byte that reached anyone is free of them.
        r.send(b, format!("{hostile}\n").as_bytes());
        for text in r.out.values().map(|v| String::from_utf8_lossy(v)) {
            assert!(
                !text
                    .chars()
                    .any(|ch| crate::text::is_filtered(ch) && ch != '\n')
            );
        }
    }

    #[test]
    fn snapshot_only_when_names_changed() {
        let mut r = Room::new();
        let a = r.join(A, "alice");
        assert!(r.chat.take_names_snapshot().is_some());
        // Messages, /who and failed nicks change nothing to save.
        r.send(a, b"hi\n/who\n/nick a b\n/nick alice\n");
        assert!(!r.chat.names_changed());
        // A /nick storm is memory updates; one snapshot covers it all.
        for i in 0..1000 {
            r.send(a, format!("/nick n{i}\n").as_bytes());
        }
        let snapshot = r.chat.take_names_snapshot().unwrap();
        assert_eq!(snapshot, b"10.0.0.1\tn999\n");
        assert_eq!(r.chat.take_names_snapshot(), None);
        assert_eq!(r.chat.names().len(), 1);
    }

    #[test]
    fn names_memory_is_bounded() {
        let mut r = Room::with_names(Names::new(2), 4096);
        for (i, name) in ["ann", "bob", "cy"].iter().enumerate() {
            let key = r.join(&format!("10.0.0.{}", i + 1), name);
            r.send(key, b"/quit\n");
        }
        assert_eq!(r.chat.names().len(), 2);
        // The least recently seen (ann) was forgotten.
        let a = r.connect(A);
        assert_eq!(
            r.lines(a),
            lines(&["* welcome to echochat; what is your name?"])
        );
        let c = r.connect(C);
        assert_eq!(
            r.lines(c),
            lines(&["* welcome back, cy", "* not cy? type /nick NEWNAME"])
        );
    }

    /// A logfmt line `prefix"..."` must be one quoted value: no raw control
    /// character, and no unescaped quote before the closing one (so nothing
    /// after it can pass for a key).
    fn assert_one_quoted_value(line: &str, prefix: &str) {
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        let value = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line:?}"));
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("not one quoted value: {line:?}"));
        let unescaped = inner.replace("\\\\", "").replace("\\\"", "");
        assert!(!unescaped.contains('"'), "{line:?}");
    }

    #[test]
    fn hostile_input_cannot_forge_log_keys() {
        let (mut r, a, _b, _c) = three();
        // Console text is logged as typed, quoted and escaped.
        let text = "say \"hi\" reason=exit\r\n2026 INFO stop\x1b[2J";
        r.chat.on_console_line(text, &mut r.fx);
        r.pump();
        let line = r.events[0].logfmt().to_string();
        assert_one_quoted_value(&line, "console text=");
        // Names with `=`, quotes, CR or ESC never get in, so never get logged.
        r.clear();
        for bad in ["x=1", "\"q\"", "a\x0bb", "e\x1b[1m"] {
            r.send(a, format!("/nick {bad}\n").as_bytes());
            let d = r.connect("10.0.0.9");
            r.send(d, format!("{bad}\n").as_bytes());
            r.send(d, b"exit\n");
        }
        assert!(r.events.is_empty(), "{:?}", r.events);
        // A warning about a names file whose path is hostile (built here:
        // the room's tests touch no files).
        let sub = std::path::Path::new("/tmp")
            .join("x=1 \"q\"\r\x1b")
            .join("names.tsv");
        let (_, damage) = Names::parse(b"bad\n", 10);
        let warning = crate::names::LoadWarning::Damaged {
            path: sub,
            damage: damage.unwrap(),
        };
        let event = Event::Warning {
            what: "names-file",
            error: warning.to_string(),
        };
        let line = event.logfmt().to_string();
        assert_one_quoted_value(&line, "warning what=names-file error=");
        assert!(line.contains("\\r\\x1b"), "{line}");
    }

    #[test]
    fn per_connection_state_is_small() {
        let mut r = Room::new();
        let idle = r.connect(A);
        let member = &r.chat.members[&idle];
        assert_eq!(
            member.decoder.heap_bytes(),
            0,
            "no buffer until a line spans reads"
        );
        // 120 before `/who`'s two times (8 bytes: seconds, not Instants).
        let size = std::mem::size_of::<Member>();
        assert!(size <= 128, "Member is {size} bytes");
    }
}
