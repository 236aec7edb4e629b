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

use super::{readahead, Errno, Fs, FsResult, Kind, Node};

/// How far (bytes) a read may start from the furthest one so far and still count as part
/// of a sequential pass.
const SEQ_SLACK: u64 = 4 << 20;

/// How far past a big chunk being decoded to look for the next one not decoded yet.
const NEXT_BIG_CHUNKS: u64 = 16;
/// Read-ahead of the files after an opened one: at most this many files and bytes.
const SIBLING_FILES: usize = 16;
const SIBLING_BYTES: u64 = 1 << 20;

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
    /// Furthest end of a read so far, to spot sequential access.
    last_end: u64,
    /// Read-ahead has been started up to here.
    prefetched: u64,
    /// Chunks of the resource before this one have been dropped from the cache (sequential
    /// readers of non-solid resources only).
    released: u64,
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
                released: 0,
            }),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(h));
        if loc.is_some() && self.opts.readahead > 0 {
            // Two in a row, so that a random reader who happens to hit the next file once
            // does not start it.
            let streak = if self.listing_order(inode) {
                self.order_streak.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                self.order_streak.store(0, Ordering::Relaxed);
                0
            };
            if streak >= 2 {
                self.read_ahead_siblings(inode);
            }
        }
        Ok(fh)
    }

    /// Whether `inode` is opened right after a file listed shortly before it in the same
    /// directory was read through to its end, i.e. by a reader going through the directory
    /// in listing order (not a random reader, for whom the guess would be wasted work).
    fn listing_order(&self, inode: InodeId) -> bool {
        let Some(&d) = self.img.inodes[inode].dentries.first() else {
            return false;
        };
        let prev = self.last_finished.load(Ordering::Relaxed);
        prev != usize::MAX
            && prev != d
            && self.img.dentries[prev].parent == self.img.dentries[d].parent
            && self.sibling_index[prev] < self.sibling_index[d]
            && self.sibling_index[d] - self.sibling_index[prev] <= SIBLING_FILES as u32
    }

    /// Queues the start of the files listed after `inode` in its directory: programs that
    /// read a whole tree (cp, tar, grep -r, find | xargs) open files in listing order, and
    /// small files are otherwise decoded one at a time while the reader waits. Bounded to a
    /// few small chunks' worth; solid resources (huge chunks) are left alone.
    fn read_ahead_siblings(&self, inode: InodeId) {
        let Some(&d) = self.img.inodes[inode].dentries.first() else {
            return;
        };
        let parent = self.img.dentries[d].parent;
        if parent == d {
            return;
        }
        let siblings = &self.img.dentries[parent].children;
        let start = self.sibling_index[d] as usize + 1;
        let mut budget = SIBLING_BYTES;
        for &c in siblings.iter().skip(start).take(SIBLING_FILES) {
            let ino = &self.img.inodes[self.img.dentries[c].inode];
            if ino.is_directory() {
                continue;
            }
            let Some(loc) = ino.data_stream().and_then(|s| s.blob) else {
                continue;
            };
            let len = loc.size.min(budget);
            match self.wim.chunk_span(&loc, 0, len) {
                Ok(Some(span)) if u64::from(span.chunk_size) <= SIBLING_BYTES => {
                    self.readahead.ahead(readahead::SPECULATIVE, &span);
                }
                _ => {}
            }
            budget -= len;
            if budget == 0 {
                break;
            }
        }
    }

    /// Drops the chunks a sequential reader has gone past from the cache: the kernel keeps
    /// the file's pages, so they would only push out chunks others need, and reusing their
    /// memory saves faulting in fresh pages for every chunk. Not for solid resources, whose
    /// chunks other files share.
    fn release_consumed(&self, s: &mut Seq, loc: &BlobLocation) {
        if self.wim.is_solid(loc.resource) {
            return;
        }
        let cs = u64::from(self.wim.resource(loc).chunk_size());
        if cs == 0 {
            return;
        }
        // Chunks wholly before `hashed` were delivered in order.
        let upto = (loc.offset + s.hashed) / cs;
        let from = s.released.max(loc.offset / cs);
        if upto > from {
            self.wim.forget_chunks(loc.resource, from, upto);
            s.released = upto;
        }
    }

    /// A read that has to decode a big chunk (solid resources: tens of MiB, a fraction of a
    /// second) leaves a core idle while it waits: have a worker decode the resource's next
    /// chunk not decoded yet meanwhile (chunks once decoded are kept on disk, so this work
    /// is never lost). Solid resources keep related files close together, so whole-tree
    /// readers usually want it soon. Only when the cache holds several such chunks, so this
    /// cannot evict the one being read.
    fn read_ahead_next_big_chunk(&self, span: &wimfs::read::ChunkSpan) {
        let cs = u64::from(span.chunk_size);
        if cs <= SIBLING_BYTES
            || (self.wim.cache().capacity() as u64) < 4 * cs
            || self.wim.chunk_cached(span.resource, span.last)
        {
            return;
        }
        let Ok(count) = self.wim.chunk_count(span.resource) else {
            return;
        };
        let next = (span.last + 1..count.min(span.last + 1 + NEXT_BIG_CHUNKS))
            .find(|&i| !self.wim.chunk_cached(span.resource, i));
        if let Some(next) = next {
            let next = wimfs::read::ChunkSpan {
                first: next,
                last: next,
                ..*span
            };
            self.readahead.ahead(readahead::SPECULATIVE, &next);
        }
    }

    /// Closes a handle.
    pub fn release(&self, fh: u64) {
        self.handles.lock().remove(&fh);
        self.readahead.cancel(fh);
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
        if super::panics_on_read_of(loc.size) {
            panic!("test fault: a read of {}", self.path_of(h.inode));
        }
        let n = (size as u64).min(loc.size - offset) as usize;
        if let Ok(Some(span)) = self.wim.chunk_span(&loc, offset, n as u64) {
            if span.last > span.first {
                // The read-ahead workers decode the chunks of this read alongside this
                // thread; errors surface below.
                self.readahead.urgent(fh, &span);
            }
            self.read_ahead_next_big_chunk(&span);
        }
        let mut buf = vec![0u8; n];
        self.wim
            .read_blob_at(&loc, offset, &mut buf)
            .map_err(|e| self.read_failed(h.inode, &e))?;
        self.after_read(fh, &h, &loc, offset, &buf)?;
        Ok(buf)
    }

    /// Feeds the hash check and queues read-ahead for sequential readers.
    fn after_read(
        &self,
        fh: u64,
        h: &Handle,
        loc: &BlobLocation,
        offset: u64,
        buf: &[u8],
    ) -> FsResult<()> {
        let end = offset + buf.len() as u64;
        let verdict = {
            let mut s = h.seq.lock();
            // The kernel has several reads of a file in flight and they may finish here in
            // any order: a read that starts near the furthest one so far is sequential.
            let sequential = if s.last_end == 0 {
                offset == 0
            } else {
                offset <= s.last_end.saturating_add(SEQ_SLACK)
                    && offset.saturating_add(SEQ_SLACK) >= s.last_end
            };
            s.last_end = s.last_end.max(end);
            if sequential && self.opts.readahead > 0 && end < loc.size {
                let want = (end + self.opts.readahead).min(loc.size);
                let from = s.prefetched.max(end);
                if want > from {
                    // Queued a chunk at a time as the reader moves, so the workers stay a
                    // window ahead of it.
                    if let Ok(Some(span)) = self.wim.chunk_span(loc, from, want - from) {
                        let taken = self.readahead.ahead(fh, &span);
                        let cs = span.chunk_size as u64;
                        let upto = (span.first + taken) * cs;
                        // Blob offset up to which read-ahead is queued.
                        let res_start = loc.offset;
                        s.prefetched = upto.saturating_sub(res_start).clamp(from, want);
                    }
                }
            }
            s.feed(offset, buf);
            if sequential {
                self.release_consumed(&mut s, loc);
                if end == loc.size {
                    if let Some(&d) = self.img.inodes[h.inode].dentries.first() {
                        self.last_finished.store(d, Ordering::Relaxed);
                    }
                }
            }
            s.finish(loc)
        };
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
