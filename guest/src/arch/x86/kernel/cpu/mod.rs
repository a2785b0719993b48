//! Per-CPU descriptor tables.
pub mod common;
