//! Pages the host wrote in guest RAM. KVM's dirty log (`KVM_GET_DIRTY_LOG`) sees only the
//! guest's own writes; the host's (the virtual clock, the clockevent page, the trace records
//! of host actions, hypercall answers) go through [`GuestMemory`](super::GuestMemory) and are
//! marked here, so that restoring a snapshot (`lockvmm explore`) puts back the union of both.
use std::sync::atomic::{AtomicU64, Ordering};

/// The page size both logs use.
pub const PAGE: u64 = 4096;

/// One bit per guest page.
#[derive(Debug)]
pub struct HostDirty {
    words: Vec<AtomicU64>,
}

impl HostDirty {
    pub fn new(bytes: u64) -> Self {
        let pages = bytes.div_ceil(PAGE);
        HostDirty {
            words: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Marks the pages `[addr, addr + len)` touches (addresses outside RAM are ignored: the
    /// write itself fails on them).
    pub fn mark(&self, addr: u64, len: usize) {
        if len == 0 {
            return;
        }
        let first = addr / PAGE;
        let last = addr.saturating_add(len as u64 - 1) / PAGE;
        for page in first..=last {
            if let Some(w) = self.words.get((page / 64) as usize) {
                w.fetch_or(1 << (page % 64), Ordering::Relaxed);
            }
        }
    }

    /// The bitmap (64 pages a word, as KVM's dirty log), cleared.
    pub fn take(&self) -> Vec<u64> {
        self.words
            .iter()
            .map(|w| w.swap(0, Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_every_page_a_write_spans_and_take_clears() {
        let d = HostDirty::new(1 << 20);
        d.mark(PAGE - 1, 2);
        d.mark(65 * PAGE, 1);
        d.mark(u64::MAX - 1, 8);
        let bits = d.take();
        assert_eq!(bits[0], 0b11);
        assert_eq!(bits[1], 0b10);
        assert!(d.take().iter().all(|&w| w == 0));
    }
}
