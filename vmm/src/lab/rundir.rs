//! A run owns its `--out` directory. It takes an exclusive lock on `.lockvmm.lock` there (a
//! second run into the same directory is refused, not interleaved), removes what an earlier run
//! left (its outputs, and the temporary files of one that was killed), and a run that fails
//! before it produced anything removes the directory it created.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The files a run leaves (a stale one would be mistaken for this run's).
pub const OUTPUTS: [&str; 5] = [
    "console.log",
    "result.json",
    "report.txt",
    "vmcore",
    "vmlinux",
];
/// The lock file; it holds the pid of the run that owns the directory.
pub const LOCK_FILE: &str = ".lockvmm.lock";

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot create the run directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "another lockvmm run{holder} is writing into {path}: wait for it to end, or choose another --out"
    )]
    Busy { path: PathBuf, holder: String },
    #[error("cannot lock the run directory {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}, left by an earlier run: {source}")]
    Clear { path: PathBuf, source: io::Error },
}

/// A run directory this process owns until it is dropped.
pub struct RunDir {
    path: PathBuf,
    /// Held open: the lock lasts as long as the file descriptor.
    _lock: File,
    /// Directories this claim created, deepest first.
    created: Vec<PathBuf>,
}

impl RunDir {
    /// Creates (if needed), locks and clears `path` for a new run.
    pub fn claim(path: &Path) -> Result<RunDir, RunDirError> {
        let mut created = Vec::new();
        let mut p = path;
        while !p.as_os_str().is_empty() && !p.exists() {
            created.push(p.to_path_buf());
            match p.parent() {
                Some(parent) => p = parent,
                None => break,
            }
        }
        std::fs::create_dir_all(path).map_err(|source| RunDirError::Create {
            path: path.into(),
            source,
        })?;
        let lock_path = path.join(LOCK_FILE);
        let lock_err = |source| RunDirError::Lock {
            path: path.into(),
            source,
        };
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(lock_err)?;
        // SAFETY: flock(2) on a descriptor we own; it only changes the file's lock state.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(lock_err(e));
            }
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => String::new(),
                p => format!(" (pid {p})"),
            };
            return Err(RunDirError::Busy {
                path: path.into(),
                holder,
            });
        }
        lock.set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(lock_err)?;
        let dir = RunDir {
            path: path.into(),
            _lock: lock,
            created,
        };
        dir.clear()?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes what an earlier run left: its outputs and any temporary file of one.
    fn clear(&self) -> Result<(), RunDirError> {
        let entries = std::fs::read_dir(&self.path).map_err(|source| RunDirError::Clear {
            path: self.path.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = OUTPUTS.contains(&name.as_str())
                || OUTPUTS
                    .iter()
                    .any(|o| name.starts_with(&format!(".{o}.tmp.")));
            if !stale {
                continue;
            }
            match std::fs::remove_file(e.path()) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RunDirError::Clear {
                        path: e.path(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The run failed before it produced anything: removes what it started (an empty console
    /// log), the lock, and the directories this claim created, if they are empty.
    pub fn abandon(self) {
        let _ = self.clear();
        let _ = std::fs::remove_file(self.path.join(LOCK_FILE));
        for d in &self.created {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}
