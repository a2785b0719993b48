//! Taint flags (Linux's `add_taint` and `print_tainted`, in `kernel/panic.c`; a file of its
//! own here because `panic.rs` holds the panic path). The version decides how many flags the
//! `Tainted:` field has, one letter or a space each.
use core::sync::atomic::{AtomicU64, Ordering};

use lockvmm_abi::knob::KernelVersion;

pub const TAINT_WARN: u32 = 9;
pub const TAINT_OOT_MODULE: u32 = 12;
pub const TAINT_UNSIGNED_MODULE: u32 = 13;
pub const TAINT_SOFTLOCKUP: u32 = 14;

#[unsafe(no_mangle)]
pub static tainted_mask: AtomicU64 = AtomicU64::new(0);

/// `tnts[]` / `taint_flags[]`: (set, clear) letters in bit order. 6.6's has 19 (… K X T N),
/// 4.4's 16 (… O E L K); 3.10's 13 (… C I O: E came in 3.15, L in 3.19, K in 4.0);
/// 2.6.32's 11 (… W C: I came in 2.6.39, O in 3.2).
const FLAGS: [(u8, u8); 19] = [
    (b'P', b'G'),
    (b'F', b' '),
    (b'S', b' '),
    (b'R', b' '),
    (b'M', b' '),
    (b'B', b' '),
    (b'U', b' '),
    (b'D', b' '),
    (b'A', b' '),
    (b'W', b' '),
    (b'C', b' '),
    (b'I', b' '),
    (b'O', b' '),
    (b'E', b' '),
    (b'L', b' '),
    (b'K', b' '),
    (b'X', b' '),
    (b'T', b' '),
    (b'N', b' '),
];

fn flag_count() -> usize {
    match crate::init::version::linux_version() {
        KernelVersion::V6_6 => 19,
        KernelVersion::V4_4 => 16,
        KernelVersion::V3_10 => 13,
        KernelVersion::V2_6 => 11,
    }
}

/// `add_taint(flag, …)`.
pub fn add_taint(flag: u32) {
    tainted_mask.fetch_or(1 << flag, Ordering::Relaxed);
}

/// `print_tainted()`: `Tainted: G           OE  ` or `Not tainted`.
pub struct PrintTainted;

impl core::fmt::Display for PrintTainted {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let mask = tainted_mask.load(Ordering::Relaxed);
        if mask == 0 {
            return f.write_str("Not tainted");
        }
        let mut buf = [0u8; 19];
        let n = flag_count();
        for (i, (b, &(set, clear))) in buf.iter_mut().zip(FLAGS.iter()).take(n).enumerate() {
            *b = if mask & (1 << i) != 0 { set } else { clear };
        }
        f.write_str("Tainted: ")?;
        f.write_str(core::str::from_utf8(&buf[..n]).unwrap_or("?"))
    }
}
