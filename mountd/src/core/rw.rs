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

#[path = "rw_data.rs"]
mod data;
#[path = "rw_journal.rs"]
mod journal_replay;
#[path = "rw_names.rs"]
mod names;
#[path = "rw_snapshot.rs"]
mod snapshot;

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
