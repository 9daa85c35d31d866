//! LineDecoder: turns a byte stream into lines (stub; see issue #3).
