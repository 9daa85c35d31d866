//! Shared helpers for the integration tests: start the real `echochat`
//! binary on port 0 in a temporary log directory, find the addresses it
//! printed, and wait for conditions with a deadline (never sleep and hope).
//!
//! Every test owns its server process; dropping the `Server` kills it (by
//! its PID) if the test did not stop it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_echochat")
}

/// A running `echochat serve`.
pub struct Server {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    /// Set when the server printed `echo listening on ADDR`.
    pub echo: Option<SocketAddr>,
    /// Set when the server printed `chat listening on ADDR`.
    pub chat: Option<SocketAddr>,
    /// Every stdout line so far (the reader thread keeps appending).
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Every stderr line so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

/// Builder: `ServerBuilder::new().arg("--max-clients").arg("3").start()`.
pub struct ServerBuilder {
    args: Vec<String>,
    echo: bool,
    chat: bool,
    rlimit_nofile: Option<u64>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    pub fn new() -> Self {
        ServerBuilder {
            args: Vec::new(),
            echo: true,
            chat: true,
            rlimit_nofile: None,
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, it: I) -> Self {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }
    pub fn no_echo(mut self) -> Self {
        self.echo = false;
        self
    }
    pub fn no_chat(mut self) -> Self {
        self.chat = false;
        self
    }
    /// Run the server under `prlimit --nofile=N` (soft and hard).
    pub fn nofile(mut self, n: u64) -> Self {
        self.rlimit_nofile = Some(n);
        self
    }

    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = match self.rlimit_nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("serve")
            .arg("--log-dir")
            .arg(dir.path().join("logs"));
        let has = |flag: &str| self.args.iter().any(|a| a == flag);
        if self.echo && !has("--echo-ports") {
            cmd.args(["--echo-ports", "0"]);
        }
        if self.chat && !has("--chat-ports") {
            cmd.args(["--chat-ports", "0"]);
        }
        if !self.echo {
            cmd.arg("--no-echo");
        }
        if !self.chat {
            cmd.arg("--no-chat");
        }
        cmd.args(&self.args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn echochat serve");
        let stdin = child.stdin.take();
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        spawn_line_reader(child.stdout.take().unwrap(), stdout_lines.clone(), Some(tx));
        spawn_line_reader(child.stderr.take().unwrap(), stderr_lines.clone(), None);
        let mut server = Server {
            child,
            stdin,
            echo: None,
            chat: None,
            stdout: stdout_lines,
            stderr: stderr_lines,
            dir,
        };
        server.await_listening(rx, self.echo, self.chat);
        server
    }
}

fn spawn_line_reader<R: Read + Send + 'static>(
    r: R,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &tx {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
}

impl Server {
    pub fn start() -> Server {
        ServerBuilder::new().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    fn await_listening(&mut self, rx: Receiver<String>, echo: bool, chat: bool) {
        let deadline = Instant::now() + DEADLINE;
        while (echo && self.echo.is_none()) || (chat && self.chat.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!(
                    "server never printed its listening lines; stdout={:?} stderr={:?} status={:?}",
                    self.stdout.lock().unwrap(),
                    self.stderr.lock().unwrap(),
                    self.child.try_wait()
                ),
            };
            for (svc, slot) in [("echo", &mut self.echo), ("chat", &mut self.chat)] {
                let prefix = format!("{svc} listening on ");
                if let Some(pos) = line.find(&prefix) {
                    let addr = line[pos + prefix.len()..].trim();
                    *slot = Some(addr.parse().expect("listening address"));
                }
            }
        }
    }

    pub fn echo_addr(&self) -> SocketAddr {
        self.echo.expect("echo service running")
    }

    pub fn chat_addr(&self) -> SocketAddr {
        self.chat.expect("chat service running")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir().join("echochat.log")
    }

    /// The active log file's contents ("" if it does not exist yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Wait until some log line satisfies `pred`; returns that line.
    #[track_caller]
    pub fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        wait_until(what, || {
            found = self.log().lines().find(|l| pred(l)).map(str::to_string);
            found.is_some()
        });
        found.unwrap()
    }

    /// Write a line to the server's console (stdin).
    pub fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write console");
        stdin.flush().unwrap();
    }

    /// Send a signal to the server process (by its PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Wait for the process to exit; fails the test after the deadline.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// CPU time (user + system) the server has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        proc_stat_field(self.pid(), 13) + proc_stat_field(self.pid(), 14)
    }

    /// Resident memory of the server in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Field `n` (0-based, after the command name) of /proc/PID/stat.
pub fn proc_stat_field(pid: u32, n: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after
        .split_whitespace()
        .nth(n - 2)
        .unwrap()
        .parse()
        .unwrap()
}

/// Poll `cond` every few milliseconds until it holds; fail the test saying
/// what never happened if it does not within [`DEADLINE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Connect with a read timeout set, so a missing reply fails instead of
/// hanging the test.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Read exactly `n` bytes (fails on timeout or EOF).
#[track_caller]
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read_exact");
    buf
}

/// Read one `\n`-terminated line (without the `\n`), byte by byte so no
/// data is lost to a buffer the caller cannot see.
#[track_caller]
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => panic!(
                "EOF while reading a line; got so far {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => out.push(b[0]),
            Err(e) => panic!(
                "read_line failed: {e}; got so far {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8(out).expect("utf-8 line")
}

/// Read until EOF; returns everything (fails on timeout).
#[track_caller]
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Parse a logfmt line's `key=value` pairs (values unquoted, escapes kept).
pub fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(' ').map_or(0, |i| i + 1);
        let key = rest[key_start..eq].to_string();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut end = 0;
            let bytes = q.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                if bytes[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            (
                q[..end.min(q.len())].to_string(),
                &q[(end + 1).min(q.len())..],
            )
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key, value));
        rest = next;
    }
    out
}

/// The value of `key` in a logfmt line.
pub fn field(line: &str, key: &str) -> Option<String> {
    fields(line)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The event name of a log line (`TIMESTAMP LEVEL EVENT ...`).
pub fn event_name(line: &str) -> Option<&str> {
    line.split_whitespace().nth(2)
}

/// All files of a directory whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
