//! The clients' blocking prompt reader: host, port and name questions
//! asked before the event loop starts.
//!
//! stdin as an event source of the loop itself (readiness without ever
//! switching the terminal to non-blocking mode) is in `sys.rs`, shared with
//! the server's console. Read `session.rs` next for the loop.

use std::io;

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
