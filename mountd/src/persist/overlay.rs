//! The staging directory of a read-write mount: one file per inode whose data was created or
//! changed since the mount, named by the inode number, the data log of small files and the
//! journal. Untouched files are never copied; a file is copied up from the WIM on its first
//! change. The directory is private (0700, files 0600, whatever the umask) and is removed
//! only when asked ([`Overlay::discard`]): after a commit, or on an explicit unmount without
//! one; otherwise it stays for `wimfs recover`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::private;

/// File name of the data log in the staging directory.
pub const DATA_LOG: &str = "data.log";

/// A staging directory owned by one mount.
pub struct Overlay {
    dir: PathBuf,
    /// The data log (opened on first use) and its length: the contents of small files,
    /// appended when they are closed, so that thousands of them cost no file creations.
    log: parking_lot::Mutex<Option<(File, u64)>>,
    /// Staging files kept open for reads and writes (a few; reopened when evicted).
    files: parking_lot::Mutex<lru::LruCache<u64, Arc<File>>>,
}

/// Staging files kept open at once.
const OPEN_FILES: usize = 64;

impl Overlay {
    /// Where a mount of `wim` stages data unless told otherwise: beside the WIM, so that
    /// staged files are on a disk the user chose, named so that two mounts never share it.
    pub fn default_dir(wim: &Path) -> PathBuf {
        let mut name = wim.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".staging-{}", std::process::id()));
        wim.with_file_name(name)
    }

    /// Creates the staging directory `dir`, which must not exist yet (a discard removes it
    /// whole, so it must hold nothing else), readable by its owner alone.
    pub fn create(dir: &Path) -> io::Result<Overlay> {
        private::create_dir(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating staging directory {}: {e}", dir.display()),
            )
        })?;
        Ok(Overlay {
            dir: dir.to_path_buf(),
            log: parking_lot::Mutex::new(None),
            files: parking_lot::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(OPEN_FILES).expect("non-zero"),
            )),
        })
    }

    /// The data log of the staging directory `dir`.
    pub fn log_path_in(dir: &Path) -> PathBuf {
        dir.join(DATA_LOG)
    }

    fn with_log<T>(&self, f: impl FnOnce(&File, &mut u64) -> io::Result<T>) -> io::Result<T> {
        let mut slot = self.log.lock();
        if slot.is_none() {
            let f = private::open(
                &Self::log_path_in(&self.dir),
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )?;
            let len = f.metadata()?.len();
            *slot = Some((f, len));
        }
        let (file, end) = slot.as_mut().expect("opened above");
        f(file, end)
    }

    /// Appends `data` to the data log; returns where it starts.
    pub fn append_log(&self, data: &[u8]) -> io::Result<u64> {
        self.with_log(|f, end| {
            let at = *end;
            private::write_all_at(f, data, at)?;
            *end += data.len() as u64;
            Ok(at)
        })
    }

    /// `len` bytes of the data log at `offset`.
    pub fn read_log(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        self.with_log(|f, _| {
            let mut buf = vec![0u8; len as usize];
            private::read_exact_at(f, &mut buf, offset)?;
            Ok(buf)
        })
    }

    /// Flushes the data log to disk.
    pub fn sync_log(&self) -> io::Result<()> {
        self.with_log(|f, _| f.sync_data())
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The staging file of inode number `ino` (it may not exist yet: then it is empty).
    pub fn path(&self, ino: u64) -> PathBuf {
        self.dir.join(ino.to_string())
    }

    fn open_rw(&self, ino: u64) -> io::Result<Arc<File>> {
        if let Some(f) = self.files.lock().get(&ino) {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(private::open(
            &self.path(ino),
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )?);
        self.files.lock().put(ino, Arc::clone(&f));
        Ok(f)
    }

    /// Up to `size` bytes at `offset`; a missing file reads as empty.
    pub fn read_at(&self, ino: u64, offset: u64, size: usize) -> io::Result<Vec<u8>> {
        let cached = self.files.lock().get(&ino).cloned();
        let f = match cached {
            Some(f) => f,
            None => match File::open(self.path(ino)) {
                Ok(f) => Arc::new(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let mut buf = vec![0u8; size];
        let mut done = 0;
        while done < size {
            match private::read_at(&f, &mut buf[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// Writes `data` at `offset`, creating the file if needed.
    pub fn write_at(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        private::write_all_at(&*self.open_rw(ino)?, data, offset)
    }

    /// Sets the file's length, creating it if needed.
    pub fn set_len(&self, ino: u64, len: u64) -> io::Result<()> {
        self.open_rw(ino)?.set_len(len)
    }

    /// Allocates `len` bytes at `offset`, creating the file if needed. Unless `keep_size`,
    /// the file grows to `offset + len` if it is shorter; with it, its length stays as it
    /// is. Where the staging file system cannot allocate, growing is done by extending the
    /// file and reserving is skipped.
    pub fn allocate(&self, ino: u64, offset: u64, len: u64, keep_size: bool) -> io::Result<()> {
        let f = self.open_rw(ino)?;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fallocate, FallocateFlags};
            let mode = match keep_size {
                true => FallocateFlags::KEEP_SIZE,
                false => FallocateFlags::empty(),
            };
            match fallocate(&*f, mode, offset, len) {
                Ok(()) => return Ok(()),
                Err(e) if e == rustix::io::Errno::OPNOTSUPP => {}
                Err(e) => return Err(e.into()),
            }
        }
        let end = offset.saturating_add(len);
        if !keep_size && f.metadata()?.len() < end {
            f.set_len(end)?;
        }
        Ok(())
    }

    /// Replaces the file's contents with everything `src` yields; returns the byte count.
    pub fn fill(&self, ino: u64, src: &mut dyn Read) -> io::Result<u64> {
        let mut f = private::open(
            &self.path(ino),
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        let n = io::copy(src, &mut f)?;
        f.flush()?;
        Ok(n)
    }

    /// Flushes the file to disk.
    pub fn sync(&self, ino: u64) -> io::Result<()> {
        match File::open(self.path(ino)) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Forgets the file of an inode that is gone.
    pub fn remove(&self, ino: u64) {
        self.files.lock().pop(&ino);
        match fs::remove_file(self.path(ino)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{}: cannot remove: {e}", self.path(ino).display()),
        }
    }

    /// Removes the staging directory and everything in it: the one way staged work is
    /// deleted, called only once it is committed or the user asked to discard it.
    pub fn discard(&self) {
        self.files.lock().clear();
        *self.log.lock() = None;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{}: cannot remove: {e}", self.dir.display()),
        }
    }
}
