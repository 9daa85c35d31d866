//! The chat service (stub; see issue #3).
