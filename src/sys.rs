//! System-call helpers: the few places where echochat talks to the kernel
//! through `libc` rather than through `mio` or `std`.
//!
//! Like Redis's `anet.c`, each chore is written once here, with the careful
//! behaviour (retry on `EINTR`, a closed descriptor treated as end of
//! input), and the server, the clients and the load generator all call the
//! same function. Everything `unsafe` about raw descriptors lives in this
//! file, next to the comment that says why it is sound.
//!
//! - **stdin** as an event source ([`register_stdin`], [`stdin_ready`],
//!   [`read_stdin`]): the server's console and the clients' input. stdin is
//!   never switched to non-blocking mode — the terminal's open file
//!   description is shared with the shell that started us, and a flag left
//!   set there breaks the shell. Instead, before each `read(2)` we ask
//!   `poll(2)` with a zero timeout whether it would block. `poll` is
//!   level-triggered, so its answer is exact at that moment; the `epoll`
//!   registration (mio, edge-triggered) is only what wakes the loop.
//! - **the descriptor limit** ([`raise_nofile_limit`]): every connection is
//!   a descriptor.
//! - **memory back to the OS** ([`release_free_memory`]) after a burst.
//! - **the thread's CPU clock** ([`thread_cpu_time`]), for the load
//!   generator's report of its own cost.
//! - **integer socket options** ([`set_int_sockopt`]) that `socket2` does
//!   not cover (`TCP_INQ`, `IP_BIND_ADDRESS_NO_PORT`).

use std::io;
use std::os::fd::RawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

const STDIN_FD: RawFd = 0;

/// How standard input takes part in an event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// A terminal or a pipe: `epoll` wakes the loop when input arrives.
    Registered,
    /// A regular file or `/dev/null`: `epoll` refuses them (`EPERM`), and
    /// they never block, so they are read without waiting for readiness.
    AlwaysReady,
    /// Not open at all (the parent closed fd 0): end of input.
    Closed,
}

/// Registers stdin with `registry` under `token` when `epoll` accepts it.
pub fn register_stdin(registry: &Registry, token: Token) -> StdinMode {
    match registry.register(&mut SourceFd(&STDIN_FD), token, Interest::READABLE) {
        Ok(()) => StdinMode::Registered,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => StdinMode::AlwaysReady,
        Err(_) => StdinMode::Closed,
    }
}

/// Removes stdin from the loop (at end of input), so a hung-up pipe cannot
/// keep waking it. An error only means it was not registered.
pub fn deregister_stdin(registry: &Registry) {
    let _ = registry.deregister(&mut SourceFd(&STDIN_FD));
}

/// Would a `read(2)` on stdin return now, without blocking? Data, end of
/// input and an error all say yes (the read then reports which).
pub fn stdin_ready() -> bool {
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
/// end of input; a closed fd 0 (`EBADF`) is end of input too. `EINTR` is
/// retried.
///
/// # Errors
/// Any other `read(2)` error.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
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

/// The descriptor limit before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. The default soft
/// limit (often 1024) is far below what thousands of connections need,
/// and the hard limit is ours to take without privileges. Returns
/// `before == now == 0` when the limit cannot be read.
pub fn raise_nofile_limit() -> NofileLimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return NofileLimit { before: 0, now: 0 };
    }
    let before: u64 = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return NofileLimit {
                before,
                now: lim.rlim_max,
            };
        }
    }
    NofileLimit {
        before,
        now: before,
    }
}

/// `setsockopt(fd, level, name, &value)` for an integer option.
///
/// # Errors
/// The kernel's refusal (an unknown option on an old kernel, say); callers
/// for which the option is an optimisation ignore it.
pub fn set_int_sockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a c_int we
    // own; an invalid fd is reported as EBADF, not undefined behaviour.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Returns memory the allocator holds free to the operating system
/// (glibc's `malloc_trim`, which also releases free pages inside the heap,
/// not only at its top). After a burst of queued output the freed buffers
/// would otherwise keep the process at its peak size. A no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists;
    // it takes no pointer of ours and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`), so a
/// load run can say what the generator itself cost per message.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn int_sockopt_sets_and_reports_errors() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(set_int_sockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).is_ok());
        let err = set_int_sockopt(-1, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn nofile_limit_is_at_least_what_it_was() {
        let lim = raise_nofile_limit();
        assert!(lim.now >= lim.before);
    }
}
