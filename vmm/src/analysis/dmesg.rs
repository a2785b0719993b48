//! The guest's kernel log, read from `__log_buf` the way `crash`'s `log` reads it.
use crate::image::{DebugInfo, Symbols};
use crate::state::vtime::Secs;

/// Reads `__log_buf` (Linux-style records) through `read`.
pub fn dmesg_from(
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
    syms: &Symbols,
    dwarf: &DebugInfo,
) -> Vec<String> {
    let (Some(buf), Some(next)) = (syms.addr_of("__log_buf"), syms.addr_of("log_next_seq")) else {
        return Vec::new();
    };
    // Sizes come from the kernel's DWARF, untrusted: a record of at most a page, a ring of at
    // most 64 Ki records.
    let Some((rec_size, count)) = dwarf
        .array_of("__log_buf")
        .filter(|(s, c)| (1..=4096).contains(s) && (1..=65536).contains(c))
    else {
        return Vec::new();
    };
    let off = |m: &str| dwarf.member_offset("printk_log", m);
    let (Some(ts_off), Some(len_off), Some(text_off)) = (off("ts_nsec"), off("len"), off("text"))
    else {
        return Vec::new();
    };
    let Some(seq) = read(next, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    else {
        return Vec::new();
    };
    let first = seq.saturating_sub(count);
    (first..seq)
        .filter_map(|s| {
            let rec = read(buf.wrapping_add((s % count) * rec_size), rec_size as usize)?;
            let field = |off: u64, len: usize| {
                let at = usize::try_from(off).ok()?;
                rec.get(at..at.checked_add(len)?)
            };
            let ts = u64::from_le_bytes(field(ts_off, 8)?.try_into().ok()?);
            let len = u16::from_le_bytes(field(len_off, 2)?.try_into().ok()?) as usize;
            let at = usize::try_from(text_off).ok()?;
            let text = rec.get(at..at.saturating_add(len).min(rec.len()))?;
            // The record as the guest wrote it (it names its own addresses: kallsyms).
            let text = crate::state::text::escape_bytes_line(text);
            Some(format!("[{:>12}] {text}", Secs(ts),))
        })
        .collect()
}
