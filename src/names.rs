//! The names file: chat's memory of names by client IP (stub; see issue #3).
