//! Architecture code (only x86_64).
pub mod x86;
