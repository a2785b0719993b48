//! The 16550 console at COM1 (Linux's `drivers/tty/serial/8250`). The host's UART is always
//! ready to transmit, so the driver does not poll LSR: each byte is one port write (one exit).
use core::arch::asm;

use lockvmm_abi::SERIAL_PORT;

#[inline(always)]
fn outb(port: u16, val: u8) {
    // SAFETY: writing the UART's transmit register has no effect on guest memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
    };
}

#[inline(never)]
#[unsafe(no_mangle)]
pub fn serial8250_console_write(text: &[u8]) {
    for &b in text {
        outb(SERIAL_PORT, b);
    }
}
