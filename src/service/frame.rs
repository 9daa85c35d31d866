//! The framed echo service: the course's fixed-length header exercise.
//!
//! TCP delivers a byte stream, not messages: one `send` may arrive in
//! several `recv`s, and two `send`s in one. So each message travels as a
//! 4-byte big-endian length and then that many bytes (`frame.rs`), and the
//! receiver uses the length to find where each message ends. This service
//! answers each message with the same message, framed the same way.
//!
//! It never buffers a message. `FrameScanner` (`frame.rs`) splits whatever
//! one `recv` returned into pieces — a complete header, runs of payload,
//! the end of a frame — as ranges of the input, and the service sends the
//! input back by range, with no copy, as plain echo does: the reply to a
//! read of N whole frames is one zero-copy send. Only the 1–3 bytes of a
//! header split across reads wait, inside the scanner, until the header is
//! whole and known to be acceptable.
//!
//! A header announcing more than `--max-frame` bytes closes the connection
//! (`reason=bad-frame`) at once: the payload it announces is never waited
//! for or kept, so a client sending `ff ff ff ff` costs nothing. Messages
//! before the bad header were answered; nothing of it, or after it, is.
//!
//! Read `echo.rs` for the plain echo this mirrors, and `frame.rs` for the
//! format.

use std::net::SocketAddr;
use std::time::Instant;

use super::{ConnKey, Effects, Service};
use crate::event::DisconnectReason;
use crate::frame::{FrameScanner, HEADER_BYTES, Piece};

pub struct FrameService {
    /// `--max-frame`.
    max_frame_bytes: usize,
    /// Per-connection state, indexed by slab slot.
    conns: Vec<FrameConn>,
}

#[derive(Debug, Clone)]
struct FrameConn {
    scanner: FrameScanner,
    /// Bytes of an unfinished header that came in earlier reads and have
    /// not been echoed (the scanner holds them).
    held: usize,
}

impl FrameService {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameService {
            max_frame_bytes,
            conns: Vec::new(),
        }
    }

    fn state(&mut self, key: ConnKey) -> &mut FrameConn {
        if key.slot >= self.conns.len() {
            let fresh = FrameConn {
                scanner: FrameScanner::new(self.max_frame_bytes),
                held: 0,
            };
            self.conns.resize(key.slot + 1, fresh);
        }
        &mut self.conns[key.slot]
    }
}

impl Service for FrameService {
    fn name(&self) -> &'static str {
        "frame"
    }

    fn on_open(&mut self, key: ConnKey, _peer: SocketAddr, _now: Instant, _fx: &mut Effects) {
        let max = self.max_frame_bytes;
        *self.state(key) = FrameConn {
            scanner: FrameScanner::new(max),
            held: 0,
        };
    }

    fn on_recv(&mut self, key: ConnKey, bytes: &[u8], _now: Instant, fx: &mut Effects) {
        let st = self.state(key);
        // `bytes[..valid]` holds only whole headers (or the end of one that
        // began earlier) and payload: what can be echoed now. What follows
        // it is the start of a header, which the scanner keeps.
        let mut valid = 0;
        let mut held = st.held;
        let result = st.scanner.feed(bytes, |piece| match piece {
            Piece::Header { header, .. } => {
                if held > 0 {
                    // The header began in an earlier read: its first bytes
                    // go out first, from the scanner's copy.
                    fx.send(key, &header[..held]);
                }
                valid += HEADER_BYTES - held;
                held = 0;
            }
            Piece::Payload(range) => valid = range.end,
            Piece::End => {}
        });
        fx.send_input(key, 0..valid);
        match result {
            Ok(()) => st.held = held + bytes.len() - valid,
            Err(_) => fx.close(key, DisconnectReason::BadFrame),
        }
    }

    fn on_eof(&mut self, key: ConnKey, _now: Instant, fx: &mut Effects) {
        // A frame cut short by FIN was echoed as far as it came; the reply
        // is as incomplete as the request.
        fx.close(key, DisconnectReason::Eof);
    }

    fn on_backlog(&mut self, key: ConnKey, over: bool, fx: &mut Effects) {
        // As echo: stop reading a client that does not read its replies,
        // and let TCP flow control slow it down.
        if over {
            fx.pause_reading(key);
        } else {
            fx.resume_reading(key);
        }
    }

    fn on_close(&mut self, key: ConnKey, _reason: DisconnectReason, _fx: &mut Effects) {
        let st = self.state(key);
        st.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;
    use crate::service::Effect;

    const KEY: ConnKey = ConnKey { slot: 1, id: 7 };

    /// What the service sent back for `pieces`, and whether it closed.
    fn run(max: usize, pieces: &[&[u8]]) -> (Vec<u8>, Option<DisconnectReason>, usize) {
        let mut svc = FrameService::new(max);
        let mut fx = Effects::new();
        let now = Instant::now();
        svc.on_open(KEY, "127.0.0.1:1".parse().unwrap(), now, &mut fx);
        let mut out = Vec::new();
        let mut closed = None;
        let mut ops = 0;
        for p in pieces {
            assert!(closed.is_none(), "fed after close");
            svc.on_recv(KEY, p, now, &mut fx);
            for e in fx.drain() {
                ops += 1;
                match e {
                    Effect::Send { bytes, .. } => out.extend_from_slice(bytes),
                    Effect::SendInput { range, .. } => out.extend_from_slice(&p[range]),
                    Effect::Close { reason, .. } => closed = Some(reason),
                    other => panic!("{other:?}"),
                }
            }
            if closed.is_some() {
                break;
            }
        }
        (out, closed, ops)
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn frames_come_back_framed_whatever_the_split() {
        let input = framed(&[b"hello", b"", b"hi", &[0xff; 9]]);
        let whole = run(16, &[&input]);
        assert_eq!(whole, (input.clone(), None, 1), "one zero-copy send");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (a, b, c) = (&input[..i], &input[i..j], &input[j..]);
                let (out, closed, _) = run(16, &[a, b, c]);
                assert_eq!((&out, closed), (&input, None), "split {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(16, &bytes).0, input, "byte by byte");
    }

    #[test]
    fn an_oversize_header_closes_before_its_payload() {
        let mut input = framed(&[b"ok"]);
        let good = input.len();
        input.extend_from_slice(&17u32.to_be_bytes());
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            let (out, closed, _) = run(16, &[a, b]);
            assert_eq!(closed, Some(DisconnectReason::BadFrame), "split at {i}");
            assert_eq!(out, &input[..good], "nothing of the bad header is echoed");
        }
        // With its payload following, the same.
        input.extend_from_slice(&[b'x'; 17]);
        let (out, closed, _) = run(16, &[&input]);
        assert_eq!(
            (&out[..], closed),
            (&input[..good], Some(DisconnectReason::BadFrame))
        );
        // 4 GiB - 1 and --max-frame 0.
        assert_eq!(
            run(1 << 20, &[&[0xff; 4]]).1,
            Some(DisconnectReason::BadFrame)
        );
        let empty = framed(&[b"", b""]);
        assert_eq!(run(0, &[&empty]), (empty.clone(), None, 1));
        assert_eq!(
            run(0, &[&framed(&[b"x"])]).1,
            Some(DisconnectReason::BadFrame)
        );
    }

    #[test]
    fn partial_payload_is_echoed_as_it_comes() {
        let input = framed(&[b"abcdef"]);
        let (out, closed, _) = run(16, &[&input[..6]]);
        assert_eq!((&out[..], closed), (&input[..6], None));
    }

    #[test]
    fn a_reused_slot_starts_fresh() {
        let mut svc = FrameService::new(16);
        let mut fx = Effects::new();
        let now = Instant::now();
        let peer = "127.0.0.1:1".parse().unwrap();
        svc.on_open(KEY, peer, now, &mut fx);
        svc.on_recv(KEY, b"\0\0", now, &mut fx);
        svc.on_close(KEY, DisconnectReason::Reset, &mut fx);
        fx.drain().for_each(drop);
        let next = ConnKey { slot: 1, id: 8 };
        svc.on_open(next, peer, now, &mut fx);
        let input = framed(&[b"new"]);
        svc.on_recv(next, &input, now, &mut fx);
        let got: Vec<Effect> = fx.drain().collect();
        assert_eq!(
            got,
            vec![Effect::SendInput {
                to: next,
                range: 0..input.len()
            }]
        );
    }
}
