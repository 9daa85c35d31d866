//! The status page: an HTTP/1.1 service in the same reactor as echo and
//! chat, which shows that reactor from the inside.
//!
//! Like every service it is sans-IO: bytes in, effects out. What sets it
//! apart is that its answers are about the server itself, so it needs to
//! read the reactor's state. It does that in two steps:
//!
//! 1. `on_recv` only keeps the bytes (at most an 8 KiB head, plus one read)
//!    and notes the connection as *pending*.
//! 2. At the end of the turn the reactor calls [`HttpService::on_tick`]
//!    with a [`StatusView`] — read access to its counters and connection
//!    table for that one call — and the service answers what is pending.
//!
//! The tick is where the cost is bounded: it answers requests until it has
//! written [`TURN_BUDGET_BYTES`] in this turn, and leaves the rest (with
//! reading paused, so nothing piles up) for the next turn. Every answer is
//! bounded too: a page of at most 1,000 connections, one scan of the table
//! per request, never per message. A server nobody watches pays nothing.
//!
//! `/api/events` turns a connection into a Server-Sent Events stream of the
//! log lines (`status/tap.rs`). A reader too slow for it is cut when its
//! unsent output passes `--max-backlog`, like any client.
//!
//! Read `request.rs` (the request head, with `httparse`) and `response.rs`
//! (the status line) for the HTTP lesson, `api.rs` for the JSON, and
//! `page.html` for the page itself.

pub mod api;
pub mod request;
pub mod response;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use super::{ConnKey, Effects, Service};
use crate::event::{DisconnectReason, Event};
use crate::status::{ServiceReport, StatusView, tap};
use request::{Body, HeadError, MAX_HEAD, parse_head, split_target};
use response::{Code, write_head};

/// The page, embedded in the binary: no files to install, no build step.
pub const PAGE_HTML: &str = include_str!("page.html");

/// Response bytes one turn may produce before the other pending requests
/// wait for the next turn (one big page of connections fits; the loop
/// then goes back to `poll`, so echo and chat clients are not held up).
pub const TURN_BUDGET_BYTES: usize = 256 * 1024;
/// Input kept unanswered per connection before reading it stops (a client
/// pipelining requests faster than they are answered waits in the kernel,
/// not in our memory).
const MAX_BUFFERED: usize = 2 * MAX_HEAD;
/// Log lines a new `/api/events` reader gets first, so the page is not
/// empty until something happens.
pub const EVENTS_HISTORY: u64 = 50;

/// How a connection closes after a response that said `Connection: close`
/// (the client asked, or its request could not be read): its output is
/// sent first, like any client that asked to leave.
const CLOSE_AFTER_RESPONSE: DisconnectReason = DisconnectReason::Done;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Reading requests, answering each in turn.
    #[default]
    Requests,
    /// Streaming log lines (`/api/events`); input is ignored.
    Streaming,
    /// The last response said `Connection: close`; input is ignored.
    Closing,
}

/// What the service keeps per connection.
#[derive(Debug, Default)]
struct HttpConn {
    /// Received and not answered yet: a partial head, or pipelined
    /// requests waiting for the budget.
    buf: Vec<u8>,
    /// Body bytes of the last request still to skip (never stored).
    skip: u64,
    mode: Mode,
    /// The peer sent FIN: answer what is complete, then close.
    peer_closed: bool,
    /// Unsent output passed `--max-backlog`: answer nothing more until it
    /// drains.
    over_backlog: bool,
    /// We asked the reactor to stop reading this connection.
    read_paused: bool,
    /// In the pending queue already.
    queued: bool,
}

/// What the `request` event says about one answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub conn: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The response body's length (0 for `HEAD`, which sends none).
    pub bytes: usize,
}

/// What happened when a connection's input was served.
enum Served {
    /// All complete requests answered (or the connection is done).
    Done,
    /// The turn's budget ran out with requests left.
    OutOfBudget,
}

pub struct HttpService {
    conns: HashMap<ConnKey, HttpConn>,
    /// Connections with input to serve at the next tick, oldest first.
    pending: VecDeque<ConnKey>,
    /// Connections streaming `/api/events`.
    subscribers: Vec<ConnKey>,
    /// The last log line number sent to the subscribers.
    log_seq: u64,
    /// Response bytes written in the current turn.
    turn_bytes: usize,
    /// Requests answered: this service's `messages`.
    requests: u64,
    /// The last request answered (what the `request` event carried).
    last_request: Option<RequestRecord>,
    /// Reused buffers: the body being built, the whole response, and the
    /// paging scratch of `/api/conns`.
    body: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<(u64, usize)>,
    metrics_text: String,
    /// The time of the last tick (the pending work's deadline).
    now: Option<Instant>,
}

impl Default for HttpService {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpService {
    pub fn new() -> Self {
        HttpService {
            conns: HashMap::new(),
            pending: VecDeque::new(),
            subscribers: Vec::new(),
            log_seq: tap::seq(),
            turn_bytes: 0,
            requests: 0,
            last_request: None,
            body: Vec::new(),
            out: Vec::new(),
            scratch: Vec::new(),
            metrics_text: String::new(),
            now: None,
        }
    }

    /// Whether requests are waiting for the next turn's budget: then the
    /// reactor's next `poll` must not sleep.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Requests answered so far (the service's `messages` figure).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The last request answered, as its `request` event says it.
    pub fn last_request(&self) -> Option<&RequestRecord> {
        self.last_request.as_ref()
    }

    /// Connections streaming `/api/events`.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    fn queue(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.get_mut(&key)
            && !conn.queued
        {
            conn.queued = true;
            self.pending.push_back(key);
        }
    }

    /// Answers the complete requests in a connection's input, in order.
    fn serve(&mut self, key: ConnKey, view: &StatusView<'_>, fx: &mut Effects) -> Served {
        loop {
            let Some(conn) = self.conns.get_mut(&key) else {
                return Served::Done;
            };
            if conn.mode != Mode::Requests {
                conn.buf.clear();
                return Served::Done;
            }
            if conn.over_backlog {
                return Served::Done; // `on_backlog(false)` queues it again
            }
            if conn.skip > 0 {
                let n = conn
                    .buf
                    .len()
                    .min(usize::try_from(conn.skip).unwrap_or(usize::MAX));
                conn.buf.drain(..n);
                conn.skip -= n as u64;
            }
            if conn.read_paused && conn.buf.len() < MAX_HEAD {
                conn.read_paused = false;
                fx.resume_reading(key);
            }
            if conn.buf.is_empty() {
                if conn.peer_closed && conn.skip == 0 {
                    conn.mode = Mode::Closing;
                    fx.close(key, DisconnectReason::Eof);
                }
                return Served::Done;
            }
            if self.turn_bytes >= TURN_BUDGET_BYTES {
                return Served::OutOfBudget;
            }
            match parse_head(&conn.buf) {
                Ok(None) => {
                    if conn.peer_closed {
                        // FIN in the middle of a head: it will never end.
                        self.answer_error(
                            key,
                            Code::BadRequest,
                            "the request head never ended",
                            fx,
                        );
                    }
                    return Served::Done;
                }
                Err(HeadError::TooLarge) => {
                    let why = HeadError::TooLarge.to_string();
                    self.answer_error(key, Code::HeadTooLarge, &why, fx);
                    return Served::Done;
                }
                Err(HeadError::Malformed(why)) => {
                    self.answer_error(key, Code::BadRequest, why, fx);
                    return Served::Done;
                }
                Ok(Some(head)) => {
                    conn.buf.drain(..head.len);
                    let keep_alive = match head.body {
                        Body::Length(n) => {
                            conn.skip = n;
                            head.keep_alive
                        }
                        Body::Chunked => false,
                    };
                    self.answer(key, &head.method, &head.target, keep_alive, view, fx);
                }
            }
        }
    }

    /// Routes one request and sends its response.
    fn answer(
        &mut self,
        key: ConnKey,
        method: &str,
        target: &str,
        keep_alive: bool,
        view: &StatusView<'_>,
        fx: &mut Effects,
    ) {
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            let body = format!("405 method not allowed: {method} (only GET and HEAD)\n");
            return self.respond(
                key,
                (method, target),
                Code::MethodNotAllowed,
                response::TEXT,
                body.as_bytes(),
                keep_alive,
                &[("Allow", "GET, HEAD")],
                fx,
            );
        }
        let (path, query) = split_target(target);
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let (code, content_type) = match path {
            "/" => {
                body.extend_from_slice(PAGE_HTML.as_bytes());
                (Code::Ok, response::HTML)
            }
            "/metrics" => {
                let mut text = std::mem::take(&mut self.metrics_text);
                text.clear();
                crate::metrics::encode(view, &mut text);
                body.extend_from_slice(text.as_bytes());
                self.metrics_text = text;
                (Code::Ok, crate::metrics::CONTENT_TYPE)
            }
            "/api/status" => {
                api::write_status(view, tap::seq(), &mut body);
                (Code::Ok, response::JSON)
            }
            "/api/conns" => match api::parse_conns_query(query) {
                Ok(q) => {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    let (rows, next) = view.page(q.after, q.limit, &mut scratch);
                    self.scratch = scratch;
                    api::write_conns(view, &rows, next, &mut body);
                    (Code::Ok, response::JSON)
                }
                Err(why) => {
                    body.extend_from_slice(format!("400 bad request: {why}\n").as_bytes());
                    (Code::BadRequest, response::TEXT)
                }
            },
            "/api/events" if !head_only => {
                self.body = body;
                return self.subscribe(key, target, fx);
            }
            "/api/events" => (Code::Ok, response::EVENT_STREAM),
            _ => {
                body.extend_from_slice(format!("404 not found: {path}\n").as_bytes());
                (Code::NotFound, response::TEXT)
            }
        };
        self.respond(
            key,
            (method, target),
            code,
            content_type,
            &body,
            keep_alive,
            &[],
            fx,
        );
        self.body = body;
    }

    /// Sends a whole response (the body left out for `HEAD`), records the
    /// `request` event, and closes the connection after it unless kept
    /// alive.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        key: ConnKey,
        (method, target): (&str, &str),
        code: Code,
        content_type: &str,
        body: &[u8],
        keep_alive: bool,
        extra: &[(&str, &str)],
        fx: &mut Effects,
    ) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        write_head(
            &mut out,
            code,
            content_type,
            Some(body.len()),
            keep_alive,
            extra,
        );
        let sent_body = if method == "HEAD" { 0 } else { body.len() };
        out.extend_from_slice(&body[..sent_body]);
        fx.send(key, &out);
        self.turn_bytes += out.len();
        self.out = out;
        self.record(key, method, target, code, sent_body, fx);
        if !keep_alive {
            self.close_after_response(key, fx);
        }
    }

    /// Answers a request that could not be read, and closes: after a bad
    /// head there is no telling where the next request would start.
    fn answer_error(&mut self, key: ConnKey, code: Code, why: &str, fx: &mut Effects) {
        let body = format!(
            "{} {}: {why}\n",
            code.number(),
            code.reason().to_lowercase()
        );
        self.respond(
            key,
            ("-", "-"),
            code,
            response::TEXT,
            body.as_bytes(),
            false,
            &[],
            fx,
        );
    }

    fn close_after_response(&mut self, key: ConnKey, fx: &mut Effects) {
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.mode = Mode::Closing;
            conn.buf = Vec::new();
        }
        fx.close(key, CLOSE_AFTER_RESPONSE);
    }

    fn record(
        &mut self,
        key: ConnKey,
        method: &str,
        target: &str,
        code: Code,
        bytes: usize,
        fx: &mut Effects,
    ) {
        self.requests += 1;
        let record = RequestRecord {
            conn: key.id,
            method: method.to_string(),
            path: target.to_string(),
            status: code.number(),
            bytes,
        };
        fx.record(Event::Request {
            service: "http",
            conn: record.conn,
            method: record.method.clone(),
            path: record.path.clone(),
            status: record.status,
            bytes: record.bytes as u64,
        });
        self.last_request = Some(record);
    }

    /// Turns the connection into an event stream: the head, the last
    /// [`EVENTS_HISTORY`] log lines, then every new line as it is written.
    fn subscribe(&mut self, key: ConnKey, target: &str, fx: &mut Effects) {
        // Bring the current readers up to date first, so the history below
        // and the next broadcast neither overlap nor leave a gap.
        self.broadcast_log(fx);
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.mode = Mode::Streaming;
        conn.buf = Vec::new();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        write_head(&mut out, Code::Ok, response::EVENT_STREAM, None, true, &[]);
        let head_len = out.len();
        // Tell the browser how soon to reconnect if the stream is cut.
        out.extend_from_slice(b"retry: 2000\n\n");
        let from = self.log_seq.saturating_sub(EVENTS_HISTORY);
        tap::read_since(from, |line| push_event(&mut out, line));
        fx.send(key, &out);
        let body_len = out.len() - head_len;
        self.turn_bytes += out.len();
        self.out = out;
        self.subscribers.push(key);
        self.record(key, "GET", target, Code::Ok, body_len, fx);
    }

    /// Sends the log lines written since the last call to every reader,
    /// formatted once and shared (one buffer, a reference per reader).
    fn broadcast_log(&mut self, fx: &mut Effects) {
        let seq = tap::seq();
        if seq == self.log_seq {
            return;
        }
        if self.subscribers.is_empty() {
            self.log_seq = seq;
            return;
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let (newest, missed) = tap::read_since(self.log_seq, |line| push_event(&mut out, line));
        if missed > 0 {
            // An SSE comment: the page may show it; EventSource ignores it.
            out.extend_from_slice(format!(": {missed} lines skipped\n\n").as_bytes());
        }
        self.log_seq = newest;
        if !out.is_empty() {
            let shared: Rc<[u8]> = Rc::from(&out[..]);
            for &key in &self.subscribers {
                fx.send_shared(key, &shared);
            }
        }
        self.out = out;
    }

    fn forget(&mut self, key: ConnKey) {
        self.conns.remove(&key);
        self.subscribers.retain(|&k| k != key);
    }
}

/// Appends one log line as a Server-Sent Event (`data: LINE` and an empty
/// line) — unless it is the stream's own traffic: a `send` line for the
/// stream would be streamed, which writes another `send` line, and so on.
fn push_event(out: &mut Vec<u8>, line: &[u8]) {
    if is_own_traffic(line) {
        return;
    }
    out.extend_from_slice(b"data: ");
    // Log lines never hold a raw CR or LF (logfmt escapes them); make sure
    // anyway, since one would end the event early.
    out.extend(
        line.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\n\n");
}

/// `... DEBUG recv service=http ...` or `... send service=http ...`.
fn is_own_traffic(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty()).skip(2);
    matches!(words.next(), Some(b"recv" | b"send")) && words.next() == Some(b"service=http")
}

impl Service for HttpService {
    fn name(&self) -> &'static str {
        "http"
    }

    fn on_open(&mut self, key: ConnKey, _peer: SocketAddr, _now: Instant, _fx: &mut Effects) {
        self.conns.insert(key, HttpConn::default());
    }

    /// Keeps the bytes; they are answered at the end of the turn, in
    /// [`HttpService::on_tick`], where the server's state can be read.
    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], _now: Instant, fx: &mut Effects) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if conn.mode != Mode::Requests {
            return; // a stream or a closing connection: input is ignored
        }
        conn.buf.extend_from_slice(bytes);
        if conn.buf.len() >= MAX_BUFFERED && !conn.read_paused {
            conn.read_paused = true;
            fx.pause_reading(key);
        }
        self.queue(key);
    }

    fn on_eof(&mut self, key: ConnKey, _now: Instant, fx: &mut Effects) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.peer_closed = true;
        if conn.mode == Mode::Streaming {
            fx.close(key, DisconnectReason::Eof);
            return;
        }
        self.queue(key);
    }

    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.over_backlog = over;
        if over && conn.mode == Mode::Streaming {
            // A log reader that does not keep up is cut, like a chat
            // receiver: the stream must not grow without bound.
            fx.close(key, DisconnectReason::Backlog);
        } else if !over {
            self.queue(key);
        }
    }

    fn on_close(&mut self, key: ConnKey, _reason: DisconnectReason, _fx: &mut Effects) {
        self.forget(key);
    }

    /// Past `--max-clients`, an HTTP client gets a `503`, not chat's line.
    fn refusal(&self) -> &'static [u8] {
        response::SERVICE_UNAVAILABLE
    }

    fn report(&self) -> ServiceReport {
        ServiceReport {
            messages: Some(self.requests),
            ..ServiceReport::default()
        }
    }

    /// Requests left for the next turn (the budget ran out): due at once,
    /// so the reactor's next `poll` does not sleep.
    fn next_deadline(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            None
        } else {
            self.now
        }
    }

    /// Whether this turn has work for [`Service::on_tick`]: input is
    /// waiting, or new log lines for a stream. One atomic load while
    /// nobody watches.
    fn wants_tick(&self) -> bool {
        !self.pending.is_empty() || (!self.subscribers.is_empty() && tap::seq() != self.log_seq)
    }

    /// The end of a turn: stream new log lines, then answer pending
    /// requests within the turn's budget.
    fn on_tick(&mut self, view: &StatusView<'_>, fx: &mut Effects) {
        self.turn_bytes = 0;
        self.now = Some(view.now);
        self.broadcast_log(fx);
        for _ in 0..self.pending.len() {
            let Some(key) = self.pending.pop_front() else {
                break;
            };
            let Some(conn) = self.conns.get_mut(&key) else {
                continue; // closed since it was queued
            };
            conn.queued = false;
            if let Served::OutOfBudget = self.serve(key, view, fx) {
                self.queue(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
