//! `echochat echo --framed`: the course's fixed-length header, from the
//! client side.
//!
//! Each line typed goes out as one frame — a 4-byte big-endian length, then
//! the line's bytes (`frame.rs`) — and the client reads until the decoder
//! has one whole frame back, however many `recv` calls that takes. The
//! messages on stderr say how many reads each reply took: with a long line
//! (or a server started with a small `--read-chunk`) one message arrives in
//! pieces, and the header is what tells the client where it ends.
//!
//! Lock-step and blocking, like `echo --udp`: send one frame, read its
//! echo, then read the next line. TCP delivers everything in order, so
//! there is nothing to match up. `--read-delay` sleeps before each read
//! (of at most 1 KiB), and `--reset` ends with RST instead of FIN.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::messages::Msg;
use super::stdin::read_bounded_line;
use super::{Error, Lesson, SLOW_READ_BYTES, Target, describe};
use crate::frame::{self, Decoded, HEADER_BYTES};

/// The longest line sent as one frame (the server's `--max-frame` is 1 MiB
/// by default; a longer frame makes it close the connection).
const MAX_LINE: usize = 16 << 20;
/// How long a reply may take before the client gives up.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Bytes per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Runs `echochat echo --framed`.
pub(super) fn run(target: &Target, interactive: bool, lesson: Lesson) -> Result<(), Error> {
    let tell = lesson.tell;
    let mut sock = target.connect()?;
    let io_err = |what| move |err| Error::Io { what, err };
    let peer = sock
        .peer_addr()
        .map_err(io_err("reading the server's address"))?;
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(REPLY_WAIT));
    tell.say(Msg::FramedConnected { peer });
    if interactive {
        tell.say(Msg::FramedHint);
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut reply = Reply::default();
    let mut frame_buf = Vec::new();
    let (mut sent, mut received) = (0u64, 0u64);
    loop {
        let too_long =
            read_bounded_line(&mut stdin, &mut line, MAX_LINE).map_err(io_err("reading stdin"))?;
        let Some(too_long) = too_long else {
            tell.say(Msg::EndOfInput);
            break;
        };
        if too_long {
            tell.say(Msg::LineTooLong { max: MAX_LINE });
            continue;
        }
        if line == b"exit" {
            tell.say(Msg::FramedExit);
            break;
        }
        frame_buf.clear();
        // A line is at most 16 MiB, so its length fits the 4-byte header.
        if frame::encode(&line, &mut frame_buf).is_err() {
            continue;
        }
        sock.write_all(&frame_buf)
            .map_err(|err| write_error(err, peer))?;
        tell.say(Msg::FramedSent {
            total: frame_buf.len() as u64,
            len: line.len() as u64,
        });
        sent += frame_buf.len() as u64;
        reply.read_one(&mut sock, peer, lesson)?;
        let payload = reply.payload();
        received += reply.used as u64;
        tell.say(Msg::FramedReceived {
            len: payload.len() as u64,
            reads: reply.reads,
        });
        let mut out = io::stdout().lock();
        out.write_all(payload)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(io_err("writing to stdout"))?;
        reply.consume();
    }
    if lesson.reset {
        // SO_LINGER 0: close() sends RST, not FIN (reason=reset).
        socket2::SockRef::from(&sock)
            .set_linger(Some(Duration::ZERO))
            .map_err(io_err("setting SO_LINGER for --reset"))?;
        drop(sock);
        tell.say(Msg::ResetClose { sent, received });
        return Ok(());
    }
    // FIN, then wait for the server's: nothing more is owed, so this ends
    // at once unless the server misbehaves.
    let _ = sock.shutdown(Shutdown::Write);
    let mut sink = [0u8; 1024];
    loop {
        match sock.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    tell.say(Msg::FramedDisconnected);
    Ok(())
}

/// Bytes read from the socket and not yet used: the current reply frame,
/// perhaps the start of another.
#[derive(Default)]
struct Reply {
    buf: Vec<u8>,
    /// Bytes of `buf` taken by the frame just returned.
    used: usize,
    /// `read` calls it took.
    reads: u64,
}

impl Reply {
    /// Reads until `buf` holds one whole frame ([`Reply::payload`]).
    fn read_one(
        &mut self,
        sock: &mut TcpStream,
        peer: std::net::SocketAddr,
        lesson: Lesson,
    ) -> Result<(), Error> {
        self.reads = 0;
        loop {
            // The reply echoes our line, so it is never longer than one.
            match frame::decode(&self.buf, MAX_LINE) {
                Ok(Decoded::Frame { consumed, .. }) => {
                    self.used = consumed;
                    return Ok(());
                }
                Ok(Decoded::NeedMore { .. }) => {}
                Err(e) => {
                    return Err(Error::Io {
                        what: "reading the reply",
                        err: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                    });
                }
            }
            let chunk = match lesson.read_delay {
                Some(delay) => {
                    std::thread::sleep(delay);
                    SLOW_READ_BYTES
                }
                None => READ_CHUNK,
            };
            let start = self.buf.len();
            self.buf.resize(start + chunk, 0);
            let got = sock.read(&mut self.buf[start..]);
            self.buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => {
                    return Err(Error::ClosedEarly {
                        peer,
                        hint: "a line longer than its --max-frame closes the connection (reason=bad-frame)",
                    });
                }
                Ok(_) => self.reads += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::NoReply {
                        peer,
                        what: "within 10s",
                        hint: "is it the framed echo service (--frame-ports, default 7300)?",
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Error::Reset { peer });
                }
                Err(err) => {
                    return Err(Error::Io {
                        what: "reading from the server",
                        err,
                    });
                }
            }
        }
    }

    /// The payload of the frame [`Reply::read_one`] found.
    fn payload(&self) -> &[u8] {
        &self.buf[HEADER_BYTES..self.used]
    }

    /// Forgets the frame [`Reply::read_one`] found.
    fn consume(&mut self) {
        self.buf.drain(..self.used);
        self.used = 0;
    }
}

fn write_error(err: io::Error, peer: std::net::SocketAddr) -> Error {
    match err.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Reset { peer },
        _ => Error::Io {
            what: "writing to the server",
            err: io::Error::new(err.kind(), describe(&err)),
        },
    }
}
