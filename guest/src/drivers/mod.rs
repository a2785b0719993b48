//! Device drivers.
pub mod tty;
pub mod video;
