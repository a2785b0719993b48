//! The emulated PMU. This machine's KVM has no virtual PMU (`enable_pmu` is off), so the
//! VMM plays the hardware: the guest programs architectural perfmon MSRs (one general-purpose
//! 48-bit counter), the accesses exit to the VMM through KVM's MSR filter, and the counter
//! counts cycles of *virtual* time at [`CPU_KHZ`]. When it overflows, the VMM sets the global
//! status bit and delivers an NMI, as LVTPC programmed for NMI delivery would.
use lockvmm_abi::CPU_KHZ;
use lockvmm_abi::msr::*;

const PMC_MASK: u64 = (1 << PMC_BITS) - 1;

/// One CPU's counter state.
#[derive(Debug, Clone, Default)]
pub struct Pmu {
    evtsel: u64,
    global_ctrl: u64,
    global_status: u64,
    debugctl: u64,
    /// Counter value at virtual time `since_ns`.
    pmc: u64,
    since_ns: u64,
    /// Overflow NMIs delivered (for reports and tests).
    pub overflows: u64,
}

/// Cycles in `ns` virtual nanoseconds.
fn cycles(ns: u64) -> u64 {
    (ns as u128 * CPU_KHZ as u128 / 1_000_000) as u64
}

impl Pmu {
    fn counting(&self) -> bool {
        self.evtsel & EVTSEL_EN != 0 && self.global_ctrl & 1 != 0
    }

    /// The counter's value now.
    fn value(&self, now_ns: u64) -> u64 {
        if self.counting() {
            (self.pmc + cycles(now_ns.saturating_sub(self.since_ns))) & PMC_MASK
        } else {
            self.pmc
        }
    }

    /// Folds the elapsed count into `pmc` before a control change.
    fn settle(&mut self, now_ns: u64) {
        self.pmc = self.value(now_ns);
        self.since_ns = now_ns;
    }

    /// The MSRs the VMM emulates (the rest stay with KVM).
    pub const MSRS: [u32; 6] = [
        IA32_PMC0,
        IA32_PERFEVTSEL0,
        IA32_DEBUGCTLMSR,
        IA32_PERF_GLOBAL_STATUS,
        IA32_PERF_GLOBAL_CTRL,
        IA32_PERF_GLOBAL_OVF_CTRL,
    ];

    /// `rdmsr`; `None` for an MSR this PMU does not have (the guest gets #GP).
    pub fn read(&self, msr: u32, now_ns: u64) -> Option<u64> {
        Some(match msr {
            IA32_PMC0 => self.value(now_ns),
            IA32_PERFEVTSEL0 => self.evtsel,
            IA32_DEBUGCTLMSR => self.debugctl,
            IA32_PERF_GLOBAL_STATUS => self.global_status,
            IA32_PERF_GLOBAL_CTRL => self.global_ctrl,
            IA32_PERF_GLOBAL_OVF_CTRL => 0,
            _ => return None,
        })
    }

    /// `wrmsr`; `false` for an MSR this PMU does not have.
    pub fn write(&mut self, msr: u32, value: u64, now_ns: u64) -> bool {
        self.settle(now_ns);
        match msr {
            IA32_PMC0 => self.pmc = value & PMC_MASK,
            IA32_PERFEVTSEL0 => self.evtsel = value,
            IA32_DEBUGCTLMSR => self.debugctl = value,
            IA32_PERF_GLOBAL_CTRL => self.global_ctrl = value,
            IA32_PERF_GLOBAL_OVF_CTRL => self.global_status &= !value,
            IA32_PERF_GLOBAL_STATUS => {}
            _ => return false,
        }
        true
    }

    /// When the counter next overflows with its interrupt enabled, if it will.
    pub fn next_overflow(&self, now_ns: u64) -> Option<u64> {
        if !self.counting() || self.evtsel & EVTSEL_INT == 0 {
            return None;
        }
        let left = (1u64 << PMC_BITS) - self.value(now_ns);
        // ceil(left cycles / (CPU_KHZ / 1e6) cycles per ns)
        let ns = (left as u128 * 1_000_000).div_ceil(CPU_KHZ as u128) as u64;
        Some(now_ns + ns.max(1))
    }

    /// The counter overflowed at `now_ns`: it wraps and keeps counting; the status bit is set.
    pub fn overflow(&mut self, now_ns: u64) {
        self.pmc = 0;
        self.since_ns = now_ns;
        self.global_status |= 1;
        self.overflows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's NMI watchdog programs -(thresh × cpu_khz × 1000) and expects an NMI every thresh
    /// seconds of CPU time.
    #[test]
    fn programmed_period_gives_overflow_after_that_much_virtual_time() {
        let mut p = Pmu::default();
        let period = 10 * CPU_KHZ * 1000; // 10 s of cycles
        p.write(IA32_PMC0, (1u64 << PMC_BITS) - period, 0);
        p.write(IA32_PERFEVTSEL0, EVTSEL_EN | EVTSEL_INT | 0x3c, 0);
        assert_eq!(p.next_overflow(0), None, "globally disabled");
        p.write(IA32_PERF_GLOBAL_CTRL, 1, 5);
        assert_eq!(p.next_overflow(5), Some(5 + 10_000_000_000));
        p.overflow(10_000_000_005);
        assert_eq!(p.read(IA32_PERF_GLOBAL_STATUS, 0), Some(1));
        p.write(IA32_PERF_GLOBAL_OVF_CTRL, 1, 10_000_000_005);
        assert_eq!(p.read(IA32_PERF_GLOBAL_STATUS, 0), Some(0));
    }

    #[test]
    fn disabled_counter_does_not_count() {
        let mut p = Pmu::default();
        p.write(IA32_PMC0, 100, 0);
        assert_eq!(p.read(IA32_PMC0, 1_000_000), Some(100));
        p.write(IA32_PERFEVTSEL0, EVTSEL_EN, 0);
        p.write(IA32_PERF_GLOBAL_CTRL, 1, 0);
        assert_eq!(p.read(IA32_PMC0, 1000), Some(100 + 2000));
    }
}
