//! The qualified names of the kernel's global variables: the guest's statics live in Rust
//! namespaces (`guest::kernel::sched::core::runqueues`), which debuggers want spelled out.
use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

/// Globals the walk reports at most (the guest has about a hundred; DWARF may be hostile).
const MAX_GLOBALS: usize = 100_000;
/// Namespace nesting the walk follows.
const MAX_DEPTH: usize = 64;

/// `(short name, qualified name)` of every global variable declared in a namespace of the
/// `guest` crate, sorted; empty when the ELF has no DWARF or it cannot be read.
pub fn qualified_globals(elf: &[u8]) -> Vec<(String, String)> {
    let mut out = walk(elf).unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

fn walk(elf: &[u8]) -> Result<Vec<(String, String)>, gimli::Error> {
    let Ok(file) = object::File::parse(elf) else {
        return Ok(Vec::new());
    };
    let load = |id: gimli::SectionId| -> Result<std::borrow::Cow<'_, [u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(std::borrow::Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, RunTimeEndian::Little));
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut entries = unit.entries();
        // The namespace path at each depth; `None` below anything that is not a namespace.
        let mut path: Vec<Option<String>> = Vec::new();
        let mut depth: isize = 0;
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth += delta;
            if depth < 0 || depth as usize > MAX_DEPTH || out.len() >= MAX_GLOBALS {
                break;
            }
            let d = depth as usize;
            path.truncate(d);
            let name = match entry.attr_value(gimli::DW_AT_name)? {
                Some(v) => dwarf
                    .attr_string(&unit, v)
                    .ok()
                    .map(|s| s.to_string_lossy().into_owned()),
                None => None,
            };
            let in_namespaces = path.iter().skip(1).all(Option::is_some);
            match entry.tag() {
                gimli::DW_TAG_namespace if in_namespaces => path.push(name),
                gimli::DW_TAG_variable if in_namespaces => {
                    let ns: Vec<&str> = path.iter().skip(1).flatten().map(String::as_str).collect();
                    if let (Some(name), Some(&"guest")) = (name, ns.first()) {
                        out.push((name.clone(), format!("{}::{name}", ns.join("::"))));
                    }
                    path.push(None);
                }
                _ => path.push(if d == 0 { Some(String::new()) } else { None }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runqueues_is_in_the_scheduler_namespace() {
        let names = super::qualified_globals(crate::image::loader::EMBEDDED_GUEST);
        assert!(
            names.contains(&(
                "runqueues".into(),
                "guest::kernel::sched::core::runqueues".into()
            )),
            "{names:?}"
        );
        assert!(super::qualified_globals(b"not an elf").is_empty());
    }
}
