//! Reading an HTTP/1.x request head — the part a student types into `nc`:
//!
//! ```text
//! GET /api/status HTTP/1.1      <- the request line: method, target, version
//! Host: x                       <- headers, one `Name: value` a line
//!                               <- an empty line ends the head
//! ```
//!
//! `httparse` does the byte-level work (it is strict where it must be and
//! accepts a bare `\n` line end, which is what `nc` sends). It is not
//! incremental: it reads a buffer from the start and says "partial" until
//! the empty line has arrived. The service keeps the bytes of an unfinished
//! head (at most [`MAX_HEAD`], past which the answer is `431`) and asks
//! again when more arrive. This module only turns `httparse`'s answer into
//! what the service needs: method, target, keep-alive, and how many body
//! bytes follow (a GET may carry one; it is skipped, never stored).

use std::fmt;

/// The longest request head accepted (8 KiB, the contract's limit): past
/// it the answer is `431 Request Header Fields Too Large`.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines in a head (more is answered `431` too).
pub const MAX_HEADERS: usize = 64;

/// A request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// As sent: `GET`, `HEAD`, `POST`... (a token; never longer than the head).
    pub method: String,
    /// The request target, e.g. `/api/conns?limit=10`.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client keeps the connection for another request:
    /// HTTP/1.1 does unless it sends `Connection: close`, HTTP/1.0 only
    /// with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// What follows the head.
    pub body: Body,
    /// Bytes of the head, the empty line included.
    pub len: usize,
}

/// The body announced by a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `Content-Length: n` (0 when absent).
    Length(u64),
    /// `Transfer-Encoding` (chunked): its end cannot be found without
    /// decoding it, so the service answers and closes the connection.
    Chunked,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] headers: `431`.
    TooLarge,
    /// Not HTTP/1.x as `httparse` reads it, or a bad `Content-Length`: `400`.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(
                f,
                "the request head is longer than {MAX_HEAD} bytes or has more than {MAX_HEADERS} headers"
            ),
            HeadError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Reads a head from the start of `buf`: `Ok(None)` while it is not
/// complete (more bytes needed), `Ok(Some(head))` once it is.
///
/// # Errors
/// [`HeadError::TooLarge`] for a head over [`MAX_HEAD`] bytes (complete or
/// not) or with too many headers; [`HeadError::Malformed`] for anything
/// `httparse` rejects or a bad `Content-Length`.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(malformed_reason(e))),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    // A complete parse has filled all three; the fallbacks are unreachable.
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("").to_string();
    let minor_version = req.version.unwrap_or(1);
    let mut keep_alive = minor_version >= 1;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(HeadError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(HeadError::Malformed("two different Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    let body = if chunked {
        Body::Chunked
    } else {
        Body::Length(length.unwrap_or(0))
    };
    Ok(Some(Head {
        method,
        target,
        minor_version,
        keep_alive,
        body,
        len,
    }))
}

/// Digits only (no sign, no spaces inside), at most 18 of them.
fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn malformed_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid byte in a header name",
        httparse::Error::HeaderValue => "invalid byte in a header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request line",
        httparse::Error::Version => "not HTTP/1.0 or HTTP/1.1",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "malformed request",
    }
}

/// The path and query of a target: `/api/conns?limit=5` gives
/// (`/api/conns`, `limit=5`).
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn a_whole_head() {
        let head = parse_head(SIMPLE).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/api/status");
        assert_eq!(head.minor_version, 1);
        assert!(head.keep_alive);
        assert_eq!(head.body, Body::Length(0));
        assert_eq!(head.len, SIMPLE.len());
    }

    #[test]
    fn split_at_every_byte_is_partial_until_the_end() {
        for cut in 0..SIMPLE.len() {
            assert_eq!(parse_head(&SIMPLE[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_head(SIMPLE).unwrap().is_some());
    }

    #[test]
    fn netcat_line_endings_work() {
        let head = parse_head(b"GET / HTTP/1.1\nHost: x\n\n").unwrap().unwrap();
        assert_eq!(head.target, "/");
        assert_eq!(head.len, 24);
    }

    #[test]
    fn keep_alive_rules() {
        let h = |s: &[u8]| parse_head(s).unwrap().unwrap().keep_alive;
        assert!(!h(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!h(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(h(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!h(b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n"));
    }

    #[test]
    fn bodies_are_measured() {
        let head = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, Body::Length(12));
        let head = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, Body::Chunked);
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / FTP/1.1\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert!(
                matches!(parse_head(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_head_over_8_kib_is_too_large_complete_or_not() {
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        // Exactly at the limit is fine.
        let mut ok = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        ok.resize(MAX_HEAD - 4, b'a');
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok.len(), MAX_HEAD);
        assert!(parse_head(&ok).unwrap().is_some());
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&head), Err(HeadError::TooLarge));
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(
            split_target("/api/conns?limit=5"),
            ("/api/conns", "limit=5")
        );
        assert_eq!(split_target("/"), ("/", ""));
    }
}
