//! kallsyms (Linux's `kernel/kallsyms.c`): the guest names its own text addresses, for `%pS`
//! (`sprint_symbol`) and `%pB` (`sprint_backtrace`) in every Call Trace, RIP line and lockdep
//! report. The table is built into the image at build time, as Linux's is: see
//! `lockvmm_abi::kallsyms` for its layout and why one reserved section replaces Linux's second
//! link. Module text is named from the module's own symbols, with ` [module]` after it.
use core::cell::UnsafeCell;
use core::fmt;

use lockvmm_abi::kallsyms::{ENTRY_SIZE, HEADER_SIZE, Header, MAGIC, TABLE_SIZE};

/// The reserved table, filled in by `vmm/build.rs` (an `UnsafeCell`, so the compiler reads
/// the bytes the build wrote rather than folding the placeholder it sees here).
#[repr(C, align(8))]
pub struct KallsymsTable(UnsafeCell<[u8; TABLE_SIZE]>);

// SAFETY: written only by the build, before the guest runs; the guest only reads it.
unsafe impl Sync for KallsymsTable {}

/// Not all zeros, so the section keeps its bytes in the file for the build to fill (an
/// all-zero one could become NOBITS).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".kallsyms")]
pub static kallsyms_table: KallsymsTable = KallsymsTable(UnsafeCell::new({
    let mut t = [0u8; TABLE_SIZE];
    t[0] = b'?';
    t
}));

fn table() -> &'static [u8; TABLE_SIZE] {
    // SAFETY: never written at run time (see `KallsymsTable`).
    unsafe { &*kallsyms_table.0.get() }
}

fn u32_at(t: &[u8], at: usize) -> u32 {
    t.get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(t: &[u8], at: usize) -> u64 {
    u64::from(u32_at(t, at)) | (u64::from(u32_at(t, at + 4)) << 32)
}

fn header() -> Option<Header> {
    let t = table();
    let h = Header {
        magic: u32_at(t, 0),
        count: u32_at(t, 4),
        names_off: u32_at(t, 8),
        len: u32_at(t, 12),
    };
    let fits = HEADER_SIZE + h.count as usize * ENTRY_SIZE <= h.names_off as usize
        && (h.len as usize) <= TABLE_SIZE;
    (h.magic == MAGIC && fits).then_some(h)
}

/// A symbol an address falls in.
#[derive(Clone, Copy)]
pub struct Symbol {
    pub name: &'static str,
    pub start: u64,
    pub size: u64,
    /// The module whose text it is (None: the kernel's).
    pub module: Option<&'static str>,
}

fn name_at(h: &Header, off: u32) -> &'static str {
    let t = table();
    let at = h.names_off as usize + off as usize;
    let Some(&len) = t.get(at) else { return "?" };
    t.get(at + 1..at + 1 + len as usize)
        .and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or("?")
}

/// `kallsyms_lookup`: the kernel or module symbol containing `addr`. As Linux's
/// `get_symbol_pos`, a symbol reaches to the next one (or the end of its text), whatever its
/// ELF size: a return address just past a `noreturn` call names the function before it.
pub fn kallsyms_lookup(addr: u64) -> Option<Symbol> {
    if let Some(sym) = crate::kernel::module::module_address_lookup(addr) {
        return Some(sym);
    }
    let (start, end) = kernel_text();
    lookup_in(addr, start, end)
}

/// The kernel's text, `[_text, _etext)`.
fn kernel_text() -> (u64, u64) {
    unsafe extern "C" {
        static _text: u8;
        static _etext: u8;
    }
    // Linker-script symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(_text) as u64,
        core::ptr::addr_of!(_etext) as u64,
    )
}

/// The symbol containing `addr` among those in `[lo, hi)` (the kernel's text or a module's),
/// reaching to the next symbol or `hi`.
pub fn lookup_in(addr: u64, lo: u64, hi: u64) -> Option<Symbol> {
    if !(lo..hi).contains(&addr) {
        return None;
    }
    let h = header()?;
    let t = table();
    let entry = |i: usize| HEADER_SIZE + i * ENTRY_SIZE;
    let (mut a, mut b) = (0usize, h.count as usize);
    while a < b {
        let mid = (a + b) / 2;
        if u64_at(t, entry(mid)) <= addr {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    let i = a.checked_sub(1)?;
    let start = u64_at(t, entry(i));
    if start < lo {
        return None;
    }
    let next = if i + 1 < h.count as usize {
        u64_at(t, entry(i + 1)).min(hi)
    } else {
        hi
    };
    Some(Symbol {
        name: name_at(&h, u32_at(t, entry(i) + 12)),
        start,
        size: next - start,
        module: None,
    })
}

/// The address of a kernel function by name (`kallsyms_lookup_name`).
pub fn kallsyms_lookup_name(name: &str) -> Option<u64> {
    let h = header()?;
    let t = table();
    (0..h.count as usize).find_map(|i| {
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        (name_at(&h, u32_at(t, at + 12)) == name).then(|| u64_at(t, at))
    })
}

/// `%pS`: `name+0xoff/0xsize [module]`, or the bare address when no symbol covers it.
pub struct Sym(pub u64);
/// `%pB`: a return address, named by the call before it (`addr - 1`), as `sprint_backtrace`
/// does for a `noreturn` call that ends its function.
pub struct SymB(pub u64);

fn write_sym(f: &mut fmt::Formatter, addr: u64, back: bool) -> fmt::Result {
    let look = if back { addr.wrapping_sub(1) } else { addr };
    match kallsyms_lookup(look) {
        Some(s) => {
            write!(f, "{}+{:#x}/{:#x}", s.name, addr - s.start, s.size)?;
            match s.module {
                Some(m) => write!(f, " [{}]", m),
                None => Ok(()),
            }
        }
        None => write!(f, "{:#x}", addr),
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_sym(f, self.0, false)
    }
}

impl fmt::Display for SymB {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_sym(f, self.0, true)
    }
}

/// `__kernel_text_address`: kernel or loaded module text (what a stack scan prints).
pub fn kernel_text_address(addr: u64) -> bool {
    let (start, end) = kernel_text();
    (start..end).contains(&addr) || crate::kernel::module::module_address_lookup(addr).is_some()
}
