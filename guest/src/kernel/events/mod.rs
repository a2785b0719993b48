//! Performance events (Linux's `kernel/events`).
pub mod core;
