//! Low-level entry code.
pub mod common;
pub mod entry_64;
