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
    extra_fds: usize,
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
            extra_fds: 0,
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

    /// Like `nofile`, but the server also inherits `n` extra open
    /// descriptors (`/dev/null`), as if something else in the process held
    /// them: they count against `RLIMIT_NOFILE` without the server knowing,
    /// so `accept` can hit `EMFILE` even when `--max-clients` was fitted to
    /// the limit.
    pub fn extra_fds(mut self, n: usize) -> Self {
        self.extra_fds = n;
        self
    }

    /// The command line, with the log directory inside `dir`.
    fn command(&self, dir: &Path) -> Command {
        let mut cmd = match self.rlimit_nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("serve").arg("--log-dir").arg(dir.join("logs"));
        let has = |flag: &str| self.args.iter().any(|a| a == flag);
        if self.echo && !has("--echo-ports") {
            cmd.args(["--echo-ports", "0"]);
        }
        if self.chat && !has("--chat-ports") {
            cmd.args(["--chat-ports", "0"]);
        }
        // Framed echo is on by default: give it a port the OS picks too, so
        // parallel tests do not race for 7300-7399.
        if !has("--frame-ports") && !has("--no-frame") {
            cmd.args(["--frame-ports", "0"]);
        }
        if !self.echo {
            cmd.arg("--no-echo");
        }
        if !self.chat {
            cmd.arg("--no-chat");
        }
        cmd.args(&self.args);
        if self.extra_fds > 0 {
            let n = self.extra_fds;
            // SAFETY: between fork and exec only open(2) is called, which is
            // async-signal-safe; the path is a static C string.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(move || {
                    for _ in 0..n {
                        if libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = self.command(dir.path());
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

    /// Runs a server that is expected to stop by itself (a startup error):
    /// waits for it to exit within [`DEADLINE`] (killing it and failing the
    /// test otherwise) and returns its exit status and output.
    #[track_caller]
    pub fn run_to_exit(self) -> Exited {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = self.command(dir.path());
        cmd.stdin(Stdio::null());
        run_with_deadline(cmd, dir)
    }
}

/// A finished process: its exit status and what it printed.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

/// Runs `cmd` to completion with [`DEADLINE`]; fails the test if it hangs.
#[track_caller]
pub fn run_with_deadline(mut cmd: Command, dir: tempfile::TempDir) -> Exited {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn echochat");
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let t1 = spawn_line_reader(child.stdout.take().unwrap(), out.clone(), None);
    let t2 = spawn_line_reader(child.stderr.take().unwrap(), err.clone(), None);
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "process did not exit in time; stdout={:?} stderr={:?}",
                out.lock().unwrap(),
                err.lock().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = t1.join();
    let _ = t2.join();
    let join = |v: &Arc<Mutex<Vec<String>>>| {
        v.lock()
            .unwrap()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    Exited {
        status,
        stdout: join(&out),
        stderr: join(&err),
        dir,
    }
}

/// Runs the binary with `args` (no server defaults added), e.g. `--version`.
#[track_caller]
pub fn run_bin<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> Exited {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(dir.path()).stdin(Stdio::null());
    run_with_deadline(cmd, dir)
}

fn spawn_line_reader<R: Read + Send + 'static>(
    r: R,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            // Stored before it is announced, so whoever hears of the line
            // (e.g. `await_listening`) also finds it in `sink`.
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
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

/// One parsed log line: `TIMESTAMP LEVEL EVENT key=value ...`.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: String,
    pub event: String,
    /// Keys in order, values with quotes removed (escapes kept as written).
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a line against the contract's grammar, i.e. the regex
/// `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |DEBUG|WARN |ERROR) [a-z-]+( key=value)*$`
/// where a value is either bare (no space, `"`, `=`, `\` or control
/// character) or double-quoted with `\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`
/// escapes. Returns the parts, or what is wrong.
pub fn parse_log_line(line: &str) -> Result<LogLine, String> {
    let b = line.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let lit = |i: usize, c: u8| b.get(i) == Some(&c);
    // 2026-11-22T13:53:12.123Z
    let ts_ok = (0..4).all(digit)
        && lit(4, b'-')
        && digit(5)
        && digit(6)
        && lit(7, b'-')
        && digit(8)
        && digit(9)
        && lit(10, b'T')
        && digit(11)
        && digit(12)
        && lit(13, b':')
        && digit(14)
        && digit(15)
        && lit(16, b':')
        && digit(17)
        && digit(18)
        && lit(19, b'.')
        && (20..23).all(digit)
        && lit(23, b'Z')
        && lit(24, b' ');
    if !ts_ok {
        return Err(format!("bad timestamp in {line:?}"));
    }
    let level = line
        .get(25..30)
        .ok_or_else(|| format!("no level in {line:?}"))?;
    if !["INFO ", "DEBUG", "WARN ", "ERROR"].contains(&level) || !lit(30, b' ') {
        return Err(format!("bad level {level:?} in {line:?}"));
    }
    let rest = &line[31..];
    let ev_end = rest.find(' ').unwrap_or(rest.len());
    let event = &rest[..ev_end];
    if event.is_empty() || !event.bytes().all(|c| c.is_ascii_lowercase() || c == b'-') {
        return Err(format!("bad event name {event:?} in {line:?}"));
    }
    let mut fields = Vec::new();
    let mut r = &rest[ev_end..];
    while !r.is_empty() {
        r = r
            .strip_prefix(' ')
            .ok_or_else(|| format!("expected ' ' before a field at {r:?} in {line:?}"))?;
        let eq = r
            .find('=')
            .ok_or_else(|| format!("field without '=' at {r:?} in {line:?}"))?;
        let key = &r[..eq];
        if key.is_empty()
            || !key
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        {
            return Err(format!("bad key {key:?} in {line:?}"));
        }
        r = &r[eq + 1..];
        let value;
        if let Some(q) = r.strip_prefix('"') {
            let qb = q.as_bytes();
            let mut i = 0;
            loop {
                match qb.get(i) {
                    None => return Err(format!("unterminated quoted value in {line:?}")),
                    Some(b'"') => break,
                    Some(b'\\') => match qb.get(i + 1) {
                        Some(b'"' | b'\\' | b'n' | b'r' | b't') => i += 2,
                        Some(b'x')
                            if qb.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                                && qb.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                        {
                            i += 4
                        }
                        _ => return Err(format!("bad escape in {line:?}")),
                    },
                    Some(c) if c.is_ascii_control() => {
                        return Err(format!("raw control byte in {line:?}"));
                    }
                    Some(_) => i += 1,
                }
            }
            value = q[..i].to_string();
            r = &q[i + 1..];
        } else {
            let end = r.find(' ').unwrap_or(r.len());
            let v = &r[..end];
            if v.is_empty() {
                return Err(format!("empty bare value for {key:?} in {line:?}"));
            }
            if v.chars()
                .any(|c| c == '"' || c == '=' || c == '\\' || c.is_control())
            {
                return Err(format!("bare value {v:?} needs quoting in {line:?}"));
            }
            value = v.to_string();
            r = &r[end..];
        }
        fields.push((key.to_string(), value));
    }
    Ok(LogLine {
        level: level.trim_end().to_string(),
        event: event.to_string(),
        fields,
    })
}

impl Server {
    /// Every line of the active log file, parsed; fails on a line that
    /// breaks the grammar.
    #[track_caller]
    pub fn events(&self) -> Vec<LogLine> {
        parse_all(&self.log())
    }

    /// The `conn` the server gave to the client socket `s` (found by its
    /// `accept` line's `peer`, which is the client's local address).
    #[track_caller]
    pub fn conn_of(&self, s: &TcpStream) -> u64 {
        let peer = s.local_addr().unwrap().to_string();
        let line = self.wait_log(&format!("accept of peer={peer}"), |l| {
            event_name(l) == Some("accept") && field(l, "peer").as_deref() == Some(peer.as_str())
        });
        field(&line, "conn")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("accept line without a numeric conn: {line}"))
    }

    /// Waits for the `disconnect` line of `conn` and returns it.
    #[track_caller]
    pub fn wait_disconnect(&self, conn: u64) -> String {
        let c = conn.to_string();
        self.wait_log(&format!("disconnect of conn={conn}"), |l| {
            event_name(l) == Some("disconnect") && field(l, "conn").as_deref() == Some(c.as_str())
        })
    }

    /// Everything the server printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

/// Parses every line of a log text; fails the test on the first bad one.
#[track_caller]
pub fn parse_all(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| parse_log_line(l).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Writes `data` and half-closes, then reads everything until EOF.
#[track_caller]
pub fn send_and_finish(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).expect("write");
    s.shutdown(std::net::Shutdown::Write)
        .expect("shutdown(Write)");
    read_to_eof(s)
}

impl Server {
    /// The address the server printed as `NAME listening on ADDR`, for the
    /// services `start` does not wait for (`udp-echo`, `udp-chat`, `frame`:
    /// each is announced right after the one before it).
    #[track_caller]
    pub fn listening(&self, name: &str) -> SocketAddr {
        let prefix = format!("{name} listening on ");
        let mut found = None;
        wait_until(&format!("'{prefix}' on stdout"), || {
            found = self.stdout.lock().unwrap().iter().find_map(|l| {
                l.strip_prefix(&prefix)
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            });
            found.is_some()
        });
        found.unwrap()
    }
}
