//! The framebuffer console.
pub mod fbcon;
