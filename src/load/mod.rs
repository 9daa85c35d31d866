//! The load generator `echochat load` (stub).

use crate::cli::LoadCommand;

/// Why a load run could not start or finish.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub fn run(_cmd: &LoadCommand) -> Result<(), Error> {
    Err(Error("the load generator is not built yet".into()))
}
