//! Framebuffer devices.
pub mod core;
