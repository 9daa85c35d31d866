//! The interactive clients `echochat echo` and `echochat chat` (stub).

use crate::cli::ClientArgs;

/// Why a client stopped early.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub fn run_echo(_args: &ClientArgs) -> Result<(), Error> {
    Err(Error("the echo client is not built yet".into()))
}

pub fn run_chat(_args: &ClientArgs) -> Result<(), Error> {
    Err(Error("the chat client is not built yet".into()))
}
