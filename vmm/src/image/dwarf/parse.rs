//! Reading the guest's DWARF into [`DebugInfo`]'s type table (gimli).
use std::borrow::Cow;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

use super::{DebugInfo, Member, Type};
use crate::state::text::escape_line;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// How deep the walk follows nested entries (a real unit nests a few dozen levels; a hostile
/// one could nest deep enough to overflow the host's stack).
const MAX_DIE_DEPTH: u32 = 128;

impl DebugInfo {
    /// Reads the DWARF of an ELF image (empty if it has none).
    pub fn from_elf(elf: &[u8]) -> Result<Self, String> {
        let file = object::File::parse(elf).map_err(|e| e.to_string())?;
        let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
            Ok(file
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or(Cow::Borrowed(&[])))
        };
        let sections = gimli::DwarfSections::load(load).map_err(|e| e.to_string())?;
        let dwarf = sections.borrow(|s| EndianSlice::new(s, RunTimeEndian::Little));
        let mut info = DebugInfo::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next().map_err(|e| e.to_string())? {
            let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
            let mut tree = unit.entries_tree(None).map_err(|e| e.to_string())?;
            let root = tree.root().map_err(|e| e.to_string())?;
            info.walk(&dwarf, &unit, root, 0)
                .map_err(|e| e.to_string())?;
        }
        Ok(info)
    }

    fn walk(
        &mut self,
        dwarf: &gimli::Dwarf<R<'_>>,
        unit: &gimli::Unit<R<'_>>,
        node: gimli::EntriesTreeNode<'_, '_, '_, R<'_>>,
        depth: u32,
    ) -> gimli::Result<()> {
        let entry = node.entry().clone();
        let global = |off: gimli::UnitOffset| off.to_debug_info_offset(&unit.header).map(|o| o.0);
        let here = global(entry.offset()).unwrap_or(0);
        let name = match entry.attr_value(gimli::DW_AT_name)? {
            Some(v) => dwarf
                .attr_string(unit, v)
                .map(|s| escape_line(&s.to_string_lossy()))
                .ok(),
            None => None,
        };
        let type_of =
            |e: &gimli::DebuggingInformationEntry<R<'_>>| -> gimli::Result<Option<usize>> {
                Ok(match e.attr_value(gimli::DW_AT_type)? {
                    Some(AttributeValue::UnitRef(o)) => global(o),
                    Some(AttributeValue::DebugInfoRef(o)) => Some(o.0),
                    _ => None,
                })
            };
        let size = entry
            .attr_value(gimli::DW_AT_byte_size)?
            .and_then(|v| v.udata_value())
            .unwrap_or(0);
        let tag = entry.tag();
        let mut members = Vec::new();
        let mut count = 0;
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let ce = child.entry().clone();
            match ce.tag() {
                gimli::DW_TAG_member if tag == gimli::DW_TAG_structure_type => {
                    let mname = match ce.attr_value(gimli::DW_AT_name)? {
                        Some(v) => dwarf
                            .attr_string(unit, v)
                            .map(|s| escape_line(&s.to_string_lossy()))
                            .unwrap_or_default(),
                        None => String::new(),
                    };
                    let offset = ce
                        .attr_value(gimli::DW_AT_data_member_location)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    members.push(Member {
                        name: mname,
                        offset,
                        ty: type_of(&ce)?,
                    });
                }
                gimli::DW_TAG_subrange_type if tag == gimli::DW_TAG_array_type => {
                    count = match ce
                        .attr_value(gimli::DW_AT_count)?
                        .and_then(|v| v.udata_value())
                    {
                        Some(c) => c,
                        None => ce
                            .attr_value(gimli::DW_AT_upper_bound)?
                            .and_then(|v| v.udata_value())
                            .map_or(0, |u| u + 1),
                    };
                }
                _ if depth < MAX_DIE_DEPTH => self.walk(dwarf, unit, child, depth + 1)?,
                _ => {}
            }
        }
        match tag {
            gimli::DW_TAG_base_type => {
                self.types.insert(
                    here,
                    Type::Base {
                        name: name.unwrap_or_default(),
                        size,
                    },
                );
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                let name = name.unwrap_or_default();
                members.sort_by_key(|m| m.offset);
                if !members.is_empty() && !name.is_empty() {
                    self.structs.entry(name.clone()).or_insert(here);
                }
                self.types.insert(
                    here,
                    Type::Struct {
                        name,
                        size,
                        members,
                    },
                );
            }
            gimli::DW_TAG_pointer_type => {
                self.types.insert(
                    here,
                    Type::Pointer {
                        target: type_of(&entry)?,
                    },
                );
            }
            gimli::DW_TAG_array_type => {
                self.types.insert(
                    here,
                    Type::Array {
                        elem: type_of(&entry)?,
                        count,
                    },
                );
            }
            gimli::DW_TAG_typedef | gimli::DW_TAG_enumeration_type | gimli::DW_TAG_const_type => {
                let target = type_of(&entry)?;
                self.types.insert(
                    here,
                    Type::Named {
                        name: name.unwrap_or_default(),
                        target,
                    },
                );
            }
            gimli::DW_TAG_variable => {
                if let (Some(n), Some(t)) = (name, type_of(&entry)?) {
                    self.vars.entry(n).or_insert(t);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
