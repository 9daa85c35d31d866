//! `echochat log`: the log for people, not just for `grep`.
//!
//! The server's log is a set of files: `NAME.K` (oldest) … `NAME.1`, then
//! the active `NAME`. This command reads them in that order as one stream
//! and can filter it (`--conn 17` tells the whole story of one connection),
//! follow it across rotations like `tail -F` (`follow.rs`), or summarize it
//! (`summary.rs`): connections by service and reason, bytes, the busiest
//! peers, traffic per second, the warnings and errors.
//!
//! Lines are parsed by `logfmt::parse_line`. A line that does not parse (a
//! torn write from an old version, an edit, another program's text) is
//! "damaged": it is printed as it is, counted, and reported at the end on
//! stderr; it never stops the reader.

mod follow;
mod summary;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cli::LogArgs;
use crate::logfmt::{self, Line};
use summary::Summary;

/// Why `echochat log` failed.
#[derive(Debug)]
pub enum Error {
    /// Neither the active file nor a rotated copy exists.
    NoLog {
        dir: PathBuf,
        name: String,
    },
    Read(PathBuf, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoLog { dir, name } => write!(
                f,
                "no log file {name} (or {name}.1, ...) in '{}'; point --dir and --file at the server's --log-dir and --log-file",
                dir.display()
            ),
            Error::Read(p, e) => write!(f, "cannot read '{}': {e}", p.display()),
        }
    }
}

impl std::error::Error for Error {}

/// Runs `echochat log`.
///
/// # Errors
/// No log files at all (without `--follow`, which waits for them), or a
/// file that cannot be read.
pub fn run(args: &LogArgs) -> Result<(), Error> {
    let mut reader = Reader::new(args);
    let files = log_files(&args.dir, &args.file);
    if files.is_empty() && !args.follow {
        return Err(Error::NoLog {
            dir: args.dir.clone(),
            name: args.file.clone(),
        });
    }
    let result = if args.follow {
        follow::run(&args.dir, &args.file, files, &mut reader)
    } else {
        read_all(&files, &mut reader)
    };
    match result {
        Ok(()) => {}
        // `echochat log | head`: the reader is done, and so are we.
        Err(Error::Read(_, e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e),
    }
    reader.finish()
}

fn read_all(files: &[PathBuf], reader: &mut Reader) -> Result<(), Error> {
    for path in files {
        let file = match File::open(path) {
            Ok(f) => f,
            // Rotated away between listing and opening: its lines are in
            // the next name now, and a one-shot read may miss them; say so
            // by skipping quietly rather than failing the whole read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Read(path.clone(), e)),
        };
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = input
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::Read(path.clone(), e))?;
            if n == 0 {
                break;
            }
            reader
                .line(&buf)
                .map_err(|e| Error::Read(PathBuf::from("stdout"), e))?;
        }
    }
    Ok(())
}

/// The log's files, oldest first: `NAME.K` … `NAME.1`, `NAME` (only those
/// that exist).
pub fn log_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut numbered: Vec<(u32, PathBuf)> = Vec::new();
    let prefix = format!("{name}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            if let Some(k) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|k| k.parse::<u32>().ok())
                .filter(|&k| k > 0)
            {
                numbered.push((k, entry.path()));
            }
        }
    }
    numbered.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    let active = dir.join(name);
    if active.exists() {
        files.push(active);
    }
    files
}

/// Which lines to keep.
struct Filter {
    conn: Option<String>,
    service: Option<String>,
    events: Vec<String>,
    since: Option<SystemTime>,
}

impl Filter {
    fn keeps(&self, line: &Line<'_>) -> bool {
        if let Some(conn) = &self.conn
            && line.get("conn") != Some(conn.as_str())
        {
            return false;
        }
        if let Some(service) = &self.service
            && line.get("service") != Some(service.as_str())
        {
            return false;
        }
        if !self.events.is_empty() && !self.events.iter().any(|e| e == line.event) {
            return false;
        }
        if let Some(since) = self.since {
            // A timestamp of the right shape but an impossible date is
            // kept: better shown than silently dropped.
            return line.timestamp().is_none_or(|t| t >= since);
        }
        true
    }
}

/// Takes lines one at a time: filters, then prints or summarizes.
pub(crate) struct Reader {
    filter: Filter,
    out: BufWriter<io::Stdout>,
    summary: Option<Summary>,
    damaged: u64,
}

impl Reader {
    fn new(args: &LogArgs) -> Self {
        let since = args
            .since
            .and_then(|d| SystemTime::now().checked_sub(d.0))
            .or(args.since.map(|_| SystemTime::UNIX_EPOCH));
        Reader {
            filter: Filter {
                conn: args.conn.map(|c| c.to_string()),
                service: args.service.clone(),
                events: args.events.clone(),
                since,
            },
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            summary: args.summary.then(Summary::default),
            damaged: 0,
        }
    }

    /// One line as read (with or without its `\n`).
    fn line(&mut self, raw: &[u8]) -> io::Result<()> {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let parsed = std::str::from_utf8(raw)
            .ok()
            .and_then(|text| logfmt::parse_line(text).ok());
        match parsed {
            Some(line) => {
                if !self.filter.keeps(&line) {
                    return Ok(());
                }
                match &mut self.summary {
                    Some(summary) => summary.add(&line),
                    None => {
                        self.out.write_all(raw)?;
                        self.out.write_all(b"\n")?;
                    }
                }
            }
            None => {
                self.damaged += 1;
                match &mut self.summary {
                    Some(summary) => summary.add_damaged(raw),
                    None => {
                        // Shown as it is, whatever the filters: it cannot
                        // be judged, and hiding it would hide the damage.
                        self.out.write_all(raw)?;
                        self.out.write_all(b"\n")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Pushes out what was printed (`--follow` calls this after each read,
    /// so lines appear as they come).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Prints the summary (if asked), the damaged-line count (on stderr),
    /// and flushes.
    fn finish(mut self) -> Result<(), Error> {
        let out = |e: io::Error| Error::Read(PathBuf::from("stdout"), e);
        if let Some(summary) = self.summary.take() {
            match summary.print(&mut self.out) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                r => r.map_err(out)?,
            }
        }
        match self.out.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.map_err(out)?,
        }
        if self.damaged > 0 {
            let _ = writeln!(
                io::stderr(),
                "echochat log: {} damaged line{} (not in the log format) shown as they are",
                self.damaged,
                if self.damaged == 1 { "" } else { "s" }
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "x.log",
            "x.log.1",
            "x.log.10",
            "x.log.2",
            "x.log.bak",
            "x.log.",
            "y.log.3",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = log_files(dir.path(), "x.log")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x.log.10", "x.log.2", "x.log.1", "x.log"]);
    }

    #[test]
    fn filters_combine() {
        let f = Filter {
            conn: Some("17".into()),
            service: Some("echo".into()),
            events: vec!["recv".into(), "accept".into()],
            since: None,
        };
        let ok = "2026-11-22T13:53:12.124Z DEBUG recv service=echo conn=17 bytes=1";
        let other_conn = "2026-11-22T13:53:12.124Z DEBUG recv service=echo conn=170 bytes=1";
        let other_event = "2026-11-22T13:53:12.124Z DEBUG send service=echo conn=17 bytes=1";
        assert!(f.keeps(&logfmt::parse_line(ok).unwrap()));
        assert!(!f.keeps(&logfmt::parse_line(other_conn).unwrap()));
        assert!(!f.keeps(&logfmt::parse_line(other_event).unwrap()));
        let recent = Filter {
            conn: None,
            service: None,
            events: vec![],
            since: Some(SystemTime::now() - std::time::Duration::from_secs(60)),
        };
        let old = "2020-01-01T00:00:00.000Z INFO  start version=0.1.0 pid=1";
        assert!(!recent.keeps(&logfmt::parse_line(old).unwrap()));
        let new = format!(
            "{} INFO  start version=0.1.0 pid=1",
            humantime::format_rfc3339_millis(SystemTime::now())
        );
        assert!(recent.keeps(&logfmt::parse_line(&new).unwrap()));
    }
}
