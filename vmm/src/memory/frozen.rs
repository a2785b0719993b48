//! Kernel virtual memory of a frozen snapshot: physical memory as a byte image, read through
//! the guest's own page tables.
use super::MemError;
use super::paging::walk_page_tables;

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
        // A length from untrusted data (DWARF, guest memory) larger than all of memory cannot
        // be read; refuse it before allocating.
        if len > self.phys.len() {
            return Err(MemError::BadVirt(va));
        }
        let mut out = Vec::with_capacity(len);
        let mut addr = va;
        while out.len() < len {
            let n = ((4096 - (addr & 0xfff)) as usize).min(len - out.len());
            let pa = self.translate(addr).ok_or(MemError::BadVirt(addr))?;
            let pa = usize::try_from(pa).map_err(|_| MemError::BadVirt(addr))?;
            let bytes = self
                .phys
                .get(pa..pa.saturating_add(n))
                .ok_or(MemError::BadVirt(addr))?;
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
