//! Guest physical memory, the boot page tables and GDT, and bounds-checked reads of guest
//! virtual addresses. Guest memory is untrusted input: every access goes through vm-memory,
//! which refuses addresses outside RAM.
use lockvmm_abi::{
    BOOT_INFO_PADDR, BootInfo, DIRECT_MAP_SIZE, KERNEL_MAP_SIZE, PAGE_OFFSET, START_KERNEL_MAP,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

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

const PTE_PRESENT: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
const PTE_PSE: u64 = 1 << 7;
const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const HUGE_2M: u64 = 2 << 20;

/// Smallest and largest RAM a machine may have (RAM must stay below the xAPIC page).
pub const MIN_MEM_MIB: u64 = 64;
pub const MAX_MEM_MIB: u64 = 3072;

#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("cannot allocate {mib} MiB of guest memory: {reason}")]
    Alloc { mib: u64, reason: String },
    #[error("invalid kernel virtual address {0:#018x}")]
    BadVirt(u64),
    #[error("guest physical range {addr:#x}+{len} is outside guest RAM")]
    BadPhys { addr: u64, len: usize },
}

/// The guest's RAM: one region from physical 0.
#[derive(Clone)]
pub struct GuestMemory {
    mem: GuestMemoryMmap,
    bytes: u64,
}

impl GuestMemory {
    pub fn new(mib: u64) -> Result<Self, MemError> {
        let bytes = mib << 20;
        let mem =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), bytes as usize)]).map_err(|e| {
                MemError::Alloc {
                    mib,
                    reason: e.to_string(),
                }
            })?;
        Ok(GuestMemory { mem, bytes })
    }

    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    pub fn size(&self) -> u64 {
        self.bytes
    }

    /// A copy of all of guest RAM. Pages the guest never touched are not resident in the host
    /// mapping and are zero, so only resident pages are copied (`mincore`): a 256 MiB machine
    /// that used 20 MiB copies 20 MiB.
    pub fn copy_all(&self) -> Vec<u8> {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};
        const PAGE: usize = 4096;
        let size = self.bytes as usize;
        let mut out = vec![0u8; size];
        for region in self.mem.iter() {
            let start = region.start_addr().0 as usize;
            let len = region.len() as usize;
            let Ok(host) = region.get_host_address(MemoryRegionAddress(0)) else {
                continue;
            };
            let mut resident = vec![0u8; len.div_ceil(PAGE)];
            // SAFETY: `host..host+len` is this region's live mapping (owned by `self.mem`), and
            // `resident` has one byte per page of it, as mincore(2) requires.
            let ok = unsafe { libc::mincore(host.cast(), len, resident.as_mut_ptr()) } == 0;
            for (i, r) in resident.iter().enumerate() {
                if ok && r & 1 == 0 {
                    continue;
                }
                let at = start + i * PAGE;
                let n = PAGE.min(size - at);
                let _ = self
                    .mem
                    .read_slice(&mut out[at..at + n], GuestAddress(at as u64));
            }
        }
        out
    }

    /// Reads `len` bytes at a guest physical address.
    pub fn read_phys(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
        let mut buf = vec![0u8; len];
        self.mem
            .read_slice(&mut buf, GuestAddress(addr))
            .map_err(|_| MemError::BadPhys { addr, len })?;
        Ok(buf)
    }

    pub fn read_phys_u64(&self, addr: u64) -> Result<u64, MemError> {
        self.mem
            .read_obj(GuestAddress(addr))
            .map_err(|_| MemError::BadPhys { addr, len: 8 })
    }

    pub fn write_phys(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        self.mem
            .write_slice(data, GuestAddress(addr))
            .map_err(|_| MemError::BadPhys {
                addr,
                len: data.len(),
            })
    }

    /// Translates a guest virtual address by walking the page tables rooted at `cr3`.
    /// `None` if it is not mapped.
    pub fn translate(&self, cr3: u64, gva: u64) -> Option<u64> {
        walk_page_tables(cr3, gva, |pa| self.read_phys_u64(pa).ok())
    }

    /// Reads `len` bytes at a guest virtual address, page by page (pages may be discontiguous).
    pub fn read_virt(&self, cr3: u64, gva: u64, len: usize) -> Result<Vec<u8>, MemError> {
        let mut out = Vec::with_capacity(len);
        let mut addr = gva;
        while out.len() < len {
            let in_page = (4096 - (addr & 0xfff)) as usize;
            let n = in_page.min(len - out.len());
            let phys = self.translate(cr3, addr).ok_or(MemError::BadVirt(addr))?;
            out.extend(self.read_phys(phys, n)?);
            addr = addr.wrapping_add(n as u64);
        }
        Ok(out)
    }

    pub fn read_virt_u64(&self, cr3: u64, gva: u64) -> Result<u64, MemError> {
        let b = self.read_virt(cr3, gva, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn read_virt_u32(&self, cr3: u64, gva: u64) -> Result<u32, MemError> {
        let b = self.read_virt(cr3, gva, 4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Reads a `#[repr(C)]` ABI structure at a guest virtual address.
    pub fn read_virt_obj<T: vm_memory::ByteValued + Default>(
        &self,
        cr3: u64,
        gva: u64,
    ) -> Result<T, MemError> {
        let bytes = self.read_virt(cr3, gva, size_of::<T>())?;
        let mut obj = T::default();
        obj.as_mut_slice().copy_from_slice(&bytes);
        Ok(obj)
    }

    pub fn write_boot_info(&self, info: &BootInfo) -> Result<(), MemError> {
        self.mem
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
        let _ = self.mem.write_obj(ns, GuestAddress(at));
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

/// Translates `gva` by walking 4-level page tables rooted at `cr3` (1 GiB / 2 MiB / 4 KiB
/// pages), reading page-table entries with `read_u64` (guest physical → value).
pub fn walk_page_tables(cr3: u64, gva: u64, read_u64: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    // Canonical addresses only.
    let top = gva >> 47;
    if top != 0 && top != 0x1ffff {
        return None;
    }
    let mut table = cr3 & PTE_ADDR_MASK;
    for level in (0..4).rev() {
        let index = (gva >> (12 + 9 * level)) & 0x1ff;
        let entry = read_u64(table + index * 8)?;
        if entry & PTE_PRESENT == 0 {
            return None;
        }
        let base = entry & PTE_ADDR_MASK;
        if level == 0 {
            return Some(base | (gva & 0xfff));
        }
        if entry & PTE_PSE != 0 && (level == 1 || level == 2) {
            let page_mask = (1u64 << (12 + 9 * level)) - 1;
            return Some((base & !page_mask) | (gva & page_mask));
        }
        table = base;
    }
    None
}

/// Kernel virtual memory of a frozen snapshot (physical memory as a byte image).
pub struct FrozenMemory<'a> {
    pub phys: &'a [u8],
    pub cr3: u64,
}

impl FrozenMemory<'_> {
    fn phys_u64(&self, pa: u64) -> Option<u64> {
        let at = usize::try_from(pa).ok()?;
        let bytes = self.phys.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    pub fn translate(&self, va: u64) -> Option<u64> {
        walk_page_tables(self.cr3, va, |pa| self.phys_u64(pa))
    }

    /// Reads `len` bytes at kernel virtual `va` (page by page).
    pub fn read(&self, va: u64, len: usize) -> Result<Vec<u8>, MemError> {
        let mut out = Vec::with_capacity(len);
        let mut addr = va;
        while out.len() < len {
            let n = ((4096 - (addr & 0xfff)) as usize).min(len - out.len());
            let pa = self.translate(addr).ok_or(MemError::BadVirt(addr))? as usize;
            let bytes = self.phys.get(pa..pa + n).ok_or(MemError::BadVirt(addr))?;
            out.extend_from_slice(bytes);
            addr = addr.wrapping_add(n as u64);
        }
        Ok(out)
    }

    pub fn u64(&self, va: u64) -> Result<u64, MemError> {
        Ok(u64::from_le_bytes(
            self.read(va, 8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn u32(&self, va: u64) -> Result<u32, MemError> {
        Ok(u32::from_le_bytes(
            self.read(va, 4)?.try_into().expect("4 bytes"),
        ))
    }
}
