//! The platform-neutral read-only filesystem over one image of a WIM.
//!
//! Every filesystem rule lives here; the FUSE and WinFsp adapters only translate. What only a
//! Windows file system needs (paths with streams, attributes, security descriptors, reparse
//! buffers, NTSTATUS codes) is in [`wininfo`], platform-neutral and tested on Linux.
//! Inode numbers are stable for the life of the mount: an image inode `i` is number `i + 1`,
//! except that the image root always gets [`ROOT_INO`] (it swaps numbers with inode 0).
//! With the `windows` streams interface, named data streams get numbers after the inodes.

mod attr;
mod dir;
mod handle;
pub mod names;
mod ops;
mod readahead;
pub mod rw;
pub mod wininfo;
mod winops;
pub mod winpath;
mod xattr;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use wimfs::format::reparse::LinkReparse;
use wimfs::image::{DentryId, InodeId};
use wimfs::{Image, Wim};

pub use attr::{Attr, Kind, Statfs};
pub use dir::DirEntry;
pub use ops::{Caller, FsOps, SetAttr};
pub use wininfo::{Resolved, WinInfo, WinStream, WinVolume};
pub use winops::{BasicInfo, NewFile, WinOps};

/// The inode number of the root directory (FUSE's fixed root number).
pub const ROOT_INO: u64 = 1;

/// An errno value to hand back to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    pub const ERANGE: Errno = Errno(libc::ERANGE);

    /// The errno for a failed I/O on staged data: what the caller can act on (no space, over
    /// quota, too big, read-only) passes through; anything else is EIO.
    pub fn of_io(e: &std::io::Error) -> Errno {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::StorageFull => Errno(libc::ENOSPC),
            K::QuotaExceeded => Errno(QUOTA),
            K::FileTooLarge => Errno(libc::EFBIG),
            K::ReadOnlyFilesystem => Errno::EROFS,
            K::OutOfMemory => Errno(libc::ENOMEM),
            _ => Errno::EIO,
        }
    }
}

/// Over quota: EDQUOT where there is one; Windows reports it as a full disk.
#[cfg(unix)]
const QUOTA: i32 = libc::EDQUOT;
#[cfg(not(unix))]
const QUOTA: i32 = libc::ENOSPC;

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, Errno>;

/// Runs one request's call into the core. A panic in it (a bug, or input no check foresaw)
/// fails that request with EIO and is logged (the panic message, with where it happened,
/// goes to the log first); the worker thread and every other request go on.
pub fn guarded<T>(op: &str, f: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("{op}: internal error ({msg}); the request failed with EIO");
            Err(Errno::EIO)
        }
    }
}

/// A fault to inject for tests: reads of files of exactly this many bytes panic
/// (`WIMFS_TEST_PANIC_READ_SIZE`), so tests can show a panic costs one request, not the mount.
pub(crate) fn panics_on_read_of(size: u64) -> bool {
    static SIZE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("WIMFS_TEST_PANIC_READ_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
    }) == Some(size)
}

/// How named data streams ("alternate data streams") are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamsInterface {
    /// As `user.<name>` extended attributes (wimlib's default).
    #[default]
    Xattr,
    /// As `file:name` entries that can be looked up (but are not listed).
    Windows,
    /// Not at all.
    None,
}

impl FromStr for StreamsInterface {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xattr" => Ok(Self::Xattr),
            "windows" => Ok(Self::Windows),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown streams interface {s:?} (use xattr, windows or none)"
            )),
        }
    }
}

/// Mount-wide choices.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Show owners, modes and special files saved with `--unix-data`.
    pub unix_data: bool,
    pub streams: StreamsInterface,
    /// Where absolute link targets fixed at capture time are rooted (the mountpoint), if the
    /// WIM was captured with reparse-point fixing.
    pub link_root: Option<String>,
    /// Owner shown for everything without (or ignoring) UNIX data: the mounting user.
    pub uid: u32,
    pub gid: u32,
    /// Bytes to decode ahead of a sequential reader.
    pub readahead: u64,
    /// Look names up ignoring case (keeping it as stored), as Windows does; the `dir` module
    /// says what happens to names that differ only in case. Default: on for Windows only.
    pub case_insensitive: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            unix_data: false,
            streams: StreamsInterface::Xattr,
            link_root: None,
            uid: 0,
            gid: 0,
            readahead: 4 << 20,
            case_insensitive: cfg!(windows),
        }
    }
}

/// What an inode number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Inode(InodeId),
    /// A named data stream: (inode, index into its `streams`).
    Stream(InodeId, usize),
}

/// The read-only filesystem.
pub struct Fs {
    pub(crate) wim: Arc<Wim>,
    pub(crate) img: Image,
    pub(crate) opts: FsOptions,
    root: InodeId,
    /// Per directory inode: 2 + number of subdirectories; 0 for non-directories.
    dir_nlink: Vec<u32>,
    /// Per dentry: its index among its parent's children (the listing order), for
    /// read-ahead of the files listed after an opened one.
    pub(crate) sibling_index: Vec<u32>,
    /// The dentry of the file last read sequentially to its end (`usize::MAX`: none yet).
    pub(crate) last_finished: AtomicUsize,
    /// How many files in a row were opened in listing order (see `last_finished`).
    pub(crate) order_streak: AtomicU32,
    /// Per directory inode: children in collation order, built on first lookup.
    names: Vec<OnceLock<Box<[DentryId]>>>,
    /// Per directory inode: children that have a DOS name, sorted by it ignoring case.
    short_names: Vec<OnceLock<Box<[DentryId]>>>,
    /// Named streams exposed as files (`windows` interface), numbered after the inodes.
    stream_nodes: Vec<(InodeId, usize)>,
    stream_ino: HashMap<(InodeId, usize), u64>,
    links: Mutex<HashMap<InodeId, Arc<str>>>,
    pub(crate) handles: Mutex<HashMap<u64, Arc<handle::Handle>>>,
    pub(crate) next_fh: AtomicU64,
    /// Inodes whose data failed its SHA-1 check: every later read gets EIO.
    pub(crate) bad: Mutex<HashSet<u64>>,
    /// Decodes ahead of sequential readers.
    pub(crate) readahead: readahead::ReadAhead,
    total_bytes: u64,
}

impl Fs {
    /// Builds the filesystem over a loaded image.
    pub fn new(wim: Arc<Wim>, img: Image, opts: FsOptions) -> Fs {
        let root = img.dentries[Image::ROOT].inode;
        let mut dir_nlink = vec![0u32; img.inodes.len()];
        for (i, ino) in img.inodes.iter().enumerate() {
            if ino.is_directory() {
                let d = ino.dentries.first().copied().unwrap_or(Image::ROOT);
                let subdirs = img.dentries[d]
                    .children
                    .iter()
                    .filter(|&&c| img.inode_of(c).is_directory())
                    .count();
                dir_nlink[i] = 2 + subdirs as u32;
            }
        }
        let mut sibling_index = vec![0u32; img.dentries.len()];
        for d in &img.dentries {
            for (k, &c) in d.children.iter().enumerate() {
                sibling_index[c] = k as u32;
            }
        }
        let mut stream_nodes = Vec::new();
        let mut stream_ino = HashMap::new();
        if opts.streams == StreamsInterface::Windows {
            for (i, ino) in img.inodes.iter().enumerate() {
                for (k, s) in ino.streams.iter().enumerate() {
                    if s.kind == wimfs::StreamKind::Data && !s.name.is_empty() {
                        let n = img.inodes.len() as u64 + 1 + stream_nodes.len() as u64;
                        stream_ino.insert((i, k), n);
                        stream_nodes.push((i, k));
                    }
                }
            }
        }
        let total_bytes = img.inodes.iter().map(|i| i.size()).sum();
        let names = (0..img.inodes.len()).map(|_| OnceLock::new()).collect();
        let short_names = (0..img.inodes.len()).map(|_| OnceLock::new()).collect();
        Fs {
            readahead: readahead::ReadAhead::new(Arc::clone(&wim)),
            wim,
            img,
            opts,
            root,
            dir_nlink,
            sibling_index,
            last_finished: AtomicUsize::new(usize::MAX),
            order_streak: AtomicU32::new(0),
            names,
            short_names,
            stream_nodes,
            stream_ino,
            links: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            bad: Mutex::new(HashSet::new()),
            total_bytes,
        }
    }

    /// The WIM being served.
    pub fn wim(&self) -> &Arc<Wim> {
        &self.wim
    }

    /// The image being served.
    pub fn image(&self) -> &Image {
        &self.img
    }

    pub(crate) fn ino_of(&self, i: InodeId) -> u64 {
        if i == self.root {
            ROOT_INO
        } else if i == 0 {
            self.root as u64 + 1
        } else {
            i as u64 + 1
        }
    }

    pub(crate) fn node(&self, ino: u64) -> FsResult<Node> {
        let n = self.img.inodes.len() as u64;
        match ino {
            0 => Err(Errno::ENOENT),
            ROOT_INO => Ok(Node::Inode(self.root)),
            i if i <= n => {
                let id = (i - 1) as usize;
                Ok(Node::Inode(if id == self.root { 0 } else { id }))
            }
            i => self
                .stream_nodes
                .get((i - n - 1) as usize)
                .map(|&(a, b)| Node::Stream(a, b))
                .ok_or(Errno::ENOENT),
        }
    }

    fn dir_inode(&self, ino: u64) -> FsResult<InodeId> {
        match self.node(ino)? {
            Node::Inode(i) if self.img.inodes[i].is_directory() => Ok(i),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// The highest inode number in use (inodes, then streams shown as files).
    pub(crate) fn last_ino(&self) -> u64 {
        (self.img.inodes.len() + self.stream_nodes.len()) as u64
    }

    /// The dentry a directory inode is reached by.
    pub(crate) fn dir_dentry(&self, i: InodeId) -> DentryId {
        if i == self.root {
            Image::ROOT
        } else {
            self.img.inodes[i]
                .dentries
                .first()
                .copied()
                .unwrap_or(Image::ROOT)
        }
    }

    /// A path of an inode inside the image, for messages.
    pub(crate) fn path_of(&self, i: InodeId) -> String {
        self.img.inodes[i]
            .dentries
            .first()
            .map_or_else(|| format!("<inode {i}>"), |&d| self.img.path_of(d))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let dir = self.dir_inode(parent)?;
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        match name {
            "." => return self.getattr(parent),
            ".." => {
                let d = self.img.dentries[self.dir_dentry(dir)].parent;
                return self.getattr(self.ino_of(self.img.dentries[d].inode));
            }
            _ => {}
        }
        if let Some(c) = self.child(dir, name) {
            return self.getattr(self.ino_of(self.img.dentries[c].inode));
        }
        if self.opts.streams == StreamsInterface::Windows {
            if let Some((base, stream)) = name.split_once(':') {
                let c = self.child(dir, base).ok_or(Errno::ENOENT)?;
                let i = self.img.dentries[c].inode;
                let k = self.img.inodes[i]
                    .streams
                    .iter()
                    .position(|s| s.kind == wimfs::StreamKind::Data && s.name == stream)
                    .ok_or(Errno::ENOENT)?;
                let ino = *self.stream_ino.get(&(i, k)).ok_or(Errno::ENOENT)?;
                return self.getattr(ino);
            }
        }
        Err(Errno::ENOENT)
    }

    /// The target of a symlink or junction, as a Unix path.
    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        match self.node(ino)? {
            Node::Inode(i) if self.img.inodes[i].is_symlink() => {
                Ok(self.link_target(i)?.as_bytes().to_vec())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn link_target(&self, i: InodeId) -> FsResult<Arc<str>> {
        if let Some(t) = self.links.lock().get(&i) {
            return Ok(Arc::clone(t));
        }
        let inode = &self.img.inodes[i];
        let data = match inode.reparse_stream().and_then(|s| s.blob) {
            Some(loc) => self
                .wim
                .read_blob(&loc, true)
                .map_err(|e| self.read_failed(i, &e))?,
            None => Vec::new(),
        };
        let link = LinkReparse::parse(inode.reparse_tag, &data).map_err(|e| {
            tracing::error!("\"{}\": bad link data: {e}", self.path_of(i));
            Errno::EIO
        })?;
        let target: Arc<str> = link
            .unix_target(inode.rp_flags, self.opts.link_root.as_deref())
            .into();
        self.links.lock().insert(i, Arc::clone(&target));
        Ok(target)
    }

    /// Logs a failed read of inode `i`'s data and turns it into EIO.
    pub(crate) fn read_failed(&self, i: InodeId, e: &wimfs::Error) -> Errno {
        tracing::error!("\"{}\": read failed: {e}", self.path_of(i));
        Errno::EIO
    }

    /// Filesystem totals for `statfs`.
    pub fn statfs(&self) -> Statfs {
        Statfs {
            blocks: self.total_bytes.div_ceil(attr::BLOCK),
            files: self.img.inodes.len() as u64,
            free_blocks: 0,
            free_files: 0,
            bsize: attr::BLOCK as u32,
            namelen: 255,
        }
    }
}
