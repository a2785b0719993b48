//! `ConsoleWrite`: a console line in one exit.
use super::Call;
use crate::machine::vcpu_loop::Next;

/// Longest `ConsoleWrite` the host takes (a printk line is at most 241 bytes).
const MAX_CONSOLE_WRITE: u64 = 4096;

/// `a0 = address, a1 = length`: each byte goes to the UART's transmit register, as the guest's
/// own `out` to the port would have put it, so the console sees the same bytes either way.
pub fn console_write(c: &Call<'_>) -> Next {
    let [addr, len, _, _] = c.args;
    if len > MAX_CONSOLE_WRITE {
        return c.reject(format!(
            "ConsoleWrite of {len} bytes (at most {MAX_CONSOLE_WRITE})"
        ));
    }
    match c.m.memory.read_virt(c.cr3(), addr, len as usize) {
        Ok(bytes) => {
            c.m.serial_write_all(&bytes);
            c.ok()
        }
        Err(e) => c.reject(format!("ConsoleWrite: {e}")),
    }
}
