//! The echo service (being written).
