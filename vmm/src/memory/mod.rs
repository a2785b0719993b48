//! Guest memory: the live RAM of a running machine ([`GuestMemory`], through vm-memory), the
//! boot page tables and GDT the host builds, the page-table walk, and the frozen copy a
//! snapshot keeps ([`FrozenMemory`]). Guest memory is untrusted input: every access is bounds
//! checked and every failure is a value, never a panic.
mod boot;
mod dirty;
mod frozen;
mod guest;
mod paging;
mod resident;

pub use boot::{BOOT_CR3, BOOT_GDT_PADDR};
pub use dirty::HostDirty;
pub use frozen::FrozenMemory;
pub use guest::{GuestMemory, MAX_MEM_MIB, MIN_MEM_MIB, MemError};
pub use paging::walk_page_tables;
pub use resident::{nonzero_chunks, touched_pages};
