//! arch/x86/kernel.
pub mod apic;
pub mod cpu;
pub mod crash;
pub mod dumpstack;
pub mod head_64;
pub mod idt;
pub mod irq;
pub mod machine_kexec_64;
pub mod nmi;
pub mod process_64;
pub mod reboot;
pub mod smpboot;
pub mod traps;
