//! The server under test: the real `echochat` binary as a child process,
//! on port 0, in a temporary log directory of its own.
//!
//! [`Server::start`] (or [`Server::builder`]) returns once the server has
//! printed its `SERVICE listening on ADDR` lines; its log is read with the
//! strict parser of `logline.rs`. Dropping a `Server` kills it, by its PID,
//! if the test did not stop it. [`run_bin`] runs the binary to completion
//! for command-line tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::logline::{LogLine, complete_lines, parse_all, parse_or_fail};
use super::{DEADLINE, wait_until};

/// The `echochat` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_echochat")
}

/// What a child printed on one stream; a reader thread keeps appending.
#[derive(Default)]
struct Captured {
    lines: Mutex<Vec<String>>,
    /// Set when the stream closed: no more lines will come.
    eof: AtomicBool,
}

type Lines = Arc<Captured>;

/// A running `echochat serve`.
pub struct Server {
    child: Child,
    /// The server's console; `None` once [`Server::close_console`] ran.
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    /// Holds the log directory (and anything else the test puts there).
    dir: tempfile::TempDir,
    /// What the log file held when last read, parsed: polling a growing
    /// log parses each line once, not once per poll.
    log: Mutex<LogCache>,
}

#[derive(Default)]
struct LogCache {
    /// The whole lines read so far.
    text: String,
    events: Vec<LogLine>,
}

/// Builder: `Server::builder().no_chat().args(["--max-clients", "3"]).start()`.
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
    /// Echo and chat on port 0, everything else at its default.
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

    /// The server also inherits `n` extra open descriptors (`/dev/null`),
    /// as if something else in the process held them: they count against
    /// `RLIMIT_NOFILE` without the server knowing, so `accept` can hit
    /// `EMFILE` even when `--max-clients` was fitted to the limit.
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

    /// Starts the server and waits (with [`DEADLINE`]) until it printed the
    /// listening line of each service it was asked to run.
    #[track_caller]
    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = self.command(dir.path());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn echochat serve");
        let stdin = child.stdin.take();
        let stdout = Lines::default();
        let stderr = Lines::default();
        spawn_line_reader(child.stdout.take().unwrap(), stdout.clone());
        spawn_line_reader(child.stderr.take().unwrap(), stderr.clone());
        let server = Server {
            child,
            stdin,
            stdout,
            stderr,
            dir,
            log: Mutex::default(),
        };
        for (service, on) in [("echo", self.echo), ("chat", self.chat)] {
            if on {
                server.addr(service);
            }
        }
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
    /// The directory it ran in (for a server: `logs/` is inside).
    pub dir: tempfile::TempDir,
}

/// Runs `cmd` to completion with [`DEADLINE`]; fails the test if it hangs.
#[track_caller]
pub fn run_with_deadline(mut cmd: Command, dir: tempfile::TempDir) -> Exited {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn echochat");
    let out = Lines::default();
    let err = Lines::default();
    let t1 = spawn_line_reader(child.stdout.take().unwrap(), out.clone());
    let t2 = spawn_line_reader(child.stderr.take().unwrap(), err.clone());
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
                out.lines.lock().unwrap(),
                err.lines.lock().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = t1.join();
    let _ = t2.join();
    let join = |v: &Lines| {
        v.lines
            .lock()
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

fn spawn_line_reader<R: Read + Send + 'static>(r: R, sink: Lines) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lines.lock().unwrap().push(line);
        }
        sink.eof.store(true, Ordering::Release);
    })
}

impl Server {
    /// A server with echo and chat on port 0.
    #[track_caller]
    pub fn start() -> Server {
        ServerBuilder::new().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    // --- Addresses and the process -------------------------------------

    /// The address of `service` (`echo`, `chat`, ...), from its
    /// `SERVICE listening on ADDR` line on stdout; waits for that line.
    #[track_caller]
    pub fn addr(&self, service: &str) -> SocketAddr {
        let deadline = Instant::now() + DEADLINE;
        loop {
            // Read before looking: once stdout is closed, every line is in.
            let closed = self.stdout.eof.load(Ordering::Acquire);
            if let Some(addr) = self.listening().remove(service) {
                return addr;
            }
            if closed || Instant::now() >= deadline {
                panic!(
                    "server never printed `{service} listening on`; stdout={:?} stderr={:?}",
                    self.stdout_text(),
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every `SERVICE listening on ADDR` line printed so far, by service.
    fn listening(&self) -> HashMap<String, SocketAddr> {
        let lines = self.stdout.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| {
                let (left, addr) = l.split_once(" listening on ")?;
                let service = left.split_whitespace().last()?;
                let addr = addr.trim().parse().expect("listening address");
                Some((service.to_string(), addr))
            })
            .collect()
    }

    #[track_caller]
    pub fn echo_addr(&self) -> SocketAddr {
        self.addr("echo")
    }

    #[track_caller]
    pub fn chat_addr(&self) -> SocketAddr {
        self.addr("chat")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Write a line to the server's console (stdin).
    #[track_caller]
    pub fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("console still open");
        writeln!(stdin, "{line}").expect("write console");
        stdin.flush().unwrap();
    }

    /// Closes the server's stdin: end of input on its console.
    pub fn close_console(&mut self) {
        drop(self.stdin.take());
    }

    /// Send a signal to the server process (by its PID).
    #[track_caller]
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

    /// Stops the server with SIGTERM and checks the graceful stop: exit 0,
    /// a log that ends with a whole line, every line well-formed, and one
    /// `stop reason=signal`. Returns the log, parsed.
    #[track_caller]
    pub fn finish(mut self) -> Vec<LogLine> {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "server exit status {status:?}; stderr={}",
            self.stderr_text()
        );
        let events = parse_all(&std::fs::read_to_string(self.log_path()).unwrap_or_default());
        let stops: Vec<&LogLine> = events.iter().filter(|e| e.event == "stop").collect();
        assert_eq!(stops.len(), 1, "one stop line: {stops:?}");
        assert_eq!(stops[0].get("reason"), Some("signal"), "{}", stops[0]);
        events
    }

    /// Everything the server printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.lines.lock().unwrap().join("\n")
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lines.lock().unwrap().join("\n")
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

    // --- The log ---------------------------------------------------------

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The active log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir().join("echochat.log")
    }

    /// Reads the active log file and parses the whole lines that are new
    /// since the last read (all of them if the file was replaced, e.g. by
    /// a rotation). Fails the test on a malformed line.
    #[track_caller]
    fn read_log(&self) -> MutexGuard<'_, LogCache> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let whole = complete_lines(&text);
        let mut cache = self.log.lock().unwrap();
        if !whole.starts_with(cache.text.as_str()) {
            *cache = LogCache::default();
        }
        let new = &whole[cache.text.len()..];
        let parsed: Vec<LogLine> = new.lines().map(parse_or_fail).collect();
        cache.events.extend(parsed);
        cache.text.push_str(new);
        cache
    }

    /// The whole lines of the active log file so far (a line the server is
    /// still writing is left out).
    #[track_caller]
    pub fn log(&self) -> String {
        self.read_log().text.clone()
    }

    /// Every whole line of the active log file so far, parsed; fails the
    /// test on a line that breaks the grammar.
    #[track_caller]
    pub fn events(&self) -> Vec<LogLine> {
        self.read_log().events.clone()
    }

    /// How many whole lines of the active log file so far satisfy `pred`
    /// (for `wait_until("3 disconnects", || server.count_events(..) == 3)`).
    #[track_caller]
    pub fn count_events(&self, pred: impl Fn(&LogLine) -> bool) -> usize {
        self.read_log().events.iter().filter(|e| pred(e)).count()
    }

    /// Waits until some log line satisfies `pred` and returns the first
    /// that does; fails saying `what` never appeared.
    #[track_caller]
    pub fn wait_log(&self, what: &str, pred: impl Fn(&LogLine) -> bool) -> LogLine {
        let mut found = None;
        wait_until(what, || {
            found = self.read_log().events.iter().find(|e| pred(e)).cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// The `conn` the server gave to the client socket `s` (found by its
    /// `accept` line's `peer`, which is the client's local address).
    #[track_caller]
    pub fn conn_of(&self, s: &TcpStream) -> u64 {
        let peer = s.local_addr().unwrap().to_string();
        let line = self.wait_log(&format!("accept of peer={peer}"), |e| {
            e.is("accept", "peer", &peer)
        });
        line.get("conn")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("accept line without a numeric conn: {line}"))
    }

    /// Waits for the `disconnect` line of `conn` and returns it.
    #[track_caller]
    pub fn wait_disconnect(&self, conn: u64) -> LogLine {
        let c = conn.to_string();
        self.wait_log(&format!("disconnect of conn={conn}"), |e| {
            e.is("disconnect", "conn", &c)
        })
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
fn proc_stat_field(pid: u32, n: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after
        .split_whitespace()
        .nth(n - 2)
        .unwrap()
        .parse()
        .unwrap()
}

/// All files of a directory whose names start with `prefix`, sorted.
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
