//! The read-write filesystem: a mutable tree over one image, with new and changed file data
//! in a staging [`Overlay`].
//!
//! The tree lives behind one lock that is never held across I/O or decompression: an
//! operation takes what it needs under the lock, does its I/O without it, and takes the lock
//! again to record the result. Inode numbers are given out once and never reused during a
//! mount; an inode lives while it has a name or an open handle, so open-but-unlinked files
//! keep working until closed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use rustc_hash::FxHashMap;
use wimfs::format::dentry::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT,
};
use wimfs::format::reparse::{LinkReparse, IO_REPARSE_TAG_SYMLINK, RP_FLAG_NOT_FIXED};
use wimfs::format::tagged::UnixData;
use wimfs::format::Sha1Hash;
use wimfs::image::DentryId;
use wimfs::time::{filetime_to_system, now_filetime, unix_to_filetime};
use wimfs::{CheckedBlobReader, Image, Inode, StreamKind, Wim};

use super::attr::{attr_of, kind_of};
use super::{
    Attr, BasicInfo, DirEntry, Errno, Fs, FsOptions, FsResult, Kind, Statfs, StreamsInterface,
    WinOps, ROOT_INO,
};
use crate::journal::{self, Journal, Record};
use crate::overlay::Overlay;

/// `rename` flag: fail with EEXIST if the new name exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// `rename` flag: swap the two names atomically.
pub const RENAME_EXCHANGE: u32 = 2;

/// `fallocate` mode: allocate without changing the visible size.
pub const FALLOC_FL_KEEP_SIZE: u32 = 1;

pub use xattr::{XATTR_CREATE, XATTR_REPLACE};

/// Preferred I/O size of files on a read-write mount: bigger than a read-only mount's, since
/// programs that buffer by it (stdio) write in requests this big, and writes have no
/// read-ahead to gather them.
const RW_FILE_BLKSIZE: u32 = 128 << 10;

/// Longest name a WIM (UTF-16) can hold that Linux tools can also handle.
const NAME_MAX: usize = 255;

pub use super::ops::SetAttr;

#[path = "rw_tree.rs"]
mod tree;

#[path = "rw_win.rs"]
mod win;

use tree::{OpenFile, RwNode, Tree};
pub(crate) use tree::{Small, SMALL_FILE};

/// The read-write filesystem.
pub struct RwFs {
    wim: Arc<Wim>,
    /// The image as mounted, served by the read-only core: every read of data this mount
    /// has not changed goes through it (SHA-1 check, read-ahead, cache), as on a read-only
    /// mount.
    base: Arc<Fs>,
    /// The mounted image's index, security table and original tree.
    base_index: AtomicU32,
    security: Vec<Vec<u8>>,
    opts: FsOptions,
    overlay: Overlay,
    pub(crate) tree: Mutex<Tree>,
    /// The journal file. Lines are queued in the tree under its lock and written here
    /// after it is released; lock order: this, then the tree.
    journal: Mutex<Option<Journal>>,
    /// Handles reading data that is still the image's, by handle: the read-only core's
    /// handle and the inode's flag (see `Tree::image_data_flag`). A read finds them here
    /// without the tree lock and goes straight to the read-only core while the flag holds.
    fast: RwLock<FxHashMap<u64, (u64, Arc<AtomicBool>)>>,
    /// Serializes copy-ups, so that two first writes to a file decode it once.
    copy_up: Mutex<()>,
    /// Held shared by every change and exclusively by a commit, which so sees a tree and
    /// staged data that stand still while it writes them.
    pub(crate) gate: RwLock<()>,
    /// Whether anything changed since the mount or the last commit: a session that ends
    /// any other way than by an explicit unmount keeps its staging directory only then.
    changed: AtomicBool,
}

fn check_name(name: &[u8]) -> FsResult<&str> {
    let s = std::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
    if wimfs::image::names::native_name_problem(s).is_some() {
        return Err(Errno::EINVAL);
    }
    if s.encode_utf16().count() > NAME_MAX {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    Ok(s)
}

fn system_to_filetime(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => unix_to_filetime(d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            unix_to_filetime(-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
        }
    }
}

impl RwFs {
    /// Serves image `img` of `wim` read-write, staging data in `overlay`. Nothing is
    /// done per inode: the tree's layer starts empty.
    pub fn new(wim: Arc<Wim>, img: Image, opts: FsOptions, overlay: Overlay) -> RwFs {
        let index = img.index;
        let security = img.security.clone();
        let base = Arc::new(Fs::new(Arc::clone(&wim), img, opts.clone()));
        RwFs {
            wim,
            base: Arc::clone(&base),
            base_index: AtomicU32::new(index),
            security,
            opts,
            overlay,
            tree: Mutex::new(Tree::new(Arc::clone(&base))),
            journal: Mutex::new(None),
            fast: RwLock::new(FxHashMap::default()),
            copy_up: Mutex::new(()),
            gate: RwLock::new(()),
            changed: AtomicBool::new(false),
        }
    }

    /// The WIM being served.
    pub fn wim(&self) -> &Arc<Wim> {
        &self.wim
    }

    /// Locks the tree; journal lines queued meanwhile are written when the guard goes.
    pub(crate) fn tree(&self) -> TreeGuard<'_> {
        TreeGuard {
            fs: self,
            guard: Some(self.tree.lock()),
        }
    }

    /// Writes the queued journal lines, in the order they were queued. A change's line is
    /// in the file when the change returns: either its own call writes it, or another one
    /// that took it along finished writing before this one got the journal.
    fn flush_journal(&self) {
        let mut journal = self.journal.lock();
        let lines = std::mem::take(&mut self.tree.lock().pending);
        if let Some(j) = journal.as_mut() {
            j.append_lines(&lines);
        }
    }

    /// The index of the mounted image.
    pub fn image_index(&self) -> u32 {
        self.base_index.load(Ordering::Relaxed)
    }

    /// Makes image `index` the one this tree replaces on the next commit (after a commit
    /// that added the tree as a new image).
    pub(crate) fn set_image_index(&self, index: u32) {
        self.base_index.store(index, Ordering::Relaxed);
    }

    /// Number of open file handles.
    pub fn open_handles(&self) -> usize {
        self.tree().handles.len()
    }

    /// The staging overlay.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Enters a change: holds the gate shared (a commit waits for it) and marks the tree
    /// as changed since the last commit.
    fn changing(&self) -> RwLockReadGuard<'_, ()> {
        let g = self.gate.read();
        self.changed.store(true, Ordering::Relaxed);
        g
    }

    /// Whether the tree may differ from what was last committed (or mounted).
    pub fn has_uncommitted_changes(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Records that a commit, taken with the gate held exclusively, saved every change.
    pub(crate) fn mark_committed(&self) {
        self.changed.store(false, Ordering::Relaxed);
    }

    fn kind(&self, n: &RwNode) -> Kind {
        kind_of(&n.inode, self.opts.unix_data)
    }

    /// Attributes of `ino` (for one of the image not in the layer, the base's, which may
    /// read a link target: callers of the hot paths use [`RwFs::getattr`], which does that
    /// outside the lock).
    fn attr_of(&self, tree: &Tree, ino: u64) -> FsResult<Attr> {
        let Some(n) = tree.peek(ino)? else {
            return self.base_attr(ino);
        };
        let kind = self.kind(n);
        let inode = &n.inode;
        let size = match kind {
            Kind::File => n.size(),
            // The target's length, as POSIX gives it; the reparse data's size only for an
            // image link not yet read (see `with_link_len`) or unreadable.
            Kind::Symlink => match (&n.new_reparse, n.link_len) {
                (Some(d), _) => {
                    LinkReparse::parse(inode.reparse_tag, d).map_or(d.len() as u64, |l| {
                        l.unix_target(inode.rp_flags, self.opts.link_root.as_deref())
                            .len() as u64
                    })
                }
                (None, Some(len)) => len,
                (None, None) => inode.reparse_stream().map_or(0, |s| s.size()),
            },
            _ => 0,
        };
        let nlink = match kind {
            Kind::Directory => {
                2 + n.children.values().filter(|e| tree.is_dir(e.ino)).count() as u32
            }
            _ => n.names,
        };
        Ok(attr_of(
            inode,
            ino,
            kind,
            size,
            nlink,
            &self.opts,
            RW_FILE_BLKSIZE,
        ))
    }

    /// Attributes of an unchanged inode of the image: the read-only core's.
    fn base_attr(&self, ino: u64) -> FsResult<Attr> {
        let mut a = self.base.getattr(ino)?;
        if a.kind != Kind::Directory {
            a.blksize = RW_FILE_BLKSIZE;
        }
        Ok(a)
    }

    /// Attributes of inode number `ino`.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        if let Some((file, name)) = self.stream_of(ino) {
            return self.stream_attr(ino, file, &name);
        }
        self.with_link_len(ino);
        let tree = self.tree();
        if tree.peek(ino)?.is_none() {
            drop(tree);
            return self.base_attr(ino);
        }
        self.attr_of(&tree, ino)
    }

    /// Reads the target of image symlink `ino` in the layer (outside the tree lock) and
    /// keeps its length for `st_size`, unless known already. A link that cannot be read
    /// keeps its stored size.
    fn with_link_len(&self, ino: u64) {
        let needed = self.tree().peek(ino).is_ok_and(|n| {
            n.is_some_and(|n| {
                n.link_len.is_none() && n.new_reparse.is_none() && n.inode.is_symlink()
            })
        });
        if !needed {
            return;
        }
        if let Ok(t) = self.readlink(ino) {
            if let Some(n) = self.tree().nodes.get_mut(&ino) {
                n.link_len = Some(t.len() as u64);
            }
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let tree = self.tree();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let ino = match name {
            "." => {
                tree.check_dir(parent)?;
                parent
            }
            ".." => {
                tree.check_dir(parent)?;
                tree.parent(parent)
            }
            _ => match tree.child(parent, name) {
                Ok(ino) => ino,
                Err(e) => {
                    drop(tree);
                    // `file:stream` with the `windows` streams interface.
                    return match self.stream_by_name(parent, name) {
                        Some(s) => self.getattr(s?),
                        None => Err(e),
                    };
                }
            },
        };
        drop(tree);
        self.getattr(ino)
    }

    /// Entries of directory `ino` after position `offset` ("." and ".." first); `add`
    /// returns true when the caller's buffer is full.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        // Taken out under the lock and handed over without it: `add` may call back into
        // the file system (readdirplus asks for each entry's attributes).
        let entries: Vec<(String, u64, u64, Kind)> = {
            let tree = self.tree();
            tree.check_dir(ino)?;
            let Some(dir) = tree.peek(ino)? else {
                drop(tree);
                // An unchanged directory of the image lists as on a read-only mount, with the
                // same offsets (see `Entry::pos`).
                return self.base.readdir(ino, offset, add);
            };
            let mut kids: Vec<(&str, &tree::Entry)> = dir
                .children
                .iter()
                .filter(|(_, e)| e.pos > offset)
                .map(|(n, e)| (n.as_str(), e))
                .collect();
            kids.sort_by_key(|(_, e)| e.pos);
            [(".", ino, 1), ("..", tree.parent(ino), 2)]
                .into_iter()
                .filter(|&(_, _, pos)| pos > offset)
                .chain(kids.into_iter().map(|(n, e)| (n, e.ino, e.pos)))
                .map(|(name, child, pos)| {
                    let kind = tree.kind(child, self.opts.unix_data).unwrap_or(Kind::File);
                    (name.to_string(), child, pos, kind)
                })
                .collect()
        };
        for (name, child, pos, kind) in &entries {
            let full = add(DirEntry {
                ino: *child,
                next: *pos,
                kind: *kind,
                name,
            });
            if full {
                break;
            }
        }
        Ok(())
    }

    /// The target of a symlink, as a Unix path.
    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (inode, data) = {
            let tree = self.tree();
            let Some(n) = tree.peek(ino)? else {
                drop(tree);
                return self.base.readlink(ino);
            };
            if !n.inode.is_symlink() {
                return Err(Errno::EINVAL);
            }
            let inode = (n.inode.reparse_tag, n.inode.rp_flags);
            (inode, n.new_reparse.clone())
        };
        match data {
            Some(d) => {
                let link = LinkReparse::parse(inode.0, &d).map_err(|e| {
                    tracing::error!("inode {ino}: bad link data: {e}");
                    Errno::EIO
                })?;
                Ok(link
                    .unix_target(inode.1, self.opts.link_root.as_deref())
                    .into_bytes())
            }
            // A link of the image, read and kept by the read-only core.
            None => self.base.readlink(ino),
        }
    }

    /// Opens `ino`; with `truncate` its data is cut to nothing first.
    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        if write && truncate {
            self.setattr(
                ino,
                &SetAttr {
                    size: Some(0),
                    ..SetAttr::default()
                },
            )?;
        }
        let mut tree = self.tree();
        // A named stream opened by Windows path has a number but no node.
        if !tree.streams.contains_key(&ino) {
            tree.peek(ino)?;
        }
        if write && tree.is_dir(ino) {
            return Err(Errno::EISDIR);
        }
        tree.opened(ino);
        let fh = tree.next_fh;
        tree.next_fh += 1;
        tree.handles.insert(fh, OpenFile { ino, base_fh: None });
        Ok(fh)
    }

    /// Closes a handle from `open` or `create`.
    pub fn release(&self, fh: u64) {
        let (gone, base_fh, logged) = {
            let mut tree = self.tree();
            let Some(OpenFile { ino, base_fh }) = tree.handles.remove(&fh) else {
                return;
            };
            tree.closed(ino);
            self.log_stream_if_dirty(&mut tree, ino);
            let mut written = None;
            if let Some(n) = tree.nodes.get_mut(&ino) {
                if std::mem::take(&mut n.written) {
                    written = Some(n.inode.last_write_time);
                }
            }
            if let Some(mtime) = written {
                // Writes are not journaled one by one: their data is in the staging file
                // already; only the time they left is.
                tree.log_mtime(ino, mtime);
            }
            (tree.reap(ino), base_fh, written.map(|_| ino))
        };
        if let Some(ino) = logged {
            self.log_small(ino);
        }
        if let Some(b) = base_fh {
            self.fast.write().remove(&fh);
            self.base.release(b);
        }
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let fast = {
            let handles = self.fast.read();
            handles
                .get(&fh)
                .filter(|(_, image_data)| image_data.load(Ordering::Acquire))
                .map(|(b, _)| *b)
        };
        if let Some(base_fh) = fast {
            return self.base.read(base_fh, offset, size);
        }
        let (ino, staged, base_fh) = {
            let tree = self.tree();
            let h = tree.handles.get(&fh).ok_or(Errno::EBADF)?;
            let ino = h.ino;
            if let Some((file, name)) = tree.streams.get(&ino).cloned() {
                drop(tree);
                return self.read_stream(fh, file, &name, offset, size);
            }
            match tree.peek(ino)? {
                // Unchanged data of the image, through the read-only core.
                None => (ino, None, Some(h.base_fh)),
                Some(n) if n.is_dir() => return Err(Errno::EISDIR),
                Some(n) => {
                    match &n.small {
                        Some(Small::Mem(v)) => {
                            let from = (offset as usize).min(v.len());
                            let to = (from + size as usize).min(v.len());
                            return Ok(v[from..to].to_vec());
                        }
                        Some(Small::Log { offset: at, len }) => {
                            let want = len.saturating_sub(offset).min(size as u64);
                            let (at, want) = (*at + offset.min(*len), want);
                            drop(tree);
                            return self.overlay.read_log(at, want).map_err(|e| {
                                tracing::error!("inode {ino}: reading the data log failed: {e}");
                                Errno::EIO
                            });
                        }
                        None => {}
                    }
                    (ino, n.staged, n.data_unchanged().then_some(h.base_fh))
                }
            }
        };
        match (staged, base_fh) {
            (Some(len), _) => {
                let want = (len.saturating_sub(offset)).min(size as u64) as usize;
                let mut v = self.overlay.read_at(ino, offset, want).map_err(|e| {
                    tracing::error!("{}: read failed: {e}", self.overlay.path(ino).display());
                    Errno::EIO
                })?;
                // A file extended by truncate has no bytes on disk past its old end yet.
                v.resize(want, 0);
                Ok(v)
            }
            (None, Some(base_fh)) => {
                let base_fh = match base_fh {
                    Some(f) => f,
                    None => self.open_base(fh, ino)?,
                };
                self.base.read(base_fh, offset, size)
            }
            // Made on this mount without data (a special file).
            (None, None) => Ok(Vec::new()),
        }
    }

    /// Opens image inode `b` in the read-only core for handle `fh`, which reads an
    /// unchanged file of the image; returns the base handle.
    fn open_base(&self, fh: u64, b: u64) -> FsResult<u64> {
        let base_fh = self.base.open(b, false)?;
        let mut tree = self.tree();
        let Some(h) = tree.handles.get_mut(&fh) else {
            drop(tree);
            self.base.release(base_fh);
            return Err(Errno::EBADF);
        };
        if let Some(other) = h.base_fh {
            // Another read of the same handle got there first.
            drop(tree);
            self.base.release(base_fh);
            return Ok(other);
        }
        h.base_fh = Some(base_fh);
        // Later reads skip the tree while the data stays the image's (not for a stream,
        // whose file's flag says nothing of it).
        let flag = match tree.streams.contains_key(&b) {
            true => None,
            false => tree.image_data_flag(b),
        };
        drop(tree);
        if let Some(flag) = flag {
            self.fast.write().insert(fh, (base_fh, flag));
        }
        Ok(base_fh)
    }

    /// Moves `ino`'s data into the overlay if it is not there yet.
    fn copy_up(&self, ino: u64) -> FsResult<()> {
        let _one = self.copy_up.lock();
        self.spill(ino)?;
        let loc = {
            let mut tree = self.tree();
            let n = tree.get(ino)?;
            if n.staged.is_some() {
                return Ok(());
            }
            if self.kind(n) != Kind::File {
                return Err(Errno::EINVAL);
            }
            n.inode.data_stream().and_then(|s| s.blob)
        };
        // Checked: corrupt image data must fail here, not be committed under a new hash.
        let mut r = CheckedBlobReader::new(&self.wim, loc);
        let len = self.overlay.fill(ino, &mut r).map_err(|e| {
            tracing::error!(
                "{}: copying up inode {ino} failed: {e}",
                self.overlay.path(ino).display()
            );
            self.overlay.remove(ino);
            Errno::of_io(&e)
        })?;
        let mut tree = self.tree();
        tree.data_may_change(ino);
        match tree.nodes.get_mut(&ino) {
            Some(n) => {
                n.staged = Some(len);
                tree.log(|t| {
                    Some(Record::Staged {
                        path: t.path(ino)?,
                        file: ino,
                    })
                });
            }
            None => {
                drop(tree);
                self.overlay.remove(ino);
                return Err(Errno::ENOENT);
            }
        }
        Ok(())
    }

    /// Gives a small file a staging file of its own (it is growing past [`SMALL_FILE`]).
    /// The file is written without the tree's lock; if the data changed meanwhile, again.
    fn spill(&self, ino: u64) -> FsResult<()> {
        loop {
            let Some(small) = self.tree().get(ino)?.small.clone() else {
                return Ok(());
            };
            let data = match &small {
                Small::Mem(v) => v.clone(),
                Small::Log { offset, len } => {
                    self.overlay.read_log(*offset, *len).map_err(|e| {
                        tracing::error!("inode {ino}: reading the data log failed: {e}");
                        Errno::EIO
                    })?
                }
            };
            self.overlay.fill(ino, &mut data.as_slice()).map_err(|e| {
                tracing::error!("{}: staging failed: {e}", self.overlay.path(ino).display());
                self.overlay.remove(ino);
                Errno::of_io(&e)
            })?;
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if n.small.as_ref() != Some(&small) {
                continue;
            }
            n.small = None;
            n.staged = Some(data.len() as u64);
            tree.log(|t| {
                Some(Record::Staged {
                    path: t.path(ino)?,
                    file: ino,
                })
            });
            return Ok(());
        }
    }

    /// Brings a small file's logged data back into memory, reading the data log without
    /// the tree lock (it is used only if the file still points at the same bytes after).
    fn unlog_small(&self, ino: u64) -> FsResult<()> {
        let small = self.tree().nodes.get(&ino).and_then(|n| n.small.clone());
        let Some(logged @ Small::Log { offset, len }) = small else {
            return Ok(());
        };
        let v = self.overlay.read_log(offset, len).map_err(|e| {
            tracing::error!("inode {ino}: reading the data log failed: {e}");
            Errno::EIO
        })?;
        let mut tree = self.tree();
        if let Some(n) = tree.nodes.get_mut(&ino) {
            if n.small.as_ref() == Some(&logged) {
                n.small = Some(Small::Mem(v));
            }
        }
        Ok(())
    }

    /// Makes a small file's data editable in memory; `None` if it is not a small file.
    /// Callers run [`RwFs::unlog_small`] first, so the data log is read under the lock only
    /// when the file was logged again in between.
    fn small_mem<'a>(&self, n: &'a mut RwNode, ino: u64) -> FsResult<Option<&'a mut Vec<u8>>> {
        if let Some(Small::Log { offset, len }) = n.small {
            let v = self.overlay.read_log(offset, len).map_err(|e| {
                tracing::error!("inode {ino}: reading the data log failed: {e}");
                Errno::EIO
            })?;
            n.small = Some(Small::Mem(v));
        }
        Ok(match n.small.as_mut() {
            Some(Small::Mem(v)) => Some(v),
            _ => None,
        })
    }

    /// Appends a changed small file's data to the data log and journals where it is (on
    /// close and fsync), without holding the tree's lock while it writes: the data is
    /// taken as it is, and only if it is still the same afterwards does the file point at
    /// the log (a later change is logged when it is closed). A failure keeps the data in
    /// memory: it is still committed, only a crash would lose it.
    fn log_small(&self, ino: u64) {
        let data = match self.tree().nodes.get(&ino).and_then(|n| n.small.as_ref()) {
            Some(Small::Mem(v)) => v.clone(),
            _ => return,
        };
        let len = data.len() as u64;
        let offset = match self.overlay.append_log(&data) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("inode {ino}: writing the data log failed: {e}");
                return;
            }
        };
        let mut tree = self.tree();
        let Some(n) = tree.nodes.get_mut(&ino) else {
            return;
        };
        if !matches!(&n.small, Some(Small::Mem(v)) if *v == data) {
            return;
        }
        n.small = Some(Small::Log { offset, len });
        tree.log(|t| {
            Some(Record::Data {
                path: t.path(ino)?,
                offset,
                len,
            })
        });
    }

    /// Writes `data` at `offset`; returns the bytes written.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        if let Some((file, name)) = self.stream_of(ino) {
            return self.write_stream(ino, file, &name, offset, data);
        }
        let _g = self.changing();
        let end = offset.saturating_add(data.len() as u64);
        if end <= SMALL_FILE {
            self.unlog_small(ino)?;
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if let Some(v) = self.small_mem(n, ino)? {
                if v.len() < end as usize {
                    v.resize(end as usize, 0);
                }
                v[offset as usize..end as usize].copy_from_slice(data);
                n.inode.last_write_time = now_filetime();
                n.written = true;
                return Ok(data.len() as u32);
            }
        }
        self.copy_up(ino)?;
        self.overlay.write_at(ino, offset, data).map_err(|e| {
            tracing::error!("{}: write failed: {e}", self.overlay.path(ino).display());
            Errno::of_io(&e)
        })?;
        let mut tree = self.tree();
        let n = tree.get_mut(ino)?;
        let end = offset + data.len() as u64;
        n.staged = Some(n.staged.unwrap_or(0).max(end));
        n.inode.last_write_time = now_filetime();
        n.written = true;
        Ok(data.len() as u32)
    }

    /// Allocates `len` bytes at `offset` in `ino`'s staged data: `mode` 0 extends the file
    /// if it ends earlier, [`FALLOC_FL_KEEP_SIZE`] reserves space without changing the
    /// visible size (the staging file's length stays the visible size: the space lies past
    /// its end). Other modes: EOPNOTSUPP.
    pub fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        let _g = self.changing();
        if mode & !FALLOC_FL_KEEP_SIZE != 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or(Errno(libc::EFBIG))?;
        match self.kind(self.tree().get(ino)?) {
            Kind::File => {}
            Kind::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno(libc::ENODEV)),
        }
        self.copy_up(ino)?;
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        self.overlay
            .allocate(ino, offset, len, keep_size)
            .map_err(|e| {
                tracing::error!(
                    "{}: fallocate failed: {e}",
                    self.overlay.path(ino).display()
                );
                Errno::of_io(&e)
            })?;
        if !keep_size {
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if end > n.staged.unwrap_or(0) {
                // The staging file grew with it: replay reads the size from there.
                n.staged = Some(end);
                n.inode.last_write_time = now_filetime();
                n.written = true;
            }
        }
        Ok(())
    }

    /// Flushes `ino`'s staged data to disk.
    pub fn fsync(&self, ino: u64) -> FsResult<()> {
        // The waits for the disk happen outside the tree lock, so other requests go on
        // meanwhile.
        {
            let mut tree = self.tree();
            // A named stream is in memory until its handle closes (journaled then).
            if tree.streams.contains_key(&ino) {
                return Ok(());
            }
            tree.get(ino)?;
        }
        self.log_small(ino);
        let journal = self
            .journal
            .lock()
            .as_ref()
            .map(|j| j.syncer())
            .transpose()
            .map_err(|e| {
                tracing::error!("syncing the journal failed: {e}");
                Errno::of_io(&e)
            })?;
        if let Some(journal) = journal {
            // What the journal points at first, then the journal.
            self.overlay.sync_log().map_err(|e| {
                tracing::error!("syncing the data log failed: {e}");
                Errno::of_io(&e)
            })?;
            journal.sync_data().map_err(|e| {
                tracing::error!("syncing the journal failed: {e}");
                Errno::of_io(&e)
            })?;
        }
        self.overlay.sync(ino).map_err(|e| {
            tracing::error!("{}: sync failed: {e}", self.overlay.path(ino).display());
            Errno::of_io(&e)
        })
    }

    /// Changes size, mode, owner or times of `ino`.
    pub fn setattr(&self, ino: u64, a: &SetAttr) -> FsResult<Attr> {
        // Without --unix-data a WIM has nowhere to keep modes and owners: refused, as
        // wimlib's mount refuses them, rather than accepted and silently dropped.
        if !self.opts.unix_data && (a.mode.is_some() || a.uid.is_some() || a.gid.is_some()) {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if let Some((file, name)) = self.stream_of(ino) {
            if let Some(len) = a.size {
                self.truncate_stream(ino, file, &name, len)?;
            }
            let times = SetAttr {
                size: None,
                ..a.clone()
            };
            return self.setattr(file, &times);
        }
        let _g = self.changing();
        let mut small_done = false;
        if let Some(size) = a.size {
            match self.kind(self.tree().get(ino)?) {
                Kind::Directory => return Err(Errno::EISDIR),
                Kind::File => {}
                _ => return Err(Errno::EINVAL),
            }
            {
                // A small file stays in memory; a file of the image cut to nothing (a copy
                // over it) becomes one, needing none of its old data.
                self.unlog_small(ino)?;
                let mut tree = self.tree();
                let n = tree.get_mut(ino)?;
                if size <= SMALL_FILE && (n.small.is_some() || (size == 0 && n.staged.is_none())) {
                    n.small.get_or_insert(Small::Mem(Vec::new()));
                    if let Some(v) = self.small_mem(n, ino)? {
                        v.resize(size as usize, 0);
                    }
                    small_done = true;
                }
            }
            if !small_done {
                if size > 0 {
                    self.copy_up(ino)?;
                }
                self.overlay.set_len(ino, size).map_err(|e| {
                    tracing::error!("{}: truncate failed: {e}", self.overlay.path(ino).display());
                    Errno::of_io(&e)
                })?;
            }
        }
        let mut tree = self.tree();
        let kind = self.kind(tree.get(ino)?);
        let unix_data = self.opts.unix_data;
        let (uid, gid) = (self.opts.uid, self.opts.gid);
        let n = tree.get_mut(ino)?;
        let now = now_filetime();
        let newly_staged = a.size.is_some() && !small_done && n.staged.is_none();
        if let Some(size) = a.size {
            if !small_done {
                n.staged = Some(size);
            }
            n.inode.last_write_time = now;
        }
        // A cut small file is logged at once (not only when closed): replay has no other
        // way to know what it holds after the cut.
        let log_now = small_done;
        if unix_data && (a.mode.is_some() || a.uid.is_some() || a.gid.is_some()) {
            let mut u = n
                .inode
                .unix
                .unwrap_or_else(|| default_unix(kind, 0o644, uid, gid));
            if let Some(m) = a.mode {
                u.mode = (u.mode & 0o170000) | (m & 0o7777);
            }
            if let Some(v) = a.uid {
                u.uid = v;
            }
            if let Some(v) = a.gid {
                u.gid = v;
            }
            n.inode.unix = Some(u);
        }
        if let Some(t) = a.atime {
            n.inode.last_access_time = system_to_filetime(t);
        }
        if let Some(t) = a.mtime {
            n.inode.last_write_time = system_to_filetime(t);
        }
        let (mode, uid, gid) = match n.inode.unix.filter(|_| unix_data) {
            Some(u) => (
                a.mode.map(|_| u.mode),
                a.uid.map(|_| u.uid),
                a.gid.map(|_| u.gid),
            ),
            None => (None, None, None),
        };
        let (atime, mtime) = (n.inode.last_access_time, n.inode.last_write_time);
        let size = a.size;
        if newly_staged {
            // The staging file first: replay gives the size to the file it names.
            tree.log(|t| {
                Some(Record::Staged {
                    path: t.path(ino)?,
                    file: ino,
                })
            });
        }
        tree.log(|t| {
            let path = t.path(ino)?;
            Some(Record::SetAttr {
                path,
                size,
                mode,
                uid,
                gid,
                atime: (a.atime.is_some() || size.is_some()).then_some(atime),
                mtime: (a.mtime.is_some() || size.is_some()).then_some(mtime),
                btime: None,
                attributes: None,
            })
        });
        drop(tree);
        if log_now {
            self.log_small(ino);
        }
        self.attr_of(&self.tree(), ino)
    }

    fn new_node(&self, attributes: u32, kind: Kind, mode: u32, uid: u32, gid: u32) -> RwNode {
        let now = now_filetime();
        RwNode::new(Inode {
            attributes,
            // No security descriptor: Windows gives the file its directory's inherited
            // ACL on apply, as it does for files wimlib captures on Linux.
            security_id: -1,
            creation_time: now,
            last_access_time: now,
            last_write_time: now,
            reparse_tag: 0,
            rp_reserved: 0,
            rp_flags: 0,
            unknown_0x54: 0,
            link_group: 0,
            streams: Vec::new(),
            unix: self
                .opts
                .unix_data
                .then(|| default_unix(kind, mode, uid, gid)),
            xattrs: Vec::new(),
            tagged: Vec::new(),
            dentries: Vec::new(),
        })
    }

    /// Adds `node` as `name` in `parent`; returns its attributes.
    fn insert(&self, tree: &mut Tree, parent: u64, name: &str, mut node: RwNode) -> FsResult<Attr> {
        tree.check_dir(parent)?;
        if tree.child(parent, name).is_ok() {
            return Err(Errno(libc::EEXIST));
        }
        let ino = tree.next_ino;
        tree.next_ino += 1;
        node.parent = parent;
        node.name = name.to_string();
        tree.nodes.insert(ino, node);
        tree.get_mut(parent)?.add_entry(name, ino, String::new());
        tree.touch_dir(parent);
        self.attr_of(tree, ino)
    }

    /// Creates and opens an empty regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        if self.opts.streams == StreamsInterface::Windows {
            if let Some((file, stream)) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.split_once(':'))
            {
                let file = self.tree().child(parent, file)?;
                let s = self.new_stream(file, stream)?;
                return Ok((self.getattr(s)?, self.open(s, true, false)?));
            }
        }
        let _g = self.changing();
        let name = check_name(name)?;
        let mut node = self.new_node(FILE_ATTRIBUTE_NORMAL, Kind::File, mode, uid, gid);
        node.small = Some(Small::Mem(Vec::new()));
        let attr = {
            let mut tree = self.tree();
            let attr = self.insert(&mut tree, parent, name, node)?;
            tree.log(|t| {
                Some(Record::Create {
                    path: t.path_in(parent, name),
                    file: attr.ino,
                    mode,
                    uid,
                    gid,
                })
            });
            attr
        };
        let fh = self.open(attr.ino, true, false)?;
        Ok((attr, fh))
    }

    /// Creates a node of the type in `mode`'s S_IFMT bits, not opened: a regular file, or
    /// with --unix-data a character or block device, fifo or socket, stored as wimlib stores
    /// them (no attributes, no data, UNIX data with the mode and, for devices, `rdev`).
    /// Without --unix-data a WIM has no way to say what such a file is: EPERM.
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let kind = match mode & 0o170000 {
            0 | 0o100000 => Kind::File,
            0o020000 => Kind::CharDevice,
            0o060000 => Kind::BlockDevice,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => return Err(Errno::EINVAL),
        };
        let node = if kind == Kind::File {
            let mut node = self.new_node(FILE_ATTRIBUTE_NORMAL, kind, mode, uid, gid);
            node.small = Some(Small::Mem(Vec::new()));
            node
        } else {
            if !self.opts.unix_data {
                return Err(Errno(libc::EPERM));
            }
            let mut node = self.new_node(0, kind, mode, uid, gid);
            let device = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
            node.inode.unix = Some(UnixData {
                uid,
                gid,
                mode: mode & 0o177777,
                rdev: if device { rdev } else { 0 },
            });
            node
        };
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            let path = t.path_in(parent, name);
            Some(match kind {
                Kind::File => Record::Create {
                    path,
                    file: attr.ino,
                    mode,
                    uid,
                    gid,
                },
                _ => Record::Mknod {
                    path,
                    mode,
                    rdev,
                    uid,
                    gid,
                },
            })
        });
        Ok(attr)
    }

    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let node = self.new_node(FILE_ATTRIBUTE_DIRECTORY, Kind::Directory, mode, uid, gid);
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            Some(Record::Mkdir {
                path: t.path_in(parent, name),
                mode,
                uid,
                gid,
            })
        });
        Ok(attr)
    }

    /// Creates a symbolic link, stored as a Windows symlink reparse point.
    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let target = std::str::from_utf8(target).map_err(|_| Errno::EINVAL)?;
        let data = wimfs::format::reparse::symlink_reparse_data(target)
            .ok_or(Errno(libc::ENAMETOOLONG))?;
        let mut node = self.new_node(FILE_ATTRIBUTE_REPARSE_POINT, Kind::Symlink, 0o777, uid, gid);
        node.inode.reparse_tag = IO_REPARSE_TAG_SYMLINK;
        node.inode.rp_flags = RP_FLAG_NOT_FIXED;
        node.new_reparse = Some(data);
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            Some(Record::Symlink {
                path: t.path_in(parent, name),
                target: target.to_string(),
                uid,
                gid,
            })
        });
        Ok(attr)
    }

    /// Gives `ino` another name (a hard link).
    pub fn link(&self, ino: u64, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let mut tree = self.tree();
        if tree.get(ino)?.is_dir() {
            return Err(Errno(libc::EPERM));
        }
        tree.check_dir(parent)?;
        if tree.child(parent, name).is_ok() {
            return Err(Errno(libc::EEXIST));
        }
        let from = tree.path(ino);
        let n = tree.get_mut(ino)?;
        if n.names == 0 {
            // Linking an open but unlinked file back in: this is its name now.
            n.parent = parent;
            n.name = name.to_string();
        }
        n.names += 1;
        tree.get_mut(parent)?.add_entry(name, ino, String::new());
        tree.touch_dir(parent);
        // A file that had no name has no path to link from: the journal cannot express
        // that (its data would be lost on recovery), so it is left out.
        tree.log(|t| {
            from.map(|from| Record::Link {
                from,
                to: t.path_in(parent, name),
            })
        });
        self.attr_of(&tree, ino)
    }

    /// Removes a non-directory name.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        if self.tree().child(parent, name).is_err() {
            if let Some(s) = self.stream_by_name(parent, name) {
                let (file, stream) = self.stream_of(s?).ok_or(Errno::ENOENT)?;
                return self.remove_stream(file, &stream);
            }
        }
        let _g = self.changing();
        let gone = {
            let mut tree = self.tree();
            let ino = tree.child(parent, name)?;
            if tree.get(ino)?.is_dir() {
                return Err(Errno::EISDIR);
            }
            let path = tree.path_in(parent, name);
            tree.get_mut(parent)?.children.remove(name);
            tree.touch_dir(parent);
            tree.unname(ino, parent, name);
            tree.log(|_| Some(Record::Unlink { path }));
            tree.drop_name(ino)
        };
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let _g = self.changing();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let mut tree = self.tree();
        let ino = tree.child(parent, name)?;
        let n = tree.get(ino)?;
        if !n.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !n.children.is_empty() {
            return Err(Errno(libc::ENOTEMPTY));
        }
        tree.log(|t| {
            Some(Record::Rmdir {
                path: t.path_in(parent, name),
            })
        });
        tree.get_mut(parent)?.children.remove(name);
        tree.touch_dir(parent);
        tree.drop_name(ino);
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name` (`flags`: [`RENAME_NOREPLACE`],
    /// [`RENAME_EXCHANGE`]); an existing target is replaced unless told otherwise.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let _g = self.changing();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let new_name = check_name(new_name)?;
        let gone = {
            let mut tree = self.tree();
            let record = |t: &Tree| Record::Rename {
                from: t.path_in(parent, name),
                to: t.path_in(new_parent, new_name),
                flags,
            };
            let src = tree.child(parent, name)?;
            tree.check_dir(new_parent)?;
            let dst = tree.child(new_parent, new_name).ok();
            let src_dir = tree.get(src)?.is_dir();
            if src_dir && tree.is_within(new_parent, src) {
                return Err(Errno::EINVAL);
            }
            if flags & RENAME_EXCHANGE != 0 {
                let dst = dst.ok_or(Errno::ENOENT)?;
                if tree.get(dst)?.is_dir() && tree.is_within(parent, dst) {
                    return Err(Errno::EINVAL);
                }
                let a = tree
                    .get_mut(parent)?
                    .children
                    .remove(name)
                    .expect("looked up");
                let b = tree
                    .get_mut(new_parent)?
                    .children
                    .remove(new_name)
                    .expect("looked up");
                let rec = record(&tree);
                tree.get_mut(parent)?.add_entry(name, b.ino, String::new());
                tree.get_mut(new_parent)?
                    .add_entry(new_name, a.ino, String::new());
                if src == dst {
                    // Two names of one file swapped: nothing changes.
                } else {
                    tree.rename_primary(src, (parent, name), (new_parent, new_name));
                    tree.rename_primary(dst, (new_parent, new_name), (parent, name));
                }
                tree.log(|_| Some(rec));
                tree.touch_dir(parent);
                tree.touch_dir(new_parent);
                return Ok(());
            }
            let mut gone = None;
            if let Some(dst) = dst {
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(Errno(libc::EEXIST));
                }
                if dst == src {
                    // Two names of one file: POSIX says nothing happens.
                    return Ok(());
                }
                let d = tree.get(dst)?;
                match (src_dir, d.is_dir()) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) if !d.children.is_empty() => return Err(Errno(libc::ENOTEMPTY)),
                    _ => {}
                }
                let rec = record(&tree);
                tree.get_mut(new_parent)?.children.remove(new_name);
                tree.unname(dst, new_parent, new_name);
                gone = tree.drop_name(dst);
                tree.log(|_| Some(rec));
            } else {
                tree.log(|t| Some(record(t)));
            }
            tree.get_mut(parent)?.children.remove(name);
            tree.get_mut(new_parent)?
                .add_entry(new_name, src, String::new());
            tree.rename_primary(src, (parent, name), (new_parent, new_name));
            tree.touch_dir(parent);
            tree.touch_dir(new_parent);
            gone
        };
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
        Ok(())
    }

    /// Starts the journal in the staging directory (again, after a commit): its base is
    /// image `self.image_index()` of `wim`, whose metadata resource has hash `metadata`;
    /// files whose data is staged are listed so that later changes to them replay.
    pub fn start_journal(&self, wim: &Path, metadata: &Sha1Hash) -> std::io::Result<()> {
        // No change runs meanwhile (at mount, or under a commit's gate).
        let mut journal = self.journal.lock();
        let tree = self.tree.lock();
        let base = Record::Base {
            version: journal::VERSION,
            wim: wim.to_string_lossy().into_owned(),
            image: self.image_index(),
            metadata: journal::hex(metadata),
            unix_data: self.opts.unix_data,
        };
        let mut staged: Vec<(u64, String)> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.staged.is_some())
            .filter_map(|(&ino, _)| tree.path(ino).map(|p| (ino, p)))
            .collect();
        staged.sort();
        let mut lines: Vec<Record> = staged
            .into_iter()
            .map(|(file, path)| Record::Staged { path, file })
            .collect();
        // Small files keep their place in the data log (those changed in memory are logged
        // when closed).
        let mut logged: Vec<(String, u64, u64)> = tree
            .nodes
            .iter()
            .filter_map(|(&ino, n)| match n.small {
                Some(Small::Log { offset, len }) => tree.path(ino).map(|p| (p, offset, len)),
                _ => None,
            })
            .collect();
        logged.sort();
        lines.extend(logged.into_iter().map(|(path, offset, len)| Record::Data {
            path,
            offset,
            len,
        }));
        drop(tree);
        *journal = Some(Journal::start(self.overlay.dir(), &base, &lines)?);
        let mut tree = self.tree.lock();
        tree.journaling = true;
        tree.pending.clear();
        Ok(())
    }

    /// Appends `r` to the journal now (for the commit's `committing` line) and syncs it.
    pub(crate) fn journal_now(&self, r: &Record) -> std::io::Result<()> {
        self.flush_journal();
        let syncer = {
            let mut journal = self.journal.lock();
            match journal.as_mut() {
                Some(j) => {
                    j.append(r);
                    Some(j.syncer()?)
                }
                None => None,
            }
        };
        // The wait for the disk outside the tree lock: lookups and reads go on.
        syncer.map_or(Ok(()), |f| f.sync_data())
    }

    fn resolve(&self, path: &str) -> Result<u64, String> {
        let tree = self.tree();
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = tree
                .child(ino, part)
                .map_err(|e| format!("{path}: not found ({e:?})"))?;
        }
        Ok(ino)
    }

    fn resolve_parent<'a>(&self, path: &'a str) -> Result<(u64, &'a str), String> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok((self.resolve(dir)?, name))
    }

    /// Replays journal lines (after the base line) against this tree, which must have been
    /// built from the journal's base image and have no journal itself. Returns which
    /// staging file holds the data of each inode number of this tree; the sizes of staged
    /// files are those of the files in `staging`.
    pub fn replay(&self, records: &[Record], staging: &Path) -> Result<HashMap<u64, u64>, String> {
        let mut files: HashMap<u64, u64> = HashMap::new();
        // The least each staging file must hold: what it started with, or the size of its
        // last journaled truncate (later writes only add to that). Shorter means data was
        // lost, and committing it would store a damaged file.
        let mut least: HashMap<u64, u64> = HashMap::new();
        let fail = |r: &Record, e: Errno| format!("replaying {r:?}: error {}", e.0);
        for r in records {
            match r {
                Record::Base { .. } => return Err("a second base line".into()),
                Record::Committing | Record::CommittingNewImage { .. } => {}
                Record::Create {
                    path,
                    file,
                    mode,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    let (attr, fh) = self
                        .create(dir, name.as_bytes(), *mode, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                    self.release(fh);
                    files.insert(attr.ino, *file);
                }
                Record::Mkdir {
                    path,
                    mode,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.mkdir(dir, name.as_bytes(), *mode, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Symlink {
                    path,
                    target,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.symlink(dir, name.as_bytes(), target.as_bytes(), *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Mknod {
                    path,
                    mode,
                    rdev,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.mknod(dir, name.as_bytes(), *mode, *rdev, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Link { from, to } => {
                    let ino = self.resolve(from)?;
                    let (dir, name) = self.resolve_parent(to)?;
                    self.link(ino, dir, name.as_bytes())
                        .map_err(|e| fail(r, e))?;
                }
                Record::Unlink { path } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.unlink(dir, name.as_bytes()).map_err(|e| fail(r, e))?;
                }
                Record::Rmdir { path } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.rmdir(dir, name.as_bytes()).map_err(|e| fail(r, e))?;
                }
                Record::Rename { from, to, flags } => {
                    let (d1, n1) = self.resolve_parent(from)?;
                    let (d2, n2) = self.resolve_parent(to)?;
                    self.rename(d1, n1.as_bytes(), d2, n2.as_bytes(), *flags)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Staged { path, file } => {
                    let ino = self.resolve(path)?;
                    let mut tree = self.tree();
                    let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                    least.insert(ino, n.size());
                    n.small = None;
                    n.staged.get_or_insert(0);
                    files.insert(ino, *file);
                }
                Record::Data { path, offset, len } => {
                    if *len > SMALL_FILE {
                        return Err(format!("{r:?}: more data than a small file holds"));
                    }
                    let ino = self.resolve(path)?;
                    let mut tree = self.tree();
                    let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                    n.staged = None;
                    n.small = Some(Small::Log {
                        offset: *offset,
                        len: *len,
                    });
                    files.remove(&ino);
                }
                Record::SetAttr {
                    path,
                    size,
                    mode,
                    uid,
                    gid,
                    atime,
                    mtime,
                    btime,
                    attributes,
                } => {
                    let ino = self.resolve(path)?;
                    if btime.is_some() || attributes.is_some() {
                        let info = BasicInfo {
                            attributes: *attributes,
                            creation_time: *btime,
                            ..BasicInfo::default()
                        };
                        self.win_set_basic(ino, info).map_err(|e| fail(r, e))?;
                    }
                    if let Some(size) = size {
                        // The staging file has the size already; only the tree learns it.
                        // A small file's data comes with its next `data` line; until then,
                        // what the cut left of it.
                        let mut tree = self.tree();
                        let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                        if n.small.is_some() || (n.staged.is_none() && *size == 0) {
                            if *size > SMALL_FILE {
                                return Err(format!("{r:?}: bigger than a small file"));
                            }
                            n.small = Some(match n.small.take() {
                                Some(Small::Log { offset, len }) if *size <= len => {
                                    Small::Log { offset, len: *size }
                                }
                                _ => Small::Mem(vec![0; *size as usize]),
                            });
                        } else {
                            n.staged = Some(*size);
                            least.insert(ino, *size);
                        }
                    }
                    // Modes and owners exist only with --unix-data (older journals may
                    // carry them without it).
                    let unix = self.opts.unix_data;
                    self.setattr(
                        ino,
                        &SetAttr {
                            size: None,
                            mode: mode.filter(|_| unix),
                            uid: uid.filter(|_| unix),
                            gid: gid.filter(|_| unix),
                            atime: atime.map(filetime_to_system),
                            mtime: mtime.map(filetime_to_system),
                        },
                    )
                    .map_err(|e| fail(r, e))?;
                }
                Record::Security { path, sd } => {
                    let ino = self.resolve(path)?;
                    self.win_set_security(ino, sd).map_err(|e| fail(r, e))?;
                }
                Record::Stream { path, name, value } => {
                    let ino = self.resolve(path)?;
                    match value {
                        Some(v) => self.setxattr(ino, name.as_bytes(), v, 0),
                        None => self.removexattr(ino, name.as_bytes()),
                    }
                    .map_err(|e| fail(r, e))?;
                }
            }
        }
        let mut tree = self.tree();
        files.retain(|ino, _| tree.nodes.contains_key(ino));
        for (ino, file) in &files {
            let path = staging.join(file.to_string());
            if tree.nodes.get(ino).is_none_or(|n| n.small.is_some()) {
                continue;
            }
            let name = tree.path(*ino).unwrap_or_default();
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "{}: missing: the staged data of /{name} is gone, so the changes \
                         cannot be committed whole (--discard drops them)",
                        path.display()
                    ))
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            let want = least.get(ino).copied().unwrap_or(0);
            if len < want {
                return Err(format!(
                    "{}: holds {len} bytes where the journal says /{name} had at least {want}: \
                     staged data was lost, so the changes cannot be committed whole \
                     (--discard drops them)",
                    path.display()
                ));
            }
            if let Some(n) = tree.nodes.get_mut(ino) {
                n.staged = Some(len);
            }
        }
        Ok(files)
    }

    /// Filesystem totals for `statfs`.
    pub fn statfs(&self) -> Statfs {
        let (bytes, files) = self.tree().totals();
        Statfs {
            blocks: bytes.div_ceil(4096),
            files,
            // No limit of its own: what the staging directory's disk has.
            free_blocks: u32::MAX as u64,
            free_files: u32::MAX as u64,
            bsize: 4096,
            namelen: NAME_MAX as u32,
        }
    }

    /// A snapshot of the tree as an image, for commit. Untouched inodes keep everything
    /// the image had; inodes whose data was staged or links made on this mount are listed
    /// in the result for the caller to write and fill in.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let tree = self.tree();
        let (names, inodes) = {
            let b = self.base.image();
            (
                b.dentries.len() + tree.nodes.len() + 1,
                b.inodes.len() + tree.nodes.len(),
            )
        };
        // Sized up front: growing these by doubling would touch twice the memory.
        let mut img = Image {
            index: self.image_index(),
            security: self.security.clone(),
            dentries: Vec::with_capacity(names),
            inodes: Vec::with_capacity(inodes),
        };
        let mut inode_of: rustc_hash::FxHashMap<u64, usize> =
            rustc_hash::FxHashMap::with_capacity_and_hasher(inodes, Default::default());
        let mut staged = Vec::new();
        let mut small = Vec::new();
        let mut reparse = Vec::new();
        let mut streams = Vec::new();
        // Descriptors set on the mount, by their index in the new table.
        let mut new_ids: HashMap<Vec<u8>, i32> = HashMap::new();
        // (dentry id, inode number) of directories still to fill, depth first.
        let mut stack: Vec<(DentryId, u64)> = Vec::new();
        let mut add = |img: &mut Image, ino: u64, name: &str, short: &str, parent: DentryId| {
            let id = *inode_of.entry(ino).or_insert_with(|| {
                let id = img.inodes.len();
                let Some(n) = tree.nodes.get(&ino) else {
                    // Unchanged: the image's record as it is.
                    // (Every listed number has one; an empty file would stand in otherwise.)
                    let mut inode = tree
                        .inode(ino)
                        .cloned()
                        .unwrap_or_else(|| self.new_node(0, Kind::File, 0o644, 0, 0).inode);
                    inode.dentries.clear();
                    img.inodes.push(inode);
                    return id;
                };
                let mut inode = n.inode.clone();
                inode.dentries.clear();
                if n.staged.is_some() || n.small.is_some() {
                    inode
                        .streams
                        .retain(|s| !(s.kind == StreamKind::Data && s.name.is_empty()));
                }
                match (&n.small, n.staged) {
                    (Some(d), _) if d.len() > 0 => small.push((id, d.clone())),
                    (None, Some(len)) if len > 0 => staged.push((id, ino, len)),
                    _ => {}
                }
                if let Some(d) = &n.new_reparse {
                    inode.streams.retain(|s| s.kind != StreamKind::Reparse);
                    reparse.push((id, d.clone()));
                }
                if let Some(sd) = &n.new_security {
                    inode.security_id = security_id(&mut img.security, &mut new_ids, sd);
                }
                if !n.new_streams.is_empty() {
                    streams.push((id, n.new_streams.clone()));
                }
                img.inodes.push(inode);
                id
            });
            let d = img.dentries.len();
            img.dentries.push(wimfs::Dentry {
                name: name.to_string(),
                short_name: short.to_string(),
                parent,
                children: Vec::new(),
                inode: id,
            });
            img.inodes[id].dentries.push(d);
            d
        };
        let root = add(&mut img, ROOT_INO, "", "", 0);
        stack.push((root, ROOT_INO));
        while let Some((d, ino)) = stack.pop() {
            let mut kids = tree.entries(ino);
            kids.sort_by(|a, b| wimfs::image::name_order(a.0, b.0));
            for (name, child, short) in kids {
                let c = add(&mut img, child, name, short, d);
                img.dentries[d].children.push(c);
                if tree.is_dir(child) {
                    stack.push((c, child));
                }
            }
        }
        Snapshot {
            image: img,
            staged,
            small,
            reparse,
            streams,
        }
    }
}

/// The index of descriptor `sd` in `table`, added at its end the first time.
fn security_id(table: &mut Vec<Vec<u8>>, known: &mut HashMap<Vec<u8>, i32>, sd: &[u8]) -> i32 {
    if let Some(&id) = known.get(sd) {
        return id;
    }
    let id = match table.iter().position(|t| t == sd) {
        Some(k) => k as i32,
        None => {
            table.push(sd.to_vec());
            table.len() as i32 - 1
        }
    };
    known.insert(sd.to_vec(), id);
    id
}

/// The tree as an image, plus the data that is not in the WIM yet.
pub(crate) struct Snapshot {
    pub(crate) image: Image,
    /// (image inode, inode number whose overlay file holds the data, its length).
    pub(crate) staged: Vec<(usize, u64, u64)>,
    /// (image inode, where the data of a small file made on the mount is).
    pub(crate) small: Vec<(usize, Small)>,
    /// (image inode, reparse data of a link made on this mount).
    pub(crate) reparse: Vec<(usize, Vec<u8>)>,
    /// (image inode, named data streams set on this mount: name, contents).
    pub(crate) streams: Vec<(usize, tree::NewStreams)>,
}

fn default_unix(kind: Kind, mode: u32, uid: u32, gid: u32) -> UnixData {
    let ty = match kind {
        Kind::Directory => 0o040000,
        Kind::Symlink => 0o120000,
        _ => 0o100000,
    };
    UnixData {
        uid,
        gid,
        mode: ty | (mode & 0o7777),
        rdev: 0,
    }
}

#[path = "rw_xattr.rs"]
mod xattr;

#[cfg(test)]
#[path = "rw_tests.rs"]
mod tests;

/// The tree, locked; queued journal lines are written once the lock is released.
pub(crate) struct TreeGuard<'a> {
    fs: &'a RwFs,
    guard: Option<parking_lot::MutexGuard<'a, Tree>>,
}

impl std::ops::Deref for TreeGuard<'_> {
    type Target = Tree;
    fn deref(&self) -> &Tree {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for TreeGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tree {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for TreeGuard<'_> {
    fn drop(&mut self) {
        let queued = self.guard.take().is_some_and(|t| !t.pending.is_empty());
        if queued {
            self.fs.flush_journal();
        }
    }
}
