//! What the host builds in guest memory before the first instruction: Linux's two kernel
//! mappings with 2 MiB pages, a flat boot GDT, and the boot-info page.
use lockvmm_abi::{
    BOOT_INFO_PADDR, BootInfo, DIRECT_MAP_SIZE, KERNEL_MAP_SIZE, PAGE_OFFSET, START_KERNEL_MAP,
};
use vm_memory::{Bytes, GuestAddress};

use super::paging::{PTE_PCD, PTE_PRESENT, PTE_PSE, PTE_PWT, PTE_RW};
use super::{GuestMemory, MemError};

/// Physical addresses of the boot structures the host builds (all below the boot-info page at
/// 0x7000 or between it and 1 MiB; see `lockvmm_abi` for the rest of the map).
pub const BOOT_GDT_PADDR: u64 = 0x500;
const PML4_PADDR: u64 = 0x9000;
const PDPT_DIRECT_PADDR: u64 = 0xa000;
const PD_DIRECT_PADDR: u64 = 0xb000; // four pages: 4 GiB of 2 MiB pages
const PDPT_KERNEL_PADDR: u64 = 0xf000;
const PD_KERNEL_PADDR: u64 = 0x10000;
/// CR3 of every vCPU at boot.
pub const BOOT_CR3: u64 = PML4_PADDR;

const HUGE_2M: u64 = 2 << 20;

impl GuestMemory {
    pub fn write_boot_info(&self, info: &BootInfo) -> Result<(), MemError> {
        self.mark_host_write(BOOT_INFO_PADDR, size_of::<BootInfo>());
        self.mem()
            .write_obj(*info, GuestAddress(BOOT_INFO_PADDR))
            .map_err(|_| MemError::BadPhys {
                addr: BOOT_INFO_PADDR,
                len: size_of::<BootInfo>(),
            })
    }

    /// Publishes the virtual clock to the guest (see `BootInfo::vtime_ns`).
    pub fn set_vtime(&self, ns: u64) {
        let at = BOOT_INFO_PADDR + std::mem::offset_of!(BootInfo, vtime_ns) as u64;
        // The boot-info page is always inside RAM (MIN_MEM_MIB), so this cannot fail.
        self.mark_host_write(at, 8);
        let _ = self.mem().write_obj(ns, GuestAddress(at));
    }

    /// Builds Linux's two kernel mappings with 2 MiB pages: the kernel image at
    /// `__START_KERNEL_map` and all of the low 4 GiB at `page_offset_base` (the xAPIC page
    /// uncached). Nothing is identity-mapped: a NULL or low pointer faults, as in Linux.
    pub fn setup_page_tables(&self) -> Result<(), MemError> {
        let pml4_index = |va: u64| (va >> 39) & 0x1ff;
        let pdpt_index = |va: u64| (va >> 30) & 0x1ff;
        let table = PTE_PRESENT | PTE_RW;
        let w = |addr: u64, val: u64| self.write_phys(addr, &val.to_le_bytes());

        w(
            PML4_PADDR + pml4_index(PAGE_OFFSET) * 8,
            PDPT_DIRECT_PADDR | table,
        )?;
        for gib in 0..DIRECT_MAP_SIZE >> 30 {
            let pd = PD_DIRECT_PADDR + gib * 4096;
            w(
                PDPT_DIRECT_PADDR + (pdpt_index(PAGE_OFFSET) + gib) * 8,
                pd | table,
            )?;
            for i in 0..512 {
                let phys = (gib << 30) + i * HUGE_2M;
                let uncached = if phys == lockvmm_abi::APIC_BASE_PHYS & !(HUGE_2M - 1) {
                    PTE_PCD | PTE_PWT
                } else {
                    0
                };
                w(pd + i * 8, phys | table | PTE_PSE | uncached)?;
            }
        }

        w(
            PML4_PADDR + pml4_index(START_KERNEL_MAP) * 8,
            PDPT_KERNEL_PADDR | table,
        )?;
        w(
            PDPT_KERNEL_PADDR + pdpt_index(START_KERNEL_MAP) * 8,
            PD_KERNEL_PADDR | table,
        )?;
        for i in 0..KERNEL_MAP_SIZE / HUGE_2M {
            w(PD_KERNEL_PADDR + i * 8, (i * HUGE_2M) | table | PTE_PSE)?;
        }
        Ok(())
    }

    /// A flat boot GDT (Linux's selectors: 0x10 code, 0x18 data) for the moments before the
    /// kernel loads its own.
    pub fn setup_boot_gdt(&self) -> Result<(), MemError> {
        let gdt: [u64; 4] = [
            0,
            0x00cf_9b00_0000_ffff,
            0x00af_9b00_0000_ffff,
            0x00cf_9300_0000_ffff,
        ];
        let bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
        self.write_phys(BOOT_GDT_PADDR, &bytes)
    }
}
