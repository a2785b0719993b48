//! Intel PMU specifics.
pub mod core;
pub mod lbr;
