//! Standard input as an event source for the clients' little event loop,
//! without ever switching the terminal to non-blocking mode.
//!
//! The server's reactor makes its sockets non-blocking (`O_NONBLOCK`) and
//! reads until `WouldBlock`. A client cannot do that to its stdin: the
//! terminal's open file description is shared with the shell that started
//! us, and a flag left set there (say, after Ctrl-C) breaks the shell. So
//! stdin stays blocking, and before every `read(2)` we ask `poll(2)` with a
//! zero timeout whether that read would block. `poll` is level-triggered, so
//! its answer is exact at that moment — data, end of input (Ctrl-D, a closed
//! pipe) and errors all count as "will not block". The `epoll` registration
//! (mio, edge-triggered) is then only what wakes the loop up: a hint, as in
//! the server.
//!
//! `epoll` refuses regular files and `/dev/null` (`EPERM`): they are always
//! "ready", since reading a file never waits. For those the loop does not
//! sleep while it still wants input; it reads them in order, a chunk a turn.
//!
//! Read `session.rs` next for the loop that uses this.

use std::io;
use std::os::fd::RawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

const STDIN_FD: RawFd = 0;

/// How standard input takes part in the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StdinMode {
    /// A terminal or a pipe: `epoll` wakes the loop when input arrives.
    Registered,
    /// A regular file or `/dev/null`: never blocks, so it is read in turn
    /// without waiting for readiness.
    AlwaysReady,
    /// Not open at all (the parent closed fd 0): treated as end of input.
    Closed,
}

/// Registers stdin with the loop's `Poll` when `epoll` accepts it.
pub(super) fn register(registry: &Registry, token: Token) -> StdinMode {
    match registry.register(&mut SourceFd(&STDIN_FD), token, Interest::READABLE) {
        Ok(()) => StdinMode::Registered,
        // EPERM: the file type does not support epoll (regular file,
        // /dev/null). Reading it never blocks, so it needs no readiness.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => StdinMode::AlwaysReady,
        Err(_) => StdinMode::Closed,
    }
}

/// Removes stdin from the loop's `Poll` (at end of input), so a hung-up pipe
/// cannot keep waking it.
pub(super) fn deregister(registry: &Registry) {
    // An error only means it was not registered; nothing to undo.
    let _ = registry.deregister(&mut SourceFd(&STDIN_FD));
}

/// Would a `read(2)` on stdin return now, without blocking? (`poll(2)`
/// with a zero timeout: data, end of input or an error all say yes.)
pub(super) fn read_would_not_block() -> bool {
    let mut fds = libc::pollfd {
        fd: STDIN_FD,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1, zero timeout: poll only writes
        // `revents` of the struct we own.
        let rc = unsafe { libc::poll(&mut fds, 1, 0) };
        if rc >= 0 {
            return rc > 0;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // poll itself failed: let the read report the real error.
            return true;
        }
    }
}

/// One `read(2)` from stdin straight into `buf` (no library buffer in
/// between, so no byte can hide where the loop does not look). `Ok(0)` is
/// end of input. A closed fd 0 (`EBADF`) also counts as end of input.
pub(super) fn read(buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let rc = unsafe { libc::read(STDIN_FD, buf.as_mut_ptr().cast(), buf.len()) };
        if rc >= 0 {
            // rc >= 0 and at most buf.len(), so it fits a usize.
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EBADF) => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Reads one line for a prompt, a byte at a time so that nothing after the
/// line is swallowed by a buffer the event loop would never see. Returns
/// `None` at end of input. Lines longer than `max` bytes are cut (the rest
/// is read and dropped).
pub(super) fn read_line(max: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match read(&mut byte)? {
            0 if line.is_empty() => return Ok(None),
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ if line.len() < max => line.push(byte[0]),
            _ => {}
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).trim().to_string()))
}
