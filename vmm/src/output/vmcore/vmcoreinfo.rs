//! The VMCOREINFO note: what Linux's `crash_save_vmcoreinfo` leaves in a kdump vmcore so that a
//! debugger can open it with the matching vmlinux (drgn reads `OSRELEASE`, `PAGESIZE`,
//! `SYMBOL(swapper_pg_dir)`, `KERNELOFFSET` and, to match the vmlinux, `BUILD-ID`).
//!
//! The values are the guest's own: its release (`lockvmm_abi::UTS_RELEASE`), the GNU build ID of
//! the kernel ELF the run booted, the page-table root every CPU was using, and no KASLR (the
//! image sits at `__START_KERNEL_map` + its physical address, so `phys_base` is 0).
use std::fmt::Write as _;

use lockvmm_abi::START_KERNEL_MAP;
use object::Object;

use crate::state::Snapshot;

/// The note's name and type (Linux's `VMCOREINFO_NOTE_NAME`, type 0).
pub const VMCOREINFO_NAME: &str = "VMCOREINFO";
pub const NT_VMCOREINFO: u32 = 0;

/// The GNU build ID of an ELF image, as lowercase hex (`None` if it has none or is not ELF).
pub fn build_id_hex(elf: &[u8]) -> Option<String> {
    let file = object::File::parse(elf).ok()?;
    let id = file.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// The text of the note for a snapshot of the kernel `elf`.
pub fn vmcoreinfo(elf: &[u8], snap: &Snapshot) -> String {
    let cr3 = snap
        .cpus
        .iter()
        .find(|c| c.captured)
        .map_or(crate::memory::BOOT_CR3, |c| c.sregs.cr3)
        & !0xfff;
    let mut s = String::new();
    let _ = writeln!(s, "OSRELEASE={}", lockvmm_abi::UTS_RELEASE);
    if let Some(id) = build_id_hex(elf) {
        let _ = writeln!(s, "BUILD-ID={id}");
    }
    let _ = writeln!(s, "PAGESIZE=4096");
    // Linux gives the kernel-image address of swapper_pg_dir; the root the CPUs use is at
    // physical CR3, which the kernel image map covers.
    let _ = writeln!(
        s,
        "SYMBOL(swapper_pg_dir)={:x}",
        START_KERNEL_MAP.wrapping_add(cr3)
    );
    let _ = writeln!(
        s,
        "SYMBOL(_stext)={:x}",
        START_KERNEL_MAP + lockvmm_abi::KERNEL_PHYS_START
    );
    let _ = writeln!(s, "NUMBER(pgtable_l5_enabled)=0");
    let _ = writeln!(s, "NUMBER(phys_base)=0");
    let _ = writeln!(s, "KERNELOFFSET=0");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_guest_has_a_build_id() {
        let id = build_id_hex(crate::image::loader::EMBEDDED_GUEST).expect("a GNU build ID");
        assert_eq!(id.len(), 40, "sha1: {id}");
        assert!(build_id_hex(b"not an elf").is_none());
    }
}
