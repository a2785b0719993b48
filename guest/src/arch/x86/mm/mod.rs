//! Page-fault handling.
pub mod fault;
