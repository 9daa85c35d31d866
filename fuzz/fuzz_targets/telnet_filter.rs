//! The telnet filter and parser: any split gives the same data and
//! replies; data never grows; replies stay bounded; a stream without IAC
//! passes untouched and unanswered.

#![no_main]

use echochat::telnet::{IAC, Parser, Piece, Step, TelnetFilter, Token};
use libfuzzer_sys::fuzz_target;

mod split;

fn filter(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut f = TelnetFilter::new();
    let (mut data, mut replies) = (Vec::new(), Vec::new());
    for chunk in chunks {
        f.feed(chunk, |p| match p {
            Piece::Data(d) => data.extend_from_slice(d),
            Piece::Reply(r) => replies.extend_from_slice(&r),
        });
    }
    (data, replies)
}

/// The parser's data bytes, fed by `feed` over `chunks` and by `step`.
fn parse(chunks: &[&[u8]]) -> Vec<u8> {
    let mut p = Parser::new();
    let mut fed = Vec::new();
    for chunk in chunks {
        p.feed(chunk, |t| {
            if let Token::Data(d) = t {
                fed.extend_from_slice(d);
            }
        });
    }
    let mut q = Parser::new();
    let stepped: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.iter().copied())
        .filter(|&b| q.step(b) == Step::Data)
        .collect();
    assert_eq!(fed, stepped);
    fed
}

fuzz_target!(|data: &[u8]| {
    let (input, pieces) = split::chunks(data);
    let whole = filter(&[input]);
    assert_eq!(whole, filter(&pieces));
    assert!(whole.0.len() <= input.len());
    assert!(whole.1.len() <= input.len() + 3, "replies amplify");
    assert_eq!(whole.0, parse(&pieces), "filter and parser agree on data");
    if !input.contains(&IAC) {
        assert_eq!(whole.0, input);
        assert!(whole.1.is_empty());
    }
});
