//! The frame readers: any split gives the same frames and the same error;
//! `decode`, `FrameDecoder` and `FrameScanner` agree; nothing is buffered
//! past the limit.

#![no_main]

use echochat::frame::{Decoded, FrameDecoder, FrameError, FrameScanner, Piece, decode};
use libfuzzer_sys::fuzz_target;

mod split;

type Outcome = (Vec<Vec<u8>>, Option<FrameError>);

fn with_decoder(max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut d = FrameDecoder::new(max);
    let mut frames = Vec::new();
    for chunk in chunks {
        let r = d.feed(chunk, |f| {
            assert!(f.len() <= max);
            frames.push(f.to_vec());
        });
        assert!(d.buffered_bytes() <= max);
        if let Err(e) = r {
            return (frames, Some(e));
        }
    }
    (frames, None)
}

fn with_scanner(max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut s = FrameScanner::new(max);
    let mut frames = Vec::new();
    let mut current = Vec::new();
    for chunk in chunks {
        let r = s.feed(chunk, |p| match p {
            Piece::Header { payload_bytes, .. } => {
                assert!(payload_bytes <= max);
                current.clear();
            }
            Piece::Payload(range) => current.extend_from_slice(&chunk[range]),
            Piece::End => frames.push(std::mem::take(&mut current)),
        });
        if let Err(e) = r {
            return (frames, Some(e));
        }
    }
    (frames, None)
}

fn with_decode(max: usize, mut buf: &[u8]) -> Outcome {
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

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    let (input, pieces) = split::chunks(rest);
    let whole = with_decode(max, input);
    assert_eq!(with_decoder(max, &[input]), whole);
    assert_eq!(with_decoder(max, &pieces), whole);
    assert_eq!(with_scanner(max, &pieces), whole);
});
