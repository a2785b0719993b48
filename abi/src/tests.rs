//! Host-free checks of the contract: every enum's conversions round-trip, unknown values are
//! refused, and the raw constants kept for the old paths equal the enums.
use crate::NR_CPUS;
use crate::entry::{PtRegsAt, pt_regs_at};
use crate::hook::Hook;
use crate::hypercall::{Hypercall, LockupKind};
use crate::knob::LbrGfpMode;
use crate::locking::{
    LockContext, NR_LOCK_CONTEXTS, lock_owner, locked_byte, locked_val, spinning_on_slot,
};
use crate::program::{Gfp, HogMode, LockMode, ModuleVariant, OpKind, Policy};
use crate::stacks::{EXCEPTION_STKSZ, Ist, N_IST};
use crate::task::TaskState;

/// `from_raw(raw())` gives back every value, and every raw value in `0..=limit` that is not one
/// of them decodes to `None`.
macro_rules! round_trip {
    ($ty:ty: $repr:ident, $limit:expr) => {{
        for v in <$ty>::ALL {
            assert_eq!(<$ty>::from_raw(v.raw()), Some(v));
            assert_eq!(v.raw(), v as $repr);
        }
        let mut known = 0;
        for raw in 0..=($limit as $repr) {
            match <$ty>::from_raw(raw) {
                Some(v) => {
                    assert_eq!(v.raw(), raw);
                    known += 1;
                }
                None => assert!(!<$ty>::ALL.iter().any(|v| v.raw() == raw)),
            }
        }
        assert_eq!(known, <$ty>::ALL.len(), "{} values", stringify!($ty));
        assert_eq!(<$ty>::from_raw($repr::MAX), None);
    }};
}

#[test]
fn enums_round_trip_and_refuse_unknown_values() {
    round_trip!(Hypercall: u32, 300);
    round_trip!(LockupKind: u64, 300);
    round_trip!(Hook: u64, 300);
    round_trip!(crate::trace::TraceEvent: u16, 300);
    round_trip!(crate::trace::WatchdogCheck: u32, 300);
    round_trip!(LbrGfpMode: u32, 300);
    round_trip!(OpKind: u32, 300);
    round_trip!(LockMode: u64, 300);
    round_trip!(HogMode: u64, 300);
    round_trip!(ModuleVariant: u64, 300);
    round_trip!(Policy: u32, 300);
    round_trip!(Gfp: u64, 300);
    round_trip!(TaskState: u32, 300);
    round_trip!(LockContext: usize, 300);
    round_trip!(Ist: u8, 255);
}

#[test]
fn enums_have_the_documented_values() {
    assert_eq!(Hypercall::from_raw(0), None);
    assert_eq!(Hypercall::Syscall as u32, 11);
    assert_eq!(OpKind::ALL.len(), 40);
    for (i, k) in OpKind::ALL.into_iter().enumerate() {
        assert_eq!(k.raw(), i as u32 + 1);
    }
    assert_eq!(OpKind::from_raw(0), None);
    assert_eq!(OpKind::from_raw(OpKind::ALL.len() as u32 + 1), None);
    assert_eq!(
        ModuleVariant::ALL.map(ModuleVariant::raw),
        [0, 1, 2, 3, 4],
        "the order of the scenario's variants"
    );
    assert_eq!(TaskState::ALL.map(TaskState::raw), [0, 1, 2, 64]);
    assert_eq!(
        TaskState::ALL.map(TaskState::name),
        ["RU", "IN", "UN", "DE"]
    );
    assert_eq!(LockupKind::Soft.name(), "soft");
    assert_eq!(LockupKind::Hard.name(), "hard");
}

#[test]
fn old_constants_equal_the_enums() {
    assert_eq!(crate::LOCKUP_SOFT, 1);
    assert_eq!(crate::LOCKUP_HARD, 2);
    assert_eq!(crate::hook::ALLOCATE_SLAB, 1);
    assert_eq!(crate::hook::TASK_START, 2);
    assert_eq!(crate::knob::LBR_GFP_KERNEL, 0);
    assert_eq!(crate::knob::LBR_GFP_ATOMIC, 1);
    assert_eq!(crate::knob::LBR_UPSTREAM, 2);
}

#[test]
fn hook_names() {
    for h in Hook::ALL {
        assert_eq!(Hook::from_name(h.name()), Some(h));
        assert_eq!(crate::hook::name(h.raw()), Some(h.name()));
    }
    assert_eq!(Hook::from_name("allocate_slab"), Some(Hook::AllocateSlab));
    assert_eq!(Hook::from_name("task_start"), Some(Hook::TaskStart));
    assert_eq!(Hook::from_name("nope"), None);
    assert_eq!(crate::hook::name(0), None);
    assert_eq!(crate::hook::name(Hook::ALL.len() as u64 + 1), None);
}

#[test]
fn lock_word_encoding() {
    assert_eq!(lock_owner(0), None);
    assert_eq!(
        lock_owner(0xffff_ff00),
        None,
        "pending and tail bits are not an owner"
    );
    for cpu in [0, 1, 63, NR_CPUS as u32 - 1] {
        let word = u32::from(locked_byte(cpu)) | 0x0004_0100;
        assert_eq!(lock_owner(word), Some(cpu as usize));
        assert_eq!(lock_owner(locked_val(cpu)), Some(cpu as usize));
        assert_eq!(locked_val(cpu), u32::from(locked_byte(cpu)));
    }
    assert_eq!(NR_LOCK_CONTEXTS, 4);
    let names = LockContext::ALL.map(LockContext::name);
    assert_eq!(names, ["task", "softirq", "hardirq", "NMI"]);
    for w in LockContext::ALL.windows(2) {
        assert!(w[0] < w[1] && w[0].raw() < w[1].raw(), "nesting order");
    }
    assert_eq!(spinning_on_slot(0, LockContext::Task), 0);
    assert_eq!(spinning_on_slot(2, LockContext::Hardirq), 10);
    assert_eq!(
        spinning_on_slot(NR_CPUS - 1, LockContext::Nmi),
        NR_CPUS * 4 - 1
    );
}

#[test]
fn exception_stacks() {
    assert_eq!(N_IST, 4);
    assert_eq!(Ist::ALL.map(Ist::tss_slot), [1, 2, 3, 4]);
    let names = Ist::ALL.map(Ist::name);
    assert_eq!(names, ["double fault", "NMI", "debug", "machine check"]);
    assert_eq!(Ist::at_offset(0), Ist::DoubleFault);
    assert_eq!(Ist::at_offset(EXCEPTION_STKSZ + 5), Ist::Nmi);
    assert_eq!(
        Ist::at_offset(4 * EXCEPTION_STKSZ + 3 * EXCEPTION_STKSZ),
        Ist::MachineCheck
    );
}

#[test]
fn entry_stubs() {
    assert_eq!(
        pt_regs_at("apic_timer_interrupt"),
        Some(PtRegsAt::PointerAtFpPlus(16))
    );
    assert_eq!(
        pt_regs_at("common_interrupt"),
        Some(PtRegsAt::PointerAtFpPlus(16))
    );
    assert_eq!(pt_regs_at("page_fault"), Some(PtRegsAt::InlineAtFpPlus(24)));
    assert_eq!(
        pt_regs_at("end_repeat_nmi"),
        Some(PtRegsAt::InlineAtFpPlus(24))
    );
    assert_eq!(
        pt_regs_at("entry_SYSCALL_64_after_hwframe"),
        Some(PtRegsAt::InlineAtFpPlus(24))
    );
    assert_eq!(pt_regs_at("lab_task"), None);
    assert_eq!(crate::entry::EXCEPTION_STUBS.len(), 23);
    assert_eq!(crate::entry::IRQ_STUBS.len(), 3);
}

#[test]
fn struct_sizes() {
    assert_eq!(crate::PT_REGS_SIZE, 21 * 8);
    assert_eq!(core::mem::size_of::<crate::TaskDesc>(), 48);
    assert_eq!(core::mem::size_of::<crate::OpDesc>(), 40);
    assert_eq!(core::mem::size_of::<crate::ProgramHeader>(), 24);
    assert_eq!(core::mem::size_of::<crate::HandlerDesc>(), 24);
    assert_eq!(core::mem::size_of::<crate::LockDesc>(), 40);
    assert_eq!(core::mem::size_of::<crate::BootInfo>(), 112);
    assert_eq!(core::mem::size_of::<crate::trace::TraceEntry>(), 40);
    assert_eq!(core::mem::size_of::<crate::trace::TraceBufHeader>(), 24);
}
