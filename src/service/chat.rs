//! The chat service: a room of named users, as a pure state machine.
//!
//! Like the echo service it never touches a socket: the reactor hands it
//! bytes and lifecycle news, and it answers with [`Effects`]. Each
//! connection's bytes go through its own [`LineDecoder`] (`codec.rs`), which
//! turns whatever one `recv` returned into whole lines; every line is then
//! handled by the rules of `DESIGN.md` ("Chat protocol"):
//!
//! 1. On connect, a client whose IP is in the names file (`names.rs`) and
//!    whose remembered name is free gets `* welcome back, NAME` and joins at
//!    once; otherwise `* welcome to echochat; what is your name?`, and each
//!    line is a name candidate until one is good (`* hello, NAME`). A bad or
//!    taken name gets one `! reason` line and `* what is your name?`. A lone
//!    `exit` at the prompt disconnects (`reason=exit`).
//! 2. Joining sends `* NAME joined` to everyone else.
//! 3. Any other line goes to every other user as `NAME: text`.
//! 4. `/nick NEW`, `/who`, `/msg NAME text`, `/help`, `/quit` (and a lone
//!    `exit`); leaving, for any reason, sends `* NAME left` to the others.
//! 5. Errors are one `! ` line and the connection stays open.
//! 6. Control characters are removed from relayed text and refused in names.
//! 7. Console lines go to every joined user as `[server] text`.
//!
//! Choices where the contract is silent:
//! - **Names** may use letters of any script (`Олена`), ASCII digits, `_`
//!   and `-`; spaces and tabs around a name candidate are trimmed.
//!   Uniqueness is case-insensitive (Unicode lowercase), and `/nick` may
//!   change only the case of one's own name.
//! - **Empty lines** (or lines that are empty once control characters are
//!   removed, or only whitespace) are ignored in the room; at the name prompt
//!   an empty line is a bad name like any other.
//! - **Silence means success** for the sender of a message or a whisper:
//!   as with `NAME: text`, the sender gets no copy. `/nick` answers
//!   `* you are now NEW`. `/quit` and `exit` close without a goodbye line —
//!   the closed connection is the answer.
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
//! Costs: a connection holds a [`Member`] (a few dozen bytes: its IP, its
//! decoder, its name) — the decoder's buffer exists only while a line spans
//! two reads. A broadcast line is formatted once into an `Rc<[u8]>` and the
//! same buffer is queued for every receiver, so a message to N users costs
//! one allocation, not N copies. Handling lines allocates nothing else on
//! the message path.
//!
//! Read `names.rs` for the names file, then the tests at the bottom: a room
//! of three users driven entirely in memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use crate::codec::{Line, LineDecoder};
use crate::event::{DisconnectReason, Event};
use crate::names::{NamesFile, check_name};
use crate::service::{ConnKey, Effects, Service};

/// What the chat room needs from the command line.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `--max-line`: the longest line accepted, terminator not counted.
    pub max_line_bytes: usize,
    /// `--names-file`: where names are remembered by client IP.
    pub names_path: PathBuf,
}

const GREETING: &[u8] = b"* welcome to echochat; what is your name?\n";
const ASK_AGAIN: &[u8] = b"* what is your name?\n";
const SHUTTING_DOWN: &[u8] = b"* server shutting down\n";
const INVALID_UTF8: &[u8] = b"! invalid UTF-8, line ignored\n";
const HELP: &[u8] = b"* commands:\n\
* /nick NEW       change your name\n\
* /who            list who is online\n\
* /msg NAME text  send text to one user only\n\
* /help           this list\n\
* /quit or exit   leave the chat\n\
* any other line goes to everyone else\n";

/// The `/who` line is capped at `max_line_bytes`, but never below this.
const WHO_MIN_BYTES: usize = 1024;

/// The `what=` of warnings about the names file.
const NAMES_WARNING: &str = "names-file";

/// The chat room; see the module docs.
#[derive(Debug)]
pub struct ChatRoom {
    /// `--max-line`, for each new connection's decoder and the error text.
    max_line_bytes: usize,
    /// Remembered names by IP, saved on every name choice or change.
    names: NamesFile,
    /// Every open chat connection, joined or not.
    members: HashMap<ConnKey, Member>,
    /// Joined users by case-folded name: uniqueness, `/msg` lookup, and the
    /// list of receivers for a broadcast.
    online: HashMap<Box<str>, ConnKey>,
    /// Reused to format lines, so a message costs only its shared buffer.
    scratch: Vec<u8>,
    /// A graceful stop began: departures are no longer announced.
    shutting_down: bool,
}

/// One chat connection.
#[derive(Debug)]
struct Member {
    /// The client's IP, the key of the names file.
    ip: IpAddr,
    /// Splits this connection's bytes into lines.
    decoder: LineDecoder,
    /// Where the connection is in the protocol.
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Asked for a name; every line is a candidate.
    Naming,
    /// In the room under this name.
    Joined { name: Box<str> },
    /// Left (or is being closed): its input is ignored, nothing is sent.
    Left,
}

impl ChatRoom {
    /// A room that remembers names in `config.names_path`. The events are
    /// warnings from loading that file (damaged lines, an unreadable file),
    /// for the caller to record; a missing file is simply empty.
    pub fn new(config: ChatConfig) -> (ChatRoom, Vec<Event>) {
        let (names, problems) = NamesFile::load(config.names_path);
        let warnings = problems
            .into_iter()
            .map(|p| Event::Warning {
                what: NAMES_WARNING,
                error: p.to_string(),
            })
            .collect();
        let room = ChatRoom {
            max_line_bytes: config.max_line_bytes,
            names,
            members: HashMap::new(),
            online: HashMap::new(),
            scratch: Vec::new(),
            shutting_down: false,
        };
        (room, warnings)
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
            Stage::Naming => true,
            Stage::Joined { .. } => false,
        };
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
        let name = text.trim();
        if let Err(e) = check_name(name) {
            self.reply(key, &["! ", &e.to_string()], fx);
            fx.send(key, ASK_AGAIN);
        } else if self.online.contains_key(&*fold(name)) {
            self.reply(key, &["! the name ", name, " is taken"], fx);
            fx.send(key, ASK_AGAIN);
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
        self.online.insert(fold(name), key);
        self.reply(key, &[greeting, name], fx);
        self.broadcast(Some(key), &["* ", name, " joined"], fx);
        fx.record(Event::Join {
            conn: key.id,
            name: name.to_string(),
        });
        self.remember(ip, name, fx);
    }

    /// Saves the name for the IP; a failure is a warning and chat goes on.
    fn remember(&mut self, ip: IpAddr, name: &str, fx: &mut Effects) {
        if let Err(e) = self.names.remember(ip, name) {
            fx.record(Event::Warning {
                what: NAMES_WARNING,
                error: e.to_string(),
            });
        }
    }

    fn on_room_line(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        if text == "exit" {
            self.drop_member(key, DisconnectReason::Exit, fx);
        } else if text.starts_with('/') {
            self.on_command(key, text, fx);
        } else if has_visible(text) {
            self.relay(key, text, fx);
        }
    }

    /// `NAME: text` to every other user: the hot path, formatted once into
    /// a shared buffer.
    fn relay(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        if self.online.len() < 2 {
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
        push_clean(&mut self.scratch, text);
        self.scratch.push(b'\n');
        send_to_room(&self.online, Some(key), &self.scratch, fx);
    }

    fn on_command(&mut self, key: ConnKey, text: &str, fx: &mut Effects) {
        let (command, rest) = match text.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim()),
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
            self.drop_member(key, DisconnectReason::Exit, fx);
        } else {
            self.scratch.clear();
            self.scratch.extend_from_slice(b"! unknown command ");
            push_clean(&mut self.scratch, command);
            self.scratch.extend_from_slice(b"; /help lists them\n");
            fx.send(key, &self.scratch);
        }
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
        let (old_fold, new_fold) = (fold(name), fold(new));
        if old_fold != new_fold && self.online.contains_key(&new_fold) {
            self.reply(key, &["! the name ", new, " is taken"], fx);
            return;
        }
        let old = std::mem::replace(name, new.into());
        let ip = *ip;
        self.online.remove(&old_fold);
        self.online.insert(new_fold, key);
        self.reply(key, &["* you are now ", new], fx);
        self.broadcast(Some(key), &["* ", &old, " is now ", new], fx);
        fx.record(Event::Nick {
            conn: key.id,
            old: old.into(),
            new: new.to_string(),
        });
        self.remember(ip, new, fx);
    }

    fn who(&mut self, key: ConnKey, fx: &mut Effects) {
        let mut list: Vec<&str> = self
            .online
            .values()
            .filter_map(|k| match &self.members.get(k)?.stage {
                Stage::Joined { name } => Some(&**name),
                _ => None,
            })
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
        fx.send(key, &self.scratch);
    }

    /// `/msg NAME text`: `* SENDER whispers: text` to NAME only.
    fn whisper(&mut self, key: ConnKey, rest: &str, fx: &mut Effects) {
        let (target, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if target.is_empty() || !has_visible(text) {
            fx.send(key, b"! usage: /msg NAME text\n");
            return;
        }
        let to = if check_name(target).is_ok() {
            self.online.get(&*fold(target)).copied()
        } else {
            None
        };
        let Some(to) = to else {
            if check_name(target).is_ok() {
                self.reply(key, &["! no such user: ", target], fx);
            } else {
                fx.send(key, b"! no such user\n");
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
        push_clean(&mut self.scratch, text.trim_start());
        self.scratch.push(b'\n');
        fx.send(to, &self.scratch);
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
        let folded = fold(&name);
        if self.online.get(&folded) == Some(&key) {
            self.online.remove(&folded);
        }
        if !self.shutting_down {
            self.broadcast(None, &["* ", &name, " left"], fx);
        }
        fx.record(Event::Leave {
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
    }
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

/// The case-insensitive form of a name, for uniqueness and lookup.
fn fold(name: &str) -> Box<str> {
    name.to_lowercase().into_boxed_str()
}

fn push_all(buf: &mut Vec<u8>, parts: &[&str]) {
    for part in parts {
        buf.extend_from_slice(part.as_bytes());
    }
}

/// Whether a character may reach another user's terminal: every control
/// character (C0, DEL, C1 — Unicode's `Cc`) could start an escape sequence
/// or move the cursor; tab is harmless and kept.
fn is_removed(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Appends `text` without the characters of [`is_removed`].
fn push_clean(buf: &mut Vec<u8>, text: &str) {
    if !text.chars().any(is_removed) {
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in text.chars().filter(|&c| !is_removed(c)) {
        buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

/// Whether anything would be left to read once control characters and
/// whitespace are ignored.
fn has_visible(text: &str) -> bool {
    text.chars().any(|c| !is_removed(c) && !c.is_whitespace())
}

impl Service for ChatRoom {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn on_open(&mut self, key: ConnKey, peer: SocketAddr, _now: Instant, fx: &mut Effects) {
        // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d;
        // remember it as a.b.c.d either way.
        let ip = peer.ip().to_canonical();
        self.members.insert(
            key,
            Member {
                ip,
                decoder: LineDecoder::new(self.max_line_bytes),
                stage: Stage::Naming,
            },
        );
        let remembered = self
            .names
            .get(ip)
            .filter(|name| !self.online.contains_key(&*fold(name)))
            .map(Box::<str>::from);
        match remembered {
            Some(name) => self.join(key, &name, "* welcome back, ", fx),
            None => fx.send(key, GREETING),
        }
    }

    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], _now: Instant, fx: &mut Effects) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        if matches!(member.stage, Stage::Left) {
            return;
        }
        // Lend the decoder out so the line handler may use the whole room;
        // `LineDecoder::new` allocates nothing.
        let mut decoder = std::mem::replace(&mut member.decoder, LineDecoder::new(0));
        decoder.feed(bytes, |line| self.on_line(key, line, fx));
        if let Some(member) = self.members.get_mut(&key) {
            member.decoder = decoder;
        }
    }

    fn on_eof(&mut self, key: ConnKey, _now: Instant, fx: &mut Effects) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        let mut decoder = std::mem::replace(&mut member.decoder, LineDecoder::new(0));
        decoder.finish(|line| self.on_line(key, line, fx));
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
        push_clean(&mut self.scratch, line);
        self.scratch.push(b'\n');
        send_to_room(&self.online, None, &self.scratch, fx);
    }

    fn on_shutdown(&mut self, fx: &mut Effects) {
        self.shutting_down = true;
        let notice: Rc<[u8]> = Rc::from(SHUTTING_DOWN);
        for (&key, member) in &self.members {
            if !matches!(member.stage, Stage::Left) {
                fx.send_shared(key, &notice);
            }
        }
    }
}
