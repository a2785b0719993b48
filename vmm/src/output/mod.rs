//! What a run leaves on disk: files written atomically, the vmcore (written and read back), the
//! debugger helpers beside it, and `result.json`'s schema.
pub mod atomic;
pub mod debuggers;
pub mod summary;
pub mod vmcore;

pub use atomic::{AtomicFile, write_atomic};
