//! The clients' blocking prompt reader: host, port and name questions
//! asked before the event loop starts.
//!
//! stdin as an event source of the loop itself (readiness without ever
//! switching the terminal to non-blocking mode) is in `sys.rs`, shared with
//! the server's console. Read `session.rs` next for the loop.

use std::io::{self, BufRead};

use crate::sys::read_stdin;

/// Reads one line for a prompt, a byte at a time so that nothing after the
/// line is swallowed by a buffer the event loop would never see. Returns
/// `None` at end of input. Lines longer than `max` bytes are cut (the rest
/// is read and dropped).
pub(super) fn read_line(max: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match read_stdin(&mut byte)? {
            0 if line.is_empty() => return Ok(None),
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ if line.len() < max => line.push(byte[0]),
            _ => {}
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).trim().to_string()))
}

/// Reads one line from a buffered reader into `line`, without its `\n` or
/// `\r\n`, keeping at most `max` bytes (memory stays bounded whatever
/// the input). `None` at end of input; `Some(true)` when the line was
/// longer than `max` (the rest of it was read and dropped). For the
/// lock-step clients (`echo --udp`, `echo --framed`), which read stdin
/// only between exchanges.
pub(super) fn read_bounded_line(
    r: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, used) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let found = used > chunk.len();
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        too_long |= line.len() > max;
        r.consume(used);
        if found {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if too_long {
        line.truncate(max);
    }
    Ok(Some(too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines_lose_their_line_end() {
        let mut input: &[u8] = b"one\r\ntwo\n\nlast";
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(too_long) = read_bounded_line(&mut input, &mut line, 8).unwrap() {
            assert!(!too_long);
            got.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(got, ["one", "two", "", "last"]);
        let mut input: &[u8] = b"0123456789\nok\n";
        assert_eq!(
            read_bounded_line(&mut input, &mut line, 8).unwrap(),
            Some(true)
        );
        assert_eq!(line, b"01234567");
        assert_eq!(
            read_bounded_line(&mut input, &mut line, 8).unwrap(),
            Some(false)
        );
        assert_eq!(line, b"ok");
        assert_eq!(read_bounded_line(&mut input, &mut line, 8).unwrap(), None);
    }
}
