//! x86-64 4-level paging, as the guest's page tables use it.

pub(crate) const PTE_PRESENT: u64 = 1 << 0;
pub(crate) const PTE_RW: u64 = 1 << 1;
pub(crate) const PTE_PWT: u64 = 1 << 3;
pub(crate) const PTE_PCD: u64 = 1 << 4;
pub(crate) const PTE_PSE: u64 = 1 << 7;
pub(crate) const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

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
