//! The status page over real sockets: every endpoint and status code,
//! keep-alive, a head split at every byte, the 8 KiB head limit, `503`
//! past `--max-clients`, paging, `/metrics` checked by `promtool`, the
//! event stream (and a slow reader of it cut at `--max-backlog`), the
//! `request` event, and `--trace`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::common::*;
use serde_json::Value;

/// One response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// A keep-alive HTTP/1.1 client, just enough for the tests.
struct Http {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        Http {
            s: connect(addr),
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write request");
    }

    /// Reads one response (`head_only`: the answer to a HEAD, no body).
    #[track_caller]
    fn response(&mut self, head_only: bool) -> Resp {
        loop {
            if let Some(r) = self.take_response(head_only) {
                return r;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.s.read(&mut chunk).expect("read response");
            assert!(
                n > 0,
                "EOF before a whole response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_response(&mut self, head_only: bool) -> Option<Resp> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let head_len = match r.parse(&self.buf).expect("well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return None,
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
        if self.buf.len() < head_len + body_len {
            return None;
        }
        let body = self.buf[head_len..head_len + body_len].to_vec();
        self.buf.drain(..head_len + body_len);
        Some(Resp {
            status,
            headers,
            body,
        })
    }

    #[track_caller]
    fn get(&mut self, target: &str) -> Resp {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        self.response(false)
    }

    /// Reads until the server closes; fails on a timeout.
    #[track_caller]
    fn expect_eof(&mut self) {
        let rest = read_to_eof(&mut self.s);
        assert!(
            rest.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// A server with the status page (echo too; chat off to keep it small).
fn server(extra: &[&str]) -> (Server, SocketAddr) {
    let server = Server::builder()
        .no_chat()
        .args(extra.iter().copied())
        .start();
    let addr = server.http_addr();
    (server, addr)
}

/// `bytes_in` of the connection whose peer is `peer`, from `/api/conns`.
fn bytes_in_of(probe: &mut Http, peer: SocketAddr) -> Option<u64> {
    let mut after = 0;
    loop {
        let v = probe
            .get(&format!("/api/conns?limit=1000&after={after}"))
            .json();
        for c in v["conns"].as_array().unwrap() {
            if c["peer"] == peer.to_string() {
                return c["bytes_in"].as_u64();
            }
        }
        after = v["next"].as_u64()?;
    }
}

#[test]
fn every_endpoint_answers_with_its_status_code() {
    let (_server, addr) = server(&[]);
    let mut h = Http::connect(addr);

    let page = h.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<title>echochat"));

    let metrics = h.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("Content-Type"),
        Some("text/plain; version=0.0.4")
    );
    assert!(
        metrics
            .text()
            .contains("echochat_connections_open{service=\"http\"} 1")
    );

    let status = h.get("/api/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.header("Content-Type"), Some("application/json"));
    let names: Vec<String> = status.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["echo", "http", "frame"]);

    let conns = h.get("/api/conns");
    assert_eq!(conns.status, 200);
    assert_eq!(conns.json()["conns"].as_array().unwrap().len(), 1);

    assert_eq!(h.get("/no/such/page").status, 404);
    assert_eq!(h.get("/api/conns?limit=lots").status, 400);

    h.send(b"DELETE /api/status HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = h.response(false);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));

    h.send(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = h.response(true);
    assert_eq!(r.status, 200);
    assert!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
    // Still the same connection, still answering after all of those.
    assert_eq!(h.get("/api/status").status, 200);

    // A malformed request: 400, then the server closes.
    h.send(b"GET / HTTP/7.0\r\n\r\n");
    let r = h.response(false);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Connection"), Some("close"));
    h.expect_eof();

    // The event stream's head.
    let mut e = Http::connect(addr);
    e.send(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exact(&mut e.s, 1));
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (server, addr) = server(&[]);
    let mut h = Http::connect(addr);
    for _ in 0..20 {
        let r = h.get("/api/status");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Connection"), Some("keep-alive"));
    }
    // Pipelined: three requests in one write, three answers in order.
    h.send(b"GET /api/status HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /api/conns HTTP/1.1\r\n\r\n");
    assert_eq!(h.response(false).status, 200);
    assert_eq!(h.response(false).status, 404);
    assert!(h.response(false).json()["conns"].is_array());
    // One accept for all of them.
    let accepts = server
        .events()
        .iter()
        .filter(|e| e.event == "accept" && e.get("service") == Some("http"))
        .count();
    assert_eq!(accepts, 1);
    // `Connection: close` is honoured.
    h.send(b"GET /api/status HTTP/1.1\r\nConnection: close\r\n\r\n");
    let r = h.response(false);
    assert_eq!(r.header("Connection"), Some("close"));
    h.expect_eof();
}

#[test]
fn a_request_head_split_at_every_byte() {
    let (_server, addr) = server(&[]);
    let req = b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut h = Http::connect(addr);
    let peer = h.s.local_addr().unwrap();
    let mut probe = Http::connect(addr);
    let mut sent = 0u64;
    for cut in 1..req.len() {
        h.send(&req[..cut]);
        sent += cut as u64;
        // The server has read the first part on its own before the rest
        // is sent: it saw a partial head and must wait for more.
        wait_until(&format!("server read the first {cut} bytes"), || {
            bytes_in_of(&mut probe, peer) == Some(sent)
        });
        h.send(&req[cut..]);
        sent += (req.len() - cut) as u64;
        let r = h.response(false);
        assert_eq!(r.status, 200, "cut at {cut}");
        assert!(h.buf.is_empty(), "one answer per request (cut at {cut})");
    }
}

#[test]
fn a_head_over_8_kib_gets_431() {
    let (_server, addr) = server(&[]);
    let mut h = Http::connect(addr);
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    req.resize(9 * 1024, b'a');
    req.extend_from_slice(b"\r\n\r\n");
    h.send(&req);
    let r = h.response(false);
    assert_eq!(r.status, 431);
    assert_eq!(r.header("Connection"), Some("close"));
    h.expect_eof();
    // A head that never ends is cut at the limit too.
    let mut h = Http::connect(addr);
    h.send(b"GET / HTTP/1.1\r\nX-Pad: ");
    h.send(&[b'b'; 8 * 1024]);
    assert_eq!(h.response(false).status, 431);
}

#[test]
fn past_max_clients_http_gets_503() {
    let (server, addr) = server(&["--max-clients", "2"]);
    let a = connect(server.echo_addr());
    let b = connect(server.echo_addr());
    // Both places are taken once the server has accepted them.
    server.conn_of(&a);
    server.conn_of(&b);
    let mut h = Http::connect(addr);
    h.send(b"GET /api/status HTTP/1.1\r\n\r\n");
    let r = h.response(false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(r.text(), "! server full, try again later\n");
}

#[test]
fn api_conns_pages_through_every_connection() {
    let (server, addr) = server(&[]);
    let clients: Vec<TcpStream> = (0..30).map(|_| connect(server.echo_addr())).collect();
    let mut h = Http::connect(addr);
    wait_until("30 echo connections open", || {
        h.get("/api/status").json()["services"][0]["open"] == 30
    });
    let mut after = 0u64;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let v = h.get(&format!("/api/conns?limit=7&after={after}")).json();
        let rows = v["conns"].as_array().unwrap();
        assert!(rows.len() <= 7);
        for row in rows {
            for key in [
                "conn",
                "slot",
                "service",
                "peer",
                "name",
                "bytes_in",
                "bytes_out",
                "age_s",
                "idle_s",
                "unsent",
                "paused",
            ] {
                assert!(row.get(key).is_some(), "{key} missing: {row}");
            }
            seen.push(row["conn"].as_u64().unwrap());
        }
        pages += 1;
        match v["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), 31, "30 echo clients and this one");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in conn order: {seen:?}"
    );
    assert_eq!(pages, 5);
    // Every echo client is there, by its address.
    let v = h.get("/api/conns?limit=5000").json();
    let peers: Vec<String> = v["conns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["peer"].as_str().unwrap().to_string())
        .collect();
    for c in &clients {
        assert!(peers.contains(&c.local_addr().unwrap().to_string()));
    }
}

#[test]
fn metrics_pass_promtool_check() {
    let (server, addr) = server(&[]);
    let mut echo = connect(server.echo_addr());
    echo.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut echo), "hello");
    let text = Http::connect(addr).get("/metrics").text();
    assert!(
        text.contains("echochat_bytes_received_total{service=\"echo\"} 6"),
        "{text}"
    );
    assert!(text.contains("echochat_turn_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(!text.contains("127.0.0.1"), "no address as a label");
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not installed; skipped (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("promtool is required in CI (.ci/run installs it): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads Server-Sent Events until one `data:` line satisfies `want`.
#[track_caller]
fn wait_event(s: &mut TcpStream, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(line) = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|l| want(l))
        {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no event for {what}: {text}");
        let n = s.read(&mut chunk).expect("read events");
        assert!(n > 0, "stream ended waiting for {what}: {text}");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

#[test]
fn events_stream_log_lines_as_they_are_written() {
    let (server, addr) = server(&[]);
    let mut e = Http::connect(addr);
    e.send(b"GET /api/events HTTP/1.1\r\n\r\n");
    // The history comes first: the server's own `start` line.
    wait_event(&mut e.s, "the start line", |l| {
        l.contains(" start version=")
    });
    let c = connect(server.echo_addr());
    let peer = c.local_addr().unwrap().to_string();
    let line = wait_event(&mut e.s, "the echo client's accept", |l| {
        l.contains(" accept service=echo") && l.contains(&format!("peer={peer}"))
    });
    // The same line is in the file.
    server.wait_log("the same accept line in the file", |e| e.text == line);
    // The stream never carries its own recv/send lines.
    drop(c);
    let conn = server.conn_of(&connect(server.echo_addr()));
    let text = wait_event(&mut e.s, "the next accept", |l| {
        l.contains(&format!(" accept service=echo conn={conn} "))
    });
    assert!(!text.contains("send service=http"));
}

#[test]
fn a_slow_event_stream_reader_is_cut_at_max_backlog() {
    // No rotation: the request lines below are long and many, and the
    // disconnect line must stay in the active file this test reads.
    let (server, addr) = server(&["--max-backlog", "64KiB", "--log-max-size", "0"]);
    // A reader that never reads, with a small receive buffer: the kernel
    // holds little on our side, so the server's queue does the holding.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut slow: TcpStream = sock.into();
    slow.write_all(b"GET /api/events HTTP/1.1\r\n\r\n").unwrap();
    let conn = server.conn_of(&slow);
    let cut = |server: &Server| {
        server.log().lines().any(|l| {
            event_name(l) == Some("disconnect")
                && field(l, "conn") == Some(conn.to_string())
                && field(l, "reason").as_deref() == Some("backlog")
        })
    };
    // Make log lines, and long ones: each request for a missing long path
    // writes a `request` line of about 2 KiB (request lines are never
    // summed up like recv/send), and they are sent pipelined, 50 a write.
    let long = format!("/{}", "p".repeat(2000));
    let batch: Vec<u8> = format!("GET {long} HTTP/1.1\r\n\r\n")
        .repeat(50)
        .into_bytes();
    let mut h = Http::connect(addr);
    let started = Instant::now();
    let mut sent = 0;
    while !cut(&server) {
        assert!(
            started.elapsed() < DEADLINE,
            "the slow reader was never cut ({sent} requests made)"
        );
        h.send(&batch);
        for _ in 0..50 {
            assert_eq!(h.response(false).status, 404);
        }
        sent += 50;
        assert!(sent < 100_000, "never cut after {sent} requests");
    }
    // The server is fine: the page still answers.
    assert_eq!(Http::connect(addr).get("/api/status").status, 200);
}

#[test]
fn each_request_is_logged() {
    let (server, addr) = server(&[]);
    let mut h = Http::connect(addr);
    let conn = server.conn_of(&h.s);
    let body = h.get("/api/conns?limit=3").body;
    h.get("/missing");
    let line = server.wait_log("the request line for /missing", |e| {
        e.is("request", "path", "/missing")
    });
    assert_eq!(line.get("service"), Some("http"));
    assert_eq!(line.get("conn"), Some(conn.to_string().as_str()));
    assert_eq!(line.get("method"), Some("GET"));
    assert_eq!(line.get("status"), Some("404"));
    let first = server.wait_log("the request line for /api/conns", |e| {
        e.event == "request" && e.get("path").is_some_and(|p| p.contains("/api/conns"))
    });
    assert_eq!(first.get("path"), Some("/api/conns?limit=3"));
    assert_eq!(first.get("bytes"), Some(body.len().to_string().as_str()));
    assert!(first.text.contains(" DEBUG request "), "{}", first.text);
}

#[test]
fn idle_timeout_applies_to_keep_alive_connections() {
    let (server, addr) = server(&["--idle-timeout", "300ms"]);
    let mut h = Http::connect(addr);
    let conn = server.conn_of(&h.s);
    assert_eq!(h.get("/api/status").status, 200);
    let line = server.wait_disconnect(conn);
    assert_eq!(line.get("reason"), Some("idle"));
    h.expect_eof();
}

#[test]
fn the_page_stays_on_loopback_unless_asked() {
    // Echo on IPv6 loopback; the status page keeps its own default.
    let server = Server::builder().no_chat().args(["--host", "::1"]).start();
    assert!(server.echo_addr().is_ipv6());
    assert_eq!(server.http_addr().ip().to_string(), "127.0.0.1");
    // And `--no-http` turns it off (all listening lines are printed before
    // the server reads a signal: stop it, then look).
    let mut server = Server::builder().no_chat().arg("--no-http").start();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    assert!(!server.stdout_text().contains("http listening"));
}

#[test]
fn status_counts_connections_and_slot_reuse() {
    let (server, addr) = server(&[]);
    let mut h = Http::connect(addr);
    let a = connect(server.echo_addr());
    let conn_a = server.conn_of(&a);
    let b = connect(server.echo_addr());
    let _ = server.conn_of(&b);
    let v = h.get("/api/status").json();
    assert_eq!(v["services"][0]["open"], 2);
    assert_eq!(v["services"][0]["accepted"], 2);
    assert_eq!(v["open"], 3);
    drop(a);
    server.wait_disconnect(conn_a);
    // A new connection takes the freed slot: the slab reuses it.
    let _c = connect(server.echo_addr());
    wait_until("a reused slot", || {
        h.get("/api/status").json()["slots"]["reuses"].as_u64() >= Some(1)
    });
    let v = h.get("/api/status").json();
    assert_eq!(v["services"][0]["disconnects"]["eof"], 1);
    let grid = v["slots"]["grid"].as_str().unwrap();
    assert!(grid.chars().any(|c| c.is_ascii_uppercase()), "{grid}");
}

#[test]
fn trace_prints_at_most_twenty_turns_a_second() {
    let server = Server::builder()
        .no_chat()
        .args(["--trace", "--lang", "en"])
        .start();
    let mut echo = connect(server.echo_addr());
    let started = Instant::now();
    // Many turns: one round trip each.
    for i in 0..2000 {
        echo.write_all(b"x\n").unwrap();
        assert_eq!(read_line(&mut echo), "x", "round trip {i}");
    }
    // The summary line comes with the first turn of the next second: keep
    // making turns until it does.
    wait_until("a summary of the turns not shown", || {
        echo.write_all(b"y\n").unwrap();
        assert_eq!(read_line(&mut echo), "y");
        server.stdout_text().contains("were not shown")
    });
    let out = server.stdout_text();
    let turns = out.lines().filter(|l| l.starts_with("turn ")).count();
    let seconds = started.elapsed().as_secs() + 2;
    assert!(
        turns as u64 <= 20 * seconds,
        "{turns} lines in about {seconds} s"
    );
    assert!(out.contains("poll slept"), "{out}");
}

/// The contract's bound with many connections: no request to any endpoint
/// makes a turn longer than about a millisecond (the target: 2 ms,
/// read off the server's own turn-time histogram). Needs 19,000 descriptors
/// on each side, an optimized build and a quiet machine, so it is run on
/// demand: `cargo test --release --test http -- --ignored`.
#[test]
#[ignore]
fn nineteen_thousand_connections_keep_every_turn_short() {
    const N: usize = 19_000;
    let (server, addr) = server(&["--max-clients", "19500"]);
    let echo = server.echo_addr();
    let mut clients = Vec::with_capacity(N);
    for i in 0..N {
        match TcpStream::connect(echo) {
            Ok(c) => clients.push(c),
            Err(e) => panic!("connection {i}: {e} (raise `ulimit -n` to 20000)"),
        }
    }
    let mut h = Http::connect(addr);
    wait_until("19,000 echo connections open", || {
        h.get("/api/status").json()["services"][0]["open"] == N as u64
    });
    let slow_turns = |v: &Value| -> u64 {
        // Turns in buckets above 2,000 µs.
        let t = &v["reactor"]["turn_us"];
        let bounds = t["bounds"].as_array().unwrap();
        let counts = t["counts"].as_array().unwrap();
        let over = bounds
            .iter()
            .position(|b| b.as_u64() == Some(2_000))
            .unwrap()
            + 1;
        counts[over..].iter().map(|c| c.as_u64().unwrap()).sum()
    };
    let first = h.get("/api/status").json();
    let before = slow_turns(&first);
    let turns_before = first["reactor"]["turns"].as_u64().unwrap();
    let mut after = 0;
    let mut seen = 0;
    loop {
        let v = h
            .get(&format!("/api/conns?limit=1000&after={after}"))
            .json();
        seen += v["conns"].as_array().unwrap().len();
        match v["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, N + 1);
    for _ in 0..10 {
        assert_eq!(h.get("/metrics").status, 200);
        assert_eq!(h.get("/").status, 200);
    }
    let v = h.get("/api/status").json();
    // On a quiet machine none is; a machine shared with compilers may
    // preempt the server mid-turn now and then, so allow 1% of the turns.
    let turns = v["reactor"]["turns"].as_u64().unwrap() - turns_before;
    let slow = slow_turns(&v) - before;
    assert!(
        slow * 100 <= turns,
        "{slow} of {turns} turns took longer than 2 ms"
    );
    eprintln!(
        "turn time p50 {} µs, p99 {} µs over {} turns",
        v["reactor"]["turn_us"]["p50"], v["reactor"]["turn_us"]["p99"], v["reactor"]["turns"]
    );
}
