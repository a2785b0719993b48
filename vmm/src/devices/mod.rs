//! Emulated devices: the serial console.
pub mod serial;
