//! Atomic output files: write to a hidden temporary file next to the target, then rename.
//!
//! The temporary file is `.<name>.tmp-<pid>-<n>` in the same directory as the target, so the
//! final `rename` never crosses a file system. If the output is dropped before
//! [`AtomicOutput::commit`], the temporary file is removed and the target is left untouched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Temporary files of the outputs not yet committed or dropped (for [`remove_pending`]).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remove the temporary files of every output still pending, and return their targets' temp
/// paths. Meant for a signal-watching thread that is about to end the process (SIGINT/SIGTERM):
/// no half-written file is left behind, and no target is touched. Safe to call at any time
/// from any thread (never from inside a signal handler: it takes a lock).
pub fn remove_pending() -> Vec<PathBuf> {
    let list = pending().clone();
    for tmp in &list {
        let _ = std::fs::remove_file(tmp);
        // The PNG writer renders to a sibling of the temp file first.
        let _ = std::fs::remove_file(tmp.with_extension("tmp.png"));
    }
    list
}

fn forget(tmp: &Path) {
    let mut p = pending();
    if let Some(i) = p.iter().position(|x| x == tmp) {
        p.swap_remove(i);
    }
}

/// A pending output file. Write to [`AtomicOutput::tmp_path`], then call [`AtomicOutput::commit`].
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    tmp: PathBuf,
    force: bool,
    done: bool,
}

impl AtomicOutput {
    /// Prepare to write `target`. Fails if `target` exists and `force` is false, if it is a
    /// directory, or if its parent directory does not exist.
    pub fn new(target: impl AsRef<Path>, force: bool) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = match target.file_name() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => return Err(Error::file(&target, "output path has no file name")),
        };
        if target.is_dir() {
            return Err(Error::file(&target, "output path is a directory"));
        }
        if target.exists() && !force {
            return Err(Error::file(
                &target,
                "output file already exists; overwriting needs force (--force)",
            ));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::file(
                &target,
                format!("output directory {} does not exist", dir.display()),
            ));
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        pending().push(tmp.clone());
        Ok(AtomicOutput {
            target,
            tmp,
            force,
            done: false,
        })
    }

    /// Where to write the data.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final output path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Move the temporary file into place. Without `force` this never replaces a file that
    /// appeared in the meantime (hard link + unlink, which fails if the target exists).
    pub fn commit(mut self) -> Result<PathBuf> {
        let res = if self.force {
            std::fs::rename(&self.tmp, &self.target)
        } else {
            match std::fs::hard_link(&self.tmp, &self.target) {
                Ok(()) => std::fs::remove_file(&self.tmp),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::file(
                        &self.target,
                        "output file already exists; overwriting needs force (--force)",
                    ));
                }
                // File systems without hard links: fall back to check + rename.
                Err(_) => {
                    if self.target.exists() {
                        return Err(Error::file(
                            &self.target,
                            "output file already exists; overwriting needs force (--force)",
                        ));
                    }
                    std::fs::rename(&self.tmp, &self.target)
                }
            }
        };
        res.map_err(|e| {
            Error::file(
                &self.target,
                format!("cannot move {} into place: {e}", self.tmp.display()),
            )
        })?;
        self.done = true;
        forget(&self.tmp);
        Ok(self.target.clone())
    }
}

/// Check, before any work, that `target` can be written: the checks of [`AtomicOutput::new`]
/// (exists without `force`, a directory, missing parent directory) plus creating and removing
/// its temporary file (permissions, read-only file system). Nothing is left behind.
pub fn check_writable(target: impl AsRef<Path>, force: bool) -> Result<()> {
    let out = AtomicOutput::new(target, force)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out.tmp_path())
        .map_err(|e| Error::file(out.target(), format!("cannot create the output file: {e}")))?;
    Ok(())
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
            forget(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lgn-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commit_moves_and_drop_cleans() {
        let d = tmpdir("a");
        let target = d.join("out.h5");
        let a = AtomicOutput::new(&target, false).unwrap();
        std::fs::write(a.tmp_path(), b"x").unwrap();
        let tmp = a.tmp_path().to_path_buf();
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".out.h5.tmp-"));
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert!(!tmp.exists());

        // Existing target: refused without force, message mentions --force.
        let err = AtomicOutput::new(&target, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");

        // Dropped without commit: temp removed, target untouched.
        let b = AtomicOutput::new(&target, true).unwrap();
        std::fs::write(b.tmp_path(), b"y").unwrap();
        let tmp = b.tmp_path().to_path_buf();
        drop(b);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"x");

        // With force: replaced.
        let c = AtomicOutput::new(&target, true).unwrap();
        std::fs::write(c.tmp_path(), b"z").unwrap();
        c.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"z");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn commit_refuses_target_created_meanwhile() {
        let d = tmpdir("b");
        let target = d.join("out.h5");
        let a = AtomicOutput::new(&target, false).unwrap();
        std::fs::write(a.tmp_path(), b"new").unwrap();
        let tmp = a.tmp_path().to_path_buf();
        std::fs::write(&target, b"old").unwrap();
        let err = a.commit().unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = AtomicOutput::new("/nonexistent-lgn-dir/x.h5", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
