//! `echochat log --follow`: print the log, then keep printing new lines as
//! the server writes them, across rotations, like `tail -F`.
//!
//! The follower holds the active file open and reads what is appended. The
//! server rotates by giving the old file a second name (`NAME.1`) and
//! renaming a new file over `NAME` (`logging/rotate.rs`), so every 100 ms
//! the follower compares the inode behind `NAME` with the one it holds.
//! When they differ it reads the old file to its end (the server writes a
//! file's last lines before it rotates), then any copies made in between
//! (several rotations within 100 ms), then the new file from its start. So
//! each line is printed once, in order. A file that shrank (`logrotate
//! copytruncate`) is read again from its start; a missing name (directory
//! removed) is waited for.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::{Error, Reader, read_all};
use crate::logging::rotate::FileId;

/// How often the active name is checked and new bytes read.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Reads `files` (oldest first, the active one last), then follows the
/// active file until stdout is closed.
pub(super) fn run(
    dir: &Path,
    name: &str,
    mut files: Vec<PathBuf>,
    reader: &mut Reader,
) -> Result<(), Error> {
    let active = dir.join(name);
    if files.last() == Some(&active) {
        files.pop();
    }
    read_all(&files, reader)?;
    let mut current = Tail::open(&active);
    loop {
        if let Some(tail) = &mut current {
            tail.read_new(reader)?;
        }
        reader
            .flush()
            .map_err(|e| Error::Read(PathBuf::from("stdout"), e))?;
        thread::sleep(POLL_EVERY);
        let Ok(meta) = fs::metadata(&active) else {
            continue; // no file by that name now: wait for it
        };
        match &mut current {
            Some(tail) if tail.id == FileId::of(&meta) => {
                if meta.len() < tail.offset {
                    tail.restart();
                }
            }
            _ => {
                if let Some(mut old) = current.take() {
                    old.read_new(reader)?;
                    old.finish(reader)?;
                    let between = newer_than(dir, name, old.id);
                    read_all(&between, reader)?;
                }
                current = Tail::open(&active);
            }
        }
    }
}

/// The file being followed and how far it was read.
struct Tail {
    path: PathBuf,
    file: File,
    id: FileId,
    offset: u64,
    /// The start of a line whose `\n` has not been written yet.
    partial: Vec<u8>,
}

impl Tail {
    fn open(path: &Path) -> Option<Tail> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        Some(Tail {
            path: path.to_path_buf(),
            file,
            id: FileId::of(&meta),
            offset: 0,
            partial: Vec::new(),
        })
    }

    /// Prints every whole line appended since the last read.
    fn read_new(&mut self, reader: &mut Reader) -> Result<(), Error> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Read(self.path.clone(), e)),
            };
            self.offset += n as u64;
            let mut rest = &chunk[..n];
            while let Some(end) = memchr::memchr(b'\n', rest) {
                let result = if self.partial.is_empty() {
                    reader.line(&rest[..end])
                } else {
                    self.partial.extend_from_slice(&rest[..end]);
                    let line = std::mem::take(&mut self.partial);
                    reader.line(&line)
                };
                result.map_err(|e| Error::Read(PathBuf::from("stdout"), e))?;
                rest = &rest[end + 1..];
            }
            self.partial.extend_from_slice(rest);
        }
    }

    /// The file will grow no more: print a last line without its `\n`.
    fn finish(&mut self, reader: &mut Reader) -> Result<(), Error> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        reader
            .line(&line)
            .map_err(|e| Error::Read(PathBuf::from("stdout"), e))
    }

    /// The file was truncated under us: read it again from its start.
    fn restart(&mut self) {
        if let Ok(file) = File::open(&self.path) {
            self.file = file;
        }
        self.offset = 0;
        self.partial.clear();
    }
}

/// The rotated copies newer than the file `id` (made by rotations that
/// happened between two checks), oldest first. Empty when `id` is not
/// among them (no copies kept).
fn newer_than(dir: &Path, name: &str, id: FileId) -> Vec<PathBuf> {
    let files = super::log_files(dir, name);
    let active = dir.join(name);
    let rotated: Vec<&PathBuf> = files.iter().filter(|p| **p != active).collect();
    // Oldest first: the copies after ours are the newer ones.
    match rotated
        .iter()
        .position(|p| fs::metadata(p).is_ok_and(|m| FileId::of(&m) == id))
    {
        Some(i) => rotated[i + 1..].iter().map(|p| (*p).clone()).collect(),
        None => Vec::new(),
    }
}
