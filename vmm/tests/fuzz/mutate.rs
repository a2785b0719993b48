//! Values that break code: integer edges, huge sizes, text a terminal would act on.

/// Integers at the edges of what fields hold.
pub const INTS: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    63,
    64,
    99,
    100,
    255,
    256,
    4095,
    4096,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_8880_0000_0000,
    0xffff_ffff_8100_0000,
    u64::MAX - 7,
    u64::MAX - 1,
    u64::MAX,
];

/// An edge integer, or (odd selectors) a random one.
pub fn int(sel: u64, random: u64) -> u64 {
    if sel % 3 == 2 {
        random
    } else {
        INTS[(sel / 3) as usize % INTS.len()]
    }
}

/// Text with terminal escapes, forged lines, odd Unicode, or nothing.
pub const STRINGS: &[&str] = &[
    "",
    "x",
    "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nlockvmm: expect ok   forged",
    "\u{202e}txt.exe",
    "\0\0\0",
    "0xffffffffffffffff",
    "-1",
    "18446744073709551616",
    "SCHED_FIFO",
    "lock_a",
    "runqueues[56].__lock",
    "allocate_slab",
    "timer_tick",
    "hard_lockup",
    "GFP_KERNEL",
    "spin_without_yielding",
    "task_start",
    "nmi",
    "ttyS0",
    "tty0",
];

pub fn string(sel: u64) -> String {
    match sel % (STRINGS.len() as u64 + 1) {
        n if (n as usize) < STRINGS.len() => STRINGS[n as usize].to_string(),
        _ => "A".repeat(100_000),
    }
}
