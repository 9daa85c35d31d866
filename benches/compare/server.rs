//! The server under test as a child process, and what `/proc` says about
//! it: CPU time (all threads), resident memory, open descriptors.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::reference;
use crate::scenarios::Reference;

/// A server child process and the addresses it listens on.
pub struct ServerProc {
    child: Child,
    pub echo: Option<SocketAddr>,
    pub chat: Option<SocketAddr>,
    _dir: Option<tempfile::TempDir>,
}

impl ServerProc {
    /// `echochat serve` on ports the OS picks, with `extra` options.
    pub fn echochat(extra: &[&str]) -> ServerProc {
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

    /// A reference server: this bench, re-executed.
    pub fn reference(kind: Reference) -> ServerProc {
        let name = match kind {
            Reference::TokioEcho => "echo",
            Reference::TokioEchoExit => "echo-exit",
            Reference::TokioChat | Reference::MinimalClient => "chat",
        };
        let mut child = Command::new(std::env::current_exe().expect("bench path"))
            .env(reference::ENV, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start reference");
        let lines = read_listening(&mut child, 1);
        let addr = Some(find_addr(&lines, "listening on "));
        let (echo, chat) = match kind {
            Reference::TokioEcho | Reference::TokioEchoExit => (addr, None),
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
    pub fn cpu_us(&self) -> f64 {
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
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Our own child, by its handle (its PID): never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stdout until `want` "listening on" lines, then keeps draining it
/// in a thread so the server never blocks on a full pipe.
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
