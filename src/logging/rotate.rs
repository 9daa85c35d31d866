//! `RotatingFile`: the log file that `tail -F` follows, rotated by size and
//! age, written in one batch per reactor turn.
//!
//! Lines are appended to an in-memory batch; the reactor calls `flush` once
//! per turn (at most ~100 ms apart), so a busy server pays one `write(2)` per
//! turn instead of one per line, and a line is still visible to `tail -F`
//! within a turn of its event.
//!
//! Rotation happens only between whole lines: before a line that would push
//! the active file past `max_size`, everything batched so far is written,
//! the files are shifted (`NAME.2` → `NAME.3`, `NAME.1` → `NAME.2`, `NAME` →
//! `NAME.1`, the oldest beyond `keep` deleted) and a fresh `NAME` is opened.
//! So every line lands in exactly one file, whole, and the active file keeps
//! its name (which is what `tail -F` follows).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Flush early if a single turn batches more than this, so a huge turn
/// cannot grow the batch without bound.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// How the file rotates.
#[derive(Debug, Clone)]
pub struct RotatePolicy {
    /// Rotate before the active file would pass this many bytes.
    pub max_size: u64,
    /// Rotated copies kept (`NAME.1` .. `NAME.keep`).
    pub keep: u32,
    /// Also rotate when the active file is older than this.
    pub every: Option<Duration>,
}

pub struct RotatingFile {
    dir: PathBuf,
    name: String,
    file: File,
    /// Bytes in the active file, counting the batch not yet written.
    len: u64,
    /// Lines formatted this turn, waiting for `flush`.
    batch: Vec<u8>,
    policy: RotatePolicy,
    /// When the active file was started (for age rotation).
    started: Instant,
    /// Set after a failed write so the warning is printed once, not per turn.
    write_failed: bool,
}

impl RotatingFile {
    /// Opens (or creates) `dir/name` for appending.
    ///
    /// # Errors
    /// When the file cannot be opened or its size read.
    pub fn open(dir: &Path, name: &str, policy: RotatePolicy) -> io::Result<Self> {
        let path = dir.join(name);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(RotatingFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            file,
            len,
            batch: Vec::with_capacity(64 * 1024),
            policy,
            started: Instant::now(),
            write_failed: false,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Appends one line: `write` formats it (ending in `\n`) into the batch.
    /// If the line would push the active file past the limit (or the file
    /// is too old), the file rotates first, and `rotate_line` formats the
    /// `rotate` event that opens the fresh file.
    pub fn push_line(
        &mut self,
        now: Instant,
        write: impl FnOnce(&mut Vec<u8>),
        rotate_line: impl FnOnce(&mut Vec<u8>, &str),
    ) {
        let start = self.batch.len();
        write(&mut self.batch);
        let line_len = (self.batch.len() - start) as u64;
        let too_big = self.len + line_len > self.policy.max_size;
        let too_old = self
            .policy
            .every
            .is_some_and(|every| now.duration_since(self.started) >= every);
        // An empty file never rotates: a line longer than the limit is
        // written alone into a file of its own.
        if self.len > 0 && (too_big || too_old) {
            let line = self.batch.split_off(start);
            self.write_batch();
            let moved_to = self.rotate();
            self.started = now;
            let before = self.batch.len();
            rotate_line(&mut self.batch, &moved_to);
            self.len += (self.batch.len() - before) as u64;
            // The rotate line itself may fill a tiny file; the rule "rotate
            // before a line that would overflow" still holds for the next.
            if self.len + line_len > self.policy.max_size && self.len > 0 {
                self.write_batch();
                self.rotate();
            }
            self.batch.extend_from_slice(&line);
        }
        self.len += line_len;
        if self.batch.len() >= MAX_BATCH_BYTES {
            self.write_batch();
        }
    }

    /// Writes the batch to the file. Called once per reactor turn.
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.write_batch();
        }
    }

    fn write_batch(&mut self) {
        match self.file.write_all(&self.batch) {
            Ok(()) => self.write_failed = false,
            Err(e) => {
                if !self.write_failed {
                    eprintln!(
                        "warning: cannot write the log file {}: {e}; log lines are being dropped",
                        self.path().display()
                    );
                }
                self.write_failed = true;
            }
        }
        // Dropped on failure too: memory stays bounded when the disk is full.
        self.batch.clear();
    }

    /// Shifts the rotated copies and starts a fresh active file. Returns the
    /// name the old content went to. A failure leaves the current file in
    /// place (lines keep landing somewhere) and is reported once.
    fn rotate(&mut self) -> String {
        let numbered = |k: u32| self.dir.join(format!("{}.{k}", self.name));
        let active = self.path();
        let result = (|| -> io::Result<()> {
            if self.policy.keep == 0 {
                fs::remove_file(&active)?;
            } else {
                let _ = fs::remove_file(numbered(self.policy.keep));
                for k in (1..self.policy.keep).rev() {
                    let from = numbered(k);
                    if from.exists() {
                        fs::rename(&from, numbered(k + 1))?;
                    }
                }
                fs::rename(&active, numbered(1))?;
            }
            self.file = OpenOptions::new().create(true).append(true).open(&active)?;
            self.len = 0;
            Ok(())
        })();
        match result {
            Ok(()) if self.policy.keep == 0 => "(deleted)".to_string(),
            Ok(()) => format!("{}.1", self.name),
            Err(e) => {
                eprintln!(
                    "warning: cannot rotate the log file {}: {e}",
                    active.display()
                );
                self.len = 0;
                self.name.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u64, keep: u32) -> RotatePolicy {
        RotatePolicy {
            max_size: max,
            keep,
            every: None,
        }
    }

    fn push(f: &mut RotatingFile, line: &str) {
        f.push_line(
            Instant::now(),
            |b| b.extend_from_slice(line.as_bytes()),
            |b, to| b.extend_from_slice(format!("rotate file={to}\n").as_bytes()),
        );
    }

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn every_line_lands_whole_in_exactly_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(100, 500)).unwrap();
        let mut sent = Vec::new();
        for i in 0..200 {
            let line = format!("line {i:04} {}\n", "x".repeat(i % 23));
            push(&mut f, &line);
            sent.push(line.trim_end_matches('\n').to_string());
            if i % 7 == 0 {
                f.flush();
            }
        }
        f.flush();
        let mut got = Vec::new();
        for k in (1..=500).rev() {
            let text = read(dir.path(), &format!("t.log.{k}"));
            assert!(text.len() <= 100, "t.log.{k} has {} bytes", text.len());
            got.extend(text.lines().map(str::to_string));
        }
        got.extend(read(dir.path(), "t.log").lines().map(str::to_string));
        let data: Vec<String> = got.into_iter().filter(|l| l.starts_with("line")).collect();
        assert_eq!(data, sent);
    }

    #[test]
    fn keeps_only_k_files_and_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(60, 2)).unwrap();
        for i in 0..20 {
            push(&mut f, &format!("line number {i:02}\n"));
        }
        f.flush();
        assert!(dir.path().join("t.log.1").exists());
        assert!(dir.path().join("t.log.2").exists());
        assert!(!dir.path().join("t.log.3").exists());
        assert!(read(dir.path(), "t.log").starts_with("rotate file=t.log.1\n"));
    }

    #[test]
    fn an_oversized_line_sits_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(10, 5)).unwrap();
        push(&mut f, "short\n");
        let long = format!("{}\n", "y".repeat(40));
        push(&mut f, &long);
        push(&mut f, "after\n");
        f.flush();
        // "short" went to .2 when the long line came; the rotate line filled
        // the fresh file, so the long line got a file of its own too.
        let files: Vec<String> = (1..=5)
            .map(|k| read(dir.path(), &format!("t.log.{k}")))
            .collect();
        assert!(
            files
                .iter()
                .any(|t| t.lines().any(|l| l == long.trim_end()) && t.lines().count() == 1)
        );
        assert!(read(dir.path(), "t.log").contains("after"));
    }

    #[test]
    fn rotates_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(
            dir.path(),
            "t.log",
            RotatePolicy {
                max_size: 1 << 20,
                keep: 3,
                every: Some(Duration::from_secs(60)),
            },
        )
        .unwrap();
        let t0 = Instant::now();
        let line = |b: &mut Vec<u8>| b.extend_from_slice(b"a\n");
        let rot =
            |b: &mut Vec<u8>, to: &str| b.extend_from_slice(format!("rotate {to}\n").as_bytes());
        f.push_line(t0, line, rot);
        f.push_line(t0 + Duration::from_secs(30), line, rot);
        f.flush();
        assert!(!dir.path().join("t.log.1").exists());
        f.push_line(t0 + Duration::from_secs(61), line, rot);
        f.flush();
        assert_eq!(read(dir.path(), "t.log.1"), "a\na\n");
        assert_eq!(read(dir.path(), "t.log"), "rotate t.log.1\na\n");
    }
}
