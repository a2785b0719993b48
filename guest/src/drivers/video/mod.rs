//! Video drivers.
pub mod fbdev;
