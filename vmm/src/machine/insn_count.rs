//! Counting the guest's instructions for the run's profile (`lockvmm run --count-instructions`).
//!
//! KVM gives a VMM no count of the instructions its guest ran, but the host's perf can, in one
//! of two ways; the first that opens is used:
//! - `instructions:G`: the host PMU's retired instructions with `exclude_host`, i.e. those the
//!   CPU retired in guest mode (hardware KVM on a host whose PMU perf can use).
//! - `kvm:kvm_emulate_insn`: KVM's tracepoint for every instruction its emulator executes. A
//!   KVM that emulates the guest's ring 0 (this project's development machines: `kvm_pvm`)
//!   fires it for every kernel-mode instruction, the guest's whole cost; a hardware KVM fires it
//!   only for the few it emulates (MMIO, port I/O), so there it counts those alone.
//!
//! Both follow every thread the process creates after they are opened (`inherit`), so they are
//! opened before the vCPU threads start and read after they end; perf also sums threads still
//! alive (a vCPU left in `KVM_RUN`). The tracepoint costs the host about a sixth more CPU per
//! emulated instruction (`hog_soft`: 1.17× process CPU time in interleaved pairs), which is why
//! counting is asked for, not always on.
use perf_event::events::{Hardware, Tracepoint};
use perf_event::{Builder, Counter};

/// Where a tracepoint's id is, with tracefs mounted in either of its usual places.
const TRACEPOINT_IDS: [&str; 2] = [
    "/sys/kernel/tracing/events/kvm/kvm_emulate_insn/id",
    "/sys/kernel/debug/tracing/events/kvm/kvm_emulate_insn/id",
];

/// An open counter of the guest's instructions.
pub struct InsnCounter {
    counter: Counter,
    /// What it counts, for the profile (`instructions:G` or `kvm:kvm_emulate_insn`).
    source: &'static str,
}

/// The count a run ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestInstructions {
    pub count: Option<u64>,
    /// The counter used, or why none could be opened.
    pub counted_by: String,
}

impl InsnCounter {
    /// Opens and starts a counter for this thread and the threads it will create; the error
    /// says why neither counter could be opened (no host PMU, tracefs not mounted, no
    /// permission).
    pub fn open() -> Result<InsnCounter, String> {
        let hw = Builder::new(Hardware::INSTRUCTIONS)
            .observe_self()
            .any_cpu()
            .inherit(true)
            .exclude_kernel(false)
            .exclude_hv(false)
            .exclude_host(true)
            .exclude_guest(false)
            .build();
        let (counter, source) = match hw {
            Ok(c) => (c, "instructions:G"),
            Err(hw_err) => {
                let tp = tracepoint().map_err(|tp_err| {
                    format!("instructions:G: {hw_err}; kvm:kvm_emulate_insn: {tp_err}")
                })?;
                (tp, "kvm:kvm_emulate_insn")
            }
        };
        let mut c = InsnCounter { counter, source };
        c.counter
            .enable()
            .map_err(|e| format!("{}: cannot start it: {e}", c.source))?;
        Ok(c)
    }

    /// The count so far (every thread created since [`open`](Self::open), ended or not).
    pub fn read(&mut self) -> GuestInstructions {
        match self.counter.read() {
            Ok(n) => GuestInstructions {
                count: Some(n),
                counted_by: self.source.to_string(),
            },
            Err(e) => GuestInstructions {
                count: None,
                counted_by: format!("{}: cannot read it: {e}", self.source),
            },
        }
    }
}

/// `kvm:kvm_emulate_insn`, counted (not sampled) in kernel context, where it fires.
fn tracepoint() -> Result<Counter, String> {
    let id = TRACEPOINT_IDS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .ok_or("no tracefs with KVM's events (mount tracefs on /sys/kernel/tracing)")?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|e| format!("tracefs gave a bad event id {:?}: {e}", id.trim()))?;
    Builder::new(Tracepoint::with_id(id))
        .observe_self()
        .any_cpu()
        .inherit(true)
        .exclude_kernel(false)
        .exclude_hv(false)
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `f` (the vCPU threads' whole life) under a counter when `wanted`; the count, or why
/// there is none.
pub fn counted<T>(wanted: bool, f: impl FnOnce() -> T) -> (T, Option<GuestInstructions>) {
    if !wanted {
        return (f(), None);
    }
    let counter = InsnCounter::open();
    let out = f();
    let count = match counter {
        Ok(mut c) => c.read(),
        Err(why) => GuestInstructions {
            count: None,
            counted_by: why,
        },
    };
    (out, Some(count))
}
