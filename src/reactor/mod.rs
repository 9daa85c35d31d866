//! The reactor (stub, being written).
use crate::cli::ServeArgs;

#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub fn serve(_args: &ServeArgs) -> Result<(), Error> {
    Err(Error("not built yet".into()))
}
