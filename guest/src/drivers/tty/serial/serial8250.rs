//! The 16550 console at COM1 (Linux's `drivers/tty/serial/8250`). The host's UART is always
//! ready to transmit, so the driver does not poll LSR. A console line goes to the host in one
//! `ConsoleWrite` hypercall, which feeds the UART's transmit register byte by byte as the
//! guest's own port writes would: one exit a line instead of one a byte (a byte cost an 8 µs
//! exit, a line about 60 of them).
use lockvmm_abi::Hypercall;

use crate::arch::x86::lockvmm::hypercall;

#[inline(never)]
#[unsafe(no_mangle)]
pub fn serial8250_console_write(text: &[u8]) {
    if !text.is_empty() {
        hypercall(
            Hypercall::ConsoleWrite as u32,
            text.as_ptr() as u64,
            text.len() as u64,
            0,
            0,
        );
    }
}
