//! `dis`: disassembly of kernel code from the snapshot's memory, through iced-x86 in AT&T
//! syntax, as crash shows it (crash runs gdb's disassembler):
//!
//! ```text
//! crash> dis -l schedule 2
//! /usr/src/debug/kernel/sched/core.c: 3528
//! 0xffffffff8161d2a0 <schedule>:    push   %rbp
//! 0xffffffff8161d2a1 <schedule+1>:    mov    %rsp,%rbp
//! ```
//!
//! (gdb puts a tab after the colon.) Branch targets and RIP-relative operands get the symbol
//! gdb would print (`<sym+off>`).
use std::fmt::Write as _;

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, OpKind};

use super::{Inspector, parse_addr};

/// Bytes `dis` reads at most (a whole function of this kernel is far smaller).
const MAX_BYTES: u64 = 64 << 10;
/// Instructions `dis ADDR COUNT` shows at most.
const MAX_COUNT: u64 = 4096;
/// The longest x86 instruction.
const MAX_INSN: u64 = 15;

const USAGE: &str = "usage: dis [-l] [-r] SYMBOL|SYMBOL+OFF|ADDR [COUNT]";

impl Inspector {
    /// An address from `SYMBOL`, `SYMBOL+OFF` (decimal or 0x hex) or a hex address, and
    /// whether it named a whole text symbol (no offset).
    pub(super) fn code_addr(&self, what: &str) -> Result<(u64, bool), String> {
        let (name, off) = match what.rsplit_once('+') {
            Some((n, o)) => {
                let off = match o.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => o.parse::<u64>(),
                }
                .map_err(|_| format!("invalid offset in {what}"))?;
                (n, Some(off))
            }
            None => (what, None),
        };
        if let Some(sym) = self.syms.get(name) {
            return Ok((
                sym.addr.wrapping_add(off.unwrap_or(0)),
                off.is_none() && sym.is_text,
            ));
        }
        match (parse_addr(what), off) {
            (Some(a), _) => Ok((a, false)),
            _ => Err(format!("invalid address or symbol: {what}")),
        }
    }

    pub(super) fn dis(&self, args: &[&str]) -> Result<String, String> {
        let lines = args.contains(&"-l");
        let reverse = args.contains(&"-r");
        let rest: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        let (target, count) = match rest.as_slice() {
            [t] => (*t, None),
            [t, n] => (
                *t,
                Some(
                    n.parse::<u64>()
                        .map_err(|_| format!("dis: invalid count: {n}"))?
                        .clamp(1, MAX_COUNT),
                ),
            ),
            _ => return Err(USAGE.into()),
        };
        let (addr, whole) = self.code_addr(target).map_err(|e| format!("dis: {e}"))?;
        if lines && self.lines.is_none() {
            return Err("dis: -l: no line tables (the kernel is not a file on disk)".into());
        }
        // The range: a whole function, COUNT instructions from ADDR, or (-r) the function up
        // to and including ADDR.
        let func = self.syms.lookup(addr);
        let (start, end, limit) = if reverse {
            let f = func
                .as_ref()
                .ok_or_else(|| format!("dis: -r: {addr:x} is in no function"))?;
            (addr - f.offset, addr.saturating_add(1), u64::MAX)
        } else if whole && count.is_none() {
            let size = func.as_ref().map_or(0, |f| f.size).max(1);
            (addr, addr.saturating_add(size), u64::MAX)
        } else {
            let n = count.unwrap_or(1);
            (addr, addr.saturating_add(n * MAX_INSN), n)
        };
        let len = (end.saturating_sub(start)).min(MAX_BYTES);
        let a = self.analysis();
        let bytes = read_code(&a, start, len).ok_or_else(|| {
            format!("dis: invalid kernel virtual address: {start:x}  type: \"text\"")
        })?;
        let mut decoder = Decoder::with_ip(64, &bytes, start, DecoderOptions::NONE);
        let mut fmt = GasFormatter::new();
        fmt.options_mut().set_first_operand_char_index(7);
        fmt.options_mut().set_hex_prefix("0x");
        fmt.options_mut().set_hex_suffix("");
        fmt.options_mut().set_uppercase_hex(false);
        fmt.options_mut().set_branch_leading_zeros(false);
        let mut insn = Instruction::default();
        let mut s = String::new();
        let mut text = String::new();
        let mut last_line = None;
        let mut shown = 0;
        while decoder.can_decode() && shown < limit {
            decoder.decode_out(&mut insn);
            let ip = insn.ip();
            if ip >= end {
                break;
            }
            if let (true, Some(src)) = (lines, &self.lines) {
                let here = src.location(ip);
                if here.is_some() && here != last_line {
                    let l = here.clone().unwrap_or_default();
                    let (file, line) = l.rsplit_once(':').unwrap_or((&l, ""));
                    let _ = writeln!(s, "{file}: {line}");
                    last_line = here;
                }
            }
            text.clear();
            fmt.format(&insn, &mut text);
            if insn.is_invalid() {
                text = "(bad)".into();
            } else if matches!(insn.op0_kind(), OpKind::NearBranch64) {
                let _ = write!(text, " <{}>", self.syms.describe(insn.near_branch64()));
            } else if insn.is_ip_rel_memory_operand() {
                let target = insn.ip_rel_memory_address();
                let _ = write!(
                    text,
                    "        # {target:#x} <{}>",
                    self.syms.describe(target)
                );
            }
            let _ = writeln!(s, "{ip:#x} <{}>:\t{text}", self.syms.describe(ip));
            shown += 1;
        }
        if shown == 0 {
            return Err(format!("dis: nothing to disassemble at {addr:x}"));
        }
        Ok(s)
    }
}

/// Reads `len` bytes of code at `start`, or as many as are readable from there (a range may
/// end at the last mapped page); `None` when not even the first byte is.
fn read_code(a: &crate::analysis::Analysis<'_>, start: u64, len: u64) -> Option<Vec<u8>> {
    if let Ok(b) = a.mem.read(start, len as usize) {
        return Some(b);
    }
    let first_page_end = (start | 0xfff).wrapping_add(1);
    let short = first_page_end.saturating_sub(start).min(len);
    a.mem
        .read(start, short as usize)
        .ok()
        .filter(|b| !b.is_empty())
}
