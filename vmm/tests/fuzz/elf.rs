//! Guest kernel ELFs: the embedded guest, mutated in its ELF, section and program headers and
//! in its DWARF (type references rewired into cycles, sizes, counts and offsets set to
//! extremes, raw bytes flipped), then loaded, read for symbols, types and source lines, and used
//! to analyse a real snapshot and answer `inspect`'s commands.
use std::sync::OnceLock;

use lockvmm::analysis::Analysis;
use lockvmm::image::loader::EMBEDDED_GUEST;
use lockvmm::image::{DebugInfo, KernelImage, SourceLines, Symbols};
use lockvmm::inspect::Inspector;
use lockvmm::memory::GuestMemory;
use lockvmm::output::vmcore::read_from;
use object::{Object, ObjectSection};
use proptest::prelude::*;

use crate::elfmut::{self, Die};
use crate::{mutate, vmcore};

struct Guest {
    dies: Vec<Die>,
    /// File ranges of the DWARF and symbol sections.
    sections: Vec<(u64, u64)>,
    shoff: usize,
    shnum: usize,
    phoff: usize,
    phnum: usize,
}

fn guest() -> &'static Guest {
    static G: OnceLock<Guest> = OnceLock::new();
    G.get_or_init(|| {
        let e = EMBEDDED_GUEST;
        let file = object::File::parse(e).unwrap();
        let sections = file
            .sections()
            .filter(|s| {
                s.name().is_ok_and(|n| {
                    n.starts_with(".debug") || n.contains("symtab") || n.contains("strtab")
                })
            })
            .filter_map(|s| s.file_range())
            .collect();
        let u16_at = |at: usize| u16::from_le_bytes([e[at], e[at + 1]]) as usize;
        Guest {
            dies: elfmut::dies(e),
            sections,
            shoff: u64::from_le_bytes(e[40..48].try_into().unwrap()) as usize,
            shnum: u16_at(60),
            phoff: u64::from_le_bytes(e[32..40].try_into().unwrap()) as usize,
            phnum: u16_at(56),
        }
    })
}

#[derive(Debug, Clone)]
enum ElfEdit {
    /// 0 e_type, 1 e_machine, 2 e_phoff, 3 e_shoff, 4 e_phnum, 5 e_shnum, 6 e_shstrndx, 7 class.
    Header { field: u8, sel: u64, random: u64 },
    /// A section header: 0 sh_offset, 1 sh_size, 2 sh_type, 3 sh_flags (compressed), 4 sh_link.
    Section {
        index: u64,
        field: u8,
        sel: u64,
        random: u64,
    },
    /// A program header: 0 p_offset, 1 p_paddr, 2 p_filesz, 3 p_memsz.
    Segment {
        index: u64,
        field: u8,
        sel: u64,
        random: u64,
    },
    /// A type reference pointed at itself, at another entry of its unit, or anywhere.
    TypeRef { die: u64, to: u64, how: u8 },
    /// A size, count, bound or member offset set to an edge value.
    Size { die: u64, sel: u64, random: u64 },
    /// Bytes flipped inside the DWARF or symbol sections.
    Flip { section: u64, at: u64, xor: u8 },
}

fn elf_edit() -> impl Strategy<Value = ElfEdit> {
    let v = || (any::<u64>(), any::<u64>());
    prop_oneof![
        1 => (0u8..8, v()).prop_map(|(field, (sel, random))| ElfEdit::Header { field, sel, random }),
        1 => (any::<u64>(), 0u8..5, v())
            .prop_map(|(index, field, (sel, random))| ElfEdit::Section { index, field, sel, random }),
        1 => (any::<u64>(), 0u8..4, v())
            .prop_map(|(index, field, (sel, random))| ElfEdit::Segment { index, field, sel, random }),
        4 => (any::<u64>(), any::<u64>(), 0u8..3).prop_map(|(die, to, how)| ElfEdit::TypeRef { die, to, how }),
        3 => (any::<u64>(), v()).prop_map(|(die, (sel, random))| ElfEdit::Size { die, sel, random }),
        2 => (any::<u64>(), any::<u64>(), 1u8..).prop_map(|(section, at, xor)| ElfEdit::Flip { section, at, xor }),
    ]
}

fn put(e: &mut [u8], at: usize, size: usize, v: u64) {
    if let Some(dst) = e.get_mut(at..at + size) {
        dst.copy_from_slice(&v.to_le_bytes()[..size]);
    }
}

fn apply(g: &Guest, e: &mut [u8], edit: &ElfEdit) {
    match edit {
        ElfEdit::Header { field, sel, random } => {
            let v = mutate::int(*sel, *random);
            match field {
                0 => put(e, 16, 2, v),
                1 => put(e, 18, 2, v),
                2 => put(e, 32, 8, v),
                3 => put(e, 40, 8, v),
                4 => put(e, 56, 2, v),
                5 => put(e, 60, 2, v),
                6 => put(e, 62, 2, v),
                _ => put(e, 4, 1, v),
            }
        }
        ElfEdit::Section {
            index,
            field,
            sel,
            random,
        } => {
            let sh = g.shoff + (*index % g.shnum as u64) as usize * 64;
            let v = mutate::int(*sel, *random);
            match field {
                0 => put(e, sh + 24, 8, v),
                1 => put(e, sh + 32, 8, v),
                2 => put(e, sh + 4, 4, v),
                3 => put(e, sh + 8, 8, 0x800 | v & 0xff),
                _ => put(e, sh + 40, 4, v),
            }
        }
        ElfEdit::Segment {
            index,
            field,
            sel,
            random,
        } => {
            let ph = g.phoff + (*index % g.phnum as u64) as usize * 56;
            let v = mutate::int(*sel, *random);
            put(
                e,
                ph + 8 + 16 * (*field as usize % 2) + 8 * (*field as usize / 2) * 3,
                8,
                v,
            );
        }
        ElfEdit::TypeRef { die, to, how } => {
            // Half the time a type entry (an array, enum, pointer, typedef, const: what type
            // walks follow), else any entry with a type (a member, a variable, a parameter).
            let kinds = [
                gimli::DW_TAG_array_type,
                gimli::DW_TAG_enumeration_type,
                gimli::DW_TAG_pointer_type,
                gimli::DW_TAG_typedef,
                gimli::DW_TAG_const_type,
            ];
            let typed: Vec<&Die> = g
                .dies
                .iter()
                .filter(|d| d.type_ref.is_some())
                .filter(|d| !die.is_multiple_of(2) || kinds.contains(&d.tag))
                .collect();
            let d = typed[(*die / 2 % typed.len() as u64) as usize];
            let a = d.attr(gimli::DW_AT_type).unwrap();
            let target = match how {
                0 => d.off,
                1 => {
                    let same: Vec<&Die> = g.dies.iter().filter(|x| x.unit == d.unit).collect();
                    same[(*to % same.len() as u64) as usize].off
                }
                _ => *to,
            };
            elfmut::set(e, a, target);
        }
        ElfEdit::Size { die, sel, random } => {
            let sized: Vec<(&Die, &elfmut::Attr)> = g
                .dies
                .iter()
                .flat_map(|d| d.attrs.iter().map(move |a| (d, a)))
                .filter(|(_, a)| {
                    [
                        gimli::DW_AT_byte_size,
                        gimli::DW_AT_count,
                        gimli::DW_AT_upper_bound,
                        gimli::DW_AT_data_member_location,
                    ]
                    .contains(&a.name)
                })
                .collect();
            let (_, a) = sized[(*die % sized.len() as u64) as usize];
            elfmut::set(e, a, mutate::int(*sel, *random));
        }
        ElfEdit::Flip { section, at, xor } => {
            let (off, size) = g.sections[(*section % g.sections.len() as u64) as usize];
            if size > 0 {
                let i = (off + at % size) as usize;
                e[i] ^= xor;
            }
        }
    }
}

/// A real snapshot for the analysis to read with the mutated kernel.
fn snapshot_core() -> lockvmm::output::vmcore::LoadedCore {
    read_from(&mut std::io::Cursor::new(&vmcore::base().bytes), "base").unwrap()
}

fn exercise(elf: Vec<u8>, with_lines: bool) {
    let path = std::env::temp_dir().join(format!("lockvmm-fuzz-{}.elf", std::process::id()));
    if let Ok(k) = KernelImage::from_elf(elf.clone(), path.clone()) {
        if let Ok(mem) = GuestMemory::new(64) {
            let _ = k.load(&mem);
        }
        let _ = k.debug_info().spinlocks();
    }
    let syms = Symbols::from_elf(&elf).unwrap_or_default();
    let dwarf = DebugInfo::from_elf(&elf).unwrap_or_default();
    for name in dwarf.struct_names().into_iter().take(400) {
        let _ = dwarf.struct_layout(name);
    }
    for var in [
        "runqueues",
        "task_pool",
        "per_cpu_area",
        "__log_buf",
        "lab_locks",
        "timer_bases",
    ] {
        let _ = (
            dwarf.array_of(var),
            dwarf.var_elem(var),
            dwarf.var_type_name(var),
        );
        if let Some(a) = syms.addr_of(var) {
            for off in [0, 4, 8, 100, 4096, 1 << 20] {
                let _ = dwarf.describe(&syms, a + off);
            }
        }
    }
    let _ = dwarf.spinlocks();
    let lines = if with_lines {
        std::fs::write(&path, &elf).unwrap();
        SourceLines::from_elf(&elf)
    } else {
        None
    };
    if let Some(l) = &lines {
        for s in ["startup_64", "kthread", "native_queued_spin_lock_slowpath"] {
            if let Some(a) = syms.addr_of(s) {
                let _ = l.line(a + 4, true);
            }
        }
    }
    let insp = Inspector::with_kernel(snapshot_core(), path, syms, dwarf, lines);
    let a = Analysis::new(&insp.snap, &insp.syms, &insp.dwarf);
    let _ = (a.dmesg(), a.lock_waits(), a.held_locks());
    for c in vmcore::commands(&insp) {
        let _ = insp.exec(&c);
    }
    vmcore::report(&insp);
}

proptest! {
    #![proptest_config(crate::config(150))]

    #[test]
    fn mutated_guest_elfs_never_panic(
        edits in proptest::collection::vec(elf_edit(), 1..5),
        with_lines in proptest::bool::weighted(0.25),
    ) {
        let g = guest();
        let mut elf = EMBEDDED_GUEST.to_vec();
        for e in &edits {
            apply(g, &mut elf, e);
        }
        exercise(elf, with_lines);
    }
}
