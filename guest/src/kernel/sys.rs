//! System calls the lab's tasks make (Linux's `kernel/sys.c`).
use crate::kernel::sched::autogroup::sched_autogroup_create_attach;
use crate::kernel::sched::core::current;

/// `setsid()`: a new session, hence a new autogroup (the path of seed 000's CPU 51).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn ksys_setsid() -> i64 {
    sched_autogroup_create_attach();
    i64::from(current().pid)
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __x64_sys_setsid() -> i64 {
    keep_frame!(ksys_setsid())
}

/// `exit(code)`: the task ends (Linux's `kernel/exit.c`; the lab keeps no exit code).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __x64_sys_exit(_code: u64) -> i64 {
    crate::kernel::kthread::do_exit()
}
