//! init/: `start_kernel`.
pub mod main;
