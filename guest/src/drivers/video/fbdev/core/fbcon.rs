//! The framebuffer console's cursor (Linux 3.10's `drivers/video/console/fbcon.c`): drawing the
//! cursor arms a blink timer unless one is pending — an `add_timer` from inside printk, which
//! is how seed 002's oops came to take the timer base lock a second time.
use core::sync::atomic::{AtomicU32, Ordering};

use crate::kernel::time::timer::{TimerList, add_timer, timer_setup};
use crate::kernel::time::{HZ, jiffies};

const FBCON_FLAGS_CURSOR_TIMER: u32 = 2;

/// `fbcon_ops.flags`.
#[unsafe(no_mangle)]
pub static fbcon_flags: AtomicU32 = AtomicU32::new(0);
/// `fbcon_ops.cursor_timer`.
#[unsafe(no_mangle)]
pub static mut cursor_timer: TimerList = TimerList::new();
/// Blink period (Linux: `cur_blink_jiffies`, 200 ms).
const CUR_BLINK_JIFFIES: u64 = HZ / 5;

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn fbcon_cursor(_mode: u32) {
    if fbcon_flags.load(Ordering::Relaxed) & FBCON_FLAGS_CURSOR_TIMER == 0 {
        keep_frame!(fbcon_add_cursor_timer());
    }
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn fbcon_add_cursor_timer() {
    // SAFETY: the cursor timer is only armed here, with FBCON_FLAGS_CURSOR_TIMER as its guard.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(cursor_timer) };
    timer_setup(t, fb_flashcursor);
    t.expires = jiffies() + CUR_BLINK_JIFFIES;
    add_timer(t);
    fbcon_flags.fetch_or(FBCON_FLAGS_CURSOR_TIMER, Ordering::Relaxed);
}

/// The blink: one toggle, then the cursor rests until the console is written again.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn fb_flashcursor(_t: &mut TimerList) {
    fbcon_flags.fetch_and(!FBCON_FLAGS_CURSOR_TIMER, Ordering::Relaxed);
}
