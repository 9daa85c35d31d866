//! The HTTP service driven with byte slices and no sockets: a tiny stand-in
//! for the reactor applies its effects to in-memory output buffers.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::*;
use crate::service::Effect;
use crate::status::tests::table;
use crate::status::{ConnInfo, Status};
use serde_json::Value;

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Splits a byte stream into responses (`head_only`: bodies were left out).
fn responses(mut bytes: &[u8], head_only: bool) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let len = match r.parse(bytes).expect("a well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let status = r.code.unwrap();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_len = if head_only { 0 } else { length };
        out.push(Response {
            status,
            headers,
            body: bytes[len..len + body_len].to_vec(),
        });
        bytes = &bytes[len + body_len..];
    }
    out
}

/// The reactor's part, in memory.
struct Harness {
    http: HttpService,
    status: Status,
    conns: Vec<ConnInfo>,
    out: HashMap<ConnKey, Vec<u8>>,
    closed: HashMap<ConnKey, DisconnectReason>,
    paused: HashSet<ConnKey>,
    now: Instant,
}

const A: ConnKey = ConnKey { slot: 0, id: 1 };
const B: ConnKey = ConnKey { slot: 1, id: 2 };

impl Harness {
    fn new() -> Self {
        Self::with_conns(3)
    }

    fn with_conns(n: usize) -> Self {
        let now = Instant::now();
        let mut h = Harness {
            http: HttpService::new(),
            status: Status::new(&["echo", "chat", "http"], 20_000, 1 << 20),
            conns: table(n, now),
            out: HashMap::new(),
            closed: HashMap::new(),
            paused: HashSet::new(),
            now,
        };
        let mut fx = Effects::new();
        for key in [A, B] {
            h.http
                .on_open(key, "127.0.0.1:1".parse().unwrap(), now, &mut fx);
        }
        h
    }

    fn apply(&mut self, fx: &mut Effects) {
        for e in fx.drain() {
            match e {
                Effect::Send { to, bytes } => self.out.entry(to).or_default().extend(bytes),
                Effect::SendShared { to, bytes } => {
                    self.out.entry(to).or_default().extend(bytes.iter())
                }
                Effect::Close { to, reason } => {
                    self.closed.entry(to).or_insert(reason);
                }
                Effect::PauseReading(k) => {
                    self.paused.insert(k);
                }
                Effect::ResumeReading(k) => {
                    self.paused.remove(&k);
                }
                Effect::SendInput { .. }
                | Effect::SendTo { .. }
                | Effect::SendInputTo { .. }
                | Effect::Record(_) => {}
            }
        }
    }

    fn feed(&mut self, key: ConnKey, bytes: &[u8]) {
        let mut fx = Effects::new();
        self.http.on_recv(key, bytes, self.now, &mut fx);
        self.apply(&mut fx);
    }

    fn tick(&mut self) {
        let mut fx = Effects::new();
        let view = StatusView {
            status: &self.status,
            conns: &self.conns,
            now: self.now,
        };
        self.http.on_tick(&view, &mut fx);
        self.apply(&mut fx);
    }

    /// Feeds, ticks until nothing is pending, and returns what was sent.
    fn request(&mut self, key: ConnKey, bytes: &[u8]) -> Vec<u8> {
        self.feed(key, bytes);
        self.settle();
        self.out.remove(&key).unwrap_or_default()
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            self.tick();
            if !self.http.has_pending() {
                return;
            }
        }
        panic!("still pending after 1000 turns");
    }

    fn get(&mut self, key: ConnKey, target: &str) -> Response {
        let bytes = self.request(
            key,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        let mut all = responses(&bytes, false);
        assert_eq!(all.len(), 1, "{}", String::from_utf8_lossy(&bytes));
        all.remove(0)
    }
}

#[test]
fn status_json_with_its_length() {
    let mut h = Harness::new();
    let r = h.get(A, "/api/status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let v = r.json();
    assert_eq!(v["open"], 3);
    assert_eq!(v["services"][2]["name"], "http");
    assert!(h.closed.is_empty());
    let rec = h.http.last_request().unwrap();
    assert_eq!(
        (rec.conn, rec.method.as_str(), rec.path.as_str(), rec.status),
        (1, "GET", "/api/status", 200)
    );
    assert_eq!(rec.bytes, r.body.len());
}

#[test]
fn the_page_metrics_and_404() {
    let mut h = Harness::new();
    let page = h.get(A, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    let metrics = h.get(A, "/metrics");
    assert_eq!(
        metrics.header("Content-Type"),
        Some("text/plain; version=0.0.4")
    );
    assert!(String::from_utf8_lossy(&metrics.body).contains("echochat_connections_open"));
    let missing = h.get(A, "/nope?x=1");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("Connection"), Some("keep-alive"));
    assert!(h.closed.is_empty(), "404 keeps the connection");
    assert_eq!(h.http.requests(), 3);
}

#[test]
fn a_head_split_at_every_byte_gets_one_answer() {
    let req = b"GET /api/status HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    for cut in 1..req.len() {
        let mut h = Harness::new();
        h.feed(A, &req[..cut]);
        h.settle();
        assert!(
            h.out.get(&A).is_none_or(Vec::is_empty),
            "answered early at {cut}"
        );
        let bytes = h.request(A, &req[cut..]);
        let r = responses(&bytes, false);
        assert_eq!(r.len(), 1, "cut at {cut}");
        assert_eq!(r[0].status, 200);
    }
    // One byte at a time.
    let mut h = Harness::new();
    for &b in &req[..req.len() - 1] {
        h.feed(A, &[b]);
        h.settle();
    }
    assert!(h.out.get(&A).is_none_or(Vec::is_empty));
    let r = responses(&h.request(A, &req[req.len() - 1..]), false);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
}

#[test]
fn a_head_over_8_kib_gets_431_and_a_close() {
    let mut h = Harness::new();
    let mut req = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    req.resize(MAX_HEAD + 100, b'a');
    // Sent in 1 KiB reads, as the reactor would; no end of head yet.
    for chunk in req.chunks(1024) {
        h.feed(A, chunk);
        h.settle();
    }
    let r = responses(&h.out.remove(&A).unwrap(), false);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 431);
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(h.closed.get(&A), Some(&CLOSE_AFTER_RESPONSE));
    // Whatever follows is ignored.
    assert!(h.request(A, b"GET / HTTP/1.1\r\n\r\n").is_empty());
}

#[test]
fn other_methods_get_405_and_the_connection_goes_on() {
    let mut h = Harness::new();
    let bytes = h.request(
        A,
        b"POST /api/status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /api/status HTTP/1.1\r\n\r\n",
    );
    let r = responses(&bytes, false);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].status, 405);
    assert_eq!(r[0].header("Allow"), Some("GET, HEAD"));
    assert_eq!(r[1].status, 200, "the body was skipped");
    assert!(h.closed.is_empty());
}

#[test]
fn malformed_gets_400_and_a_close() {
    let mut h = Harness::new();
    let r = responses(&h.request(A, b"GET / HTTP/9.9\r\n\r\n"), false);
    assert_eq!(r[0].status, 400);
    assert!(h.closed.contains_key(&A));
    let mut h = Harness::new();
    let r = responses(&h.request(A, b"\x16\x03\x01 not http\r\n\r\n"), false);
    assert_eq!(r[0].status, 400);
}

#[test]
fn bad_paging_values_get_400_but_keep_the_connection() {
    let mut h = Harness::new();
    assert_eq!(h.get(A, "/api/conns?limit=abc").status, 400);
    assert_eq!(h.get(A, "/api/conns?limit=0").status, 400);
    assert!(h.closed.is_empty());
    assert_eq!(h.get(A, "/api/conns").status, 200);
}

#[test]
fn keep_alive_pipelining_and_close() {
    let mut h = Harness::new();
    let bytes = h.request(
        A,
        b"GET /api/status HTTP/1.1\r\n\r\nHEAD /api/status HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert!(text.contains("Connection: close"));
    assert_eq!(h.closed.get(&A), Some(&CLOSE_AFTER_RESPONSE));
    // The request after `Connection: close` was not answered.
    assert!(!text.contains("<html"));
    // B is unaffected.
    assert_eq!(h.get(B, "/api/status").status, 200);
}

#[test]
fn head_gets_the_length_but_no_body() {
    let mut h = Harness::new();
    let bytes = h.request(A, b"HEAD / HTTP/1.1\r\n\r\n");
    let r = responses(&bytes, true);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
    let len: usize = r[0].header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(len, PAGE_HTML.len());
    assert!(bytes.ends_with(b"\r\n\r\n"), "no body after the head");
    assert_eq!(h.http.last_request().unwrap().bytes, 0);
}

#[test]
fn http_1_0_closes_after_one_answer() {
    let mut h = Harness::new();
    let r = responses(&h.request(A, b"GET /api/status HTTP/1.0\r\n\r\n"), false);
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert!(h.closed.contains_key(&A));
}

#[test]
fn fin_after_a_request_closes_after_the_answer() {
    let mut h = Harness::new();
    h.feed(A, b"GET /api/status HTTP/1.1\r\n\r\n");
    let mut fx = Effects::new();
    h.http.on_eof(A, h.now, &mut fx);
    h.apply(&mut fx);
    h.settle();
    let r = responses(&h.out.remove(&A).unwrap(), false);
    assert_eq!(r[0].status, 200);
    assert_eq!(h.closed.get(&A), Some(&DisconnectReason::Eof));
    // FIN in the middle of a head: 400, never a hang.
    h.feed(B, b"GET /api/sta");
    let mut fx = Effects::new();
    h.http.on_eof(B, h.now, &mut fx);
    h.apply(&mut fx);
    h.settle();
    let r = responses(&h.out.remove(&B).unwrap(), false);
    assert_eq!(r[0].status, 400);
    assert!(h.closed.contains_key(&B));
}

#[test]
fn paging_walks_all_connections() {
    let mut h = Harness::with_conns(2_500);
    let mut after = 0u64;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let v = h
            .get(A, &format!("/api/conns?limit=1000&after={after}"))
            .json();
        let rows = v["conns"].as_array().unwrap();
        assert!(rows.len() <= 1000);
        let ids: Vec<u64> = rows.iter().map(|r| r["conn"].as_u64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.first().is_none_or(|&f| f > after));
        seen += rows.len();
        pages += 1;
        match v["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, 2_500);
    assert_eq!(pages, 3);
    // The default page, and a limit over 1,000 taken as 1,000.
    let v = h.get(A, "/api/conns").json();
    assert_eq!(v["conns"].as_array().unwrap().len(), 100);
    assert_eq!(v["next"], 100);
    let v = h.get(A, "/api/conns?limit=5000").json();
    assert_eq!(v["conns"].as_array().unwrap().len(), 1000);
}

#[test]
fn the_turn_budget_spreads_big_pipelines_over_turns() {
    let mut h = Harness::with_conns(2_000);
    let one = b"GET /api/conns?limit=1000 HTTP/1.1\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 20).collect();
    h.feed(A, &many);
    h.tick();
    let first_turn = h.out.get(&A).map_or(0, Vec::len);
    assert!(h.http.has_pending(), "20 big pages do not fit one turn");
    assert!(first_turn < 2 * TURN_BUDGET_BYTES, "{first_turn}");
    h.settle();
    let r = responses(&h.out.remove(&A).unwrap(), false);
    assert_eq!(r.len(), 20);
    assert!(r.iter().all(|r| r.status == 200));
}

#[test]
fn a_flood_of_pipelined_requests_pauses_reading() {
    let mut h = Harness::new();
    let one = b"GET /api/status HTTP/1.1\r\n\r\n";
    let flood: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * (MAX_BUFFERED / one.len() + 10))
        .collect();
    h.feed(A, &flood);
    assert!(h.paused.contains(&A), "reading stops while input piles up");
    h.settle();
    assert!(!h.paused.contains(&A), "and resumes once it is answered");
}

#[test]
fn a_stream_over_backlog_is_cut_and_an_answer_over_backlog_waits() {
    let mut h = Harness::new();
    h.request(A, b"GET /api/events HTTP/1.1\r\n\r\n");
    let mut fx = Effects::new();
    h.http.on_backlog(A, true, &mut fx);
    h.apply(&mut fx);
    assert_eq!(h.closed.get(&A), Some(&DisconnectReason::Backlog));
    // A plain connection over its backlog: nothing more is answered until
    // it drains, then the waiting request is.
    let mut fx = Effects::new();
    h.http.on_backlog(B, true, &mut fx);
    h.apply(&mut fx);
    assert!(h.request(B, b"GET /api/status HTTP/1.1\r\n\r\n").is_empty());
    let mut fx = Effects::new();
    h.http.on_backlog(B, false, &mut fx);
    h.apply(&mut fx);
    h.settle();
    let r = responses(&h.out.remove(&B).unwrap(), false);
    assert_eq!(r[0].status, 200);
    assert!(!h.closed.contains_key(&B));
}

#[test]
fn events_stream_new_log_lines_but_not_their_own_traffic() {
    let mut h = Harness::new();
    let bytes = h.request(
        A,
        b"GET /api/events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: text/event-stream"));
    assert!(!text.contains("Content-Length"));
    assert!(text.contains("retry: 2000\n\n"));
    assert_eq!(h.http.subscribers(), 1);

    tap::publish(
        b"2026-01-01T00:00:00.000Z INFO  accept service=echo conn=424242 slot=1 peer=127.0.0.1:1\n",
    );
    tap::publish(b"2026-01-01T00:00:00.000Z DEBUG send service=http conn=424243 bytes=10\n");
    assert!(h.http.wants_tick());
    h.tick();
    let text = String::from_utf8(h.out.remove(&A).unwrap()).unwrap();
    assert!(
        text.contains("data: 2026-01-01T00:00:00.000Z INFO  accept service=echo conn=424242 slot=1 peer=127.0.0.1:1\n\n"),
        "{text}"
    );
    assert!(!text.contains("conn=424243"), "{text}");
    // Input on a stream is ignored; closing it unsubscribes.
    h.feed(A, b"GET / HTTP/1.1\r\n\r\n");
    h.settle();
    let mut fx = Effects::new();
    h.http.on_close(A, DisconnectReason::Eof, &mut fx);
    assert_eq!(h.http.subscribers(), 0);
}

#[test]
fn own_traffic_lines_are_recognised() {
    assert!(is_own_traffic(
        b"2026-01-01T00:00:00.000Z DEBUG send service=http conn=3 bytes=10"
    ));
    assert!(is_own_traffic(
        b"2026-01-01T00:00:00.000Z DEBUG recv service=http conn=3 bytes=10"
    ));
    assert!(!is_own_traffic(
        b"2026-01-01T00:00:00.000Z DEBUG send service=echo conn=3 bytes=10"
    ));
    assert!(!is_own_traffic(
        b"2026-01-01T00:00:00.000Z DEBUG request service=http conn=3 method=GET"
    ));
}

#[test]
fn closed_connections_are_forgotten() {
    let mut h = Harness::new();
    h.feed(A, b"GET /api/sta");
    let mut fx = Effects::new();
    h.http.on_close(A, DisconnectReason::Reset, &mut fx);
    h.settle();
    assert!(h.out.get(&A).is_none_or(Vec::is_empty));
    assert!(!h.http.conns.contains_key(&A));
}
