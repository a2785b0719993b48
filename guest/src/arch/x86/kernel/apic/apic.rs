//! The local APIC in xAPIC mode, reached through the direct map (Linux's `apic.c`).
use lockvmm_abi::{APIC_BASE_PHYS, PAGE_OFFSET, vector::SPURIOUS_APIC_VECTOR};

const APIC_TASKPRI: u64 = 0x80;
const APIC_EOI: u64 = 0xb0;
const APIC_SPIV: u64 = 0xf0;
const APIC_LVTT: u64 = 0x320;
pub const APIC_LVTPC: u64 = 0x340;
const APIC_LVT0: u64 = 0x350;
const APIC_LVT1: u64 = 0x360;
const APIC_LVTERR: u64 = 0x370;

const APIC_SPIV_APIC_ENABLED: u32 = 1 << 8;
const APIC_LVT_MASKED: u32 = 1 << 16;
const APIC_DM_NMI: u32 = 0x400;

fn apic_addr(reg: u64) -> *mut u32 {
    (PAGE_OFFSET + APIC_BASE_PHYS + reg) as *mut u32
}

pub fn apic_write(reg: u64, val: u32) {
    // SAFETY: the host maps the APIC page uncached in the direct map; registers are 32-bit.
    unsafe { core::ptr::write_volatile(apic_addr(reg), val) };
}

pub fn apic_read(reg: u64) -> u32 {
    // SAFETY: as in `apic_write`.
    unsafe { core::ptr::read_volatile(apic_addr(reg)) }
}

/// Enables this CPU's local APIC with every local interrupt masked except LINT1 (NMI).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn setup_local_APIC() {
    apic_write(APIC_TASKPRI, 0);
    apic_write(
        APIC_SPIV,
        APIC_SPIV_APIC_ENABLED | u32::from(SPURIOUS_APIC_VECTOR),
    );
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
    apic_write(APIC_LVTPC, APIC_LVT_MASKED);
    apic_write(APIC_LVT0, APIC_LVT_MASKED);
    apic_write(APIC_LVT1, APIC_DM_NMI);
    apic_write(APIC_LVTERR, APIC_LVT_MASKED);
}

/// End of interrupt.
#[inline(always)]
#[allow(non_snake_case)]
pub fn ack_APIC_irq() {
    apic_write(APIC_EOI, 0);
}
