//! The VT console (Linux's `drivers/tty/vt/vt.c`), drawn by fbcon.
use core::sync::atomic::{AtomicBool, Ordering};

use crate::drivers::video::fbdev::core::fbcon::fbcon_cursor;

/// Whether the scenario has a framebuffer console (`tty0`).
pub static VT_CONSOLE: AtomicBool = AtomicBool::new(false);

pub const CM_ERASE: u32 = 2;

#[inline(never)]
#[unsafe(no_mangle)]
pub fn vt_console_print(_text: &[u8]) {
    if !VT_CONSOLE.load(Ordering::Relaxed) {
        return;
    }
    keep_frame!(hide_cursor());
    // (the text goes to the framebuffer; nothing reads it back in the lab)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn hide_cursor() {
    keep_frame!(fbcon_cursor(CM_ERASE));
}
