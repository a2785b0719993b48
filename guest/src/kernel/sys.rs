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

/// `SYSCALL_DEFINE0(setsid)`. Seed 000's kernel (5.x) emits `__x64_sys_setsid` and
/// `__ia32_sys_setsid` for it at one address (a syscall without arguments needs no compat
/// wrapper), and its kallsyms names the address `__ia32_sys_setsid`, as the seed's Call Trace
/// shows; so the function's one symbol is that (a second name at the same address would let
/// each debugger pick its own).
#[inline(never)]
#[unsafe(export_name = "__ia32_sys_setsid")]
pub extern "C" fn __x64_sys_setsid() -> i64 {
    keep_frame!(ksys_setsid())
}

/// `exit(code)`: the task ends (Linux's `kernel/exit.c`; the lab keeps no exit code).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn __x64_sys_exit(_code: u64) -> i64 {
    crate::kernel::kthread::do_exit()
}
