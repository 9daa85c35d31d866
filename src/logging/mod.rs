//! Where lifecycle lines go: the backend behind the `log` facade. `fern`
//! sends each record from `event::record` to the rotating log file (at
//! `--log-level`) and to the console (at `--console-level`, with the
//! `--explain` sentences).
//!
//! This module depends on `event.rs` (it writes a few events of its own:
//! `rotate`, `reopen`, `log-error`) and `event.rs` knows nothing of it: an
//! event is handed to the facade, and whatever backend is installed writes
//! it.
//!
//! The file output does not write per line: it appends to the batch of a
//! [`RotatingFile`], and the reactor calls [`LogHandle::flush`] once per
//! turn. Lines are `TIMESTAMP LEVEL EVENT key=value ...`; the event part is
//! produced by `event.rs`, the timestamp by `humantime` (RFC 3339, UTC,
//! milliseconds).
//!
//! Read `rotate.rs` for how rotation keeps lines whole and the active name
//! always present, and `lock.rs` for why two servers cannot share a file.

mod lock;
pub mod rotate;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use crate::event::{self, EXPLAIN_TARGET, Event};
pub use rotate::{MAX_KEEP, OpenError, RotatePolicy, RotatingFile};

/// Everything logging needs from the command line.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub file_name: String,
    pub policy: RotatePolicy,
    pub file_level: log::LevelFilter,
    pub console_level: log::LevelFilter,
    pub explain: bool,
    /// `--log-traffic-rate`: recv/send lines a second per service; 0 = no cap.
    pub traffic_rate: u32,
}

/// Why logging could not start.
#[derive(Debug)]
pub enum Error {
    Dir(PathBuf, io::Error),
    File(PathBuf, io::Error),
    /// Another server holds the log file's lock.
    InUse {
        path: PathBuf,
        pid: Option<u32>,
    },
    AlreadySet,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dir(p, e) => write!(
                f,
                "cannot create the log directory '{}': {e}; choose a writable one with --log-dir",
                p.display()
            ),
            Error::File(p, e) => write!(
                f,
                "cannot write the log file '{}': {e}; choose a writable --log-dir or --log-file",
                p.display()
            ),
            Error::InUse { path, pid } => {
                write!(f, "{} is in use by another echochat ", path.display())?;
                match pid {
                    Some(pid) => write!(f, "(pid {pid})")?,
                    None => f.write_str("(pid unknown)")?,
                }
                f.write_str("; give this one its own --log-dir")
            }
            Error::AlreadySet => f.write_str("logging was already set up in this process"),
        }
    }
}

impl std::error::Error for Error {}

/// The reactor's handle on the log file.
#[derive(Clone)]
pub struct LogHandle {
    sink: Arc<Mutex<Sink>>,
}

impl LogHandle {
    /// Writes the lines batched since the last flush (one `write(2)`), and
    /// retries whatever failed once its time has come. Called once per
    /// reactor turn, before `poll` sleeps.
    pub fn flush(&self) {
        lock(&self.sink).flush();
    }

    /// `SIGUSR1`: reopens the active file by name (after `logrotate` or a
    /// person moved it away); `reopen file=NAME` is the first line of the
    /// reopened file. A failure is retried like a failed rotation.
    pub fn reopen(&self) {
        lock(&self.sink).reopen();
    }
}

/// The handle of the installed logger, for [`flush`].
static INSTALLED: std::sync::OnceLock<LogHandle> = std::sync::OnceLock::new();

/// Writes the lines batched since the last flush, if a log file is set up
/// (one `write(2)`, so `tail -F` sees them before the reactor sleeps).
pub fn flush() {
    if let Some(handle) = INSTALLED.get() {
        handle.flush();
    }
}

/// Reopens the active log file (after `SIGUSR1`, for `logrotate`); see
/// [`LogHandle::reopen`].
pub fn reopen() {
    if let Some(handle) = INSTALLED.get() {
        handle.reopen();
    }
}

/// The file and its timestamp cache, behind one lock (one lock per line).
struct Sink {
    file: RotatingFile,
    clock: Clock,
    /// The console level, for the lines the file writes itself.
    console: log::LevelFilter,
}

impl Sink {
    fn push(&mut self, level: log::Level, message: &fmt::Arguments<'_>) {
        let stamp = self.clock.now();
        let console = self.console;
        self.file.push_line(
            Instant::now(),
            |buf| write_line(buf, &stamp, level, message),
            &mut |buf, event| own_line(buf, &stamp, console, event),
        );
    }

    fn flush(&mut self) {
        let stamp = self.clock.now();
        let console = self.console;
        self.file.flush(Instant::now(), &mut |buf, event| {
            own_line(buf, &stamp, console, event)
        });
    }

    fn reopen(&mut self) {
        let stamp = self.clock.now();
        let console = self.console;
        self.file.reopen(Instant::now(), &mut |buf, event| {
            own_line(buf, &stamp, console, event)
        });
    }
}

fn lock(m: &Mutex<Sink>) -> MutexGuard<'_, Sink> {
    // A panic while holding the lock cannot leave the batch half-written in
    // a way that matters more than losing the log; keep logging.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets up the global logger: the rotating file and the console.
///
/// # Errors
/// When the directory cannot be created, the file opened for writing, or
/// another server holds the file's lock.
pub fn init(cfg: &LogConfig) -> Result<LogHandle, Error> {
    std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::Dir(cfg.dir.clone(), e))?;
    let path = cfg.dir.join(&cfg.file_name);
    let file = match RotatingFile::open(&cfg.dir, &cfg.file_name, cfg.policy.clone()) {
        Ok(file) => file,
        Err(OpenError::InUse(pid)) => return Err(Error::InUse { path, pid }),
        Err(OpenError::Io(e)) => return Err(Error::File(path, e)),
    };
    let sink = Arc::new(Mutex::new(Sink {
        file,
        clock: Clock::default(),
        console: cfg.console_level,
    }));

    let shared = Arc::clone(&sink);
    let file_output = fern::Dispatch::new()
        .level(cfg.file_level)
        .filter(|meta| meta.target() != EXPLAIN_TARGET)
        .chain(fern::Output::call(move |record| {
            lock(&shared).push(record.level(), record.args());
        }));

    let explain = cfg.explain;
    event::set_explain(explain);
    event::traffic::set_rate(cfg.traffic_rate);
    let console = fern::Dispatch::new()
        .level(cfg.console_level)
        .filter(move |meta| meta.target() != EXPLAIN_TARGET || explain)
        .format(|out, message, record| {
            if record.target() == EXPLAIN_TARGET {
                out.finish(format_args!("{EXPLAIN_PREFIX}{message}"))
            } else {
                let stamp = humantime::format_rfc3339_millis(SystemTime::now());
                out.finish(format_args!("{stamp} {:<5} {message}", record.level()))
            }
        })
        // Not `Output::stdout`: when stdout is a closed pipe (`| head`),
        // fern would report every failed line on stderr. The console is a
        // view; the file is the record. Drop the line quietly.
        .chain(fern::Output::call(|record| {
            let _ = writeln!(io::stdout().lock(), "{}", record.args());
        }));

    fern::Dispatch::new()
        .chain(file_output)
        .chain(console)
        .apply()
        .map_err(|_| Error::AlreadySet)?;
    let handle = LogHandle { sink };
    // The logger is process-global (`log` allows one), so its flush is too:
    // the reactor calls `logging::flush()` before each sleep.
    let _ = INSTALLED.set(handle.clone());
    Ok(handle)
}

/// What an `--explain` sentence starts with on the console.
const EXPLAIN_PREFIX: &str = "      -> ";

/// `TIMESTAMP LEVEL message\n`, the level padded to five characters as in
/// the contract's examples (`INFO  accept`, `DEBUG recv`).
fn write_line(buf: &mut Vec<u8>, stamp: &Stamp, level: log::Level, message: &dyn fmt::Display) {
    buf.extend_from_slice(&stamp.bytes[..stamp.len]);
    buf.extend_from_slice(match level {
        log::Level::Error => b" ERROR ",
        log::Level::Warn => b" WARN  ",
        log::Level::Info => b" INFO  ",
        log::Level::Debug => b" DEBUG ",
        log::Level::Trace => b" TRACE ",
    });
    // Writing into a Vec cannot fail.
    let _ = writeln!(buf, "{message}");
}

/// One of the file's own events (`rotate`, `reopen`, `log-error`): the line
/// for the file, and the same line on the console at its level. These are
/// written from inside the file output, where going through `log` again
/// would re-enter this sink; so they reach the console directly, in the
/// console's format.
fn own_line(buf: &mut Vec<u8>, stamp: &Stamp, console: log::LevelFilter, event: &Event) {
    let level = event.level();
    write_line(buf, stamp, level, &event.logfmt());
    if level <= console {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{stamp} {level:<5} {}", event.logfmt());
        if event::explaining()
            && let Some(sentence) = event.explain()
        {
            let _ = writeln!(out, "{EXPLAIN_PREFIX}{sentence}");
        }
    }
}

/// Formats the timestamp once per millisecond, not once per line: under
/// load many lines share a millisecond. No allocation per line.
#[derive(Default)]
struct Clock {
    millis: u128,
    stamp: Stamp,
}

impl Clock {
    fn now(&mut self) -> Stamp {
        let now = SystemTime::now();
        let millis = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if millis != self.millis || self.stamp.len == 0 {
            self.millis = millis;
            let mut stamp = Stamp::default();
            let mut cursor = io::Cursor::new(&mut stamp.bytes[..]);
            // 24 bytes ("2026-11-22T13:53:12.123Z") always fit in 32.
            let _ = write!(cursor, "{}", humantime::format_rfc3339_millis(now));
            stamp.len = cursor.position() as usize;
            self.stamp = stamp;
        }
        self.stamp
    }
}

/// An RFC 3339 timestamp kept inline (it is always ASCII).
#[derive(Clone, Copy, Default)]
struct Stamp {
    bytes: [u8; 32],
    len: usize,
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?"))
    }
}
