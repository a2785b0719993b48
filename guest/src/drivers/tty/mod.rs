//! TTY layer: the serial console and the VT console.
pub mod serial;
pub mod vt;
