//! One server per log file: an advisory write lock on the active file.
//!
//! Two servers writing one file would interleave their `conn=1` and rotate
//! each other's files away. So a server takes an `fcntl` write lock on its
//! active log file, without waiting; a second server finds it taken and
//! `F_GETLK` names the holder's pid for the error message.
//!
//! These are POSIX record locks, which belong to the process and the file
//! (the inode): they vanish when the process closes *any* descriptor of
//! that file. So the server never opens its active file a second time
//! (`rotate.rs` compares inode numbers instead). Every new active file
//! (rotation, reopen, a recreated directory) is locked before it gets the
//! active name, so the name is never unlocked for a moment.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (its pid, when the kernel says).
    Busy(Option<u32>),
    Io(io::Error),
}

/// Takes a write lock on the whole of `file` (open for writing), or says
/// who holds it. Never waits.
///
/// # Errors
/// [`LockError::Busy`] when another process holds a lock on the file.
pub fn lock(file: &File) -> Result<(), LockError> {
    let fl = whole_file();
    // SAFETY: fcntl(F_SETLK) on an open descriptor with a pointer to a
    // valid, initialised `struct flock` that outlives the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EACCES | libc::EAGAIN) => Err(LockError::Busy(holder(file))),
        _ => Err(LockError::Io(err)),
    }
}

/// The pid of the process holding a conflicting lock on `file`.
fn holder(file: &File) -> Option<u32> {
    let mut fl = whole_file();
    // SAFETY: as above; F_GETLK writes the conflicting lock into `fl`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc == 0 && fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0 {
        Some(fl.l_pid as u32)
    } else {
        None
    }
}

/// A write lock from byte 0 to the end of the file, however long it grows.
fn whole_file() -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value of it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    fl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_locks() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("a.log")).unwrap();
        assert!(lock(&f).is_ok());
        // The same process may lock again (POSIX locks do not conflict
        // within one process); the conflict is tested across processes in
        // tests/log_files.rs.
        assert!(lock(&f).is_ok());
    }
}
