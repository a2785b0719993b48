//! The kallsyms table built into the guest image (Linux's `kernel/kallsyms.c` with
//! `scripts/kallsyms.c`): the guest names its own text addresses (`%pS`), so the console is
//! exactly what the guest printed.
//!
//! Linux links vmlinux, runs `scripts/kallsyms` over its symbols, and links again with the
//! generated table (twice more if the table's size moved the addresses). lockvmm reserves a
//! fixed-size section, `.kallsyms`, in the guest instead: after the one link, the host's build
//! script (`vmm/build.rs`) writes the table into that section's bytes in a copy of the ELF. No
//! address moves, so one link is enough, and the guest reads the table like any other data.
//!
//! Layout (little-endian): a [`Header`], then `count` entries of [`ENTRY_SIZE`] bytes sorted
//! by address (`addr: u64`, `size: u32`, `name_off: u32`), then the names, each a length
//! byte followed by that many bytes of UTF-8, at `names_off + name_off`.

/// Bytes reserved for the table (`.kallsyms` in guest/linker.ld).
pub const TABLE_SIZE: usize = 64 * 1024;
/// "KSYM": the table was filled in (an unpatched image has zeros and names nothing).
pub const MAGIC: u32 = 0x4d59_534b;
/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 16;
/// Longest name kept (the length byte).
pub const NAME_MAX: usize = 255;

/// The table's first bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`] once filled in.
    pub magic: u32,
    /// Number of entries.
    pub count: u32,
    /// Byte offset of the names from the table's start.
    pub names_off: u32,
    /// Bytes used in all.
    pub len: u32,
}

/// Bytes of the header.
pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();
