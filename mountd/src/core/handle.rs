//! Open files: reading a stream's bytes, checking its SHA-1 on the way, and read-ahead.
//!
//! Random reads decode only the chunks they touch and cannot be checked against the
//! stream's SHA-1. A reader that goes through a file front to back (nearly every reader)
//! gets the check: the handle hashes the bytes in order (holding back a bounded amount of
//! out-of-order reads, since the kernel issues several reads at once) and fails the read that
//! completes the file with EIO if the hash is wrong. From then on every read of that inode
//! fails, so page-cache refills cannot serve the bad data either.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use sha1::{Digest, Sha1};
use wimfs::image::InodeId;
use wimfs::read::BlobLocation;

use super::{Errno, Fs, FsResult, Kind, Node};

/// Out-of-order bytes held back for hashing before the check is given up for a handle.
const MAX_PENDING: usize = 16 << 20;

pub(crate) struct Handle {
    ino: u64,
    inode: InodeId,
    loc: Option<BlobLocation>,
    seq: Mutex<Seq>,
}

struct Seq {
    /// `None` once the check is given up or done.
    hasher: Option<Sha1>,
    /// Bytes before this offset have been hashed.
    hashed: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// End of the previous read, to spot sequential access.
    last_end: u64,
    /// Read-ahead has been started up to here.
    prefetched: u64,
}

impl Fs {
    /// Opens `ino` for reading; `write` requests fail with EROFS.
    pub fn open(&self, ino: u64, write: bool) -> FsResult<u64> {
        if write {
            return Err(Errno::EROFS);
        }
        let (inode, loc) = match self.node(ino)? {
            Node::Inode(i) => match self.kind_of(i) {
                Kind::Directory => return Err(Errno::EISDIR),
                Kind::File => (i, self.img.inodes[i].data_stream().and_then(|s| s.blob)),
                _ => (i, None),
            },
            Node::Stream(i, k) => (i, self.img.inodes[i].streams[k].blob),
        };
        let h = Handle {
            ino,
            inode,
            loc,
            seq: Mutex::new(Seq {
                hasher: loc.map(|_| Sha1::new()),
                hashed: 0,
                pending: BTreeMap::new(),
                pending_bytes: 0,
                last_end: 0,
                prefetched: 0,
            }),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(h));
        Ok(fh)
    }

    /// Closes a handle.
    pub fn release(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }

    /// Number of open handles (for status and tests).
    pub fn open_handles(&self) -> usize {
        self.handles.lock().len()
    }

    /// Reads up to `size` bytes at `offset`; short only at the end of the file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = Arc::clone(self.handles.lock().get(&fh).ok_or(Errno::EBADF)?);
        if self.bad.lock().contains(&h.ino) {
            return Err(Errno::EIO);
        }
        let Some(loc) = h.loc else {
            return Ok(Vec::new());
        };
        if offset >= loc.size {
            return Ok(Vec::new());
        }
        let n = (size as u64).min(loc.size - offset) as usize;
        let chunk = self.wim.resource(&loc).chunk_size() as usize;
        if chunk > 0 && n > 2 * chunk {
            // Decode the chunks of a large read in parallel; errors surface below.
            let _ = self.wim.prefetch(&loc, offset, n as u64);
        }
        let mut buf = vec![0u8; n];
        self.wim
            .read_blob_at(&loc, offset, &mut buf)
            .map_err(|e| self.read_failed(h.inode, &e))?;
        self.after_read(&h, &loc, offset, &buf)?;
        Ok(buf)
    }

    /// Feeds the hash check and starts read-ahead for sequential readers.
    fn after_read(&self, h: &Handle, loc: &BlobLocation, offset: u64, buf: &[u8]) -> FsResult<()> {
        let end = offset + buf.len() as u64;
        let mut prefetch = None;
        let verdict = {
            let mut s = h.seq.lock();
            let sequential = offset == s.last_end || offset == 0;
            s.last_end = end;
            if sequential && self.opts.readahead > 0 && end < loc.size {
                let want = (end + self.opts.readahead).min(loc.size);
                if want > s.prefetched {
                    let from = s.prefetched.max(end);
                    // Only ask again once half the window has been consumed.
                    if want - from >= self.opts.readahead / 2 || want == loc.size {
                        prefetch = Some((from, want - from));
                        s.prefetched = want;
                    }
                }
            }
            s.feed(offset, buf);
            s.finish(loc)
        };
        if let Some((from, len)) = prefetch {
            let wim = Arc::clone(&self.wim);
            let loc = *loc;
            rayon::spawn(move || {
                if let Err(e) = wim.prefetch(&loc, from, len) {
                    tracing::debug!("read-ahead failed: {e}");
                }
            });
        }
        match verdict {
            Some(false) => {
                self.bad.lock().insert(h.ino);
                tracing::error!(
                    "\"{}\": data is corrupt (SHA-1 mismatch)",
                    self.path_of(h.inode)
                );
                Err(Errno::EIO)
            }
            _ => Ok(()),
        }
    }
}

impl Seq {
    fn feed(&mut self, offset: u64, buf: &[u8]) {
        if self.hasher.is_none() {
            return;
        }
        let end = offset + buf.len() as u64;
        if offset > self.hashed {
            if self.pending_bytes + buf.len() > MAX_PENDING {
                self.give_up();
            } else if self
                .pending
                .get(&offset)
                .is_none_or(|p| p.len() < buf.len())
            {
                self.pending_bytes += buf.len();
                if let Some(old) = self.pending.insert(offset, buf.to_vec()) {
                    self.pending_bytes -= old.len();
                }
            }
            return;
        }
        if end > self.hashed {
            let skip = (self.hashed - offset) as usize;
            if let Some(hasher) = self.hasher.as_mut() {
                hasher.update(&buf[skip..]);
            }
            self.hashed = end;
        }
        while let Some((&off, _)) = self.pending.first_key_value() {
            if off > self.hashed {
                break;
            }
            let piece = self.pending.remove(&off).expect("key just seen");
            self.pending_bytes -= piece.len();
            let pend = off + piece.len() as u64;
            if pend > self.hashed {
                let skip = (self.hashed - off) as usize;
                if let Some(hasher) = self.hasher.as_mut() {
                    hasher.update(&piece[skip..]);
                }
                self.hashed = pend;
            }
        }
    }

    fn give_up(&mut self) {
        self.hasher = None;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// `Some(matches)` once the whole stream has been hashed, `None` before (or if the check
    /// was given up).
    fn finish(&mut self, loc: &BlobLocation) -> Option<bool> {
        if self.hashed < loc.size {
            return None;
        }
        let hasher = self.hasher.take()?;
        self.give_up();
        let digest: [u8; 20] = hasher.finalize().into();
        Some(digest == loc.hash)
    }
}
