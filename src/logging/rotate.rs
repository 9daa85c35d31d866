//! `RotatingFile`: the log file that `tail -F` follows — rotated by size and
//! age, written in one batch per reactor turn, and built to lose nothing a
//! disk, a descriptor limit or an `rm -r` does not force it to lose.
//!
//! **Batching.** Lines are appended to an in-memory batch; the reactor calls
//! `flush` once per turn (at most ~100 ms apart), so a busy server pays one
//! `write(2)` per turn, and a line still reaches `tail -F` within a turn.
//!
//! **Rotation** happens only between whole lines, and the active name never
//! disappears, so `tail -F` never reports the file missing:
//! 1. the new file is created under a temporary name (`.NAME.new`) and
//!    locked — the step most likely to fail (`EMFILE`), taken first so a
//!    failure changes nothing;
//! 2. the copies shift (`NAME.2` → `NAME.3`, `NAME.1` → `NAME.2`; the oldest
//!    beyond `--log-keep` deleted);
//! 3. the old file gets its new name by a hard link (`NAME` → `NAME.1`), so
//!    for a moment it has both names;
//! 4. `rename(.NAME.new, NAME)` swaps the new file in atomically.
//!
//! **Trouble.** If any step or a write fails, the server keeps serving and
//! keeps writing to the file it has; it retries once a second, never
//! deletes the file it is writing (inode numbers are compared), never
//! leaves a torn line (a short write is cut back to the last whole line, or
//! completed later), keeps at most [`MAX_BATCH_BYTES`] of lines waiting and
//! counts the rest as lost, and once everything works again writes one
//! `log-error` for the episode with that count. A file whose directory was
//! removed takes writes and keeps nothing (its link count is 0): those lines
//! count as lost, and the directory and file are made again.
//!
//! The lines `rotate`, `reopen` and `log-error` are formatted by the caller
//! (`logging/mod.rs` knows the clock and the levels); this file only decides
//! where they go.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::lock::{self, LockError};
use crate::event::Event;

/// Most bytes of lines held in memory: a turn's batch is written early at
/// this size, and while writing fails, lines past it are dropped and
/// counted (`lost`) instead of growing memory without bound.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How often a failed write, rotation, reopen or re-creation is retried.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The largest `--log-keep`: a rotation renames up to this many files.
pub const MAX_KEEP: u32 = 1000;

/// How the file rotates.
#[derive(Debug, Clone)]
pub struct RotatePolicy {
    /// Rotate before the active file would pass this many bytes; 0 = never
    /// by size (for `logrotate` with `SIGUSR1`).
    pub max_size: u64,
    /// Rotated copies kept (`NAME.1` .. `NAME.keep`); 0 = none.
    pub keep: u32,
    /// Also rotate when the active file is older than this.
    pub every: Option<Duration>,
}

/// Formats one of the file's own events (`rotate`, `reopen`, `log-error`)
/// as a whole line, timestamp and level included.
pub type LineFormat<'a> = &'a mut dyn FnMut(&mut Vec<u8>, &Event);

/// Why the active file could not be opened at start.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    /// Another process holds its lock (that process's pid, if known).
    InUse(Option<u32>),
}

/// A file's identity: the same inode under any of its names (the writer
/// uses it to notice its file was moved away, the reader `echochat log
/// --follow` to notice a rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of(meta: &fs::Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

pub struct RotatingFile {
    dir: PathBuf,
    name: String,
    file: File,
    /// The inode of `file`, to recognise it under any name.
    id: FileId,
    /// Bytes in the active file on disk (the batch not counted).
    on_disk: u64,
    /// Lines formatted this turn, waiting for `flush`.
    batch: Vec<u8>,
    /// Whole lines in `batch` (a torn line's remainder not counted).
    batch_lines: u64,
    policy: RotatePolicy,
    /// When the active file was started (for age rotation).
    started: Instant,
    /// No `NAME.k` above this (≤ keep) is ours: a rotation renames only
    /// what can exist, not `keep` names.
    rotated: u32,
    /// `NAME.k` with k > keep left by a run with a larger `--log-keep`,
    /// deleted at the first rotation.
    stale: Vec<u32>,
    /// The current failure episode, if any.
    trouble: Option<Trouble>,
}

/// A failure episode: what is owed before it is over, and its count.
#[derive(Debug)]
struct Trouble {
    /// The first error of the episode (the `error` of `log-error`).
    error: String,
    /// Lines that could not be written.
    lost: u64,
    retry_at: Instant,
    /// The last write did not complete: lines wait in the batch.
    write: bool,
    /// A rotation is due and failed.
    rotate: bool,
    /// The active file lost its last name (deleted, directory removed).
    recreate: bool,
    /// `SIGUSR1` asked for a reopen that failed.
    reopen: bool,
}

impl Trouble {
    fn owes_nothing(&self) -> bool {
        !(self.write || self.rotate || self.recreate || self.reopen)
    }
}

/// What failed, for the episode's flags and message.
#[derive(Clone, Copy)]
enum Step {
    Write,
    Rotate,
    Recreate,
    Reopen,
}

impl RotatingFile {
    /// Opens (or creates) `dir/name` for appending and locks it.
    ///
    /// # Errors
    /// When the file cannot be opened, or another process holds its lock.
    pub fn open(dir: &Path, name: &str, policy: RotatePolicy) -> Result<Self, OpenError> {
        let path = dir.join(name);
        let file = open_append(&path).map_err(OpenError::Io)?;
        match lock::lock(&file) {
            Ok(()) => {}
            Err(LockError::Busy(pid)) => return Err(OpenError::InUse(pid)),
            Err(LockError::Io(e)) => return Err(OpenError::Io(e)),
        }
        let meta = file.metadata().map_err(OpenError::Io)?;
        let mut f = RotatingFile {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            file,
            id: FileId::of(&meta),
            on_disk: meta.len(),
            batch: Vec::with_capacity(64 * 1024),
            batch_lines: 0,
            policy,
            started: Instant::now(),
            rotated: 0,
            stale: Vec::new(),
            trouble: None,
        };
        f.scan_rotated();
        Ok(f)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Where the next active file is made before it takes the name.
    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.new", self.name))
    }

    fn numbered(&self, k: u32) -> PathBuf {
        self.dir.join(format!("{}.{k}", self.name))
    }

    /// Notes which `NAME.k` exist: one directory read, however large keep.
    fn scan_rotated(&mut self) {
        self.rotated = 0;
        self.stale.clear();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = format!("{}.", self.name);
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(k) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|k| k.parse::<u32>().ok())
                .filter(|&k| k > 0)
            else {
                continue;
            };
            if k <= self.policy.keep {
                self.rotated = self.rotated.max(k);
            } else {
                self.stale.push(k);
            }
        }
    }

    /// Appends one line: `write` formats it (ending in `\n`) into the batch.
    /// If the line would push the active file past the limit (or the file
    /// is too old), the file rotates first, and `fmt` formats the `rotate`
    /// line that opens the fresh file.
    pub fn push_line(&mut self, now: Instant, write: impl FnOnce(&mut Vec<u8>), fmt: LineFormat) {
        if self.batch.len() >= MAX_BATCH_BYTES {
            // Only while writing fails (otherwise the batch was written at
            // this size): drop the line, count it.
            self.count_lost(1);
            return;
        }
        let start = self.batch.len();
        write(&mut self.batch);
        let line_len = (self.batch.len() - start) as u64;
        if self.rotation_due(now, start, line_len) {
            let line = self.batch.split_off(start);
            self.rotate(now, line_len, fmt);
            self.batch.extend_from_slice(&line);
        }
        self.batch_lines += 1;
        if self.batch.len() >= MAX_BATCH_BYTES {
            self.write_batch(now, fmt);
        }
    }

    /// Writes the batch (called once per reactor turn), retries what
    /// failed when its time has come, and ends a failure episode with its
    /// `log-error` line once everything works again.
    pub fn flush(&mut self, now: Instant, fmt: LineFormat) {
        if let Some(t) = &self.trouble
            && now >= t.retry_at
        {
            if t.reopen {
                self.reopen(now, fmt);
            } else if t.rotate {
                if self.rotation_due(now, self.batch.len(), 0) {
                    self.rotate(now, 0, fmt);
                } else if let Some(t) = &mut self.trouble {
                    t.rotate = false;
                }
            }
        }
        self.write_batch(now, fmt);
        if self.settle(fmt, false) {
            self.write_batch(now, fmt);
        }
    }

    /// `SIGUSR1`: start writing to whatever file now has the active name
    /// (someone moved ours away, e.g. `logrotate`), creating it if needed.
    /// The `reopen` line is the first line of the reopened file.
    pub fn reopen(&mut self, now: Instant, fmt: LineFormat) {
        if !self.write_batch(now, fmt) {
            // The lines waiting belong to the old file; reopen after them.
            self.fail(
                now,
                Step::Reopen,
                "cannot reopen before the waiting lines are written",
            );
            return;
        }
        let path = self.path();
        let same = fs::metadata(&path).is_ok_and(|m| FileId::of(&m) == self.id);
        if !same {
            // Never open our own file twice: closing the second descriptor
            // would drop the lock (see `lock.rs`).
            let opened = fs::create_dir_all(&self.dir)
                .and_then(|()| open_append(&path))
                .and_then(|file| lock_or_error(&file).map(|()| file))
                .and_then(|file| file.metadata().map(|m| (file, m)));
            match opened {
                Ok((file, meta)) => {
                    self.file = file;
                    self.id = FileId::of(&meta);
                    self.on_disk = meta.len();
                    self.started = now;
                    self.scan_rotated();
                }
                Err(e) => {
                    self.fail(now, Step::Reopen, &format!("cannot reopen: {e}"));
                    return;
                }
            }
        }
        if let Some(t) = &mut self.trouble {
            t.reopen = false;
        }
        self.push_own(
            &Event::Reopen {
                file: self.name.clone(),
            },
            fmt,
        );
        if self.settle(fmt, false) {
            self.write_batch(now, fmt);
        }
    }

    /// Whether a line of `line_len` bytes, following `batched` bytes of
    /// the batch, should start a new file.
    fn rotation_due(&self, now: Instant, batched: usize, line_len: u64) -> bool {
        let len = self.on_disk + batched as u64;
        if len == 0 {
            // An empty file never rotates: a line longer than the limit is
            // written alone into a file of its own.
            return false;
        }
        let max = self.policy.max_size;
        let too_big = max > 0 && len + line_len > max;
        let too_old = self
            .policy
            .every
            .is_some_and(|every| now.duration_since(self.started) >= every);
        (too_big || too_old) && self.trouble.as_ref().is_none_or(|t| now >= t.retry_at)
    }

    /// Rotates before a line of `next_len` bytes. The lines batched so far
    /// go to the old file first; if that write fails, rotation waits.
    fn rotate(&mut self, now: Instant, next_len: u64, fmt: LineFormat) {
        if !self.write_batch(now, fmt) {
            return;
        }
        match self.swap_in_new_file() {
            Ok(swapped) => {
                self.on_disk = 0;
                self.started = now;
                if let Some(t) = &mut self.trouble {
                    t.rotate = false;
                }
                match swapped {
                    Swapped::Rotated(moved_to) => {
                        let mut head = Vec::new();
                        fmt(&mut head, &Event::Rotate { file: moved_to });
                        // A line that cannot share a file with the `rotate`
                        // line gets the file alone (the contract's promise
                        // for a line longer than the limit).
                        let max = self.policy.max_size;
                        if max == 0 || head.len() as u64 + next_len <= max {
                            self.batch.extend_from_slice(&head);
                            self.batch_lines += 1;
                        }
                    }
                    Swapped::Replaced => self.push_own(
                        &Event::Reopen {
                            file: self.name.clone(),
                        },
                        fmt,
                    ),
                }
                self.settle(fmt, false);
            }
            Err(e) => self.fail(now, Step::Rotate, &format!("cannot rotate: {e}")),
        }
    }

    /// Steps 1–4 of a rotation (see the top of this file).
    fn swap_in_new_file(&mut self) -> io::Result<Swapped> {
        let tmp = self.temp_path();
        // A leftover of a crash. Ours to remove: the lock on the active
        // file means no other server rotates this log.
        let _ = fs::remove_file(&tmp);
        let new = create_locked(&tmp)?;
        match self.put_in_place(&tmp) {
            Ok(swapped) => {
                let meta = new.metadata()?;
                self.file = new; // the old descriptor closes here
                self.id = FileId::of(&meta);
                Ok(swapped)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn put_in_place(&mut self, tmp: &Path) -> io::Result<Swapped> {
        let path = self.path();
        if !self.is_ours(&path) {
            // Someone moved our file away (or replaced it) without
            // `SIGUSR1`: its content is wherever they put it. Take the name
            // back with a fresh file, as a reopen would.
            fs::rename(tmp, &path)?;
            return Ok(Swapped::Replaced);
        }
        if self.policy.keep == 0 {
            // No copies kept: the old content goes with the name it loses.
            fs::rename(tmp, &path)?;
            return Ok(Swapped::Rotated("(deleted)".to_string()));
        }
        self.shift()?;
        let first = self.numbered(1);
        match fs::hard_link(&path, &first) {
            Ok(()) => {
                if let Err(e) = fs::rename(tmp, &path) {
                    // Undo: the old file keeps just the active name.
                    let _ = fs::remove_file(&first);
                    return Err(e);
                }
            }
            // A filesystem without hard links: rename instead (there,
            // `tail -F` may see the name missing for a moment).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
                fs::rename(&path, &first)?;
                if let Err(e) = fs::rename(tmp, &path) {
                    let _ = fs::rename(&first, &path);
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(Swapped::Rotated(format!("{}.1", self.name)))
    }

    /// Makes room for `NAME.1`: deletes the oldest copy (and any beyond
    /// keep), renames the others one number up. Names that are missing are
    /// skipped; a file that is ours is never deleted.
    fn shift(&mut self) -> io::Result<()> {
        for k in std::mem::take(&mut self.stale) {
            self.remove_unless_ours(&self.numbered(k))?;
        }
        let keep = self.policy.keep;
        let highest = self.rotated;
        // An upper bound of what exists even if a rename below fails.
        self.rotated = (highest + 1).min(keep);
        for k in (1..=highest).rev() {
            let from = self.numbered(k);
            if k >= keep {
                self.remove_unless_ours(&from)?;
            } else if let Err(e) = fs::rename(&from, self.numbered(k + 1))
                && e.kind() != io::ErrorKind::NotFound
            {
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove_unless_ours(&self, path: &Path) -> io::Result<()> {
        if self.is_ours(path) {
            return Ok(());
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn is_ours(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == self.id)
    }

    /// Writes the batch; true when nothing is left waiting.
    fn write_batch(&mut self, now: Instant, fmt: LineFormat) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        if let Some(t) = &self.trouble
            && (t.write || t.recreate)
            && now < t.retry_at
        {
            return false;
        }
        if self.trouble.as_ref().is_some_and(|t| t.recreate) {
            if let Err(e) = self.recreate(now) {
                self.fail(
                    now,
                    Step::Recreate,
                    &format!("cannot recreate the log file: {e}"),
                );
                return false;
            }
            if let Some(t) = &mut self.trouble {
                t.recreate = false;
            }
            // The gap comes before the lines that waited: say so first.
            self.settle(fmt, true);
        }
        let mut done = 0;
        let failure = loop {
            match (&self.file).write(&self.batch[done..]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    if done == self.batch.len() {
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        match failure {
            None => self.written(now),
            Some(e) => {
                self.keep_lines_whole(done);
                self.fail(now, Step::Write, &format!("cannot write: {e}"));
                false
            }
        }
    }

    /// After a complete write: the batch is on disk — unless the file lost
    /// its last name, and with it everything written to it now.
    fn written(&mut self, now: Instant) -> bool {
        let lines = std::mem::take(&mut self.batch_lines);
        self.batch.clear();
        match self.file.metadata() {
            Ok(meta) if meta.nlink() == 0 => {
                self.fail(
                    now,
                    Step::Recreate,
                    "the log file was deleted (or its directory removed)",
                );
                self.count_lost(lines);
                // Make it again at once: the fewer lines go nowhere, the
                // better.
                if let Some(t) = &mut self.trouble {
                    t.retry_at = now;
                }
                true
            }
            // The real size, not our sum: `logrotate copytruncate` may
            // have cut the file.
            Ok(meta) => {
                self.on_disk = meta.len();
                if let Some(t) = &mut self.trouble {
                    t.write = false;
                }
                true
            }
            Err(_) => true,
        }
    }

    /// After a write that stopped `done` bytes into the batch: cut the file
    /// back to the last whole line, so no torn line is left; if the cut
    /// fails, keep the rest of the torn line to complete it later. The
    /// unwritten lines stay in the batch.
    fn keep_lines_whole(&mut self, done: usize) {
        let whole = memchr::memrchr(b'\n', &self.batch[..done]).map_or(0, |i| i + 1);
        let mut written = done;
        if whole < done {
            let torn = (done - whole) as u64;
            let cut = self
                .file
                .metadata()
                .ok()
                .and_then(|m| m.len().checked_sub(torn))
                .is_some_and(|len| self.file.set_len(len).is_ok());
            if cut {
                written = whole;
            }
        }
        let lines = memchr::memchr_iter(b'\n', &self.batch[..written]).count() as u64;
        self.batch.drain(..written);
        self.batch_lines = self.batch_lines.saturating_sub(lines);
        self.on_disk = self.file.metadata().map_or(self.on_disk, |m| m.len());
    }

    /// Makes the directory and the active file again (they were removed).
    fn recreate(&mut self, now: Instant) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.temp_path();
        let _ = fs::remove_file(&tmp);
        let new = create_locked(&tmp)?;
        if let Err(e) = fs::rename(&tmp, self.path()) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let meta = new.metadata()?;
        self.file = new;
        self.id = FileId::of(&meta);
        self.on_disk = 0;
        self.started = now;
        self.scan_rotated();
        Ok(())
    }

    /// Adds one of the file's own lines to the batch.
    fn push_own(&mut self, event: &Event, fmt: LineFormat) {
        fmt(&mut self.batch, event);
        self.batch_lines += 1;
    }

    fn count_lost(&mut self, lines: u64) {
        match &mut self.trouble {
            Some(t) => t.lost += lines,
            // Lost outside an episode (cannot happen: lines are dropped only
            // while writing fails); start one so the loss is reported.
            None => {
                self.trouble = Some(Trouble {
                    error: "lines dropped".to_string(),
                    lost: lines,
                    retry_at: Instant::now(),
                    write: false,
                    rotate: false,
                    recreate: false,
                    reopen: false,
                });
            }
        }
    }

    /// Notes a failure: starts an episode (with one warning on stderr) or
    /// adds to the current one, and sets when to retry.
    fn fail(&mut self, now: Instant, step: Step, error: &str) {
        let t = self.trouble.get_or_insert_with(|| {
            // The console may be a closed pipe: best effort, like the log.
            let _ = writeln!(
                io::stderr(),
                "warning: log file {}: {error}; retrying every second, the server keeps serving",
                self.dir.join(&self.name).display()
            );
            Trouble {
                error: error.to_string(),
                lost: 0,
                retry_at: now,
                write: false,
                rotate: false,
                recreate: false,
                reopen: false,
            }
        });
        t.retry_at = now + RETRY_AFTER;
        match step {
            Step::Write => t.write = true,
            Step::Rotate => t.rotate = true,
            Step::Recreate => t.recreate = true,
            Step::Reopen => t.reopen = true,
        }
    }

    /// Ends the episode if nothing is owed any more: its `log-error` line
    /// goes into the batch, at the end or (`front`) before the lines that
    /// waited. Returns whether it did.
    fn settle(&mut self, fmt: LineFormat, front: bool) -> bool {
        if !self.trouble.as_ref().is_some_and(Trouble::owes_nothing) {
            return false;
        }
        let Some(t) = self.trouble.take() else {
            return false;
        };
        let event = Event::LogError {
            error: t.error,
            lost: t.lost,
        };
        if front {
            let mut line = Vec::new();
            fmt(&mut line, &event);
            self.batch.splice(0..0, line);
            self.batch_lines += 1;
        } else {
            self.push_own(&event, fmt);
        }
        true
    }
}

/// What a rotation did with the active name.
enum Swapped {
    /// The old content went to this name (`NAME.1`, or `(deleted)`).
    Rotated(String),
    /// The active name was not ours any more; a fresh file took it.
    Replaced,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Creates a new file (never an existing one) and locks it.
fn create_locked(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path)?;
    if let Err(e) = lock_or_error(&file) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

fn lock_or_error(file: &File) -> io::Result<()> {
    match lock::lock(file) {
        Ok(()) => Ok(()),
        Err(LockError::Io(e)) => Err(e),
        Err(LockError::Busy(pid)) => Err(io::Error::other(match pid {
            Some(pid) => format!("in use by another echochat (pid {pid})"),
            None => "in use by another echochat".to_string(),
        })),
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

    /// The sink's part in a test: own events as bare logfmt lines.
    fn own(buf: &mut Vec<u8>, e: &Event) {
        buf.extend_from_slice(format!("{}\n", e.logfmt()).as_bytes());
    }

    fn push(f: &mut RotatingFile, line: &str) {
        f.push_line(
            Instant::now(),
            |b| b.extend_from_slice(line.as_bytes()),
            &mut own,
        );
    }

    fn flush(f: &mut RotatingFile) {
        f.flush(Instant::now(), &mut own);
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
                flush(&mut f);
            }
        }
        flush(&mut f);
        let mut got = Vec::new();
        for k in (1..=500).rev() {
            let text = read(dir.path(), &format!("t.log.{k}"));
            assert!(text.len() <= 100, "t.log.{k} has {} bytes", text.len());
            got.extend(text.lines().map(str::to_string));
        }
        got.extend(read(dir.path(), "t.log").lines().map(str::to_string));
        let data: Vec<String> = got.into_iter().filter(|l| l.starts_with("line")).collect();
        assert_eq!(data, sent);
        assert!(!dir.path().join(".t.log.new").exists());
    }

    #[test]
    fn a_temporary_file_left_by_a_crash_does_not_block_rotation() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".t.log.new"), "half a rotation\n").unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(30, 2)).unwrap();
        push(&mut f, "0123456789012345678\n");
        push(&mut f, "abcdefghijabcdefghi\n");
        flush(&mut f);
        assert_eq!(read(dir.path(), "t.log.1"), "0123456789012345678\n");
        assert_eq!(read(dir.path(), "t.log"), "abcdefghijabcdefghi\n");
        assert!(!dir.path().join(".t.log.new").exists());
    }

    #[test]
    fn keeps_only_k_files_and_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(60, 2)).unwrap();
        for i in 0..20 {
            push(&mut f, &format!("line number {i:02}\n"));
        }
        flush(&mut f);
        assert!(dir.path().join("t.log.1").exists());
        assert!(dir.path().join("t.log.2").exists());
        assert!(!dir.path().join("t.log.3").exists());
        assert!(read(dir.path(), "t.log").starts_with("rotate file=t.log.1\n"));
    }

    #[test]
    fn an_oversized_line_sits_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(30, 5)).unwrap();
        push(&mut f, "short\n");
        let long = format!("{}\n", "y".repeat(40));
        push(&mut f, &long);
        push(&mut f, "after\n");
        flush(&mut f);
        assert_eq!(read(dir.path(), "t.log.2"), "short\n");
        assert_eq!(read(dir.path(), "t.log.1"), long);
        assert_eq!(read(dir.path(), "t.log"), "rotate file=t.log.1\nafter\n");
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
        f.push_line(t0, line, &mut own);
        f.push_line(t0 + Duration::from_secs(30), line, &mut own);
        f.flush(t0 + Duration::from_secs(30), &mut own);
        assert!(!dir.path().join("t.log.1").exists());
        f.push_line(t0 + Duration::from_secs(61), line, &mut own);
        f.flush(t0 + Duration::from_secs(61), &mut own);
        assert_eq!(read(dir.path(), "t.log.1"), "a\na\n");
        assert_eq!(read(dir.path(), "t.log"), "rotate file=t.log.1\na\n");
    }

    #[test]
    fn size_zero_never_rotates_and_keep_zero_keeps_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "never.log", policy(0, 5)).unwrap();
        for i in 0..100 {
            push(&mut f, &format!("line {i}\n"));
        }
        flush(&mut f);
        assert!(!dir.path().join("never.log.1").exists());
        assert_eq!(read(dir.path(), "never.log").lines().count(), 100);

        let mut f = RotatingFile::open(dir.path(), "none.log", policy(40, 0)).unwrap();
        for i in 0..10 {
            push(&mut f, &format!("line {i}\n"));
        }
        flush(&mut f);
        assert!(!dir.path().join("none.log.1").exists());
        let text = read(dir.path(), "none.log");
        assert!(text.starts_with("rotate file=(deleted)\n"), "{text}");
        assert!(text.ends_with("line 9\n"), "{text}");
    }

    #[test]
    fn copies_beyond_keep_are_deleted_without_counting_to_keep() {
        let dir = tempfile::tempdir().unwrap();
        // Left by a run with a larger --log-keep, one absurdly numbered.
        for k in [1u64, 2, 3, 4, 4_000_000_000] {
            fs::write(dir.path().join(format!("t.log.{k}")), "old\n").unwrap();
        }
        fs::write(dir.path().join("t.log.x"), "not ours\n").unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(10, 2)).unwrap();
        push(&mut f, "first line\n");
        push(&mut f, "second line\n");
        flush(&mut f);
        assert_eq!(read(dir.path(), "t.log.1"), "first line\n");
        assert_eq!(read(dir.path(), "t.log.2"), "old\n");
        for k in ["3", "4", "4000000000"] {
            assert!(!dir.path().join(format!("t.log.{k}")).exists(), "t.log.{k}");
        }
        assert!(dir.path().join("t.log.x").exists());
    }

    #[test]
    fn a_removed_directory_is_made_again_and_the_loss_reported() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("logs");
        fs::create_dir(&dir).unwrap();
        let mut f = RotatingFile::open(&dir, "t.log", policy(1 << 20, 3)).unwrap();
        push(&mut f, "before\n");
        flush(&mut f);
        fs::remove_dir_all(&dir).unwrap();
        push(&mut f, "into the void\n");
        push(&mut f, "also lost\n");
        flush(&mut f);
        push(&mut f, "after\n");
        flush(&mut f);
        let text = read(&dir, "t.log");
        assert_eq!(
            text,
            "log-error error=\"the log file was deleted (or its directory removed)\" lost=2\nafter\n"
        );
    }

    #[test]
    fn reopen_follows_the_name_after_an_external_move() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(1 << 20, 3)).unwrap();
        push(&mut f, "one\n");
        flush(&mut f);
        fs::rename(dir.path().join("t.log"), dir.path().join("moved")).unwrap();
        push(&mut f, "two\n");
        f.reopen(Instant::now(), &mut own);
        push(&mut f, "three\n");
        flush(&mut f);
        assert_eq!(read(dir.path(), "moved"), "one\ntwo\n");
        assert_eq!(read(dir.path(), "t.log"), "reopen file=t.log\nthree\n");
        // Reopening the same file again keeps it (and its lock).
        f.reopen(Instant::now(), &mut own);
        flush(&mut f);
        assert_eq!(
            read(dir.path(), "t.log"),
            "reopen file=t.log\nthree\nreopen file=t.log\n"
        );
    }

    #[test]
    fn a_file_moved_away_without_a_signal_is_replaced_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "t.log", policy(20, 3)).unwrap();
        push(&mut f, "0123456789\n");
        flush(&mut f);
        fs::rename(dir.path().join("t.log"), dir.path().join("elsewhere")).unwrap();
        push(&mut f, "abcdefghij\n");
        flush(&mut f);
        assert_eq!(read(dir.path(), "elsewhere"), "0123456789\n");
        assert_eq!(read(dir.path(), "t.log"), "reopen file=t.log\nabcdefghij\n");
        assert!(!dir.path().join("t.log.1").exists());
    }
}
