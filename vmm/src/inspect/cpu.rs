//! `bt` and `regs`: one CPU's stack and registers.
use std::fmt::Write as _;

use super::Inspector;
use crate::report::{render_bt, render_regs};

impl Inspector {
    pub(super) fn bt(&self, args: &[&str]) -> Result<String, String> {
        let a = self.analysis();
        // `-l` (source lines) goes with any of the other forms, as in crash.
        let with_lines = args.contains(&"-l");
        let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-l").collect();
        let cpus: Vec<usize> = match args.as_slice() {
            [] => vec![self.core.meta.report_cpu.unwrap_or(0)],
            ["-a"] => (0..self.snap.cpus.len()).collect(),
            ["-c", c] | [c] => vec![self.cpu_arg(c)?],
            _ => return Err("usage: bt [-l] [-a | CPU | -c CPU]".into()),
        };
        let lines = match (with_lines, &self.lines) {
            (false, _) => None,
            (true, Some(lines)) => Some(lines),
            (true, None) => {
                return Err(format!(
                    "bt: -l: no line tables (the kernel {} is not a file on disk; pass --kernel)",
                    self.kernel.display()
                ));
            }
        };
        let mut s = String::new();
        for (i, c) in cpus.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let mut bt = a.backtrace(*c);
            if let Some(lines) = lines {
                lines.annotate(&mut bt.items);
            }
            render_bt(&mut s, &bt);
        }
        Ok(s)
    }

    pub(super) fn regs(&self, args: &[&str]) -> Result<String, String> {
        let [c] = args else {
            return Err("usage: regs CPU".into());
        };
        let st = &self.snap.cpus[self.cpu_arg(c)?];
        if !st.captured {
            return Err(format!("CPU {c}: state not captured"));
        }
        let (r, sr) = (&st.regs, &st.sregs);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "CPU {}  ({})  MP state {}  freeze {} us",
            st.cpu, st.sched, st.mp_state, st.freeze_us
        );
        let _ = writeln!(s, "    RIP is in {}", self.syms.describe(r.rip));
        render_regs(&mut s, r);
        let _ = writeln!(
            s,
            "    CS: {:04x}  SS: {:04x}  DS: {:04x}  ES: {:04x}  FS: {:04x}  GS: {:04x}  TR: {:04x}",
            sr.cs, sr.ss, sr.ds, sr.es, sr.fs, sr.gs, sr.tr
        );
        let _ = writeln!(
            s,
            "    CR0: {:016x}  CR2: {:016x}  CR3: {:016x}  CR4: {:016x}",
            sr.cr0, sr.cr2, sr.cr3, sr.cr4
        );
        let _ = writeln!(
            s,
            "    EFER: {:016x}  APIC_BASE: {:016x}  GS_BASE: {:016x} ({})",
            sr.efer,
            sr.apic_base,
            sr.gs_base,
            self.syms.describe(sr.gs_base)
        );
        let _ = writeln!(
            s,
            "    GDT: {:016x}/{:x}  IDT: {:016x}/{:x}",
            sr.gdt_base, sr.gdt_limit, sr.idt_base, sr.idt_limit
        );
        let d = &st.debugregs;
        let _ = writeln!(
            s,
            "    DR0-3: {:x} {:x} {:x} {:x}  DR6: {:x}  DR7: {:x}",
            d[0], d[1], d[2], d[3], d[4], d[5]
        );
        let e = &st.events;
        let _ = writeln!(
            s,
            "    events: NMI pending={} injected={} masked={}  IRQ injected={} vector={:#x}  exception injected={} vector={}  shadow={}",
            e.nmi_pending,
            e.nmi_injected,
            e.nmi_masked,
            e.irq_injected,
            e.irq_vector,
            e.exception_injected,
            e.exception_vector,
            e.interrupt_shadow
        );
        let l = &st.lapic;
        let _ = writeln!(
            s,
            "    LAPIC: ID {} TPR {:#x} PPR {:#x} SPIV {:#x} IRR {:x?} ISR {:x?}",
            l.id, l.tpr, l.ppr, l.spiv, l.irr, l.isr
        );
        let _ = writeln!(
            s,
            "    LVT: timer {:#x}  PMC {:#x}  LINT0 {:#x}  LINT1 {:#x}  error {:#x}",
            l.lvt_timer, l.lvt_pmc, l.lvt_lint0, l.lvt_lint1, l.lvt_error
        );
        Ok(s)
    }
}
