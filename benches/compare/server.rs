//! The server under test as a child process, and what `/proc` says about
//! it: CPU time (all threads), resident memory, open descriptors; for
//! echochat also its log directory (log bytes written, backlog cuts).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::reference;
use crate::scenarios::{Reference, Server};

/// The log file's name (echochat's `--log-file` default).
const LOG_FILE: &str = "echochat.log";

/// A server child process and the addresses it listens on.
pub struct ServerProc {
    child: Child,
    /// `(service, address)` from its `SERVICE listening on ADDR` lines.
    addrs: Vec<(String, SocketAddr)>,
    dir: Option<tempfile::TempDir>,
}

impl ServerProc {
    /// Starts the server a side of a row asks for.
    pub fn start(server: &Server) -> ServerProc {
        match server {
            Server::Echochat { args, names } => ServerProc::echochat(args, *names),
            Server::Reference(r) => ServerProc::reference(*r),
        }
    }

    /// `echochat serve` on ports the OS picks (every service: the fixed
    /// default ranges would collide between runs and with other users of
    /// the machine), with `extra` options. `names > 0`: a names file of
    /// that many remembered IPs is written first (the `/nick` storm row).
    fn echochat(extra: &[&str], names: usize) -> ServerProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_echochat"));
        cmd.args(["serve", "--echo-ports", "0", "--chat-ports", "0"])
            .args(["--http-ports", "0", "--frame-ports", "0", "-q"])
            .arg("--log-dir")
            .arg(dir.path())
            .args(["--max-clients", "19900"]);
        if names > 0 {
            let path = dir.path().join("names.tsv");
            write_names_file(&path, names);
            cmd.arg("--names-file")
                .arg(&path)
                .args(["--names-max", &(names + 5000).to_string()]);
        }
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start echochat");
        let addrs = read_listening(&mut child, expected_services(extra));
        ServerProc {
            child,
            addrs,
            dir: Some(dir),
        }
    }

    /// A reference server: this bench re-executed (the tokio servers), or
    /// the C UDP echo server compiled from `benches/ref/`.
    fn reference(kind: Reference) -> ServerProc {
        let mut cmd = match kind {
            Reference::CUdpEcho => Command::new(reference::c_udp_echo()),
            _ => {
                let name = match kind {
                    Reference::TokioEcho => "echo",
                    Reference::TokioEchoExit => "echo-exit",
                    _ => "chat",
                };
                let mut c = Command::new(std::env::current_exe().expect("bench path"));
                c.env(reference::ENV, name);
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start reference");
        let addrs = read_listening(&mut child, 1);
        ServerProc {
            child,
            addrs,
            dir: None,
        }
    }

    /// The address of `service` (`echo`, `chat`, `udp-echo`, `http`,
    /// `frame`). The references serve one thing each, under their own
    /// word; any of them answers for the one service a row asks of it.
    pub fn addr(&self, service: &str) -> SocketAddr {
        if self.dir.is_none() {
            return self.addrs[0].1;
        }
        self.addrs
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {service} service in {:?}", self.addrs))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time of every thread of the process, in microseconds.
    pub fn cpu_us(&self) -> f64 {
        self.thread_cpu_us().iter().map(|t| t.2).sum()
    }

    /// CPU time of each thread (its id, its name, microseconds), from
    /// `/proc/PID/task/*/{comm,schedstat}`.
    pub fn thread_cpu_us(&self) -> Vec<(String, String, f64)> {
        let mut threads = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
            for t in tasks.flatten() {
                let ns = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0);
                let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let tid = t.file_name().to_string_lossy().into_owned();
                threads.push((tid, name.trim().to_string(), ns as f64 / 1000.0));
            }
        }
        threads
    }

    pub fn rss_bytes(&self) -> f64 {
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

    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// Bytes in the log files (active and rotated); 0 for a reference.
    pub fn log_bytes(&self) -> u64 {
        self.log_files()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Lines of the log files that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_files()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .sum()
    }

    fn log_files(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        std::fs::read_dir(dir.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(LOG_FILE))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Our own child, by its handle (its PID): never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many `listening on` lines `echochat serve` prints with these
/// options: echo, chat, http and frame, and the UDP twins of echo and chat,
/// less those turned off.
fn expected_services(extra: &[&str]) -> usize {
    let off = |flag: &str| extra.contains(&flag);
    let udp = !off("--no-udp");
    let mut n = 0;
    for (flag, twin) in [
        ("--no-echo", true),
        ("--no-chat", true),
        ("--no-http", false),
        ("--no-frame", false),
    ] {
        if !off(flag) {
            n += 1 + usize::from(twin && udp);
        }
    }
    n
}

/// `IP<TAB>NAME` lines of distinct made-up addresses (10.x.y.z), as a
/// server that has met that many students would have remembered.
fn write_names_file(path: &Path, n: usize) {
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        let (a, b, c) = ((i >> 16) & 255, (i >> 8) & 255, i & 255);
        text.push_str(&format!("10.{a}.{b}.{c}\tstudent{i}\n"));
    }
    std::fs::write(path, text).expect("write names file");
}

/// Reads stdout until `want` "listening on" lines, then keeps draining it
/// in a thread so the server never blocks on a full pipe (`--trace` writes
/// there too).
fn read_listening(child: &mut Child, want: usize) -> Vec<(String, SocketAddr)> {
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut addrs = Vec::new();
    while addrs.len() < want {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("server exited before listening; got {addrs:?}");
        }
        if let Some((service, addr)) = line.trim().split_once(" listening on ") {
            let addr = addr
                .parse()
                .unwrap_or_else(|_| panic!("bad address in {line:?}"));
            addrs.push((service.to_string(), addr));
        }
    }
    std::thread::spawn(move || {
        let mut sink = [0u8; 64 * 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    addrs
}
