//! Which pages of a host mapping the process ever touched, from `/proc/self/pagemap`.
//!
//! Guest RAM is a private anonymous mapping, and so is the zero-filled copy a snapshot keeps:
//! a page that is neither present nor swapped out was never written and reads as zero. Skipping
//! those pages makes copying guest memory and looking for its non-zero chunks cost what the
//! guest used (a few MiB), not the machine's size (256 MiB). `mincore(2)` would say the same
//! for present pages but reports a swapped-out page as absent, which would drop its data;
//! pagemap tells both apart, and reading it needs no `unsafe`.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

pub const PAGE: usize = 4096;
/// pagemap(5): bit 63 "page present", bit 62 "page swapped".
const PRESENT: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;

/// For each 4 KiB page of `len` bytes at host address `addr` (page-aligned), whether it may hold
/// non-zero data (present or swapped). `None` when pagemap cannot be read or the range is not
/// page-aligned: then every page must be treated as touched.
pub fn touched_pages(addr: usize, len: usize) -> Option<Vec<bool>> {
    if !addr.is_multiple_of(PAGE) {
        return None;
    }
    let pages = len.div_ceil(PAGE);
    let mut f = File::open("/proc/self/pagemap").ok()?;
    f.seek(SeekFrom::Start((addr / PAGE * 8) as u64)).ok()?;
    let mut raw = vec![0u8; pages * 8];
    f.read_exact(&mut raw).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|e| u64::from_le_bytes(e.try_into().expect("8 bytes")) & (PRESENT | SWAPPED) != 0)
            .collect(),
    )
}

/// Whether each `chunk`-byte piece of `buf` holds a non-zero byte. Pages of `buf` the process
/// never touched (a zero-initialised heap copy keeps most of them so) are zero and not read.
pub fn nonzero_chunks(buf: &[u8], chunk: usize) -> Vec<bool> {
    let chunk = chunk.max(1);
    let base = buf.as_ptr() as usize;
    // The whole host pages inside `buf`; bytes outside them (a misaligned head or tail) are
    // always read.
    let first = base.next_multiple_of(PAGE) - base;
    let whole = buf.len().saturating_sub(first) / PAGE;
    let touched = touched_pages(base + first, whole * PAGE);
    let may_hold = |at: usize| match &touched {
        Some(t) if at >= first && at < first + whole * PAGE => t[(at - first) / PAGE],
        _ => true,
    };
    (0..buf.len())
        .step_by(chunk)
        .map(|at| {
            let stop = (at + chunk).min(buf.len());
            let mut p = at;
            while p < stop {
                // Up to the next host page boundary, so an untouched page is skipped unread.
                let next = (((base + p) / PAGE + 1) * PAGE - base).min(stop);
                if may_hold(p) && any_nonzero(&buf[p..next]) {
                    return true;
                }
                p = next;
            }
            false
        })
        .collect()
}

/// A byte-wise OR over 64-byte blocks, which the compiler turns into vector instructions.
fn any_nonzero(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .any(|c| c.iter().fold(0u8, |a, &b| a | b) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nonzero_chunks_of_a_mostly_untouched_copy() {
        let mut buf = vec![0u8; 64 << 20];
        buf[5 * 65536 + 4097] = 1;
        buf[(64 << 20) - 1] = 7;
        let found = nonzero_chunks(&buf, 65536);
        assert_eq!(found.len(), 1024);
        let set: Vec<usize> = (0..found.len()).filter(|&i| found[i]).collect();
        assert_eq!(set, vec![5, 1023]);
        // A misaligned view: the same bytes, found through the always-read head and tail.
        let view = &buf[1..];
        let found = nonzero_chunks(view, 65536);
        assert!(found[5] && found[1023] && found.iter().filter(|&&b| b).count() == 2);
    }
}
