//! Core kernel: printk, panic, reboot, locking.
#[macro_use]
pub mod printk;
pub mod locking;
pub mod panic;
pub mod reboot;
