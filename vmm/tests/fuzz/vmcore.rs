//! vmcores: a real one from a short run (hog_hard: two CPUs, an NMI on the stuck one), mutated
//! in its headers, its notes, its `LOCKVMM` note's JSON and the guest memory the analysis walks,
//! then read back and given every `inspect` command and the crash report.
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use lockvmm::analysis::{Analysis, Incident};
use lockvmm::image::{DebugInfo, Symbols};
use lockvmm::inspect::Inspector;
use lockvmm::output::vmcore::read_from;
use lockvmm::report::{CrashReport, ReportInput};
use lockvmm_abi::{PAGE_OFFSET, START_KERNEL_MAP};
use proptest::prelude::*;

use crate::mutate;

pub struct Base {
    pub bytes: Vec<u8>,
    pub kernel: PathBuf,
    pub syms: Symbols,
    pub dwarf: DebugInfo,
    /// (file offset, guest physical, length) of each memory segment.
    loads: Vec<(u64, u64, u64)>,
    /// Where the `LOCKVMM` note's JSON starts in the file, and its length.
    note: (usize, usize),
    notes_seg: usize,
    phoff: usize,
    phnum: usize,
    /// Each CPU's RSP and RBP in the snapshot.
    stack_regs: Vec<(u64, u64)>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The real vmcore, made once per test binary.
pub fn base() -> &'static Base {
    static B: OnceLock<Base> = OnceLock::new();
    B.get_or_init(|| {
        let (_, done, dir) = crate::common::run_complete("scenarios/hog_hard.toml");
        assert!(done.summary.vmcore.is_some());
        let bytes = std::fs::read(dir.join("vmcore")).unwrap();
        let kernel = dir.join("vmlinux");
        let elf = std::fs::read(&kernel).unwrap();
        let phoff = u64_at(&bytes, 32) as usize;
        let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
        let mut loads = Vec::new();
        let mut notes_seg = 0;
        for i in 0..phnum {
            let ph = phoff + i * 56;
            let ty = u32::from_le_bytes(bytes[ph..ph + 4].try_into().unwrap());
            let (off, paddr, len) = (
                u64_at(&bytes, ph + 8),
                u64_at(&bytes, ph + 24),
                u64_at(&bytes, ph + 32),
            );
            match ty {
                1 => loads.push((off, paddr, len)),
                4 => notes_seg = i,
                _ => {}
            }
        }
        let name = bytes.windows(8).position(|w| w == b"LOCKVMM\0").unwrap();
        let descsz = u32::from_le_bytes(bytes[name - 8..name - 4].try_into().unwrap()) as usize;
        let core = read_from(&mut Cursor::new(&bytes), "base").unwrap();
        let stack_regs = core
            .meta
            .cpus
            .iter()
            .map(|c| (c.regs.rsp, c.regs.rbp))
            .collect();
        Base {
            stack_regs,
            syms: Symbols::from_elf(&elf).unwrap(),
            dwarf: DebugInfo::from_elf(&elf).unwrap(),
            kernel,
            bytes,
            loads,
            note: (name + 8, descsz),
            notes_seg,
            phoff,
            phnum,
        }
    })
}

impl Base {
    /// The file offset of kernel virtual `va` (kernel image or direct map), if it is in a segment.
    fn file_offset(&self, va: u64) -> Option<usize> {
        let pa = if va >= START_KERNEL_MAP {
            va - START_KERNEL_MAP
        } else {
            va.checked_sub(PAGE_OFFSET)?
        };
        self.loads
            .iter()
            .find(|(_, p, l)| (*p..p + l).contains(&pa))
            .map(|(o, p, _)| (o + (pa - p)) as usize)
    }
}

#[derive(Debug, Clone)]
enum CoreEdit {
    /// An ELF header field: 0 e_type, 1 e_phoff, 2 e_phnum, 3 e_phentsize, 4 the class byte.
    Header {
        field: u8,
        sel: u64,
        random: u64,
    },
    /// A program header field: 0 p_type, 1 p_offset, 2 p_paddr, 3 p_filesz.
    Phdr {
        index: u64,
        field: u8,
        sel: u64,
        random: u64,
    },
    /// A note header word (namesz, descsz, type) somewhere in the notes.
    NoteWord {
        at: u64,
        sel: u64,
        random: u64,
    },
    /// The JSON of the LOCKVMM note, one value changed (or removed, or multiplied).
    Json {
        at: u64,
        how: u8,
        sel: u64,
        random: u64,
    },
    /// A qword of guest memory near a CPU's stack pointer or frame pointer, or in a kernel
    /// variable the analysis reads.
    Memory {
        target: u64,
        offset: u64,
        sel: u64,
        random: u64,
    },
    Truncate {
        at: u64,
    },
    Flip {
        at: u64,
        xor: u8,
    },
}

fn core_edit() -> impl Strategy<Value = CoreEdit> {
    let v = || (any::<u64>(), any::<u64>());
    prop_oneof![
        1 => (0u8..5, v()).prop_map(|(field, (sel, random))| CoreEdit::Header { field, sel, random }),
        1 => (any::<u64>(), 0u8..4, v())
            .prop_map(|(index, field, (sel, random))| CoreEdit::Phdr { index, field, sel, random }),
        1 => (any::<u64>(), v()).prop_map(|(at, (sel, random))| CoreEdit::NoteWord { at, sel, random }),
        4 => (any::<u64>(), 0u8..6, v())
            .prop_map(|(at, how, (sel, random))| CoreEdit::Json { at, how, sel, random }),
        6 => (any::<u64>(), 0u64..512, v())
            .prop_map(|(target, offset, (sel, random))| CoreEdit::Memory { target, offset, sel, random }),
        1 => any::<u64>().prop_map(|at| CoreEdit::Truncate { at }),
        1 => (any::<u64>(), 1u8..).prop_map(|(at, xor)| CoreEdit::Flip { at, xor }),
    ]
}

/// Kernel variables the analysis and `inspect` read.
const VARS: &[&str] = &[
    "task_pool",
    "per_cpu_area",
    "runqueues",
    "__log_buf",
    "log_next_seq",
    "qspinlock_spinning_on",
    "lab_locks",
    "timer_bases",
];

fn put(b: &mut [u8], at: usize, size: usize, v: u64) {
    if let Some(dst) = b.get_mut(at..at + size) {
        dst.copy_from_slice(&v.to_le_bytes()[..size]);
    }
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    put(b, at, 8, v);
}

fn json_edit(v: &mut serde_json::Value, at: u64, how: u8, sel: u64, random: u64) {
    fn leaves(v: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, c) in m {
                    path.push(k.clone());
                    out.push(path.clone());
                    leaves(c, path, out);
                    path.pop();
                }
            }
            serde_json::Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(path.clone());
                    leaves(c, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    leaves(v, &mut Vec::new(), &mut all);
    // Half the time one of the note's own fields (mem_bytes, cpus, report_cpu, …), else any
    // value at all (a register of a CPU, a line of the console).
    if at.is_multiple_of(2) {
        all.retain(|p| p.len() == 1);
    }
    let path = &all[(at / 2 % all.len() as u64) as usize];
    let ptr = format!("/{}", path.join("/"));
    let Some(n) = v.pointer_mut(&ptr) else { return };
    // Mostly a value of the same kind (a document the reader accepts, with values it must
    // check), sometimes one of another kind or none.
    use serde_json::Value as J;
    match (&mut *n, how) {
        (J::Number(_), 0..=3) => *n = J::from(mutate::int(sel, random)),
        (J::Number(_), 4) => *n = J::from((mutate::int(sel, random) as i64).wrapping_neg()),
        (J::String(_), 0..=4) => *n = J::from(mutate::string(sel)),
        (J::Bool(b), 0..=4) => *b = !*b,
        (J::Array(a), 0..=2) => {
            if let Some(first) = a.first().cloned() {
                a.extend(std::iter::repeat_n(first, (sel % 300) as usize));
            }
        }
        (J::Array(a), 3..=4) => a.truncate((sel % 2) as usize),
        (J::Null, _) => *n = J::from(mutate::int(sel, random)),
        (_, 5) => {
            let (parent, last) = ptr.rsplit_once('/').unwrap();
            if let Some(J::Object(m)) = v.pointer_mut(parent) {
                m.remove(last);
            }
        }
        _ => *n = J::from(mutate::string(sel)),
    }
}

fn apply(b: &Base, bytes: &mut Vec<u8>, e: &CoreEdit) {
    let len = bytes.len() as u64;
    match e {
        CoreEdit::Header { field, sel, random } => {
            let v = mutate::int(*sel, *random);
            let (at, size) = [(16, 2), (32, 8), (56, 2), (54, 2), (4, 1)][*field as usize % 5];
            put(bytes, at, size, v);
        }
        CoreEdit::Phdr {
            index,
            field,
            sel,
            random,
        } => {
            // Mostly the notes' segment and the first memory segments.
            let i = if index.is_multiple_of(2) {
                b.notes_seg
            } else {
                (*index / 2 % b.phnum as u64) as usize
            };
            let ph = b.phoff + i * 56;
            let v = mutate::int(*sel, *random);
            let (at, size) = [(0, 4), (8, 8), (24, 8), (32, 8)][*field as usize % 4];
            put(bytes, ph + at, size, v);
        }
        CoreEdit::NoteWord { at, sel, random } => {
            let (start, _) = b.note;
            let at = (*at % start as u64) as usize & !3;
            let v = mutate::int(*sel, *random) as u32;
            if let Some(dst) = bytes.get_mut(at..at + 4) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        CoreEdit::Json {
            at,
            how,
            sel,
            random,
        } => {
            // The base's note, edited, appended to the file; the notes' segment points there
            // (the CPU notes before it are the base's).
            let (start, size) = b.note;
            let Ok(mut v) =
                serde_json::from_slice::<serde_json::Value>(&b.bytes[start..start + size])
            else {
                return;
            };
            json_edit(&mut v, *at, *how, *sel, *random);
            let json = serde_json::to_vec(&v).unwrap();
            let notes_ph = b.phoff + b.notes_seg * 56;
            let notes_at = u64_at(&b.bytes, notes_ph + 8) as usize;
            let mut notes = b.bytes[notes_at..start - 20].to_vec();
            notes.extend_from_slice(&8u32.to_le_bytes());
            notes.extend_from_slice(&(json.len() as u32).to_le_bytes());
            notes.extend_from_slice(&0x4c4b_564du32.to_le_bytes());
            notes.extend_from_slice(b"LOCKVMM\0");
            notes.extend_from_slice(&json);
            notes.resize(notes.len().next_multiple_of(4), 0);
            let new_at = bytes.len() as u64;
            bytes.extend_from_slice(&notes);
            set_u64(bytes, notes_ph + 8, new_at);
            set_u64(bytes, notes_ph + 32, notes.len() as u64);
        }
        CoreEdit::Memory {
            target,
            offset,
            sel,
            random,
        } => {
            // Near a captured CPU's RSP or RBP (its frames), or inside a kernel variable.
            let n_regs = b.stack_regs.len() as u64 * 2;
            let va = if target % (n_regs + VARS.len() as u64) < n_regs {
                let t = target % (n_regs + VARS.len() as u64);
                let (rsp, rbp) = b.stack_regs[(t / 2) as usize];
                (if t.is_multiple_of(2) { rsp } else { rbp }).wrapping_add(offset * 8)
            } else {
                let name = VARS[(target % VARS.len() as u64) as usize];
                let Some(s) = b.syms.get(name) else { return };
                s.addr + (offset * 8 * (random % 64 + 1)) % s.size.max(8)
            };
            // A value the walk will follow: another stack slot, a symbol, or an edge value.
            let v = match sel % 4 {
                0 => va.wrapping_add(random % 256),
                1 => b
                    .syms
                    .addr_of(VARS[(random % VARS.len() as u64) as usize])
                    .unwrap_or(0),
                _ => mutate::int(*sel, *random),
            };
            if let Some(at) = b.file_offset(va) {
                set_u64(bytes, at, v);
            }
        }
        CoreEdit::Truncate { at } => {
            let keep = (*at % len.max(1)) as usize;
            bytes.truncate(keep);
        }
        CoreEdit::Flip { at, xor } => {
            let i = (*at % len.max(1)) as usize;
            if let Some(x) = bytes.get_mut(i) {
                *x ^= xor;
            }
        }
    }
}

/// Every inspect command, with arguments from the snapshot.
pub fn commands(insp: &Inspector) -> Vec<String> {
    let mut cmds: Vec<String> = [
        "bt",
        "bt -a",
        "bt -l",
        "bt -c 1",
        "bt 7",
        "regs 0",
        "regs 1",
        "regs 300",
        "ps",
        "log",
        "help",
        "sym startup_64",
        "sym task_pool",
        "sym ffffffff81000000",
        "sym 0",
        "rd runqueues 64",
        "rd 0 4",
        "p runqueues",
        "p runqueues[1]",
        "p runqueues[99999999999]",
        "p per_cpu_area[0]",
        "p __log_buf",
        "p log_next_seq",
        "p task_pool[3]",
        "struct rq",
        "struct rq -o",
        "struct task_struct",
        "struct printk_log -o",
        "nonsense",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for c in &insp.snap.cpus {
        cmds.push(format!("sym {:x}", c.regs.rip));
        cmds.push(format!("rd {:x} 32", c.regs.rsp));
        cmds.push(format!("struct task_struct {:x}", c.regs.rsp));
    }
    if let Some(a) = insp.syms.addr_of("task_pool") {
        cmds.push(format!("struct task_struct {a:x}"));
    }
    cmds
}

/// The crash report the run would write, over this snapshot.
pub fn report(insp: &Inspector) {
    let a = Analysis::new(&insp.snap, &insp.syms, &insp.dwarf);
    let backtraces: Vec<_> = (0..insp.snap.cpus.len()).map(|c| a.backtrace(c)).collect();
    let cpu = insp.core.meta.report_cpu.unwrap_or(0);
    let r = CrashReport::build(
        &a,
        ReportInput {
            cpu,
            incident: Incident::AllWaiting,
            backtraces: &backtraces,
            panic: Some("fuzz".into()),
            detections: Vec::new(),
            kernel: insp.kernel.display().to_string(),
            dumpfile: None,
            dmesg: a.dmesg(),
            hung: Vec::new(),
            splats: &[],
        },
    );
    let _ = r.render();
    let _ = (a.lock_waits(), a.held_locks());
    for (i, bt) in backtraces.iter().enumerate() {
        let _ = a.pointer_registers(&insp.snap.cpus[i].regs);
        let _ = bt.functions();
    }
}

proptest! {
    #![proptest_config(crate::config(400))]

    #[test]
    fn mutated_vmcores_never_panic(edits in proptest::collection::vec(core_edit(), 1..5)) {
        let b = base();
        let mut bytes = b.bytes.clone();
        for e in &edits {
            apply(b, &mut bytes, e);
        }
        let Ok(core) = read_from(&mut Cursor::new(&bytes), "fuzz") else {
            return Ok(());
        };
        prop_assert!(core.memory.len() as u64 <= lockvmm::memory::MAX_MEM_MIB << 20);
        let insp = Inspector::with_kernel(core, b.kernel.clone(), b.syms.clone(), b.dwarf.clone(), None);
        for c in commands(&insp) {
            let _ = insp.exec(&c);
        }
        report(&insp);
    }
}
