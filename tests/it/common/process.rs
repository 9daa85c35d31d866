//! Child processes: the built binary run to completion with a deadline
//! ([`run_bin`], for command-line tests), the threads that capture what a
//! child prints, and `/proc` figures of a running one.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// The `echochat` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_echochat")
}

/// Makes `cmd` run in the C locale, so what echochat says to people
/// (`--lang` defaults to the locale) is English whatever the developer's
/// `LANG`; a test that wants another language says `--lang`.
pub fn english_locale(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C.UTF-8")
}

/// What a child printed on one stream; a reader thread keeps appending.
#[derive(Default)]
pub(super) struct Captured {
    pub(super) lines: Mutex<Vec<String>>,
    /// Set when the stream closed: no more lines will come.
    pub(super) eof: AtomicBool,
}

pub(super) type Lines = Arc<Captured>;

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
    english_locale(&mut cmd);
    run_with_deadline(cmd, dir)
}

pub(super) fn spawn_line_reader<R: Read + Send + 'static>(
    r: R,
    sink: Lines,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lines.lock().unwrap().push(line);
        }
        sink.eof.store(true, Ordering::Release);
    })
}

/// Field `n` (0-based, after the command name) of /proc/PID/stat.
pub(super) fn proc_stat_field(pid: u32, n: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after
        .split_whitespace()
        .nth(n - 2)
        .unwrap()
        .parse()
        .unwrap()
}
