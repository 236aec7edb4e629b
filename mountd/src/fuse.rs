//! The FUSE adapter: translates kernel requests into [`FsOps`] calls, for read-only and
//! read-write mounts alike. No rules here; the mode only sets how long the kernel may cache
//! names, attributes, pages and listings.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::core::{self, Attr, Caller, FsOps, Kind, SetAttr};

/// A read-only image never changes under the mount, so the kernel may cache names and
/// attributes for as long as it likes.
const TTL_RO: Duration = Duration::from_secs(24 * 3600);
/// On a read-write mount, names and attributes change only through the mount, which the
/// kernel sees; a short lifetime still bounds any staleness.
const TTL_RW: Duration = Duration::from_secs(1);
/// Largest read the kernel sends in one request (FUSE's maximum of 256 pages).
pub const MAX_READ: u32 = 1 << 20;

/// A mounted image served over FUSE.
pub struct FuseFs {
    fs: Arc<dyn FsOps>,
    ttl: Duration,
    /// Cached file pages stay valid across opens (read-only: the data never changes).
    open_flags: FopenFlags,
    /// The kernel skips opening directories (directory handles carry no state here).
    no_opendir: bool,
}

impl FuseFs {
    pub fn new(fs: Arc<dyn FsOps>) -> Self {
        let writable = fs.writable();
        FuseFs {
            fs,
            ttl: if writable { TTL_RW } else { TTL_RO },
            open_flags: if writable {
                FopenFlags::empty()
            } else {
                FopenFlags::FOPEN_KEEP_CACHE
            },
            no_opendir: false,
        }
    }

    fn entry(&self, r: core::FsResult<Attr>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&self.ttl, &attr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn empty(r: core::FsResult<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

pub(crate) fn errno(e: core::Errno) -> Errno {
    Errno::from_i32(e.0)
}

pub(crate) fn kind(k: Kind) -> FileType {
    match k {
        Kind::Directory => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

pub(crate) fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

pub(crate) fn xattr_reply(r: Result<Vec<u8>, core::Errno>, size: u32, reply: ReplyXattr) {
    match r {
        Err(e) => reply.error(errno(e)),
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // max_write also sets how many pages one request may carry, i.e. the largest read.
        let _ = config.set_max_write(MAX_READ);
        let _ = config.set_max_readahead(MAX_READ);
        // Every directory read carries the entries' attributes (not READDIRPLUS_AUTO, with
        // which the kernel goes back to plain reads after the first page of a directory and
        // then looks each later entry up on its own: a third of the requests of a
        // `find -ls`). Attributes come from memory, so they cost next to nothing.
        let want = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let _ = config.add_capabilities(want & config.capabilities());
        // Answering the first opendir with ENOSYS then tells the kernel to send no more
        // opendir/releasedir: two round trips fewer per directory walked (directory
        // handles carry no state in either mode).
        self.no_opendir = config
            .add_capabilities(InitFlags::FUSE_NO_OPENDIR_SUPPORT)
            .is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(
            core::guarded("lookup", || self.fs.lookup(parent.0, name.as_bytes())),
            reply,
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match core::guarded("getattr", || self.fs.getattr(ino.0)) {
            Ok(a) => reply.attr(&self.ttl, &attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match core::guarded("readlink", || self.fs.readlink(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match core::guarded("open", || self.fs.open(ino.0, write, truncate)) {
            Ok(fh) => reply.opened(FileHandle(fh), self.open_flags),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match core::guarded("read", || self.fs.read(fh.0, offset, size)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match core::guarded("write", || self.fs.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _ = core::guarded("release", || {
            self.fs.release(fh.0);
            Ok(())
        });
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(core::guarded("fsync", || self.fs.fsync(ino.0)), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            reply.error(Errno::ENOSYS);
            return;
        }
        let flags = if self.fs.writable() {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
        };
        match core::guarded("opendir", || self.fs.opendir(ino.0)) {
            Ok(()) => reply.opened(FileHandle(0), flags),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = core::guarded("readdir", || {
            self.fs.readdir(ino.0, offset, &mut |e| {
                reply.add(INodeNo(e.ino), e.next, kind(e.kind), e.name)
            })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let fs = &self.fs;
        let r = core::guarded("readdirplus", || {
            fs.readdir(ino.0, offset, &mut |e| match fs.getattr(e.ino) {
                Ok(a) => reply.add(
                    INodeNo(e.ino),
                    e.next,
                    e.name,
                    &self.ttl,
                    &attr(&a),
                    Generation(0),
                ),
                Err(_) => false,
            })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks,
            s.free_blocks,
            s.free_blocks,
            s.files,
            s.free_files,
            s.bsize,
            s.namelen,
            s.bsize,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr_reply(
            core::guarded("getxattr", || self.fs.getxattr(ino.0, name.as_bytes())),
            size,
            reply,
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr_reply(
            core::guarded("listxattr", || self.fs.listxattr(ino.0)),
            size,
            reply,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let write = mask.contains(AccessFlags::W_OK);
        empty(
            core::guarded("access", || self.fs.access(ino.0, write)),
            reply,
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let a = SetAttr {
            size,
            mode,
            uid,
            gid,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        match core::guarded("setattr", || self.fs.setattr(ino.0, &a)) {
            Ok(a) => reply.attr(&self.ttl, &attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = core::guarded("mkdir", || {
            self.fs
                .mkdir(parent.0, name.as_bytes(), mode & !umask, caller(req))
        });
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(
            core::guarded("unlink", || self.fs.unlink(parent.0, name.as_bytes())),
            reply,
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(
            core::guarded("rmdir", || self.fs.rmdir(parent.0, name.as_bytes())),
            reply,
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = core::guarded("symlink", || {
            self.fs.symlink(
                parent.0,
                link_name.as_bytes(),
                target.as_os_str().as_bytes(),
                caller(req),
            )
        });
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = core::guarded("rename", || {
            self.fs.rename(
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                flags.bits(),
            )
        });
        empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = core::guarded("link", || {
            self.fs.link(ino.0, newparent.0, newname.as_bytes())
        });
        self.entry(r, reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let r = core::guarded("create", || {
            self.fs
                .create(parent.0, name.as_bytes(), mode & !umask, caller(req))
        });
        match r {
            Ok((a, fh)) => reply.created(
                &self.ttl,
                &attr(&a),
                Generation(0),
                FileHandle(fh),
                self.open_flags,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = core::guarded("mknod", || {
            self.fs.mknod(
                parent.0,
                name.as_bytes(),
                mode & !(umask & 0o7777),
                rdev,
                caller(req),
            )
        });
        self.entry(r, reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(
            core::guarded("fallocate", || {
                self.fs.fallocate(ino.0, offset, length, mode as u32)
            }),
            reply,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        empty(
            core::guarded("setxattr", || {
                self.fs
                    .setxattr(ino.0, name.as_bytes(), value, flags as u32)
            }),
            reply,
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(
            core::guarded("removexattr", || {
                self.fs.removexattr(ino.0, name.as_bytes())
            }),
            reply,
        );
    }
}
