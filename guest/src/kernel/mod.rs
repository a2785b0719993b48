//! Core kernel (Linux's `kernel/`).
#[macro_use]
pub mod printk;
pub mod events;
pub mod hung_task;
pub mod instrument;
pub mod jump_label;
pub mod kallsyms;
pub mod kexec_core;
pub mod kthread;
pub mod locking;
pub mod module;
pub mod panic;
pub mod printk_cont;
pub mod reboot;
pub mod sched;
pub mod softirq;
pub mod sys;
pub mod sysctl;
pub mod taint;
pub mod time;
pub mod trace;
pub mod utsname;
pub mod watchdog;
pub mod watchdog_hld;
