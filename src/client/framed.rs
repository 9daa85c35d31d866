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
//! there is nothing to match up.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::session::say;
use super::stdin::read_bounded_line;
use super::{Error, Target, describe};
use crate::frame::{self, Decoded, HEADER_BYTES};

/// The longest line sent as one frame (the server's `--max-frame` is 1 MiB
/// by default; a longer frame makes it close the connection).
const MAX_LINE: usize = 16 << 20;
/// How long a reply may take before the client gives up.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Bytes per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Runs `echochat echo --framed`.
pub(super) fn run(target: &Target, interactive: bool) -> Result<(), Error> {
    let mut sock = target.connect()?;
    let io_err = |what| move |err| Error::Io { what, err };
    let peer = sock
        .peer_addr()
        .map_err(io_err("reading the server's address"))?;
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(REPLY_WAIT));
    say(&format!(
        "connected to {peer} (the TCP handshake is done); each line goes out as a 4-byte length + its bytes"
    ));
    if interactive {
        say("type lines to send them as frames; 'exit' or Ctrl-D disconnects");
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut reply = Reply::default();
    let mut frame_buf = Vec::new();
    loop {
        let too_long =
            read_bounded_line(&mut stdin, &mut line, MAX_LINE).map_err(io_err("reading stdin"))?;
        let Some(too_long) = too_long else {
            say("end of input: nothing more to send");
            break;
        };
        if too_long {
            say(&format!("a line over {MAX_LINE} bytes is not sent"));
            continue;
        }
        if line == b"exit" {
            say("you typed 'exit': closing the connection");
            break;
        }
        frame_buf.clear();
        // A line is at most 16 MiB, so its length fits the 4-byte header.
        if frame::encode(&line, &mut frame_buf).is_err() {
            continue;
        }
        sock.write_all(&frame_buf)
            .map_err(|err| write_error(err, peer))?;
        say(&format!(
            "sent {} bytes: a header saying {} and the {} bytes of the line",
            frame_buf.len(),
            line.len(),
            line.len()
        ));
        reply.read_one(&mut sock, peer)?;
        let payload = reply.payload();
        say(&format!(
            "received one frame of {} bytes in {} read(s): the header said where it ends",
            payload.len(),
            reply.reads
        ));
        let mut out = io::stdout().lock();
        out.write_all(payload)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(io_err("writing to stdout"))?;
        reply.consume();
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
    say("disconnected: the server closed its side too");
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
    reads: usize,
}

impl Reply {
    /// Reads until `buf` holds one whole frame ([`Reply::payload`]).
    fn read_one(&mut self, sock: &mut TcpStream, peer: std::net::SocketAddr) -> Result<(), Error> {
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
            let start = self.buf.len();
            self.buf.resize(start + READ_CHUNK, 0);
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
