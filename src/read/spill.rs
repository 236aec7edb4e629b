//! Decoded chunks of solid resources kept on disk.
//!
//! A solid chunk is large (often 64 MiB) and holds many files, so a reader that walks a solid
//! image in directory order keeps coming back to chunks the memory cache has long dropped:
//! each return would decode the whole chunk again. With a spill store each solid chunk is
//! decoded once; later reads of it are plain reads of the bytes wanted from an unlinked
//! scratch file (served by the page cache while memory allows, from disk otherwise). On Unix
//! a chunk is decoded straight into a shared mapping of its region of the file, so its bytes
//! reach the page cache without being copied there (copying a 64 MiB chunk cost more than a
//! third of the time of decoding it), and no chunk-sized buffer is held in memory meanwhile.

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
    /// The most bytes the file may grow to; chunks past it are decoded in memory as needed.
    cap: u64,
    /// Set after a failed write (a full disk, say): nothing more is stored.
    off: AtomicBool,
    /// Set when the file system cannot reserve space ahead (no `fallocate`): chunks are
    /// then decoded into memory and copied in with [`Spill::put`]. (Only Unix decodes
    /// into the file at all.)
    #[cfg_attr(not(unix), allow(dead_code))]
    copy_in: AtomicBool,
}

impl Spill {
    /// A store in a new unlinked file in `dir`.
    pub(crate) fn create(dir: &Path, cap: u64) -> std::io::Result<Spill> {
        Ok(Spill {
            file: tempfile::tempfile_in(dir)?,
            index: RwLock::new(FxHashMap::default()),
            end: AtomicU64::new(0),
            cap,
            off: AtomicBool::new(false),
            copy_in: AtomicBool::new(false),
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
        let Some(at) = self.reserve(data.len()) else {
            return;
        };
        match write_at(&self.file, data, at) {
            // Listed only once written, so a reader never sees a chunk before its bytes.
            Ok(()) => {
                self.index.write().insert((res, i), at);
            }
            Err(e) => self.stop(&e),
        }
    }

    /// Decodes chunk `i` of resource `res` (`len` bytes) straight into the store: `decode`
    /// fills the mapped file region, so the bytes go to the page cache without a copy.
    /// `Ok(false)` if the store cannot take it this way (it is off, has no room, or its file
    /// system cannot reserve space): the caller decodes into memory instead (and offers the
    /// result to [`Spill::put`]). An error from `decode` is returned as is.
    #[cfg(unix)]
    pub(crate) fn decode_into(
        &self,
        res: u32,
        i: u64,
        len: usize,
        decode: impl FnOnce(&mut [u8]) -> crate::error::Result<()>,
    ) -> crate::error::Result<bool> {
        if self.off.load(Ordering::Relaxed) || self.copy_in.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if self.find(res, i).is_some() {
            return Ok(true);
        }
        let Some(at) = self.reserve(len) else {
            return Ok(false);
        };
        // Blocks are reserved before the mapping is written: a full disk is an error here,
        // not a SIGBUS in the middle of decoding.
        use rustix::fs::{fallocate, FallocateFlags};
        if let Err(e) = fallocate(&self.file, FallocateFlags::empty(), at, len as u64) {
            if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS {
                self.copy_in.store(true, Ordering::Relaxed);
            } else {
                self.stop(&e.into());
            }
            return Ok(false);
        }
        // SAFETY: the file is this store's own unlinked scratch file, never truncated;
        // regions handed out by `end` do not overlap, so nothing else writes this one.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(at)
                .len(len)
                .populate()
                .map_mut(&self.file)
        };
        let mut map = match map {
            Ok(m) => m,
            Err(e) => {
                self.stop(&e);
                return Ok(false);
            }
        };
        decode(&mut map)?;
        drop(map);
        self.index.write().insert((res, i), at);
        Ok(true)
    }

    /// Hands out the offset of a new region of `len` bytes (`None` past the cap, which turns
    /// the store off). Regions start on page boundaries, as mappings must.
    fn reserve(&self, len: usize) -> Option<u64> {
        #[cfg(unix)]
        let page = rustix::param::page_size().max(4096) as u64;
        #[cfg(not(unix))]
        let page = 4096;
        let size = (len as u64).next_multiple_of(page);
        let at = self.end.fetch_add(size, Ordering::Relaxed);
        if at.saturating_add(size) > self.cap {
            if !self.off.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    "the scratch file for decoded solid chunks reached its cap ({} bytes); \
                     further chunks are decoded in memory when needed",
                    self.cap
                );
            }
            return None;
        }
        Some(at)
    }

    fn stop(&self, e: &std::io::Error) {
        if !self.off.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cannot keep decoded solid chunks on disk ({e}); they will be decoded again \
                 when needed"
            );
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn the_cap_turns_the_store_off() {
        let dir = tempfile::tempdir().unwrap();
        let sp = Spill::create(dir.path(), 6_000).unwrap();
        sp.put(1, 0, &[7u8; 4096]);
        assert!(sp.find(1, 0).is_some());
        // The next page-aligned region would end past 6,000 bytes: not stored, and the
        // store stays off (reads decode in memory), even for chunks that would fit.
        sp.put(1, 1, &[8u8; 4096]);
        assert!(sp.find(1, 1).is_none());
        sp.put(1, 2, &[9u8; 10]);
        assert!(sp.find(1, 2).is_none());
        let mut back = [0u8; 4096];
        sp.read(sp.find(1, 0).unwrap(), 0, &mut back).unwrap();
        assert_eq!(back, [7u8; 4096]);
    }

    #[test]
    fn chunks_decode_into_the_file_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let sp = Spill::create(dir.path(), u64::MAX).unwrap();
        let pattern = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
        };
        // Sizes that are not page multiples, so regions must be aligned apart.
        for (i, len) in [(0u64, 10_000usize), (1, 4096), (2, 70_001)] {
            let want = pattern(len, i as u8);
            let kept = sp
                .decode_into(0, i, len, |buf| {
                    buf.copy_from_slice(&want);
                    Ok(())
                })
                .unwrap();
            assert!(kept);
        }
        for (i, len) in [(0u64, 10_000usize), (1, 4096), (2, 70_001)] {
            let at = sp.find(0, i).expect("kept");
            assert_eq!(at % 4096, 0);
            let mut back = vec![0u8; len - 100];
            sp.read(at, 100, &mut back).unwrap();
            assert_eq!(back, pattern(len, i as u8)[100..]);
        }
        // Kept already: nothing is decoded again.
        assert!(sp
            .decode_into(0, 1, 4096, |_| panic!("decoded twice"))
            .unwrap());
        // A failed decode is reported and leaves nothing behind.
        let e = sp
            .decode_into(1, 0, 5000, |_| Err(Error::NotFound("bad chunk".into())))
            .unwrap_err();
        assert!(e.to_string().contains("bad chunk"));
        assert!(sp.find(1, 0).is_none());

        // Copied in (as where space cannot be reserved ahead): still page-aligned, so that
        // mapped regions can follow.
        let odd = pattern(5555, 9);
        sp.put(2, 0, &odd);
        sp.copy_in.store(true, Ordering::Relaxed);
        assert!(!sp.decode_into(2, 1, 10, |_| panic!("not mapped")).unwrap());
        sp.put(2, 1, &odd[..10]);
        for (i, len) in [(0u64, 5555usize), (1, 10)] {
            let at = sp.find(2, i).expect("kept");
            assert_eq!(at % 4096, 0);
            let mut back = vec![0u8; len];
            sp.read(at, 0, &mut back).unwrap();
            assert_eq!(back, odd[..len]);
        }
    }
}
