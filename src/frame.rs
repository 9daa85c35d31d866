//! Length-prefixed frames: the course's fixed-length header (lab 9), pure
//! and bounded.
//!
//! TCP is a byte stream: one `send` of 1000 bytes may arrive as 3 `recv`s,
//! and two `send`s as one. To keep message boundaries, each message goes
//! out as a 4-byte unsigned big-endian length, then that many bytes:
//!
//! ```text
//! 00 00 00 05 h e l l o   00 00 00 00   00 00 00 02 h i
//! ```
//!
//! (three frames: `hello`, an empty one, `hi`). The receiver reads the
//! header, then exactly that many bytes, and knows where the next message
//! starts. A receiver must not trust the length: a client that sends
//! `ff ff ff ff` would otherwise make it buffer 4 GiB. So every reader here
//! checks the length against a maximum *before* it keeps a single byte of
//! the payload, and says [`FrameError::TooLong`].
//!
//! Three ways to read, for three kinds of user, all sharing one state
//! machine:
//!
//! - [`decode`]: a pure function over a buffer the caller owns (a blocking
//!   client that reads into a `Vec`): "need more bytes", or one frame and
//!   how many bytes it took.
//! - [`FrameDecoder`]: push the bytes of each read, get whole frames back
//!   (the load generator). A frame whole inside one read is lent straight
//!   from the input; only a frame split across reads is copied, into one
//!   buffer of at most the maximum.
//! - [`FrameScanner`]: push the bytes of each read, get the frames' pieces
//!   as ranges of the input — headers, payload runs, ends — and never buffer
//!   a payload at all. The framed echo service can answer each message by
//!   sending back the header and the input ranges, with no copy, the way
//!   plain echo does.
//!
//! Read `service/echo.rs` for the plain echo these are compared with.

use std::fmt;
use std::ops::Range;

/// Bytes in a frame header: the payload length, big-endian `u32`.
pub const HEADER_BYTES: usize = 4;

/// Why a stream of frames cannot be read (or a payload cannot be framed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A header announced `len` payload bytes, more than `max` allowed.
    TooLong { len: u64, max: usize },
    /// The stream ended inside a frame, `missing` bytes short of its end.
    Truncated { missing: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooLong { len, max } => write!(
                f,
                "a frame of {len} bytes is longer than the limit of {max} bytes"
            ),
            FrameError::Truncated { missing } => {
                write!(
                    f,
                    "the stream ended {missing} bytes before the end of a frame"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The header for a payload of `len` bytes.
///
/// # Errors
///
/// [`FrameError::TooLong`] if `len` does not fit in 32 bits.
pub fn header(len: usize) -> Result<[u8; HEADER_BYTES], FrameError> {
    match u32::try_from(len) {
        Ok(n) => Ok(n.to_be_bytes()),
        Err(_) => Err(FrameError::TooLong {
            len: len as u64,
            max: u32::MAX as usize,
        }),
    }
}

/// Appends `payload` to `out` as one frame (header, then the bytes).
///
/// # Errors
///
/// [`FrameError::TooLong`] if the payload is 4 GiB or more (nothing is
/// appended then).
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let header = header(payload.len())?;
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Not a whole frame yet: at least this many more bytes are needed.
    NeedMore { at_least: usize },
    /// One frame: its payload, and how many bytes of the buffer it took
    /// (header included).
    Frame { payload: &'a [u8], consumed: usize },
}

/// Reads one frame from the start of `buf`, if it is all there.
///
/// # Errors
///
/// [`FrameError::TooLong`] as soon as the header is there and announces
/// more than `max_frame_bytes` (whatever follows it).
pub fn decode(buf: &[u8], max_frame_bytes: usize) -> Result<Decoded<'_>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_BYTES>() else {
        return Ok(Decoded::NeedMore {
            at_least: HEADER_BYTES - buf.len(),
        });
    };
    let len = check_len(*head, max_frame_bytes)?;
    let end = HEADER_BYTES + len;
    match buf.get(HEADER_BYTES..end) {
        Some(payload) => Ok(Decoded::Frame {
            payload,
            consumed: end,
        }),
        None => Ok(Decoded::NeedMore {
            at_least: end - buf.len(),
        }),
    }
}

/// The payload length in `header`, if it is within `max`.
fn check_len(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::TooLong {
            len: u64::from(len),
            max,
        }),
    }
}

/// One piece of a frame, as found by [`FrameScanner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A header is complete and its length allowed: `payload_bytes`
    /// follow. `header` holds its 4 bytes (some may have come in earlier
    /// reads).
    Header {
        header: [u8; HEADER_BYTES],
        payload_bytes: usize,
    },
    /// Payload bytes of the current frame: this range of the input.
    Payload(Range<usize>),
    /// The current frame's payload is complete.
    End,
}

/// Where the scanner is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    /// Reading a header; `got` bytes of it are in `bytes`.
    Header { bytes: [u8; HEADER_BYTES], got: u8 },
    /// Inside a payload; `left` bytes to go.
    Payload { left: usize },
    /// A bad header was seen: nothing more is read.
    Failed(FrameError),
}

/// Splits a stream into frame pieces without buffering payloads; see the
/// module docs. It holds at most the 3 bytes of an unfinished header.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    max_frame_bytes: usize,
    state: ScanState,
}

impl FrameScanner {
    /// A scanner that refuses payloads over `max_frame_bytes`.
    pub const fn new(max_frame_bytes: usize) -> Self {
        FrameScanner {
            max_frame_bytes,
            state: ScanState::Header {
                bytes: [0; HEADER_BYTES],
                got: 0,
            },
        }
    }

    /// True between frames (no part of a frame pending): where a stream
    /// may end cleanly.
    pub fn is_between_frames(&self) -> bool {
        matches!(self.state, ScanState::Header { got: 0, .. })
    }

    /// Feeds the bytes of one read and calls `on` with each piece, in
    /// order.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] at the first header over the limit: the
    /// pieces before it were delivered, nothing of or after it is, and
    /// every later call fails the same way.
    pub fn feed(&mut self, input: &[u8], mut on: impl FnMut(Piece)) -> Result<(), FrameError> {
        let mut i = 0;
        loop {
            match &mut self.state {
                ScanState::Failed(e) => return Err(*e),
                ScanState::Header { bytes, got } => {
                    let have = usize::from(*got);
                    let take = (HEADER_BYTES - have).min(input.len() - i);
                    bytes[have..have + take].copy_from_slice(&input[i..i + take]);
                    i += take;
                    if have + take < HEADER_BYTES {
                        // `take` is at most 3 here.
                        *got += take as u8;
                        return Ok(());
                    }
                    let header = *bytes;
                    match check_len(header, self.max_frame_bytes) {
                        Err(e) => {
                            self.state = ScanState::Failed(e);
                            return Err(e);
                        }
                        Ok(len) => {
                            on(Piece::Header {
                                header,
                                payload_bytes: len,
                            });
                            self.state = ScanState::Payload { left: len };
                        }
                    }
                }
                ScanState::Payload { left } => {
                    let take = (*left).min(input.len() - i);
                    if take > 0 {
                        on(Piece::Payload(i..i + take));
                        i += take;
                        *left -= take;
                    }
                    if *left > 0 {
                        return Ok(());
                    }
                    on(Piece::End);
                    self.state = ScanState::Header {
                        bytes: [0; HEADER_BYTES],
                        got: 0,
                    };
                    if i == input.len() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// End of the stream: fine between frames, an error inside one.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] inside a frame; the earlier error if the
    /// stream had failed.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.state {
            ScanState::Failed(e) => Err(e),
            ScanState::Header { got: 0, .. } => Ok(()),
            ScanState::Header { got, .. } => Err(FrameError::Truncated {
                missing: HEADER_BYTES - usize::from(got),
            }),
            ScanState::Payload { left } => Err(FrameError::Truncated { missing: left }),
        }
    }
}

/// A frame split across reads is copied here; past this capacity its
/// buffer is freed after the frame instead of kept for the next one.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// Turns reads into whole frames; see the module docs.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    scanner: FrameScanner,
    /// The payload so far of a frame that spans reads (never longer than
    /// the maximum).
    partial: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that refuses payloads over `max_frame_bytes`. Allocates
    /// nothing.
    pub const fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            scanner: FrameScanner::new(max_frame_bytes),
            partial: Vec::new(),
        }
    }

    /// Payload bytes held for a frame that is not complete yet.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Heap bytes held right now (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.partial.capacity()
    }

    /// True between frames.
    pub fn is_between_frames(&self) -> bool {
        self.scanner.is_between_frames()
    }

    /// Feeds the bytes of one read and calls `on_frame` with the payload of
    /// each complete frame, in order.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] as [`FrameScanner::feed`] says; frames
    /// before the bad header were delivered.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_frame: impl FnMut(&[u8]),
    ) -> Result<(), FrameError> {
        let partial = &mut self.partial;
        // The payload range of a frame that lies whole in this input.
        let mut whole: Option<Range<usize>> = None;
        let mut frame_len = 0;
        self.scanner.feed(input, |piece| match piece {
            Piece::Header { payload_bytes, .. } => {
                frame_len = payload_bytes;
                whole = None;
            }
            Piece::Payload(range) if partial.is_empty() && range.len() == frame_len => {
                whole = Some(range);
            }
            Piece::Payload(range) => partial.extend_from_slice(&input[range]),
            Piece::End => {
                match whole.take() {
                    Some(range) => on_frame(&input[range]),
                    None => on_frame(partial),
                }
                if partial.capacity() > KEEP_BUFFER_BYTES {
                    *partial = Vec::new();
                } else {
                    partial.clear();
                }
            }
        })
        // (A whole payload is always followed by its `End` in the same
        // call, so `whole` never outlives it.)
    }

    /// End of the stream.
    ///
    /// # Errors
    ///
    /// As [`FrameScanner::finish`].
    pub fn finish(&self) -> Result<(), FrameError> {
        self.scanner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out).unwrap();
        }
        out
    }

    /// Frames (and the error, if any) from `chunks` fed in order, checking
    /// the memory bound after each.
    fn decode_chunks(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut d = FrameDecoder::new(max);
        let mut frames = Vec::new();
        for chunk in chunks {
            let r = d.feed(chunk, |f| frames.push(f.to_vec()));
            assert!(d.buffered_bytes() <= max, "holds {}", d.buffered_bytes());
            if let Err(e) = r {
                return (frames, Some(e));
            }
        }
        (frames, None)
    }

    /// The same frames from the whole input, every split in two and three,
    /// and byte by byte; and the same from `decode` in a loop.
    #[track_caller]
    fn check_all_splits(max: usize, input: &[u8], frames: &[&[u8]], error: Option<FrameError>) {
        let expected = (frames.iter().map(|f| f.to_vec()).collect(), error);
        assert_eq!(decode_chunks(max, &[input]), expected, "whole");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(decode_chunks(max, &[a, b]), expected, "split at {i}");
            for j in i..=input.len() {
                let (b, c) = (&input[i..j], &input[j..]);
                assert_eq!(decode_chunks(max, &[a, b, c]), expected, "split {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(max, &bytes), expected, "byte by byte");
        assert_eq!(decode_loop(max, input), expected, "decode()");
    }

    /// `decode` over a buffer, as a blocking client would use it.
    fn decode_loop(max: usize, mut buf: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut frames = Vec::new();
        loop {
            match decode(buf, max) {
                Ok(Decoded::Frame { payload, consumed }) => {
                    frames.push(payload.to_vec());
                    buf = &buf[consumed..];
                }
                Ok(Decoded::NeedMore { at_least }) => {
                    assert!(at_least > 0);
                    return (frames, None);
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    #[test]
    fn frames_survive_every_split() {
        let input = framed(&[b"hello", b"", b"hi", &[0xff; 9]]);
        check_all_splits(16, &input, &[b"hello", b"", b"hi", &[0xff; 9]], None);
    }

    #[test]
    fn encode_writes_a_big_endian_length() {
        assert_eq!(framed(&[b"abc"]), b"\0\0\0\x03abc");
        assert_eq!(framed(&[b""]), b"\0\0\0\0");
        assert_eq!(header(0x0102_0304), Ok([1, 2, 3, 4]));
    }

    #[test]
    fn an_oversize_length_is_refused_before_its_payload() {
        let too_long = FrameError::TooLong { len: 17, max: 16 };
        let mut input = framed(&[b"ok"]);
        input.extend_from_slice(&17u32.to_be_bytes());
        // Frames before the bad header are delivered; the error comes with
        // the header alone, no payload needed.
        check_all_splits(16, &input, &[b"ok"], Some(too_long));
        input.extend_from_slice(&[b'x'; 17]);
        check_all_splits(16, &input, &[b"ok"], Some(too_long));
        // Then the decoder stays failed.
        let mut d = FrameDecoder::new(16);
        assert_eq!(d.feed(&input, |_| {}), Err(too_long));
        assert_eq!(d.feed(&framed(&[b"x"]), |_| panic!()), Err(too_long));
        assert_eq!(d.heap_bytes(), 0, "nothing of the payload was kept");
        // 4 GiB - 1 is refused at once, too.
        assert_eq!(
            decode(&[0xff; 4], 1 << 20),
            Err(FrameError::TooLong {
                len: u64::from(u32::MAX),
                max: 1 << 20
            })
        );
    }

    #[test]
    fn exactly_the_limit_is_fine() {
        let input = framed(&[&[7; 16]]);
        check_all_splits(16, &input, &[&[7; 16]], None);
    }

    #[test]
    fn need_more_says_how_many() {
        assert_eq!(decode(b"", 8), Ok(Decoded::NeedMore { at_least: 4 }));
        assert_eq!(decode(b"\0\0", 8), Ok(Decoded::NeedMore { at_least: 2 }));
        assert_eq!(
            decode(b"\0\0\0\x05ab", 8),
            Ok(Decoded::NeedMore { at_least: 3 })
        );
    }

    #[test]
    fn finish_says_whether_the_stream_ended_between_frames() {
        let mut d = FrameDecoder::new(8);
        d.feed(b"\0\0\0\x02h", |_| {}).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated { missing: 1 }));
        d.feed(b"i\0\0", |_| {}).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated { missing: 2 }));
        d.feed(b"\0\0", |_| {}).unwrap();
        assert!(d.is_between_frames());
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn whole_frames_are_lent_from_the_input() {
        let input = framed(&[b"one", b"two"]);
        let range = input.as_ptr_range();
        let mut d = FrameDecoder::new(8);
        let mut n = 0;
        d.feed(&input, |f| {
            assert!(range.contains(&f.as_ptr()), "copied");
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(d.heap_bytes(), 0);
    }

    #[test]
    fn the_scanner_gives_ranges_of_the_input() {
        let mut s = FrameScanner::new(8);
        let mut pieces = Vec::new();
        s.feed(b"\0\0\0\x03ab", |p| pieces.push(p)).unwrap();
        s.feed(b"c\0\0\0\0\0", |p| pieces.push(p)).unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece::Header {
                    header: [0, 0, 0, 3],
                    payload_bytes: 3
                },
                Piece::Payload(4..6),
                Piece::Payload(0..1),
                Piece::End,
                Piece::Header {
                    header: [0, 0, 0, 0],
                    payload_bytes: 0
                },
                Piece::End,
            ]
        );
        assert!(!s.is_between_frames(), "one header byte is pending");
    }

    proptest! {
        /// Any split of any sequence of frames decodes to the same frames,
        /// with the same error at the same place.
        #[test]
        fn any_split_gives_the_same_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            bad_tail in proptest::option::of(any::<u32>()),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            max in 0usize..48,
        ) {
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let mut input = framed(&slices);
            if let Some(len) = bad_tail {
                input.extend_from_slice(&len.to_be_bytes());
            }
            let whole = decode_chunks(max, &[&input]);
            prop_assert_eq!(&decode_loop(max, &input), &whole);
            // The reference: frames in order until the first one too long.
            let good: Vec<Vec<u8>> = payloads.iter().take_while(|p| p.len() <= max).cloned().collect();
            prop_assert_eq!(&whole.0, &good);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for c in at {
                chunks.push(&input[from..c]);
                from = c;
            }
            chunks.push(&input[from..]);
            prop_assert_eq!(decode_chunks(max, &chunks), whole);
        }
    }
}
