//! Source lines of guest code addresses (DWARF line tables through addr2line), for the report's
//! frames, as crash's `bt -l`.
use std::borrow::Cow;
use std::sync::Arc;

use gimli::{EndianArcSlice, RunTimeEndian};
use object::{Object, ObjectSection};

use crate::state::BtItem;

type Reader = EndianArcSlice<RunTimeEndian>;

pub struct SourceLines {
    ctx: addr2line::Context<Reader>,
}

impl SourceLines {
    /// The line tables of the guest kernel ELF whose bytes are `elf`: the image the run
    /// loaded, not the file at its path again (a second read and parse, and the wrong lines
    /// if the guest was rebuilt meanwhile). `None` when it has no usable DWARF.
    pub fn from_elf(elf: &[u8]) -> Option<Self> {
        let file = object::File::parse(elf).ok()?;
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data = file
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or(Cow::Borrowed(&[]));
            Ok(EndianArcSlice::new(Arc::from(&*data), endian))
        };
        let dwarf = gimli::Dwarf::load(load).ok()?;
        addr2line::Context::from_dwarf(dwarf)
            .ok()
            .map(|ctx| SourceLines { ctx })
    }

    /// `src/kernel/locking/qspinlock.rs:210` for a code address (`pc - 1` for a return address,
    /// which may be past its call's last instruction). With inlining, the line is the one in the
    /// function the backtrace names (the outermost inline frame), not in a helper inlined into it,
    /// as `bt -l` shows. Paths are cut to the guest's tree.
    pub fn line(&self, pc: u64, is_return: bool) -> Option<String> {
        let probe = if is_return { pc.wrapping_sub(1) } else { pc };
        let mut frames = self.ctx.find_frames(probe).skip_all_loads().ok()?;
        let mut outermost = None;
        while let Ok(Some(frame)) = frames.next() {
            if let Some(loc) = frame.location {
                outermost = Some(loc);
            }
        }
        let loc = outermost?;
        let file = loc.file?;
        let short = file
            .find("guest/src/")
            .map_or(file, |i| &file[i + "guest/".len()..]);
        Some(match loc.line {
            Some(line) => format!("{short}:{line}"),
            None => short.to_string(),
        })
    }

    /// `src/kernel/locking/qspinlock.rs:146` for the instruction at `pc`: its innermost
    /// location, inlined code included, as a line table gives it (`dis -l`); `None` for
    /// code the table gives no line (line 0).
    pub fn location(&self, pc: u64) -> Option<String> {
        let loc = self.ctx.find_location(pc).ok()??;
        let (file, line) = (loc.file?, loc.line.filter(|&l| l > 0)?);
        let short = file
            .find("guest/src/")
            .map_or(file, |i| &file[i + "guest/".len()..]);
        Some(format!("{short}:{line}"))
    }

    /// Fills the `source` of every frame of a backtrace.
    pub fn annotate(&self, items: &mut [BtItem]) {
        for item in items.iter_mut() {
            if let BtItem::Frame { n, pc, source, .. } = item {
                *source = self.line(*pc, *n > 0);
            }
        }
    }
}
