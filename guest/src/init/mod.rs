//! init/: `start_kernel`.
pub mod main;
pub mod version;
