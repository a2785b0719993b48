//! Guest misbehaviour on real KVM: each stops the machine with a report built from the
//! captured vCPU state, and none of it crashes or hangs the host.
mod common;

use lockvmm::state::BtItem;
use lockvmm::state::{FaultKind, FaultReport, Outcome};

fn functions(f: &FaultReport) -> Vec<&str> {
    f.backtrace
        .iter()
        .filter_map(|i| match i {
            BtItem::Frame { function, .. } => Some(function.as_str()),
            _ => None,
        })
        .collect()
}

fn notes(f: &FaultReport) -> Vec<&str> {
    f.backtrace
        .iter()
        .filter_map(|i| match i {
            BtItem::Note { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn fault_of(outcome: &Outcome) -> &FaultReport {
    match outcome {
        Outcome::Fault(r) => r,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn unmapped_read_reports_faulting_function_and_cr2() {
    let (_, r) = common::run("vmm/tests/scenarios/fault_unmapped.toml", None);
    let f = fault_of(&r.outcome);
    assert_eq!(f.cpu, 1);
    assert!(
        matches!(f.fault, FaultKind::Oops { vector: 14, .. }),
        "{:?}",
        f.fault
    );
    assert_eq!(f.rip_function.as_deref(), Some("lab_op_read"));
    assert_eq!(f.cr2, 0xffff_c900_0000_1000);
    // The saved registers are the faulting context: RDI holds the address it read.
    assert_eq!(f.regs.rdi, f.cr2);
    let start = r.kernel.symbols.addr_of("lab_op_read").unwrap();
    let size = r.kernel.symbols.get("lab_op_read").unwrap().size;
    assert!((start..start + size).contains(&f.regs.rip));
    // The frame-pointer walk goes through the task's body to the start of every kthread.
    assert_eq!(
        functions(f),
        ["lab_op_read", "lab_task", "kthread", "ret_from_fork"],
        "{:?}",
        f.backtrace
    );
    assert!(notes(f).is_empty(), "{:?}", notes(f));
}

#[test]
fn triple_fault_stops_the_machine_with_the_faulting_rip() {
    let (_, r) = common::run("vmm/tests/scenarios/triple_fault.toml", None);
    let f = fault_of(&r.outcome);
    assert_eq!(f.fault, FaultKind::TripleFault);
    assert_eq!(f.cpu, 1);
    assert_eq!(f.rip_function.as_deref(), Some("lab_op_triple_fault"));
    // `ud2` is where the CPU gave up.
    let code = r
        .memory
        .read_virt(lockvmm::memory::BOOT_CR3, f.regs.rip, 2)
        .unwrap();
    assert_eq!(code, [0x0f, 0x0b], "RIP points at ud2");
}

#[test]
fn a_vcpu_that_never_yields_is_kicked_out_and_reported_as_stalled() {
    let mut opts = lockvmm::RunOptions::new(common::root("vmm/tests/scenarios/stall.toml"));
    opts.stall_timeout = std::time::Duration::from_secs(1);
    let (_, r) = lockvmm::run_scenario(&opts).expect("the run ends");
    let f = fault_of(&r.outcome);
    assert!(
        matches!(f.fault, FaultKind::Stall { wall_ms } if wall_ms >= 1000),
        "{:?}",
        f.fault
    );
    assert_eq!(f.cpu, 1);
    // The registers were captured after the kick, inside the loop.
    assert_eq!(
        f.rip_function.as_deref(),
        Some("lab_op_spin_without_yielding")
    );
}

#[test]
fn garbage_hypercalls_are_refused_and_the_guest_carries_on() {
    let (_, r) = common::run("vmm/tests/scenarios/bad_hypercalls.toml", None);
    common::assert_clean_shutdown(&r.outcome);
    // Seven of the eight are invalid (the Kick of an address nobody waits on is harmless).
    assert_eq!(r.bad_hypercalls.len(), 7, "{:?}", r.bad_hypercalls);
    assert!(
        r.bad_hypercalls
            .iter()
            .any(|(_, why)| why.contains("Syscall hypercall from kernel mode")),
        "{:?}",
        r.bad_hypercalls
    );
    assert!(r.bad_hypercalls.iter().all(|(cpu, _)| *cpu == 1));
}

#[test]
fn wild_frame_pointer_ends_the_backtrace_with_a_note() {
    let (_, r) = common::run("vmm/tests/scenarios/bad_frame_pointer.toml", None);
    let f = fault_of(&r.outcome);
    assert_eq!(
        f.rip_function.as_deref(),
        Some("lab_op_read_with_frame_pointer")
    );
    assert_eq!(f.regs.rbp, 0xffff_8880_1234_5678);
    assert_eq!(functions(f), ["lab_op_read_with_frame_pointer"]);
    assert!(
        notes(f).iter().any(|n| n.contains("0xffff888012345678")),
        "{:?}",
        notes(f)
    );
}

#[test]
fn a_fault_exits_one_from_the_command_line() {
    let out = common::lockvmm()
        .args([
            "run",
            "--quiet",
            "vmm/tests/scenarios/fault_unmapped.toml",
            "--out",
        ])
        .arg(std::env::temp_dir().join(format!("lockvmm-test-fault-{}", std::process::id())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
