//! The x86 PMU driver (Linux's `arch/x86/events`).
pub mod core;
pub mod intel;
