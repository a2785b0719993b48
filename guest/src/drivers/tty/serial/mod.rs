//! Serial drivers.
pub mod serial8250;
