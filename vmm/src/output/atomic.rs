//! Files a run leaves behind are written completely or not at all: into a temporary file in
//! the same directory, then renamed over the final name. A stop signal that arrives while a file
//! is being written abandons that file (its temporary file is removed); a second signal removes
//! it on the way out (`process::signals`).
//!
//! No `fsync` before the rename: the promise is to anyone reading a run directory while or
//! after lockvmm runs, including after lockvmm is killed or crashes, and the rename alone keeps
//! it (the data is in the kernel's page cache before the name appears, whatever becomes of the
//! process). Only a crash of the host itself could leave a short file under the final name,
//! and a run is reproducible by design: run it again. The sync cost 1–5 ms per file on this
//! project's machines (a journal commit), a boot's `result.json` included, and more for a
//! vmcore.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::process::signals;

/// Writes `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(data)?;
    f.commit()
}

/// The temporary name `AtomicFile` writes `path` under: `.NAME.tmp.PID` beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// A file that appears under its name only once it is complete: written to a temporary file in
/// the same directory, then renamed by `commit`. Dropped without `commit`, the
/// temporary file is removed.
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// A stop signal had arrived before this file was started (the run is writing what is
    /// complete): only a newer one abandons it.
    signalled_before: bool,
}

impl AtomicFile {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = temp_path(path);
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(&tmp)?;
        signals::set_temp_file(Some(&tmp));
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
            file: Some(std::io::BufWriter::new(file)),
            signalled_before: signals::received().is_some(),
        })
    }

    fn check_signal(&self) -> std::io::Result<()> {
        match signals::received() {
            Some(sig) if !self.signalled_before => Err(std::io::Error::other(format!(
                "interrupted by {}",
                signals::name(sig)
            ))),
            _ => Ok(()),
        }
    }

    fn writer(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file already committed"))
    }

    /// Flushes and renames the file to its final name.
    pub fn commit(mut self) -> std::io::Result<()> {
        self.check_signal()?;
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("file already committed"))?;
        let result = file.into_inner().map_err(|e| e.into_error()).and_then(|f| {
            drop(f);
            std::fs::rename(&self.tmp, &self.path)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        signals::set_temp_file(None);
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check_signal()?;
        self.writer()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            signals::set_temp_file(None);
        }
    }
}
