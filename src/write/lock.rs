//! An exclusive advisory lock on a WIM path while a writer works on it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held for the life of a writer; released (and a target it created removed if still
/// empty) on drop.
pub struct TargetLock {
    file: File,
    path: PathBuf,
    created: bool,
}

impl TargetLock {
    /// Locks `target`, creating it empty if it does not exist. A second writer fails at once
    /// with a message saying the file is busy instead of waiting or interleaving.
    pub fn acquire(target: &Path) -> Result<TargetLock> {
        if target.to_str().is_some_and(crate::read::is_url) {
            return Err(Error::invalid(
                target,
                "remote images are read-only: write a local copy (wimfs export URL all COPY.wim)",
            ));
        }
        let regular = std::fs::symlink_metadata(target)
            .and_then(|_| std::fs::metadata(target))
            .map(|m| m.is_file());
        if target == Path::new("-") || matches!(regular, Ok(false)) {
            return Err(Error::invalid(
                target,
                "is not a regular file: a WIM read from standard input or a pipe cannot be \
                 changed (export it to a file)",
            ));
        }
        loop {
            let created = !target.exists();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(target)
                .map_err(|e| Error::io(target, "opening for writing", e))?;
            lock_exclusive(&file, target)?;
            // Another writer may have renamed a new file into place between our open and
            // our lock; our lock would then guard a dead inode. Retry on the new one.
            if same_file(&file, target) {
                return Ok(TargetLock {
                    file,
                    path: target.to_path_buf(),
                    created,
                });
            }
        }
    }
}

impl TargetLock {
    /// Whether this lock guards `target` (the same file, by identity).
    pub fn guards(&self, target: &Path) -> bool {
        same_file(&self.file, target)
    }
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        if self.created
            && self.file.metadata().is_ok_and(|m| m.len() == 0)
            && same_file(&self.file, &self.path)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File, target: &Path) -> Result<()> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(Error::invalid(
            target,
            "another process is writing this WIM; try again when it is done",
        )),
        Err(e) => Err(Error::io(target, "locking", e.into())),
    }
}

#[cfg(windows)]
fn lock_exclusive(file: &File, target: &Path) -> Result<()> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::ERROR_LOCK_VIOLATION;
    use windows_sys::Win32::Storage::FileSystem::{
        LockFileEx, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
    };
    use windows_sys::Win32::System::IO::OVERLAPPED;
    // Windows enforces byte-range locks against every other handle, readers included: lock
    // one byte far past any real end of a file, which nothing reads, so that the lock keeps
    // out other writers (who take the same lock) and nobody else.
    // SAFETY: OVERLAPPED is plain data; all zeros is its documented initial state.
    let mut at: OVERLAPPED = unsafe { std::mem::zeroed() };
    at.Anonymous.Anonymous.Offset = u32::MAX;
    at.Anonymous.Anonymous.OffsetHigh = i32::MAX as u32;
    // SAFETY: `file` is an open handle for the call; `at` outlives the call, which
    // completes synchronously (the handle is not overlapped).
    let ok = unsafe {
        LockFileEx(
            file.as_raw_handle(),
            LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            1,
            0,
            &mut at,
        )
    };
    if ok != 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
        return Err(Error::invalid(
            target,
            "another process is writing this WIM; try again when it is done",
        ));
    }
    Err(Error::io(target, "locking", err))
}

#[cfg(not(any(unix, windows)))]
fn lock_exclusive(_file: &File, _target: &Path) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}
