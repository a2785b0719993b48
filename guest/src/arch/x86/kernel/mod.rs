//! arch/x86/kernel.
pub mod apic;
pub mod cpu;
pub mod dumpstack;
pub mod head_64;
pub mod idt;
pub mod irq;
pub mod nmi;
pub mod process_64;
pub mod smpboot;
pub mod traps;
