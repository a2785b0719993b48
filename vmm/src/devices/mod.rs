//! Emulated devices: the serial console and the PMU.
pub mod pmu;
pub mod serial;
