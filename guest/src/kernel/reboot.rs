//! Power-off (Linux's `kernel/reboot.c`).
use crate::arch::x86::lockvmm;

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kernel_power_off() -> ! {
    printk!("reboot: Power down");
    lockvmm::shutdown(0)
}
