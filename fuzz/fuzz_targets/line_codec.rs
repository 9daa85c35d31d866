//! The line decoder: any split of a stream gives the same lines, the
//! partial-line buffer never passes the limit, nothing panics.

#![no_main]

use echochat::codec::{Line, LineDecoder};
use libfuzzer_sys::fuzz_target;

mod split;

#[derive(Debug, PartialEq)]
enum Owned {
    Text(String),
    TooLong,
    Invalid(Vec<u8>),
}

fn decode(max: usize, chunks: &[&[u8]]) -> Vec<Owned> {
    let mut d = LineDecoder::new(max);
    let mut out = Vec::new();
    let mut push = |l: Line<'_>| {
        out.push(match l {
            Line::Text(t) => {
                assert!(!t.is_empty() && t.len() <= max);
                assert!(!t.contains(['\n', '\r', '\x08', '\x7f']));
                Owned::Text(t.to_string())
            }
            Line::TooLong => Owned::TooLong,
            Line::InvalidUtf8(b) => {
                assert!(!b.is_empty() && b.len() <= max);
                Owned::Invalid(b.to_vec())
            }
        })
    };
    for chunk in chunks {
        d.feed(chunk, &mut push);
        assert!(d.buffered_bytes() <= max);
    }
    d.finish(&mut push);
    assert_eq!(d.heap_bytes(), 0);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max % 80);
    let (input, pieces) = split::chunks(rest);
    assert_eq!(decode(max, &[input]), decode(max, &pieces));
});
