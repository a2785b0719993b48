//! The live guest RAM of a machine, through vm-memory, with reads of guest virtual addresses.
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::dirty::{HostDirty, PAGE};
use super::paging::walk_page_tables;

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
    /// The pages the host wrote since the last `take_host_dirty` (shared by every clone).
    host_dirty: std::sync::Arc<HostDirty>,
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
        Ok(GuestMemory {
            mem,
            bytes,
            host_dirty: std::sync::Arc::new(HostDirty::new(bytes)),
        })
    }

    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    pub fn size(&self) -> u64 {
        self.bytes
    }

    /// A copy of all of guest RAM. Pages the guest never touched are neither present nor
    /// swapped in the host mapping and are zero, so only the others are copied (`pagemap`, see
    /// `resident`): a 256 MiB machine that used 20 MiB copies 20 MiB, and the copy's untouched
    /// pages stay unallocated.
    pub fn copy_all(&self) -> Vec<u8> {
        use super::resident::{PAGE, touched_pages};
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};
        let size = self.bytes as usize;
        let mut out = vec![0u8; size];
        for region in self.mem.iter() {
            let start = region.start_addr().0 as usize;
            let len = region.len() as usize;
            let touched = region
                .get_host_address(MemoryRegionAddress(0))
                .ok()
                .and_then(|host| touched_pages(host as usize, len));
            for i in 0..len.div_ceil(PAGE) {
                if touched.as_ref().is_some_and(|t| !t[i]) {
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
        self.host_dirty.mark(addr, data.len());
        self.mem
            .write_slice(data, GuestAddress(addr))
            .map_err(|_| MemError::BadPhys {
                addr,
                len: data.len(),
            })
    }

    /// Marks pages the host writes other than through `write_phys`.
    pub(super) fn mark_host_write(&self, addr: u64, len: usize) {
        self.host_dirty.mark(addr, len);
    }

    /// The pages the host wrote since the last call (64 a word), cleared.
    pub fn take_host_dirty(&self) -> Vec<u64> {
        self.host_dirty.take()
    }

    /// Copies back from `image` (a copy of all of RAM) every page whose bit is set in `dirty`;
    /// returns how many. The copy is not marked dirty: it is the state restored.
    pub fn restore_pages(&self, image: &[u8], dirty: &[u64]) -> usize {
        let mut n = 0;
        for (w, &word) in dirty.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let page = w as u64 * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                let at = (page * PAGE) as usize;
                let Some(src) = image.get(at..(at + PAGE as usize).min(image.len())) else {
                    continue;
                };
                if self.mem.write_slice(src, GuestAddress(at as u64)).is_ok() {
                    n += 1;
                }
            }
        }
        n
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

    /// Writes `data` at a guest virtual address, page by page.
    pub fn write_virt(&self, cr3: u64, gva: u64, data: &[u8]) -> Result<(), MemError> {
        let mut done = 0;
        let mut addr = gva;
        while done < data.len() {
            let in_page = (4096 - (addr & 0xfff)) as usize;
            let n = in_page.min(data.len() - done);
            let phys = self.translate(cr3, addr).ok_or(MemError::BadVirt(addr))?;
            self.write_phys(phys, &data[done..done + n])?;
            done += n;
            addr = addr.wrapping_add(n as u64);
        }
        Ok(())
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
}
