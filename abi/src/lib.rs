//! The contract between the lockvmm host (`vmm/`) and its guest kernel (`guest/`).
//!
//! Both sides compile this crate, so a number defined here can never drift between them.
//! Everything is plain `#[repr(C)]` data, constants, and `#[repr]` enums with a checked
//! conversion from the raw value (`from_raw`, `None` for a value the contract does not define):
//! the guest is `no_std` and the host reads these structures out of guest memory with bounds
//! checks.
//!
//! # Modules
//! - [`hypercall`]: the hypercall port, numbers and results, lockup kinds, `IPI_NMI`.
//! - [`layout`]: the memory map, [`BootInfo`], the clockevent page, the program window.
//! - [`program`]: the scenario program ([`ProgramHeader`], [`TaskDesc`], [`OpDesc`]) and the
//!   enums of its fields ([`program::OpKind`], [`program::LockMode`], …).
//! - [`regs`]: [`PtRegs`], RFLAGS bits, MSRs, interrupt vectors, exception names.
//! - [`locking`]: the lab's spinlock encoding and the `qspinlock_spinning_on` table.
//! - [`stacks`]: kernel, IRQ and exception stacks (sizes, IST order, symbols).
//! - [`entry`]: the entry stubs the host's unwinder crosses and where they keep `pt_regs`.
//! - [`task`]: `task_struct` states.
//! - [`knob`]: the scenario's fault knobs in [`BootInfo`].
//! - [`hook`]: hook points ([`Hypercall::Hook`]).
//! - [`trace`]: the per-CPU trace ring buffer's records and event types.
//! - [`lockdep`]: what the guest's lockdep and `might_sleep` tell the host about a splat.
//!
//! The items that existed before the split are also re-exported at their old paths
//! (`lockvmm_abi::Hypercall`, `lockvmm_abi::op::LOCK`, `lockvmm_abi::msr::IA32_PMC0`, …).
//!
//! # Hypercalls
//! The guest issues `out %eax, %dx` with `DX = HYPERCALL_PORT` and `EAX = nr` (a [`Hypercall`]).
//! Arguments travel in `RDI, RSI, RCX, R8` (the System V order without RDX, which holds the port);
//! a result, where a call has one, comes back in `RAX`. Unknown numbers and invalid arguments are
//! refused by the host with `RAX = HC_EINVAL` and are never fatal to the host.
#![no_std]
#![deny(missing_docs)]

/// Defines a fieldless `#[repr]` enum of a contract together with its checked conversions:
/// `ALL` (every value, in declaration order), `from_raw` (`None` for an undefined value) and
/// `raw` (the same as `as`). Variant values must be literals.
macro_rules! contract_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal,
            )+
        }
    ) => {
        $(#[$meta])*
        #[repr($repr)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant = $value,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$($value),+].len()] = [$(Self::$variant),+];

            /// Decodes a raw value; `None` for a value the contract does not define.
            pub const fn from_raw(raw: $repr) -> Option<Self> {
                match raw {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The raw value (the same as `self as` the representation).
            pub const fn raw(self) -> $repr {
                self as $repr
            }
        }
    };
}

/// The guest's kernel release (`uname -r`, Linux's `UTS_RELEASE`): its boot banner and the
/// `OSRELEASE=` of a vmcore's VMCOREINFO.
pub const UTS_RELEASE: &str = "6.6.0-lockvmm";

/// The guest's tick rate (Linux's `CONFIG_HZ`): `jiffies` is the virtual clock in units of
/// `1 s / HZ`.
pub const HZ: u64 = 100;

pub mod entry;
pub mod hook;
pub mod hypercall;
pub mod kallsyms;
pub mod knob;
pub mod layout;
pub mod lockdep;
pub mod locking;
pub mod program;
pub mod regs;
pub mod stacks;
pub mod task;
pub mod trace;

// The paths every item had before the split into modules.
pub use hypercall::{
    HC_EINVAL, HC_OK, HYPERCALL_PORT, Hypercall, IPI_NMI, LOCKUP_HARD, LOCKUP_SOFT, SERIAL_PORT,
};
pub use layout::{
    APIC_BASE_PHYS, BOOT_INFO_PADDR, BOOT_MAGIC, BootInfo, CLOCKEVENT_PADDR, DIRECT_MAP_SIZE,
    KERNEL_MAP_SIZE, KERNEL_PHYS_START, MODULES_VADDR, NO_EVENT, NR_CPUS, PAGE_OFFSET, PROGRAM_MAX,
    PROGRAM_PADDR, START_KERNEL_MAP,
};
pub use program::{
    HandlerDesc, LockDesc, OpDesc, PROGRAM_POWER_OFF_WHEN_DONE, ProgramHeader, TaskDesc,
};
pub use regs::{CPU_KHZ, PT_REGS_SIZE, PtRegs, eflags, exception_name, msr, vector};

#[cfg(test)]
mod tests;

// SAFETY (for each impl): plain `#[repr(C)]` structs of integers and byte arrays, so every bit
// pattern is a valid value and there are no pointers or padding-dependent invariants.
#[cfg(feature = "host")]
mod host_impls {
    use super::*;
    // SAFETY: `#[repr(C)]`, integers only: every bit pattern is a valid value.
    unsafe impl vm_memory::ByteValued for BootInfo {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for ProgramHeader {}
    // SAFETY: as above (integers and a byte array).
    unsafe impl vm_memory::ByteValued for TaskDesc {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for OpDesc {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for PtRegs {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for HandlerDesc {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for LockDesc {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for trace::TraceBufHeader {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for trace::TraceEntry {}
    // SAFETY: as above.
    unsafe impl vm_memory::ByteValued for crate::lockdep::SplatRecord {}
}
