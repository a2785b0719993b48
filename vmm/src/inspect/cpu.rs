//! `regs` and `irq`: one CPU's registers, and the interrupt state of every CPU.
use std::fmt::Write as _;

use super::Inspector;
use crate::report::render_regs;

impl Inspector {
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

    /// `irq [-d | -c CPU[S] | VECTOR]`. crash's `irq -d` lists the IDT (`  [14] page_fault`);
    /// this guest has no irq_desc, so plain `irq` shows what the snapshot has per CPU instead:
    /// RFLAGS.IF, the local APIC's TPR/PPR and the vectors in service (ISR) and requested
    /// (IRR), and pending or injected events, then the handler of every vector listed.
    pub(super) fn irq(&self, args: &[&str]) -> Result<String, String> {
        let a = self.analysis();
        let idt = a.idt();
        let name = |v: u8| {
            idt.iter()
                .find(|g| g.vector == v)
                .map_or_else(|| "?".to_string(), |g| g.name.clone())
        };
        let cpus: Vec<usize> = match args {
            ["-d"] => {
                // crash's x86_64_display_idt_table: "%*s[%d] %s".
                let mut s = String::new();
                for g in &idt {
                    let pad = if g.vector < 10 {
                        "  "
                    } else if g.vector < 100 {
                        " "
                    } else {
                        ""
                    };
                    let _ = writeln!(s, "{pad}[{}] {}", g.vector, g.name);
                }
                return Ok(s);
            }
            [] => (0..self.snap.cpus.len()).collect(),
            ["-c", c] => self.cpu_list(c)?,
            [v] if !v.starts_with('-') => {
                let v: u8 = v
                    .parse()
                    .map_err(|_| format!("irq: invalid vector: {v} (0-255)"))?;
                let mut s = format!(
                    "VECTOR: {v}  HANDLER: {}
",
                    name(v)
                );
                for c in 0..self.snap.cpus.len() {
                    let Some(l) = a.lapic_state(c) else { continue };
                    let what = [
                        (l.isr.contains(&v), "in service (ISR)"),
                        (l.irr.contains(&v), "requested (IRR)"),
                        (l.injected == Some(v), "being injected"),
                    ];
                    for (_, w) in what.iter().filter(|(yes, _)| *yes) {
                        let _ = writeln!(s, "  CPU {c}: {w}");
                    }
                }
                return Ok(s);
            }
            _ => return Err("usage: irq [-d | -c CPU[S] | VECTOR]".into()),
        };
        let list = |v: &[u8]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
            }
        };
        let mut s = String::from(" CPU  IF  TPR  PPR  ISR          IRR          EVENTS\n");
        let mut seen: Vec<u8> = Vec::new();
        for c in cpus {
            let Some(l) = a.lapic_state(c) else { continue };
            if !l.captured {
                let _ = writeln!(s, "{c:>4}  (not captured)");
                continue;
            }
            let mut events = Vec::new();
            if l.nmi_pending {
                events.push("NMI pending".to_string());
            }
            if l.nmi_masked {
                events.push("NMIs blocked".to_string());
            }
            if let Some(v) = l.injected {
                events.push(format!("injecting {v}"));
            }
            let _ = writeln!(
                s,
                "{c:>4}  {:>2}  {:02x}   {:02x}   {:<12} {:<12} {}",
                u8::from(l.interrupts_enabled),
                l.tpr,
                l.ppr,
                list(&l.isr),
                list(&l.irr),
                if events.is_empty() {
                    "-".to_string()
                } else {
                    events.join(", ")
                }
            );
            seen.extend(l.isr.iter().chain(&l.irr).chain(l.injected.iter()));
        }
        seen.sort_unstable();
        seen.dedup();
        if !seen.is_empty() {
            s.push_str("\nVECTOR  HANDLER\n");
            for v in seen {
                let _ = writeln!(s, "{v:>6}  {}", name(v));
            }
        }
        Ok(s)
    }
}
