//! Saving a file without making the reactor wait on the disk.
//!
//! The reactor serves every client from one thread, so a `write`, `fsync`
//! and `rename` inside a turn stall everyone for as long as the disk takes
//! (with a 20,000-line names file rewritten on every `/nick`, the server
//! once answered nobody for 26 s). A [`Saver`] moves that work to a thread
//! of its own: the reactor hands it the file's new content with
//! [`Saver::save`], which only swaps a buffer under a lock and returns.
//!
//! Saves coalesce. If snapshots arrive faster than the disk writes them,
//! each new one replaces the one still waiting, and only the latest is
//! written: the file is a snapshot of the state, so an older snapshot that
//! was never written is simply out of date, not lost. (The shell also
//! takes snapshots at most once a second, so there is little to coalesce.)
//!
//! Each write is atomic: the bytes go to a temporary file in the same
//! directory, are `fsync`ed, and the temporary file is renamed over the
//! target. `rename` within one filesystem swaps the directory entry in one
//! step, so a reader — or the server after a crash or `kill -9` — sees the
//! old file or the new one, never half of each. The `fsync` (of the file,
//! then of the directory) makes the new content survive a power cut too;
//! it costs the reactor nothing, since it runs here.
//!
//! Errors come back in a list the reactor drains each turn
//! ([`Saver::errors`]) and logs as warnings: once per episode (the first
//! failure after a success), so a full disk under a `/nick` storm is one
//! line, not one a second. The next snapshot is tried again regardless.
//!
//! Nothing here knows what the bytes mean, so the accounts file can use a
//! `Saver` of its own. Read `names/store.rs` for the names file's content.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A failed save: the file on disk is left as it was.
#[derive(Debug)]
pub struct SaveError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot save {}: {}; kept in memory, saving is retried on the next change",
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for SaveError {}

/// What the reactor and the saver thread share.
#[derive(Debug, Default)]
struct State {
    /// The latest snapshot not yet taken by the thread.
    pending: Option<Vec<u8>>,
    /// A snapshot is being written now.
    writing: bool,
    /// No more snapshots will come: write what is pending, then end.
    stopping: bool,
    /// The thread has ended.
    done: bool,
    /// Failures not yet taken by the reactor.
    errors: Vec<SaveError>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled on every change of `state`, in either direction.
    changed: Condvar,
}

impl Shared {
    /// The lock, even if the other side panicked while holding it: the
    /// state is a few flags and a buffer, valid at every step.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A background writer for one file; see the module docs.
#[derive(Debug)]
pub struct Saver {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Saver {
    /// Starts the thread that will write `path`. Nothing is written until
    /// the first [`Saver::save`].
    ///
    /// # Errors
    /// The thread could not be started (the process is out of threads or
    /// memory).
    pub fn spawn(path: impl Into<PathBuf>) -> io::Result<Saver> {
        let path = path.into();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            let path = path.clone();
            thread::Builder::new()
                .name("saver".into())
                .spawn(move || write_loop(&path, &shared))?
        };
        Ok(Saver {
            path,
            shared,
            thread: Some(thread),
        })
    }

    /// The file this saver writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `bytes` as the file's new content and returns at once. A
    /// snapshot still waiting is replaced (only the latest is written).
    pub fn save(&self, bytes: Vec<u8>) {
        let old = {
            let mut state = self.shared.lock();
            let old = state.pending.replace(bytes);
            self.shared.changed.notify_all();
            old
        };
        // Free a replaced snapshot outside the lock.
        drop(old);
    }

    /// Failures reported since the last call (never waits for the disk:
    /// the lock is only ever held for a swap).
    pub fn errors(&self) -> Vec<SaveError> {
        std::mem::take(&mut self.shared.lock().errors)
    }

    /// Whether nothing is waiting or being written.
    pub fn is_idle(&self) -> bool {
        let state = self.shared.lock();
        state.pending.is_none() && !state.writing
    }

    /// Whether the reactor has something to look at soon: a snapshot on
    /// its way to the disk, or a failure not yet taken with
    /// [`Saver::errors`].
    pub fn needs_attention(&self) -> bool {
        let state = self.shared.lock();
        state.pending.is_some() || state.writing || !state.errors.is_empty()
    }

    /// Waits up to `timeout` until nothing is waiting or being written;
    /// returns whether that happened. For tests and for a stop.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.pending.is_some() || state.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || state.done {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Writes what is pending, waiting at most `timeout` for the disk, and
    /// stops the thread. Returns the errors not yet taken with
    /// [`Saver::errors`]. If the disk does not answer in time, the thread
    /// is left to finish on its own (the process is about to exit).
    pub fn finish(mut self, timeout: Duration) -> Vec<SaveError> {
        let finished = self.stop(timeout);
        let errors = self.errors();
        if let Some(thread) = self.thread.take()
            && finished
        {
            let _ = thread.join();
        }
        errors
    }

    /// Tells the thread to stop after what is pending; waits for it up to
    /// `timeout`. Returns whether it ended.
    fn stop(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        state.stopping = true;
        self.shared.changed.notify_all();
        while !state.done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for Saver {
    /// Dropping a saver still writes its last snapshot (bounded wait).
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take()
            && self.stop(Duration::from_secs(5))
        {
            let _ = thread.join();
        }
    }
}

/// The saver thread: take the latest snapshot, write it, repeat; end when
/// told to stop and nothing is pending.
fn write_loop(path: &Path, shared: &Shared) {
    let mut failing = false;
    loop {
        let bytes = {
            let mut state = shared.lock();
            loop {
                if let Some(bytes) = state.pending.take() {
                    state.writing = true;
                    break bytes;
                }
                if state.stopping {
                    state.done = true;
                    shared.changed.notify_all();
                    return;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = write_atomic(path, &bytes);
        drop(bytes);
        let mut state = shared.lock();
        match result {
            Ok(()) => failing = false,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    state.errors.push(SaveError {
                        path: path.to_path_buf(),
                        error,
                    });
                }
            }
        }
        // In the same step as the error: whoever sees `writing` false also
        // sees the error of that write.
        state.writing = false;
        shared.changed.notify_all();
    }
}

/// Distinguishes the temporary files of several savers in one process.
static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically (temporary file, `fsync`,
/// `rename`, `fsync` of the directory). The target must be missing or a
/// regular file: a FIFO, a device, a symlink or a directory at the path is
/// not ours to replace.
///
/// # Errors
/// Any step failing; the target is then untouched and the temporary file
/// removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, None)
}

/// [`write_atomic`] for a file only its owner may read (`0600` from the
/// moment the temporary file is created): the accounts and sessions files
/// hold password and token hashes, and a `chmod` after the rename would
/// leave a moment when others could read them.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, Some(0o600))
}

fn write_atomic_with(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file, so not replaced",
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ));
    };
    // Same directory, so the rename never crosses filesystems; hidden, so
    // a teacher listing the directory is not puzzled by it.
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        TEMP_SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = write_and_rename(&tmp, path, bytes, mode);
    if result.is_err() {
        // Best effort: do not leave a stray temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if let Some(mode) = mode {
        options.mode(mode);
    }
    let mut file = options.open(tmp)?;
    if let Some(mode) = mode {
        // `mode` applies only when the file is created; a stale temporary
        // file from a crash keeps its old mode unless it is set again.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    // Best effort: some filesystems refuse to fsync a directory.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn saves_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        let saver = Saver::spawn(&path).unwrap();
        assert!(saver.is_idle());
        saver.save(b"one\n".to_vec());
        assert!(saver.wait_idle(WAIT));
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        saver.save(b"two\n".to_vec());
        assert!(saver.finish(WAIT).is_empty());
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(entries(dir.path()), ["names.tsv"]);
    }

    #[test]
    fn a_burst_of_saves_ends_with_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let saver = Saver::spawn(&path).unwrap();
        let started = Instant::now();
        for i in 0..10_000 {
            saver.save(format!("{i}\n").into_bytes());
        }
        // Queuing never waits for the disk: 10,000 saves in far less
        // than 10,000 fsyncs would take.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(saver.wait_idle(WAIT));
        assert_eq!(fs::read_to_string(&path).unwrap(), "9999\n");
        drop(saver);
        assert_eq!(entries(dir.path()), ["f"]);
    }

    #[test]
    fn drop_writes_the_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let saver = Saver::spawn(&path).unwrap();
        saver.save(b"last".to_vec());
        drop(saver);
        assert_eq!(fs::read(&path).unwrap(), b"last");
    }

    #[test]
    fn errors_are_reported_once_per_episode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("f");
        let saver = Saver::spawn(&path).unwrap();
        for _ in 0..3 {
            saver.save(b"x".to_vec());
            assert!(saver.wait_idle(WAIT));
        }
        let errors: Vec<SaveError> = saver.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let msg = errors[0].to_string();
        assert!(msg.starts_with("cannot save "), "{msg}");
        assert!(msg.contains("missing-dir"), "{msg}");
        // The directory appears: the episode ends, and the file is saved.
        fs::create_dir(dir.path().join("missing-dir")).unwrap();
        saver.save(b"y".to_vec());
        assert!(saver.wait_idle(WAIT));
        assert_eq!(fs::read(&path).unwrap(), b"y");
        // A new failure is a new episode.
        fs::remove_file(&path).unwrap();
        fs::remove_dir(dir.path().join("missing-dir")).unwrap();
        saver.save(b"z".to_vec());
        assert_eq!(saver.finish(WAIT).len(), 1);
    }

    #[test]
    fn a_non_regular_target_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // A directory, and a symlink to a file.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let err = write_atomic(&sub, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(sub.is_dir());
        let real = dir.path().join("real");
        fs::write(&real, "keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(write_atomic(&link, b"x").is_err());
        assert_eq!(fs::read_to_string(&real).unwrap(), "keep");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(entries(dir.path()), ["link", "real", "sub"]);
    }

    #[test]
    fn replaces_a_regular_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old content that is longer").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
