//! `rd`: kernel memory in 8-, 16-, 32- or 64-bit units with crash's ASCII column
//! (memory.c, display_memory): 16 bytes a line, each unit in hex and a space, then two spaces
//! and the bytes as ASCII (`.` for unprintable ones), a short last line padded so its ASCII
//! lines up:
//!
//! ```text
//! ffffffff81e00100:  65762078756e694c 332e33206e6f6973   Linux version 3.3
//! ```
//!
//! `-x` leaves the ASCII out.
use std::fmt::Write as _;

use super::{Inspector, parse_addr};
use crate::image::dwarf::parse_path;

/// Bytes one `rd` shows at most (crash has no limit; a vmcore this small needs none larger).
pub(super) const MAX_RD_BYTES: u64 = 32 << 10;
const USAGE: &str = "usage: rd [-8|-16|-32|-64] [-x] ADDR|SYMBOL|EXPR [COUNT]";

impl Inspector {
    /// An address from hex, a symbol, or a C expression rooted at a global
    /// (`runqueues[56].__lock`).
    pub(super) fn data_addr(&self, what: &str) -> Result<u64, String> {
        if let Some(a) = parse_addr(what) {
            return Ok(a);
        }
        if let Some(a) = self.syms.addr_of(what.trim_start_matches('&')) {
            return Ok(a);
        }
        let (root, steps) = parse_path(what)?;
        let base = self
            .syms
            .addr_of(&root)
            .ok_or_else(|| format!("invalid address or symbol: {what}"))?;
        let place = self.dwarf.var_place(&root, &steps)?;
        Ok(base.wrapping_add(place.offset))
    }

    pub(super) fn rd(&self, args: &[&str]) -> Result<String, String> {
        let mut size = 8u64;
        let mut ascii = true;
        let mut rest = Vec::new();
        for a in args {
            match *a {
                "-8" => size = 1,
                "-16" => size = 2,
                "-32" => size = 4,
                "-64" => size = 8,
                "-x" => ascii = false,
                s if s.starts_with('-') => return Err(USAGE.into()),
                s => rest.push(s),
            }
        }
        let (what, count) = match rest.as_slice() {
            [a] => (*a, 1),
            [a, n] => (
                *a,
                n.parse::<u64>()
                    .map_err(|_| format!("rd: invalid count: {n}"))?,
            ),
            _ => return Err(USAGE.into()),
        };
        let start = self.data_addr(what).map_err(|e| format!("rd: {e}"))?;
        let shown = count.min(MAX_RD_BYTES / size);
        let per_line = 16 / size;
        let digits = (size * 2) as usize;
        // crash's ASCII_START_n: where the ASCII column begins on a full line.
        let ascii_start = 16 + 3 + per_line as usize * (digits + 1);
        let a = self.analysis();
        let mut s = String::new();
        let mut line = String::new();
        let mut chars = String::new();
        for i in 0..shown {
            let at = start.wrapping_add(i * size);
            let bytes = a.mem.read(at, size as usize).map_err(|_| {
                format!(
                    "rd: invalid kernel virtual address: {at:x}  type: \"{}-bit KVADDR\"",
                    size * 8
                )
            })?;
            if i % per_line == 0 {
                flush(&mut s, &mut line, &mut chars, ascii, ascii_start);
                let _ = write!(line, "{at:016x}:  ");
            }
            let mut v = [0u8; 8];
            v[..bytes.len()].copy_from_slice(&bytes);
            let _ = write!(line, "{:0digits$x} ", u64::from_le_bytes(v));
            chars.extend(bytes.iter().map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            }));
        }
        flush(&mut s, &mut line, &mut chars, ascii, ascii_start);
        if shown < count {
            let _ = writeln!(
                s,
                "(rd: {count} units asked for; the first {shown} shown, {MAX_RD_BYTES} bytes at most)"
            );
        }
        Ok(s)
    }
}

/// Ends a line: pads it to the ASCII column and appends the characters.
fn flush(s: &mut String, line: &mut String, chars: &mut String, ascii: bool, at: usize) {
    if line.is_empty() {
        return;
    }
    if ascii {
        while line.len() < at {
            line.push(' ');
        }
        line.push_str("  ");
        line.push_str(chars);
    }
    s.push_str(line.trim_end());
    s.push('\n');
    line.clear();
    chars.clear();
}
