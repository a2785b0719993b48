//! Interrupts as crash's `irq` reads them: the IDT the CPUs loaded (vector → entry stub) and
//! each CPU's local APIC as the snapshot captured it (vectors in service and pending, the task
//! priority, pending NMIs and injected events).
use super::Analysis;

/// IDT entries (x86: 256).
const IDT_ENTRIES: u64 = 256;

/// One IDT gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub vector: u8,
    pub handler: u64,
    /// `page_fault`, `irq_entries_start+64`, or the bare address.
    pub name: String,
    /// Interrupt stack table index (0: the current stack).
    pub ist: u8,
}

/// A CPU's interrupt state at the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LapicState {
    pub cpu: usize,
    pub captured: bool,
    pub tpr: u32,
    pub ppr: u32,
    /// Vectors in service (ISR) and requested (IRR), lowest first.
    pub isr: Vec<u8>,
    pub irr: Vec<u8>,
    pub nmi_pending: bool,
    pub nmi_masked: bool,
    /// A vector KVM was injecting when the vCPU stopped.
    pub injected: Option<u8>,
    /// The vCPU's RFLAGS.IF: whether it could take an interrupt.
    pub interrupts_enabled: bool,
}

impl Analysis<'_> {
    /// The IDT the CPUs loaded (`sregs.idt_base`, else `idt_table`), decoded through the
    /// DWARF layout of the guest's gate descriptor.
    pub fn idt(&self) -> Vec<Gate> {
        let base = self
            .snap
            .cpus
            .iter()
            .find(|c| c.captured && c.sregs.idt_base != 0)
            .map(|c| c.sregs.idt_base)
            .or_else(|| self.syms.addr_of("idt_table"));
        let (Some(base), Some((_, size))) = (base, self.dwarf.struct_layout("GateDesc")) else {
            return Vec::new();
        };
        let off = |m: &str| self.dwarf.member_offset("GateDesc", m);
        let (Some(lo), Some(mid), Some(hi)) =
            (off("offset_low"), off("offset_middle"), off("offset_high"))
        else {
            return Vec::new();
        };
        let ist = off("ist");
        let u16_at = |va: u64| {
            self.mem
                .read(va, 2)
                .ok()
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
        };
        (0..IDT_ENTRIES)
            .filter_map(|v| {
                let at = base.wrapping_add(v.wrapping_mul(size.max(1)));
                let handler = u16_at(at.wrapping_add(lo))?
                    | u16_at(at.wrapping_add(mid))? << 16
                    | u64::from(self.mem.u32(at.wrapping_add(hi)).ok()?) << 32;
                Some(Gate {
                    vector: v as u8,
                    handler,
                    name: self.syms.describe(handler),
                    ist: ist
                        .and_then(|o| self.mem.read(at.wrapping_add(o), 1).ok())
                        .map_or(0, |b| b[0] & 7),
                })
            })
            .collect()
    }

    /// CPU `cpu`'s local APIC and event state.
    pub fn lapic_state(&self, cpu: usize) -> Option<LapicState> {
        let c = self.snap.cpus.get(cpu)?;
        let mut isr = c.lapic.isr.clone();
        let mut irr = c.lapic.irr.clone();
        isr.sort_unstable();
        irr.sort_unstable();
        Some(LapicState {
            cpu,
            captured: c.captured,
            tpr: c.lapic.tpr,
            ppr: c.lapic.ppr,
            isr,
            irr,
            nmi_pending: c.events.nmi_pending,
            nmi_masked: c.events.nmi_masked,
            injected: c.events.irq_injected.then_some(c.events.irq_vector),
            interrupts_enabled: c.regs.rflags & lockvmm_abi::eflags::X86_EFLAGS_IF != 0,
        })
    }
}
