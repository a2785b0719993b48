//! The guest kernel image: the ELF the machine boots ([`KernelImage`]), its symbols, its DWARF
//! types and variables, and the source lines under addresses. Everything here is read from a
//! file the user may have handed us (`--kernel`, the vmlinux beside a vmcore): untrusted input.
pub mod dwarf;
pub mod loader;
pub mod srcline;
pub mod symbols;

pub use dwarf::DebugInfo;
pub use loader::{KernelImage, LoadError};
pub use srcline::SourceLines;
pub use symbols::Symbols;
