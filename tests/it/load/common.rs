//! `load.rs` says `mod common;`, as it did when it was a test binary of its
//! own; this makes that name the harness of `tests/it/`, so the file keeps
//! its content.

pub use crate::common::*;
