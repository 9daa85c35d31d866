//! Writing an HTTP/1.1 response head — what the student reads back in `nc`:
//!
//! ```text
//! HTTP/1.1 200 OK                  <- the status line: version, code, reason
//! Content-Type: application/json   <- what the body is
//! Content-Length: 1234             <- where it ends (so the connection can
//!                                     carry the next request: keep-alive)
//! Connection: keep-alive
//!                                  <- an empty line, then the body
//! ```

use std::io::Write;

/// The status codes this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    Unavailable,
}

impl Code {
    pub fn number(self) -> u16 {
        match self {
            Code::Ok => 200,
            Code::BadRequest => 400,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::HeadTooLarge => 431,
            Code::Unavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::BadRequest => "Bad Request",
            Code::NotFound => "Not Found",
            Code::MethodNotAllowed => "Method Not Allowed",
            Code::HeadTooLarge => "Request Header Fields Too Large",
            Code::Unavailable => "Service Unavailable",
        }
    }
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// Appends a response head to `out`. `length` is the body's length (`None`
/// for a stream that ends when the connection does); `keep_alive` says
/// whether the connection stays open for another request.
pub fn write_head(
    out: &mut Vec<u8>,
    code: Code,
    content_type: &str,
    length: Option<usize>,
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: echochat/{}\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\n",
        code.number(),
        code.reason(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(n) = length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What an HTTP client gets when the server already holds `--max-clients`
/// connections (the reactor sends it instead of chat's `! server full`
/// line, then closes).
pub const SERVICE_UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 31\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
\r\n\
! server full, try again later\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_status_line_length_and_connection() {
        let mut out = Vec::new();
        write_head(&mut out, Code::NotFound, TEXT, Some(12), false, &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("\r\nContent-Length: 12\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn the_503_is_well_formed() {
        let head = crate::service::http::request::parse_head(b"GET / HTTP/1.1\r\n\r\n");
        assert!(head.is_ok());
        let text = std::str::from_utf8(SERVICE_UNAVAILABLE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
