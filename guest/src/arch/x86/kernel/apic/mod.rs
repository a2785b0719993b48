//! The local APIC.
pub mod apic;
