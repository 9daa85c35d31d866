//! `cargo bench`: echochat beside reference servers, driven by the same load
//! generator in the same run.
//!
//! The references are built from this bench's own dev-dependencies: a tokio
//! `current_thread` echo server (a lean, idiomatic async server), and a
//! tokio chat server in the style of tokio's `examples/chat.rs` (a queue
//! per peer and a `String` per delivered line). Each runs in a child
//! process of this bench (the bench re-executes itself), so its CPU time
//! and memory can be read from `/proc` exactly like echochat's.
//!
//! On two cores the client and the server saturate together, so msgs/s
//! alone cannot show a server faster than its peer; the server's CPU time
//! per message can, and it is printed beside msgs/s.
//!
//! Usage: `cargo bench` (all scenarios, under 15 minutes), or
//! `cargo bench -- NAME...` for some (names are printed in the table), and
//! `ROUNDS=3` to alternate more runs per scenario (default 2).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REF_ENV: &str = "ECHOCHAT_BENCH_REFERENCE";

fn main() {
    if let Ok(kind) = std::env::var(REF_ENV) {
        reference::serve(&kind);
        return;
    }
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let scenarios = scenarios();
    let chosen: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| s.name.contains(w.as_str())))
        .collect();
    if chosen.is_empty() {
        eprintln!("no scenario matches {wanted:?}; names are:");
        for s in &scenarios {
            eprintln!("  {}", s.name);
        }
        std::process::exit(2);
    }
    println!(
        "machine: {} cores; rounds per scenario: {rounds}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<24} {:<22} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "scenario", "server", "msgs/s", "MiB/s", "p50 µs", "p99 µs", "cpu µs/msg", "ratio"
    );
    for s in chosen {
        run_scenario(s, rounds);
    }
}

/// One row of the table: a server setup and the load that drives it.
struct Scenario {
    name: &'static str,
    /// `echochat serve` options beyond ports and log dir.
    ours: Vec<&'static str>,
    /// The reference server (`None`: compare echochat setups instead).
    reference: Option<Reference>,
    /// A second echochat setup compared against `ours` (when no reference).
    alt: Option<(&'static str, Vec<&'static str>)>,
    load: Load,
}

#[derive(Clone, Copy)]
enum Reference {
    TokioEcho,
    TokioChat,
    /// Not a server: a minimal echo client (one send and one recv per
    /// message, nothing else) against echochat, beside `echochat load`.
    MinimalClient,
}

#[derive(Clone)]
enum Load {
    Echo {
        clients: usize,
        size: &'static str,
        secs: u64,
    },
    Chat {
        users: usize,
        rate: f64,
        secs: u64,
    },
    /// Hold N idle connections and read the server's RSS growth per
    /// connection. Echo: connected. Chat: connected and greeted, idle at
    /// the name prompt.
    Idle {
        conns: usize,
        chat: bool,
    },
    /// Chat users who joined (the join notices drained), then sit idle.
    IdleJoined {
        users: usize,
    },
}

fn scenarios() -> Vec<Scenario> {
    let echo = |clients, size, secs| Load::Echo {
        clients,
        size,
        secs,
    };
    let info = vec!["--log-level", "info"];
    vec![
        Scenario {
            name: "echo-1k-1",
            ours: info.clone(),
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: echo(1, "1KiB", 4),
        },
        Scenario {
            name: "echo-1k-50",
            ours: info.clone(),
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: echo(50, "1KiB", 4),
        },
        Scenario {
            name: "echo-1k-500-info",
            ours: info.clone(),
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: echo(500, "1KiB", 5),
        },
        Scenario {
            name: "echo-1k-500-debug",
            ours: vec!["--log-level", "debug"],
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: echo(500, "1KiB", 5),
        },
        Scenario {
            name: "echo-1k-2000",
            ours: info.clone(),
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: echo(2000, "1KiB", 5),
        },
        Scenario {
            name: "load-vs-minimal-500",
            ours: info.clone(),
            reference: Some(Reference::MinimalClient),
            alt: None,
            load: echo(500, "1KiB", 4),
        },
        Scenario {
            name: "echo-64k-50-chunk",
            ours: vec!["--log-level", "info", "--read-chunk", "64KiB"],
            reference: None,
            alt: Some((
                "read-chunk 1KiB",
                vec!["--log-level", "info", "--read-chunk", "1KiB"],
            )),
            load: echo(50, "64KiB", 4),
        },
        Scenario {
            name: "chat-100x20",
            ours: info.clone(),
            reference: Some(Reference::TokioChat),
            alt: None,
            load: Load::Chat {
                users: 100,
                rate: 20.0,
                secs: 5,
            },
        },
        Scenario {
            name: "chat-1000x1",
            ours: info.clone(),
            reference: Some(Reference::TokioChat),
            alt: None,
            load: Load::Chat {
                users: 1000,
                rate: 1.0,
                secs: 8,
            },
        },
        Scenario {
            name: "idle-echo-10000",
            ours: info.clone(),
            reference: Some(Reference::TokioEcho),
            alt: None,
            load: Load::Idle {
                conns: 10_000,
                chat: false,
            },
        },
        Scenario {
            name: "idle-chat-10000",
            ours: info.clone(),
            reference: Some(Reference::TokioChat),
            alt: None,
            load: Load::Idle {
                conns: 10_000,
                chat: true,
            },
        },
        Scenario {
            name: "idle-chat-joined-2000",
            ours: info.clone(),
            reference: Some(Reference::TokioChat),
            alt: None,
            load: Load::IdleJoined { users: 2000 },
        },
        Scenario {
            name: "echo-1k-19000",
            ours: info.clone(),
            reference: None,
            alt: None,
            load: echo(19_000, "1KiB", 4),
        },
    ]
}

/// What one run measured.
#[derive(Debug, Default, Clone)]
struct Measured {
    msgs_per_sec: f64,
    mib_per_sec: f64,
    p50: f64,
    p99: f64,
    cpu_us_per_msg: f64,
    /// For chat: delivered fraction; for idle: RSS bytes per connection.
    extra: Option<(String, f64)>,
    note: String,
}

fn run_scenario(s: &Scenario, rounds: usize) {
    let mut ours_runs = Vec::new();
    let mut other_runs = Vec::new();
    let other_label = match (&s.reference, &s.alt) {
        (Some(Reference::TokioEcho), _) => Some("tokio echo".to_string()),
        (Some(Reference::TokioChat), _) => Some("tokio chat".to_string()),
        (Some(Reference::MinimalClient), _) => Some("minimal client".to_string()),
        (None, Some((label, _))) => Some(label.to_string()),
        (None, None) => None,
    };
    let rounds =
        if matches!(s.load, Load::Idle { .. } | Load::IdleJoined { .. }) || other_label.is_none() {
            1
        } else {
            rounds
        };
    for _ in 0..rounds {
        let server = ServerProc::echochat(&s.ours);
        ours_runs.push(drive(&server, &s.load));
        drop(server);
        if let Some(Reference::MinimalClient) = s.reference {
            let server = ServerProc::echochat(&s.ours);
            other_runs.push(minimal_client(&server, &s.load));
        } else if let Some(reference) = s.reference {
            let server = ServerProc::reference(reference);
            other_runs.push(drive(&server, &s.load));
        } else if let Some((_, alt)) = &s.alt {
            let server = ServerProc::echochat(alt);
            other_runs.push(drive(&server, &s.load));
        }
    }
    let ours = mean(&ours_runs);
    let other = (!other_runs.is_empty()).then(|| mean(&other_runs));
    let ours_label = match s.reference {
        Some(Reference::MinimalClient) => "echochat load",
        _ => "echochat",
    };
    print_row(s.name, ours_label, &ours, None);
    if let (Some(label), Some(other)) = (other_label, other) {
        print_row("", &label, &other, Some(&ours));
    }
}

fn mean(runs: &[Measured]) -> Measured {
    let n = runs.len() as f64;
    let avg = |f: fn(&Measured) -> f64| runs.iter().map(f).sum::<f64>() / n;
    Measured {
        msgs_per_sec: avg(|m| m.msgs_per_sec),
        mib_per_sec: avg(|m| m.mib_per_sec),
        p50: avg(|m| m.p50),
        p99: avg(|m| m.p99),
        cpu_us_per_msg: avg(|m| m.cpu_us_per_msg),
        extra: runs[0].extra.as_ref().map(|(k, _)| {
            let v = runs
                .iter()
                .map(|m| m.extra.as_ref().map_or(0.0, |e| e.1))
                .sum::<f64>()
                / n;
            (k.clone(), v)
        }),
        note: runs
            .iter()
            .map(|m| m.note.as_str())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Prints one server's numbers; for the reference row, `ours` gives the
/// ratio echochat/reference of CPU per message (lower is better for us)
/// and of msgs/s.
fn print_row(name: &str, server: &str, m: &Measured, ours: Option<&Measured>) {
    let ratio = match ours {
        Some(o) if m.cpu_us_per_msg > 0.0 && m.msgs_per_sec > 0.0 => format!(
            "cpu {:.2}x, msgs {:.2}x, MiB {:.2}x",
            o.cpu_us_per_msg / m.cpu_us_per_msg,
            o.msgs_per_sec / m.msgs_per_sec,
            if m.mib_per_sec > 0.0 {
                o.mib_per_sec / m.mib_per_sec
            } else {
                0.0
            }
        ),
        _ => String::new(),
    };
    let extra = m
        .extra
        .as_ref()
        .map(|(k, v)| format!(" {k}={v:.3}"))
        .unwrap_or_default();
    println!(
        "{:<24} {:<22} {:>10.0} {:>9.1} {:>8.0} {:>8.0} {:>9.2} {}{}{}",
        name,
        server,
        m.msgs_per_sec,
        m.mib_per_sec,
        m.p50,
        m.p99,
        m.cpu_us_per_msg,
        ratio,
        extra,
        if m.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", m.note)
        }
    );
}

/// A server child process and the addresses it listens on.
struct ServerProc {
    child: Child,
    echo: Option<SocketAddr>,
    chat: Option<SocketAddr>,
    _dir: Option<tempfile::TempDir>,
}

impl ServerProc {
    fn echochat(extra: &[&str]) -> ServerProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_echochat"))
            .args(["serve", "--echo-ports", "0", "--chat-ports", "0", "-q"])
            .arg("--log-dir")
            .arg(dir.path())
            .args(["--max-clients", "19900"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start echochat");
        let lines = read_listening(&mut child, 2);
        ServerProc {
            child,
            echo: Some(find_addr(&lines, "echo listening on ")),
            chat: Some(find_addr(&lines, "chat listening on ")),
            _dir: Some(dir),
        }
    }

    fn reference(kind: Reference) -> ServerProc {
        let name = match kind {
            Reference::TokioEcho => "echo",
            Reference::TokioChat | Reference::MinimalClient => "chat",
        };
        let mut child = Command::new(std::env::current_exe().expect("bench path"))
            .env(REF_ENV, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start reference");
        let lines = read_listening(&mut child, 1);
        let addr = Some(find_addr(&lines, "listening on "));
        let (echo, chat) = match kind {
            Reference::TokioEcho => (addr, None),
            Reference::TokioChat | Reference::MinimalClient => (None, addr),
        };
        ServerProc {
            child,
            echo,
            chat,
            _dir: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time of every thread of the process, in microseconds.
    fn cpu_us(&self) -> f64 {
        let mut total = 0u64;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                    total += s
                        .split_whitespace()
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        total as f64 / 1000.0
    }

    fn rss_bytes(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            * 1024.0
    }

    fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_listening(child: &mut Child, want: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    while lines.len() < want {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("server exited before listening; got {lines:?}");
        }
        if line.contains("listening on ") {
            lines.push(line.trim().to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    lines
}

fn find_addr(lines: &[String], prefix: &str) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.find(prefix).map(|i| l[i + prefix.len()..].trim()))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no '{prefix}' in {lines:?}"))
}

/// Runs the load against a server and measures it.
fn drive(server: &ServerProc, load: &Load) -> Measured {
    match load {
        Load::Echo {
            clients,
            size,
            secs,
        } => {
            let args = vec![
                "load".to_string(),
                "echo".into(),
                "--clients".into(),
                clients.to_string(),
                "--size".into(),
                size.to_string(),
                "--duration".into(),
                format!("{secs}s"),
                "--port".into(),
                server.echo.expect("echo address").port().to_string(),
                "--json".into(),
            ];
            run_load(server, &args)
        }
        Load::Chat { users, rate, secs } => {
            let chat = server.chat.expect("chat address");
            let args = vec![
                "load".to_string(),
                "chat".into(),
                "--clients".into(),
                users.to_string(),
                "--rate".into(),
                rate.to_string(),
                "--duration".into(),
                format!("{secs}s"),
                "--port".into(),
                chat.port().to_string(),
                "--json".into(),
            ];
            run_load(server, &args)
        }
        Load::Idle { conns, chat } => idle_memory(server, *conns, *chat, false),
        Load::IdleJoined { users } => idle_memory(server, *users, true, true),
    }
}

fn run_load(server: &ServerProc, args: &[String]) -> Measured {
    let cpu0 = server.cpu_us();
    let rss0 = server.rss_bytes();
    let child = Command::new(env!("CARGO_BIN_EXE_echochat"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run echochat load");
    // Sample the server's memory while the load runs, to tell a ramp (the
    // join storm) from growth that goes on (unbounded queues).
    let reader = std::thread::spawn(move || child.wait_with_output());
    let mut samples = Vec::new();
    while !reader.is_finished() {
        samples.push(server.rss_bytes());
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = reader.join().expect("load thread").expect("load output");
    let cpu = server.cpu_us() - cpu0;
    let rss1 = server.rss_bytes();
    // Growth across the middle of the run (30% → 80% of the samples):
    // past the join storm of the ramp, before the leave storm at the end.
    let at = |f: f64| samples.get((samples.len() as f64 * f) as usize).copied();
    let steady_growth = match (at(0.3), at(0.8)) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) => {
            return Measured {
                note: format!("load gave no JSON ({e}): {}", text.trim()),
                ..Measured::default()
            };
        }
    };
    let num = |k: &str| json.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let lat = |k: &str| {
        json.get("latency_us")
            .and_then(|l| l.get(k))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let messages = num("messages");
    let mut note = Vec::new();
    let connected = num("connected");
    let clients = num("clients");
    if connected < clients {
        note.push(format!("connected {connected}/{clients}"));
    }
    if num("verify_errors") > 0.0 {
        note.push(format!("verify_errors {}", num("verify_errors")));
    }
    if args[1] == "chat" {
        note.push(format!(
            "rss +{:.1} MiB, {:+.1} MiB mid-run",
            (rss1 - rss0) / 1048576.0,
            steady_growth / 1048576.0
        ));
    }
    let served = num("served");
    if args[1] == "echo" && served > 0.0 && clients >= 10_000.0 {
        note.push(format!("{connected} connected, {served} served"));
    }
    Measured {
        msgs_per_sec: num("msgs_per_sec"),
        mib_per_sec: num("mib_per_sec"),
        p50: lat("p50"),
        p99: lat("p99"),
        cpu_us_per_msg: if messages > 0.0 { cpu / messages } else { 0.0 },
        extra: json
            .get("delivered_fraction")
            .and_then(|v| v.as_f64())
            .map(|v| ("delivered".to_string(), v)),
        note: note.join(", "),
    }
}

/// Opens `n` connections, leaves them idle, and reads the server's RSS
/// growth per connection. For chat, each connection first picks a name, so
/// it is a joined user.
fn idle_memory(server: &ServerProc, n: usize, chat: bool, join: bool) -> Measured {
    let addr = if chat { server.chat } else { server.echo }.expect("service address");
    // Warm up allocator and tables with a few connections first.
    let warm: Vec<TcpStream> = (0..16)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    wait_fds(server, 16);
    let rss0 = server.rss_bytes();
    let fds0 = server.fd_count();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                if chat {
                    let _ = s.set_nonblocking(true);
                }
                if join {
                    let _ = s.write_all(format!("idle{i}\n").as_bytes());
                    // Keep reading the join notices, or they would pile
                    // up unsent (and the user be dropped for backlog).
                    drain(&mut conns);
                }
                conns.push(s);
            }
            Err(_) => break,
        }
    }
    let want = fds0 + conns.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.fd_count() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if chat {
        // Let the greetings, name handshakes and join notices settle.
        let quiet_since = Instant::now();
        let mut last = Instant::now();
        while last.duration_since(quiet_since) < Duration::from_secs(20) {
            if drain(&mut conns) == 0 {
                if last.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            } else {
                last = Instant::now();
            }
        }
    }
    let rss = server.rss_bytes();
    let per_conn = (rss - rss0) / conns.len().max(1) as f64;
    drop(warm);
    Measured {
        extra: Some(("rss_bytes_per_conn".into(), per_conn)),
        note: format!("{} connections", conns.len()),
        ..Measured::default()
    }
}

/// The least an echo load client can do: one mio loop, `clients`
/// connections, each sending 1 KiB and reading 1 KiB back, with one `send`
/// and one `recv` per message and no verification or statistics. The
/// yardstick for `echochat load`'s own overhead.
fn minimal_client(server: &ServerProc, load: &Load) -> Measured {
    use mio::{Events, Interest, Poll, Token};
    let Load::Echo { clients, secs, .. } = *load else {
        panic!("the minimal client only does echo");
    };
    let addr = server.echo.expect("echo address");
    let cpu0 = server.cpu_us();
    let mut poll = Poll::new().expect("poll");
    let msg = [0xA5u8; 1024];
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let std = TcpStream::connect(addr).expect("connect");
        std.set_nodelay(true).expect("nodelay");
        std.set_nonblocking(true).expect("nonblocking");
        let mut s = mio::net::TcpStream::from_std(std);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .expect("register");
        conns.push((s, 0usize));
    }
    for (s, _) in conns.iter_mut() {
        s.write_all(&msg).expect("first message");
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let mut messages = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for ev in events.iter() {
            let (s, got) = &mut conns[ev.token().0];
            loop {
                match s.read(&mut buf[*got..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        *got += n;
                        if *got == msg.len() {
                            *got = 0;
                            messages += 1;
                            let _ = s.write(&msg);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server.cpu_us() - cpu0;
    Measured {
        msgs_per_sec: messages as f64 / elapsed,
        mib_per_sec: messages as f64 * 1024.0 / elapsed / 1048576.0,
        cpu_us_per_msg: cpu / messages.max(1) as f64,
        ..Measured::default()
    }
}

/// Reads whatever is waiting on non-blocking sockets; returns the bytes.
fn drain(conns: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    for s in conns.iter_mut() {
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
    }
    total
}

fn wait_fds(server: &ServerProc, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.fd_count() < at_least && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The reference servers, run in a child process of the bench.
mod reference {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    pub fn serve(kind: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            println!("{kind} listening on {}", listener.local_addr().unwrap());
            match kind {
                "echo" => echo(listener).await,
                _ => chat(listener).await,
            }
        });
    }

    /// The textbook tokio echo server: a task per connection, 1 KiB reads.
    async fn echo(listener: TcpListener) {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    }

    type Peers = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<String>>>>;

    /// In the style of tokio's examples/chat.rs: shared map of peers, an
    /// unbounded queue per peer, a String per delivered line.
    async fn chat(listener: TcpListener) {
        let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
        loop {
            let Ok((socket, addr)) = listener.accept().await else {
                continue;
            };
            let peers = Arc::clone(&peers);
            tokio::spawn(async move {
                let _ = peer(socket, addr, peers).await;
            });
        }
    }

    async fn peer(socket: TcpStream, addr: SocketAddr, peers: Peers) -> std::io::Result<()> {
        let _ = socket.set_nodelay(true);
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"* welcome to echochat; what is your name?\n")
            .await?;
        let Some(name) = lines.next_line().await? else {
            return Ok(());
        };
        let name = name.trim().to_string();
        write
            .write_all(format!("* hello, {name}\n").as_bytes())
            .await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        broadcast(&peers, addr, &format!("* {name} joined"));
        peers.lock().unwrap().insert(addr, tx);
        let writer = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        while let Ok(Some(line)) = lines.next_line().await {
            broadcast(&peers, addr, &format!("{name}: {line}"));
        }
        peers.lock().unwrap().remove(&addr);
        broadcast(&peers, addr, &format!("* {name} left"));
        writer.abort();
        Ok(())
    }

    fn broadcast(peers: &Peers, from: SocketAddr, msg: &str) {
        for (addr, tx) in peers.lock().unwrap().iter() {
            if *addr != from {
                let _ = tx.send(format!("{msg}\n"));
            }
        }
    }
}
