//! The diagnosis follows the chain that holds, read from captured state: which context spins
//! (its own RFLAGS.IF, not an interrupted frame's), how it was entered (interrupt, page fault,
//! system call), which lock, who holds it (the lock word) and why the holder cannot let go.
//! Each test derives the facts from the snapshot through the analysis API first, then checks
//! that the report states those facts and not the wrong ones.
mod common;

use lockvmm::analysis::Analysis;
use lockvmm::state::locks::innermost;
use lockvmm::state::{Context, CpuBacktrace, LockWait};

/// The report CPU's spinning context, its way in, and its innermost wait, from the snapshot.
fn spin_facts(
    a: &Analysis<'_>,
    cpu: usize,
) -> (
    lockvmm::analysis::StackContext,
    Option<lockvmm::analysis::Entry>,
    LockWait,
) {
    let bt: CpuBacktrace = a.backtrace(cpu);
    let (ctx, entry) = a.spinning_context(&bt).expect("a context in the slow path");
    let waits = a.lock_waits();
    let w = innermost(&waits, cpu).expect("a lock wait").clone();
    (ctx, entry, w)
}

#[test]
fn self_deadlock_through_a_page_fault_names_the_faulting_softirq() {
    let (r, done, _) = common::run_complete("scenarios/timer_uaf.toml");
    let report = done.report.as_ref().unwrap();
    let a = common::analysis(&r);
    let cpu = r.lockups[0].cpu;
    let (ctx, entry, w) = spin_facts(&a, cpu);
    let entry = entry.expect("entered from a context below");
    // The facts: a softirq spins with IF=0 on a lock its own CPU holds, entered by a page fault
    // taken in run_timer_softirq (the context that holds the lock).
    assert!(!ctx.regs.irqs_enabled());
    assert_eq!(entry.stub, "page_fault");
    assert!(common::range_of(&r, "run_timer_softirq").contains(&entry.below.rip));
    assert_eq!((w.context, w.holder), (Context::Softirq, Some(cpu)));
    // timer_uaf runs 3.10: a ticket word names no owner; the guest's arch_spin_held does.
    assert!(a.ticket_spinlocks());
    assert_eq!(a.spin_owner(w.lock), Some(cpu), "the holder is the CPU");
    // … and the report names the lock kind the kernel ran, not 6.6's queued spinlock.
    assert!(report.ticket_spinlocks);
    let text = report.render();
    assert!(
        text.contains("Spinning CPUs (ticket spinlocks)") && !text.contains("qspinlock"),
        "{text}"
    );
    // The report says so, and says nothing of the idle loop below.
    let d = &report.diagnosis;
    assert!(
        d.contains(&format!(
            "(softirq context, interrupts disabled) on {}",
            w.lock_name
        )),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "page fault at {}",
            r.kernel.symbols.describe(entry.below.rip)
        )),
        "{d}"
    );
    assert!(
        !d.contains("default_idle") && !d.contains("apic_timer_interrupt"),
        "{d}"
    );
    // The pointer registers are the spinning context's: RDI is the lock, by its one name.
    assert!(
        report.pointers.iter().any(|(reg, v, name)| reg == "RDI"
            && *v == w.lock
            && *name == format!("&{}", w.lock_name)),
        "{:?}",
        report.pointers
    );
}

#[test]
fn a_hardirq_spinning_on_its_own_cpus_lock_is_described_with_its_own_if() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/diagnosis/irq_self_deadlock.toml");
    let report = done.report.as_ref().unwrap();
    let a = common::analysis(&r);
    let cpu = r.lockups[0].cpu;
    let (ctx, entry, w) = spin_facts(&a, cpu);
    let entry = entry.expect("entered by an interrupt");
    assert!(!ctx.regs.irqs_enabled(), "the hardirq's own frame has IF=0");
    assert!(entry.below.irqs_enabled(), "the interrupted task had IF=1");
    assert!(lockvmm_abi::entry::IRQ_STUBS.contains(&entry.stub.as_str()));
    assert_eq!((w.context, w.holder), (Context::Hardirq, Some(cpu)));
    let d = &report.diagnosis;
    assert!(d.contains("(hardirq context, interrupts disabled)"), "{d}");
    assert!(
        d.contains(&format!(
            "interrupt ({}) that arrived at {}",
            entry.stub,
            r.kernel.symbols.describe(entry.below.rip)
        )),
        "{d}"
    );
    assert!(!d.contains("hardirq context, interrupts enabled"), "{d}");
}

#[test]
fn a_cross_cpu_cycle_is_a_deadlock_and_every_lock_has_one_name() {
    let (r, done, _) = common::run_complete("examples/abba_irq.toml");
    let report = done.report.as_ref().unwrap();
    let a = common::analysis(&r);
    let waits = a.lock_waits();
    // The facts: each CPU of the cycle waits on a lock the other's word names.
    let (w1, w2) = (innermost(&waits, 1).unwrap(), innermost(&waits, 2).unwrap());
    assert_eq!((w1.holder, w2.holder), (Some(2), Some(1)));
    // 6.6's queued spinlocks (the negative control of timer_uaf's ticket locks).
    assert!(!a.ticket_spinlocks() && !report.ticket_spinlocks);
    assert!(
        report
            .render()
            .contains("Spinning CPUs (qspinlock slow path)")
    );
    assert!(
        report.diagnosis.contains("closes a cycle"),
        "{}",
        report.diagnosis
    );
    // A register that points at a scenario lock is named as the lock is everywhere.
    for (_, v, name) in &report.pointers {
        if let Some(w) = waits.iter().find(|w| w.lock == *v) {
            assert_eq!(*name, format!("&{}", w.lock_name));
        }
    }
    assert!(
        !report.diagnosis.contains("lab_locks"),
        "{}",
        report.diagnosis
    );
}

#[test]
fn a_holder_back_in_user_mode_is_named_as_such() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/diagnosis/user_holder.toml");
    let report = done.report.as_ref().unwrap();
    let a = common::analysis(&r);
    let cpu = r.lockups[0].cpu;
    let w = innermost(&a.lock_waits(), cpu).unwrap().clone();
    let holder = w.holder.expect("the word names a holder");
    let snap = r.snapshot.as_ref().unwrap();
    assert!(
        snap.cpus[holder].regs.user_mode(),
        "the holder runs in ring 3"
    );
    assert!(
        report
            .held
            .iter()
            .any(|h| h.lock == w.lock && h.holder == holder),
        "{:?}",
        report.held
    );
    assert!(
        report.diagnosis.contains(&format!(
            "CPU {holder} (leaker, PID 600) is running in user mode"
        )),
        "{}",
        report.diagnosis
    );
}

#[test]
fn a_holder_that_is_itself_waiting_is_followed_down_the_chain() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/diagnosis/waiting_holder.toml");
    let report = done.report.as_ref().unwrap();
    let a = common::analysis(&r);
    let waits = a.lock_waits();
    let first = innermost(&waits, r.lockups[0].cpu).unwrap();
    let middle = first.holder.unwrap();
    let second = innermost(&waits, middle).expect("the holder waits too");
    let last = second.holder.unwrap();
    assert!(
        innermost(&waits, last).is_none(),
        "the end of the chain runs"
    );
    let d = &report.diagnosis;
    let at = |s: &str| d.find(s).unwrap_or_else(|| panic!("`{s}` missing: {d}"));
    assert!(
        at(&format!("{} is held by CPU {middle}", first.lock_name))
            < at(&format!(
                "it is itself spinning (task context) on {}",
                second.lock_name
            ))
    );
    assert!(
        at(&format!("{} is held by CPU {last}", second.lock_name))
            < at(&format!("CPU {last} (runner, PID 700) is running at"))
    );
}

#[test]
fn a_cpu_that_waits_on_nothing_is_reported_holding_its_lock() {
    let (r, done, _) = common::run_complete("vmm/tests/scenarios/diagnosis/holds_irqs_off.toml");
    let report = done.report.as_ref().unwrap();
    let cpu = r.lockups[0].cpu;
    let lock = common::elem_addr(&r, "lab_locks", 0);
    let word = common::analysis(&r).mem.u32(lock).unwrap();
    assert_eq!(common::owner(word), Some(cpu));
    assert!(report.locks.is_empty(), "nobody spins");
    assert!(
        report
            .held
            .iter()
            .any(|h| h.lock == lock && h.holder == cpu && h.lock_name == "lock_long"),
        "{:?}",
        report.held
    );
    assert!(
        report.diagnosis.contains("It holds lock_long"),
        "{}",
        report.diagnosis
    );
    assert!(report.render().contains("holds &lock_long"));
}

#[test]
fn a_user_mode_spinner_is_not_said_to_be_in_the_kernel() {
    let (r, done, _) = common::run_complete("scenarios/rt_fifo99.toml");
    assert!(r.lockups[0].report.regs.user_mode());
    let d = &done.report.as_ref().unwrap().diagnosis;
    assert!(
        d.contains("in user mode") && !d.contains("in the kernel"),
        "{d}"
    );
}
