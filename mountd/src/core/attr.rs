//! File attributes as the kernel sees them.

use std::time::SystemTime;

use wimfs::image::InodeId;
use wimfs::time::filetime_to_system;
use wimfs::Inode;

use super::{Errno, Fs, FsOptions, FsResult, Node};

/// Block size reported by `statfs` and used for `st_blocks`.
pub(crate) const BLOCK: u64 = 4096;
/// Preferred I/O size of files: one page. Sequential reads reach the daemon in the kernel's
/// read-ahead windows whatever size programs read in, but programs that buffer by
/// `st_blksize` (stdio, Python) would turn each small random read into one this big, and the
/// daemon would decode every chunk under it (4 LZX chunks for a 4 KiB read at 128 KiB).
pub(crate) const FILE_BLKSIZE: u32 = 4096;
/// Preferred I/O size of directories: big, since the C library sizes its directory-reading
/// buffer by it and every buffer costs a round trip through the daemon.
const DIR_BLKSIZE: u32 = 128 << 10;

/// File type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// Attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
    pub kind: Kind,
    /// Permission bits (07777).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

/// Filesystem totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    pub blocks: u64,
    pub files: u64,
    /// Room for new data and new files (none on a read-only mount).
    pub free_blocks: u64,
    pub free_files: u64,
    pub bsize: u32,
    pub namelen: u32,
}

impl Fs {
    /// The type of an inode of the image.
    pub(crate) fn kind_of(&self, i: InodeId) -> Kind {
        kind_of(&self.img.inodes[i], self.opts.unix_data)
    }

    /// Attributes of inode number `ino`.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let (i, stream) = match self.node(ino)? {
            Node::Inode(i) => (i, None),
            Node::Stream(i, k) => (i, Some(k)),
        };
        let inode = &self.img.inodes[i];
        let kind = match stream {
            Some(_) => Kind::File,
            None => self.kind_of(i),
        };
        let size = match (stream, kind) {
            (Some(k), _) => inode.streams[k].size(),
            (None, Kind::File) => inode.size(),
            // The length of the target, as POSIX and every kernel file system give it (and
            // as `readlink` then answers; the target is read once and kept). Only if the
            // link data cannot be read is it an upper bound: the reparse data's size plus
            // the mount root prepended to fixed-up targets.
            (None, Kind::Symlink) => match self.link_target(i) {
                Ok(t) => t.len() as u64,
                Err(_) => {
                    inode.reparse_stream().map_or(0, |s| s.size())
                        + self.opts.link_root.as_ref().map_or(0, |r| r.len() as u64)
                }
            },
            _ => 0,
        };
        let nlink = match (stream, kind) {
            (Some(_), _) => 1,
            (None, Kind::Directory) => self.dir_nlink[i],
            (None, _) => inode.nlink().max(1),
        };
        Ok(attr_of(
            inode,
            ino,
            kind,
            size,
            nlink,
            &self.opts,
            FILE_BLKSIZE,
        ))
    }

    /// Checks that `ino` exists (for `access`-like calls).
    pub fn exists(&self, ino: u64) -> FsResult<()> {
        self.node(ino).map(|_| ()).map_err(|_| Errno::ENOENT)
    }
}

/// The type of an inode; special files only with `--unix-data`, as wimlib shows them.
pub(crate) fn kind_of(inode: &Inode, unix_data: bool) -> Kind {
    if inode.is_symlink() {
        return Kind::Symlink;
    }
    if inode.is_directory() {
        return Kind::Directory;
    }
    if unix_data {
        if let Some(u) = inode.unix {
            match u.mode & 0o170000 {
                0o020000 => return Kind::CharDevice,
                0o060000 => return Kind::BlockDevice,
                0o010000 => return Kind::Fifo,
                0o140000 => return Kind::Socket,
                _ => {}
            }
        }
    }
    Kind::File
}

/// The attributes of `inode`, numbered `ino`, of type `kind` with `size` bytes and `nlink`
/// names: modes, owners, times and device numbers by one rule for both kinds of mount.
/// `file_blksize` is the preferred I/O size of non-directories.
pub(crate) fn attr_of(
    inode: &Inode,
    ino: u64,
    kind: Kind,
    size: u64,
    nlink: u32,
    opts: &FsOptions,
    file_blksize: u32,
) -> Attr {
    let unix = inode.unix.filter(|_| opts.unix_data);
    let perm = match (unix, kind) {
        (Some(u), _) => (u.mode & 0o7777) as u16,
        (None, Kind::Directory) => 0o755,
        (None, Kind::Symlink) => 0o777,
        (None, _) => 0o644,
    };
    let is_special = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
    Attr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: filetime_to_system(inode.last_access_time),
        mtime: filetime_to_system(inode.last_write_time),
        // WIMs keep no change time; the last write is the closest.
        ctime: filetime_to_system(inode.last_write_time),
        crtime: filetime_to_system(inode.creation_time),
        kind,
        perm,
        nlink,
        uid: unix.map_or(opts.uid, |u| u.uid),
        gid: unix.map_or(opts.gid, |u| u.gid),
        rdev: match unix {
            Some(u) if is_special => u.rdev,
            _ => 0,
        },
        blksize: match kind {
            Kind::Directory => DIR_BLKSIZE,
            _ => file_blksize,
        },
    }
}
