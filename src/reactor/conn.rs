//! `Conn`: what the reactor keeps for one connection — its socket, its
//! unsent output, and the flags from which its poll interest is derived.
//!
//! An idle connection must cost little memory (thousands are held at once),
//! so nothing here is allocated until it is needed: the output queue is
//! empty until a write cannot finish, and read buffers are the reactor's,
//! shared by every connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mio::Interest;
use mio::net::TcpStream;

use crate::event::{self, DisconnectReason, Event};
use crate::service::ConnKey;

pub struct Conn {
    pub stream: TcpStream,
    pub key: ConnKey,
    /// Index of the service (in the reactor's list) that owns this socket.
    pub service: usize,
    pub peer: SocketAddr,
    pub opened: Instant,
    /// The last time bytes moved either way (for the idle timeout).
    pub last_active: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Output accepted from the service but not yet taken by the kernel.
    pub out: OutQueue,
    /// False while the service paused reading (backpressure).
    pub reading: bool,
    /// The peer sent FIN: nothing more will arrive.
    pub peer_closed: bool,
    /// Set when the connection is to be closed at the end of the turn (or,
    /// for reasons that flush, once its output is sent).
    pub closing: Option<DisconnectReason>,
    /// The unsent output is above `--max-backlog` (the service was told).
    pub over_backlog: bool,
    /// The interest currently registered with `poll`.
    pub registered: Interest,
    /// Counted in the reactor's per-IP table (`--max-per-ip`).
    pub counted_ip: bool,
    /// We shut down our sending side (FIN) at a graceful stop, and now
    /// read and discard until the client closes too.
    pub fin_sent: bool,
    /// Already in the reactor's list of connections to flush this turn
    /// (so a thousand broadcast lines add one entry, not a thousand).
    pub flush_queued: bool,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        key: ConnKey,
        service: usize,
        peer: SocketAddr,
        now: Instant,
    ) -> Self {
        Conn {
            stream,
            key,
            service,
            peer,
            opened: now,
            last_active: now,
            bytes_in: 0,
            bytes_out: 0,
            out: OutQueue::default(),
            reading: true,
            peer_closed: false,
            closing: None,
            over_backlog: false,
            registered: Interest::READABLE,
            counted_ip: false,
            fin_sent: false,
            flush_queued: false,
        }
    }

    /// Puts the connection on the end-of-turn flush list, once.
    pub fn queue_flush(&mut self, dirty: &mut Vec<ConnKey>) {
        if !self.flush_queued {
            self.flush_queued = true;
            dirty.push(self.key);
        }
    }

    /// Counts bytes the kernel took from us and logs the `send` event.
    pub fn note_sent(&mut self, bytes: usize, service: &'static str, now: Instant) {
        self.bytes_out += bytes as u64;
        self.last_active = now;
        event::record(&Event::Send {
            service,
            conn: self.key.id,
            bytes,
        });
    }

    /// Counts bytes we read and logs the `recv` event.
    pub fn note_received(&mut self, bytes: usize, service: &'static str, now: Instant) {
        self.bytes_in += bytes as u64;
        self.last_active = now;
        event::record(&Event::Recv {
            service,
            conn: self.key.id,
            bytes,
        });
    }

    /// Whether the next read event should be acted on.
    pub fn wants_read(&self) -> bool {
        self.reading && !self.peer_closed && self.closing.is_none()
    }

    /// The poll interest this state calls for: READABLE while we read,
    /// WRITABLE only while output is waiting (asking for WRITABLE with an
    /// empty queue would wake the loop for nothing).
    pub fn interest(&self) -> Interest {
        match (self.wants_read(), !self.out.is_empty()) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            // Nothing to wait for (about to close): keep a valid interest.
            (_, false) => Interest::READABLE,
        }
    }

    /// Marks the connection for closing. The first reason wins: a
    /// connection that asked to leave and then reset is still "exit".
    pub fn mark_closing(&mut self, reason: DisconnectReason) {
        if self.closing.is_none() {
            self.closing = Some(reason);
            if !reason.flushes_output() {
                self.out.clear();
            }
        }
    }

    /// Ready to be closed now: marked, and nothing owed is left to send —
    /// and, at a graceful stop, the client has closed its side too.
    pub fn ready_to_close(&self) -> bool {
        match self.closing {
            None => false,
            Some(DisconnectReason::Shutdown) => self.out.is_empty() && self.peer_closed,
            Some(_) => self.out.is_empty(),
        }
    }

    /// At a graceful stop, with everything sent: time to send our FIN.
    pub fn wants_fin(&self) -> bool {
        self.closing == Some(DisconnectReason::Shutdown) && self.out.is_empty() && !self.fin_sent
    }

    /// Our FIN is sent and the client's has not come: what it still sends
    /// is read and dropped, so that closing does not meet unread data (which
    /// makes the kernel answer with RST, and a RST can destroy replies
    /// still on their way to the client).
    pub fn lingering(&self) -> bool {
        self.fin_sent && !self.peer_closed
    }
}

/// Asks the kernel to report, with every read, how many bytes are still
/// queued on the socket (Linux `TCP_INQ`). See [`recv_chunk`].
pub fn enable_inq(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Failure (an old kernel) only means reads report no queue length.
        let _ = crate::sys::set_int_sockopt(stream.as_raw_fd(), libc::SOL_TCP, libc::TCP_INQ, 1);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Reads at most `buf.len()` bytes. Also returns, when the kernel says so
/// (`TCP_INQ` on Linux), how many bytes are still waiting after this read.
///
/// Why: with edge-triggered readiness a reader must know it has drained
/// the socket before it stops, or it may never be woken for the rest. The
/// portable way is to read until `WouldBlock`, which costs one more failed
/// `recv` per message. "0 bytes left" says the same thing for free.
pub fn recv_chunk(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one control message carrying an int, 8-byte aligned.
        let mut control = [0u64; 4];
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at a live iovec over `buf` and a live control
        // buffer, with their true lengths.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut queued = None;
        // SAFETY: walking the control messages the kernel just wrote, with
        // the libc macros, inside the buffer described by `msg`.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_TCP && (*cmsg).cmsg_type == libc::TCP_CM_INQ {
                    let left =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                    queued = usize::try_from(left).ok();
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok((n as usize, queued))
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::io::Read;
        stream.read(buf).map(|n| (n, None))
    }
}

/// One piece of queued output.
enum Chunk {
    /// Bytes only this connection gets (echo replies, chat replies).
    Owned(Vec<u8>),
    /// A broadcast shared with other receivers.
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(r) => r,
        }
    }
}

/// Queue slots kept by an emptied output queue (see `OutQueue::consume`).
const KEEP_CHUNKS: usize = 4;

/// What one queued chunk costs beyond its bytes, counted against
/// `--max-backlog`: the queue entry itself and the allocation behind it
/// (a `Vec`'s or an `Rc`'s header and the allocator's own bookkeeping).
/// Without it, a flood of one-byte lines would queue 30 bytes of memory
/// per byte of backlog and the limit would bound nothing.
pub const CHUNK_OVERHEAD: usize = 64;

/// An owned chunk grows by appending only up to this size; past it a new
/// chunk starts. So the front chunk, whose sent prefix cannot be freed
/// until all of it is sent, never holds more than this much sent data.
const OWNED_CHUNK_MAX: usize = 16 * 1024;

/// Most slices handed to one `writev` (the kernel's limit is 1024).
const MAX_IOVECS: usize = 64;

/// Unsent output: a queue of chunks, written with one `writev` per flush.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already sent.
    front_sent: usize,
    /// Unsent bytes in total.
    len: usize,
}

impl OutQueue {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Unsent bytes plus the bookkeeping that holds them: what
    /// `--max-backlog` limits.
    pub fn cost(&self) -> usize {
        self.len + self.chunks.len() * CHUNK_OVERHEAD
    }

    /// Queues a copy of `bytes`, in a buffer from `pool` when a new one is
    /// needed (so steady-state echo does not allocate).
    ///
    /// Bytes are appended to the last chunk only while it is small and not
    /// the half-sent front one: appending to the front would keep its sent
    /// prefix alive for as long as a slow reader keeps the queue non-empty.
    pub fn push_copy(&mut self, bytes: &[u8], pool: &mut BufPool) {
        let front_is_back = self.chunks.len() == 1;
        if let Some(Chunk::Owned(last)) = self.chunks.back_mut()
            && last.len() + bytes.len() <= OWNED_CHUNK_MAX
            && !(front_is_back && self.front_sent > 0)
        {
            last.extend_from_slice(bytes);
        } else {
            let mut buf = pool.take();
            buf.extend_from_slice(bytes);
            self.chunks.push_back(Chunk::Owned(buf));
        }
        self.len += bytes.len();
    }

    pub fn push_shared(&mut self, bytes: Rc<[u8]>) {
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Shared(bytes));
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.front_sent = 0;
        self.len = 0;
    }

    /// Writes as much as the socket takes with one `writev`, returning the
    /// number of bytes sent (`WouldBlock` when the send buffer is full).
    pub fn write_to(&mut self, stream: &mut TcpStream, pool: &mut BufPool) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
            let bytes = chunk.bytes();
            slices[i] = IoSlice::new(if i == 0 {
                &bytes[self.front_sent..]
            } else {
                bytes
            });
            n += 1;
        }
        // One slice is the common case: plain write(2) skips importing an
        // iovec array.
        let written = if n == 1 {
            stream.write(slices[0].as_ref())?
        } else {
            stream.write_vectored(&slices[..n])?
        };
        self.consume(written, pool);
        Ok(written)
    }

    fn consume(&mut self, mut written: usize, pool: &mut BufPool) {
        self.len -= written;
        while written > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_sent;
            if written < left {
                self.front_sent += written;
                return;
            }
            written -= left;
            self.front_sent = 0;
            if let Some(Chunk::Owned(buf)) = self.chunks.pop_front() {
                pool.give(buf);
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > KEEP_CHUNKS {
            // Give back a deque that grew under a burst, so an idle
            // connection holds little; a small one is kept, since freeing
            // and reallocating it for every broadcast line only churns the
            // allocator (and fragments its memory).
            self.chunks = VecDeque::new();
        }
    }
}

/// Recycled output buffers, so copying a reply does not cost an allocation
/// per message. Bounded in count and in the size of what it keeps.
#[derive(Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
}

const POOL_MAX_BUFS: usize = 256;
const POOL_MAX_CAPACITY: usize = 64 * 1024;

impl BufPool {
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < POOL_MAX_BUFS && buf.capacity() <= POOL_MAX_CAPACITY {
            buf.clear();
            self.free.push(buf);
        }
    }
}
