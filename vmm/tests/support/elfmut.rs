//! Structure-aware mutation of a kernel ELF's DWARF, for the hostile-file tests and the fuzzing
//! suite: where each debugging entry's fixed-size attributes lie in the file, so a test can
//! rewire a type reference (a cycle) or change a size, count or offset in place.
#![allow(dead_code)]

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

/// One fixed-size attribute of an entry, where it lies in the file.
#[derive(Debug, Clone)]
pub struct Attr {
    pub name: gimli::DwAt,
    pub form: gimli::DwForm,
    /// File offset and size of its value.
    pub at: usize,
    pub size: usize,
}

/// One debugging information entry.
#[derive(Debug, Clone)]
pub struct Die {
    /// Which unit (index), and the entry's offset in it (what `DW_FORM_ref4` holds).
    pub unit: usize,
    pub off: u64,
    pub tag: gimli::DwTag,
    pub name: Option<String>,
    pub attrs: Vec<Attr>,
    /// The unit-relative target of its `DW_AT_type`, when that is a `DW_FORM_ref4`.
    pub type_ref: Option<u64>,
}

impl Die {
    pub fn attr(&self, name: gimli::DwAt) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// Every entry of `.debug_info`, with where its fixed-size attributes lie in `elf`.
pub fn dies(elf: &[u8]) -> Vec<Die> {
    let file = object::File::parse(elf).unwrap();
    let section = file.section_by_name(".debug_info").expect(".debug_info");
    let (base, _) = section.file_range().expect("an uncompressed .debug_info");
    let load = |id: gimli::SectionId| -> Result<&[u8], gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]))
    };
    let sections = gimli::DwarfSections::load(load).unwrap();
    let dwarf = sections.borrow(|s| EndianSlice::new(s, RunTimeEndian::Little));
    let mut out = Vec::new();
    let mut units = dwarf.units();
    let mut u = 0;
    while let Some(header) = units.next().unwrap() {
        let unit_at = header.offset().as_debug_info_offset().unwrap().0;
        let unit = dwarf.unit(header).unwrap();
        let mut raw = unit.entries_raw(None).unwrap();
        while !raw.is_empty() {
            let off = raw.next_offset().0 as u64;
            let Some(abbrev) = raw.read_abbreviation().unwrap() else {
                continue;
            };
            let mut die = Die {
                unit: u,
                off,
                tag: abbrev.tag(),
                name: None,
                attrs: Vec::new(),
                type_ref: None,
            };
            for spec in abbrev.attributes() {
                let before = raw.next_offset().0;
                let attr = raw.read_attribute(*spec).unwrap();
                let after = raw.next_offset().0;
                let size = after - before;
                if spec.name() == gimli::DW_AT_name {
                    die.name = dwarf
                        .attr_string(&unit, attr.value())
                        .ok()
                        .map(|s| s.to_string_lossy().into_owned());
                }
                if spec.name() == gimli::DW_AT_type
                    && let AttributeValue::UnitRef(r) = attr.value()
                    && spec.form() == gimli::DW_FORM_ref4
                {
                    die.type_ref = Some(r.0 as u64);
                }
                if matches!(size, 1 | 2 | 4 | 8) {
                    die.attrs.push(Attr {
                        name: spec.name(),
                        form: spec.form(),
                        at: base as usize + unit_at + before,
                        size,
                    });
                }
            }
            out.push(die);
        }
        u += 1;
    }
    out
}

/// Writes `value` (little-endian, truncated to the attribute's size) over an attribute.
pub fn set(elf: &mut [u8], a: &Attr, value: u64) {
    elf[a.at..a.at + a.size].copy_from_slice(&value.to_le_bytes()[..a.size]);
}

/// The entry of `unit` at unit offset `off`.
pub fn at(dies: &[Die], unit: usize, off: u64) -> Option<&Die> {
    dies.iter().find(|d| d.unit == unit && d.off == off)
}

/// The variable named `name` that has a `DW_FORM_ref4` type.
pub fn variable<'a>(dies: &'a [Die], name: &str) -> &'a Die {
    dies.iter()
        .find(|d| {
            d.tag == gimli::DW_TAG_variable
                && d.name.as_deref() == Some(name)
                && d.type_ref.is_some()
        })
        .unwrap_or_else(|| panic!("no variable {name} with a unit-local type"))
}

/// Makes `die`'s own type reference point at itself.
pub fn self_reference(elf: &mut [u8], die: &Die) {
    let a = die.attr(gimli::DW_AT_type).expect("a type reference");
    set(elf, a, die.off);
}
