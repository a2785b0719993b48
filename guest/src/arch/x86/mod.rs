//! x86_64: boot, descriptor tables, entry stubs, traps, the local APIC, SMP bring-up, and the
//! paravirtual interface to the lockvmm host.
pub mod entry;
pub mod events;
pub mod irqflags;
pub mod kernel;
pub mod lockvmm;
pub mod mm;
pub mod msr;
pub mod percpu;
pub mod preempt;
