//! The local APIC (Linux's `arch/x86/kernel/apic/apic.c`, hence the repeated name).
#[allow(clippy::module_inception)]
pub mod apic;
