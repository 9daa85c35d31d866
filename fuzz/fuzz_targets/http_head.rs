//! The HTTP request head reader (`service/http/request.rs`): whatever the
//! bytes, no panic; a head is found only within `MAX_HEAD`; reading it in
//! pieces (as the service does, asking again as bytes arrive) finds the
//! same head or the same refusal; and what follows a head never changes it.

#![no_main]

use echochat::service::http::request::{HeadError, MAX_HEAD, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, buf)) = data.split_first() else {
        return;
    };
    let whole = parse_head(buf);
    match &whole {
        Ok(Some(head)) => {
            assert!(head.len <= buf.len() && head.len <= MAX_HEAD);
            assert!(head.minor_version <= 1);
            assert!(!head.method.is_empty() && !head.target.is_empty());
            let one_word = |c: char| !c.is_ascii_control() && c != ' ';
            assert!(head.target.chars().all(one_word), "{:?}", head.target);
            // The head alone, or with other bytes after it: the same head.
            assert_eq!(parse_head(&buf[..head.len]), whole);
            let mut longer = buf[..head.len].to_vec();
            longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse_head(&longer), whole);
        }
        Ok(None) => assert!(buf.len() <= MAX_HEAD),
        Err(HeadError::TooLarge | HeadError::Malformed(_)) => {}
    }
    // Asked with only the first bytes, the reader either waits for more
    // or already refuses; it never finds a different head.
    let k = usize::from(cut) * buf.len() / 255;
    match parse_head(&buf[..k]) {
        Ok(None) => {}
        Ok(Some(head)) => assert_eq!(whole, Ok(Some(head)), "a head in a prefix"),
        Err(e) => assert!(
            matches!(e, HeadError::TooLarge) || whole == Err(e.clone()),
            "a prefix refused ({e}) but the whole gives {whole:?}"
        ),
    }
});
