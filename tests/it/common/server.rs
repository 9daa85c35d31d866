//! The server under test: the real `echochat` binary as a child process,
//! on port 0, in a temporary log directory of its own.
//!
//! [`Server::start`] (or [`Server::builder`]) returns once the server has
//! printed its `SERVICE listening on ADDR` lines. Dropping a `Server` kills
//! it, by its PID, if the test did not stop it. Its log is read in
//! `server_log.rs`; other child processes are run in `process.rs`.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::DEADLINE;
use super::process::{
    Exited, Lines, bin, english_locale, proc_stat_field, run_with_deadline, spawn_line_reader,
};
use super::server_log::LogCache;

/// A running `echochat serve`.
pub struct Server {
    child: Child,
    /// The server's console; `None` once [`Server::close_console`] ran.
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    /// Holds the log directory (and anything else the test puts there).
    pub(super) dir: tempfile::TempDir,
    /// What the log file held when last read, parsed: polling a growing
    /// log parses each line once, not once per poll.
    pub(super) log: Mutex<LogCache>,
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
        // Console sentences (--explain, --trace) follow the locale: pin it,
        // so a developer's uk_UA or ru_RU does not change what tests read.
        english_locale(&mut cmd);
        let has = |flag: &str| self.args.iter().any(|a| a == flag);
        if self.echo && !has("--echo-ports") {
            cmd.args(["--echo-ports", "0"]);
        }
        if self.chat && !has("--chat-ports") {
            cmd.args(["--chat-ports", "0"]);
        }
        // The status page is on by default: give it a port the OS picks,
        // so parallel tests never compete for 7200-7299.
        if !has("--http-ports") && !has("--no-http") {
            cmd.args(["--http-ports", "0"]);
        }
        // Framed echo is on by default: give it a port the OS picks too, so
        // parallel tests do not race for 7300-7399.
        if !has("--frame-ports") && !has("--no-frame") {
            cmd.args(["--frame-ports", "0"]);
        }
        if !has("--shutdown-grace") {
            // A graceful stop waits for each client to close after the
            // server's FIN; tests that stop with users still connected
            // would wait the whole default 5 s for nothing.
            cmd.args(["--shutdown-grace", "1s"]);
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

    /// The status page's address.
    #[track_caller]
    pub fn http_addr(&self) -> SocketAddr {
        self.addr("http")
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
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
