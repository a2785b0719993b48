//! Low-level entry code.
pub mod entry_64;
