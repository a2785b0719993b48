//! Bringing secondary CPUs up (Linux's `arch/x86/kernel/smpboot.c`).
use core::sync::atomic::Ordering;

use crate::arch::x86::lockvmm;
use crate::arch::x86::percpu::per_cpu;
use lockvmm_abi::knob::KernelVersion;

use crate::init::main::boot_info;
use crate::init::version::linux_version;

/// Starts every secondary CPU, one after the other, as Linux's `smp_init`, with the
/// replayed version's lines around it (`kernel/smp.c`; 2.6.32 `init/main.c`):
/// - 6.6: `smp: Bringing up secondary CPUs ...` … `smp: Brought up %d node%s, %d CPU%s`;
/// - 4.4: `x86: Booted up %d node%s, %d CPUs` (`smp_announce`, `arch/x86/kernel/smpboot.c`);
/// - 3.10 and 2.6.32: `Brought up %ld CPUs`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn smp_init() {
    let nr = boot_info().nr_cpus;
    let v = linux_version();
    if v == KernelVersion::V6_6 {
        printk!("smp: Bringing up secondary CPUs ...");
    }
    for cpu in 1..nr {
        native_cpu_up(cpu);
    }
    let s = if nr > 1 { "s" } else { "" };
    match v {
        KernelVersion::V6_6 => printk!("smp: Brought up 1 node, {} CPU{}", nr, s),
        KernelVersion::V4_4 => printk!("x86: Booted up 1 node, {} CPUs", nr),
        KernelVersion::V3_10 | KernelVersion::V2_6 => printk!("Brought up {} CPUs", nr),
    }
}

unsafe extern "C" {
    /// Where a secondary CPU starts (`head_64.rs`).
    fn secondary_startup_64();
}

/// `pr_cont("%*s#%d%s", spaces, " ", cpu, tail)`, formatted by hand (see `pr_cont_text`):
/// the boot CPU runs it once per CPU, so it avoids what costs emulated instructions here (a
/// buffer filled with spaces, a `memcpy` per part, a digit loop).
fn cont_cpu(spaces: usize, cpu: u32, tail: &[u8]) {
    // At most 4 spaces (a width of 5 digits), `#`, 3 digits (`NR_CPUS` is 255), " OK\n".
    const MAX: usize = 4 + 1 + 3 + 4;
    let mut buf = [b' '; MAX];
    let mut at = spaces.min(4);
    buf[at] = b'#';
    let digits = num_digits(cpu).min(3);
    at += 1 + digits;
    let mut n = cpu;
    for b in buf[at - digits..at].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &t in tail.iter().take(MAX - at) {
        buf[at] = t;
        at += 1;
    }
    crate::kernel::printk::pr_cont_text(&buf[..at]);
}

/// Decimal digits of `n` (a CPU number: compares, not a division loop, for the usual sizes).
fn num_digits(n: u32) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 3 + num_digits(n / 1000),
    }
}

/// `announce_cpu` (`arch/x86/kernel/smpboot.c`), printed by the boot CPU before it starts
/// `cpu`: one line for all CPUs, continued with `pr_cont`.
/// - 6.6: `pr_info("x86: Booting SMP configuration:\n")` (so `smpboot: ` from pr_fmt), then
///   `printk(KERN_INFO ".... node %*s#%d, CPUs:  ")`, `width + 1` spaces for the boot CPU and
///   `pr_cont("%*s#%d", width - num_digits(cpu), " ", cpu)`, `width` being the digits of
///   `num_possible_cpus()` plus one;
/// - 4.4: the same, the first line with a bare `printk(KERN_INFO …)` (no `smpboot: `);
/// - 3.10: `pr_info("Booting Node %3d, Processors ")` and `pr_cont(" #%d%s", cpu, cpu ==
///   nr_cpu_ids - 1 ? " OK\n" : "")` (the code of 3.7–3.10; its console line reads
///   `smpboot: Booting Node   0, Processors  #1 #2 #3 OK`);
/// - 2.6.32 (`do_boot_cpu`): `printk(KERN_INFO "Booting processor %d APIC 0x%x ip 0x%lx\n")`,
///   the ip being where the CPU starts (the lab's `secondary_startup_64`, not a trampoline).
fn announce_cpu(cpu: u32) {
    use crate::kernel::printk::LOGLEVEL_INFO;
    let nr = boot_info().nr_cpus;
    let width = num_digits(nr) + 1;
    let node_pad = num_digits(1) + 1 - num_digits(0);
    match linux_version() {
        v @ (KernelVersion::V6_6 | KernelVersion::V4_4) => {
            if cpu == 1 {
                if v == KernelVersion::V6_6 {
                    printk!("smpboot: x86: Booting SMP configuration:");
                } else {
                    printk!("x86: Booting SMP configuration:");
                }
                printk_open!(
                    LOGLEVEL_INFO,
                    ".... node {:>w$}#{}, CPUs:  ",
                    " ",
                    0,
                    w = node_pad
                );
                pr_cont!("{:>w$}", " ", w = width + 1);
            }
            cont_cpu(width - num_digits(cpu), cpu, b"");
        }
        KernelVersion::V3_10 => {
            if cpu == 1 {
                printk_open!(LOGLEVEL_INFO, "smpboot: Booting Node {:>3}, Processors ", 0);
            }
            let ok: &[u8] = if cpu == nr - 1 { b" OK\n" } else { b"" };
            cont_cpu(1, cpu, ok);
        }
        KernelVersion::V2_6 => {
            printk!(
                "Booting processor {} APIC {:#x} ip {:#x}",
                cpu,
                cpu,
                secondary_startup_64 as *const () as usize
            );
        }
    }
}

/// Asks the host to start `cpu` and waits until it reports itself online (the start's
/// hypercall is also the first wait).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn native_cpu_up(cpu: u32) {
    announce_cpu(cpu);
    let online = &per_cpu(cpu).online;
    if lockvmm::start_cpu(cpu, online) != lockvmm_abi::HC_OK {
        panic!("smpboot: the host refused to start CPU {}", cpu);
    }
    while online.load(Ordering::Acquire) == 0 {
        lockvmm::wait_on(online, 0);
    }
}

/// Marks this CPU online: host notification, and the flag its starter waits on. (Linux prints
/// nothing here; the boot CPU announced it, `announce_cpu`.)
pub fn set_cpu_online(cpu: u32) {
    let online = &per_cpu(cpu).online;
    online.store(1, Ordering::Release);
    // The host learns it and wakes the starter waiting on `online` in one exit.
    lockvmm::cpu_online(cpu, online);
}

/// Entry of a secondary CPU (from `secondary_startup_64`).
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn start_secondary(cpu: u64) -> ! {
    crate::init::main::cpu_bringup(cpu as u32);
    set_cpu_online(cpu as u32);
    crate::kernel::sched::idle::cpu_startup_entry()
}
