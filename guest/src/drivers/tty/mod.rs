//! TTY layer (only the serial console).
pub mod serial;
