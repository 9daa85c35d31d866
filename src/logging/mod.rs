//! Logging (stub, being written).
pub mod logfmt;
