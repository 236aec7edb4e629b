//! Decoded chunks of solid resources kept on disk.
//!
//! A solid chunk is large (often 64 MiB) and holds many files, so a reader that walks a solid
//! image in directory order keeps coming back to chunks the memory cache has long dropped:
//! each return would decode the whole chunk again. With a spill store each solid chunk is
//! decoded once; later reads of it are plain reads of the bytes wanted from an unlinked
//! scratch file (served by the page cache while memory allows, from disk otherwise).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

/// An append-only scratch file of decoded chunks, by (resource, chunk).
pub(crate) struct Spill {
    file: File,
    /// Where each stored chunk starts in the file.
    index: RwLock<FxHashMap<(u32, u64), u64>>,
    end: AtomicU64,
    /// Set after a failed write (a full disk, say): nothing more is stored.
    off: AtomicBool,
}

impl Spill {
    /// A store in a new unlinked file in `dir`.
    pub(crate) fn create(dir: &Path) -> std::io::Result<Spill> {
        Ok(Spill {
            file: tempfile::tempfile_in(dir)?,
            index: RwLock::new(FxHashMap::default()),
            end: AtomicU64::new(0),
            off: AtomicBool::new(false),
        })
    }

    /// Where chunk `i` of resource `res` is stored, if it is.
    pub(crate) fn find(&self, res: u32, i: u64) -> Option<u64> {
        self.index.read().get(&(res, i)).copied()
    }

    /// Stores a decoded chunk (unless it is stored already). A failure stops the store, and is
    /// logged once: reads then decode as they would without it.
    pub(crate) fn put(&self, res: u32, i: u64, data: &[u8]) {
        if self.off.load(Ordering::Relaxed) || self.find(res, i).is_some() {
            return;
        }
        let at = self.end.fetch_add(data.len() as u64, Ordering::Relaxed);
        match write_at(&self.file, data, at) {
            // Listed only once written, so a reader never sees a chunk before its bytes.
            Ok(()) => {
                self.index.write().insert((res, i), at);
            }
            Err(e) => {
                if !self.off.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot keep decoded solid chunks on disk ({e}); they will be decoded \
                         again when needed"
                    );
                }
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` of a stored chunk that starts at `at`.
    pub(crate) fn read(&self, at: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        super::file::read_at(&self.file, buf, at + offset)
    }
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(data, at)
}

#[cfg(windows)]
fn write_at(file: &File, mut data: &[u8], mut at: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        let n = file.seek_write(data, at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
        at += n as u64;
    }
    Ok(())
}
