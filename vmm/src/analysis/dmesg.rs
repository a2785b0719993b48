//! The guest's kernel log, read from `__log_buf` the way `crash`'s `log` reads it.
use crate::image::{DebugInfo, Symbols};

/// Reads `__log_buf` (Linux-style records) through `read`.
pub fn dmesg_from(
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
    syms: &Symbols,
    dwarf: &DebugInfo,
) -> Vec<String> {
    let (Some(buf), Some(next)) = (syms.addr_of("__log_buf"), syms.addr_of("log_next_seq")) else {
        return Vec::new();
    };
    let Some((rec_size, count)) = dwarf
        .array_of("__log_buf")
        .filter(|(s, c)| *s > 0 && *c > 0)
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
            let rec = read(buf + (s % count) * rec_size, rec_size as usize)?;
            let ts = u64::from_le_bytes(
                rec.get(ts_off as usize..ts_off as usize + 8)?
                    .try_into()
                    .ok()?,
            );
            let len = u16::from_le_bytes(
                rec.get(len_off as usize..len_off as usize + 2)?
                    .try_into()
                    .ok()?,
            ) as usize;
            let text = rec.get(text_off as usize..(text_off as usize + len).min(rec.len()))?;
            // The guest has no kallsyms: name its `[<address>]`s as the console does.
            let text = String::from_utf8_lossy(text);
            let text = if text.contains("[<") {
                crate::image::symbols::annotate_addresses(&text, syms)
                    .trim_end()
                    .to_string()
            } else {
                text.into_owned()
            };
            Some(format!(
                "[{:5}.{:06}] {text}",
                ts / 1_000_000_000,
                (ts % 1_000_000_000) / 1000,
            ))
        })
        .collect()
}
