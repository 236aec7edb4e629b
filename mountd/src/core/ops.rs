//! What a kernel adapter asks of a mounted image: one interface for read-only and
//! read-write mounts, so that each platform has one adapter.
//!
//! A read-only mount ([`Fs`]) answers every change with EROFS (the default methods); a
//! read-write mount ([`super::rw::RwFs`], Unix only for now) overrides them. Adapters learn
//! the mode only from [`FsOps::writable`], for cache lifetimes and kernel options.

use std::time::SystemTime;

use super::{Attr, DirEntry, Errno, Fs, FsResult, Statfs};

/// Attribute changes requested by `setattr`; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

/// Who asks for a new node: its owner when UNIX data is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// The operations of a mounted image, in kernel terms (inode numbers, handles, errnos).
pub trait FsOps: Send + Sync {
    /// Whether changes are accepted.
    fn writable(&self) -> bool;
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr>;
    fn getattr(&self, ino: u64) -> FsResult<Attr>;
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>>;
    /// Opens a file; `write` for write access, `truncate` to cut it to nothing first.
    fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64>;
    fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>>;
    fn release(&self, fh: u64);
    /// Checks that `ino` is a directory that can be listed.
    fn opendir(&self, ino: u64) -> FsResult<()>;
    /// Calls `add` for the entries of directory `ino` after position `offset` until it
    /// returns `true` (the caller's buffer is full).
    fn readdir(
        &self,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()>;
    fn statfs(&self) -> Statfs;
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>>;
    fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>>;
    /// `access`: whether `ino` exists and, with `write`, may be changed.
    fn access(&self, ino: u64, write: bool) -> FsResult<()>;

    fn fsync(&self, _ino: u64) -> FsResult<()> {
        Ok(())
    }
    fn write(&self, _ino: u64, _offset: u64, _data: &[u8]) -> FsResult<u32> {
        Err(Errno::EROFS)
    }
    fn setattr(&self, _ino: u64, _a: &SetAttr) -> FsResult<Attr> {
        Err(Errno::EROFS)
    }
    /// Creates and opens a regular file; returns its attributes and the handle.
    fn create(&self, _parent: u64, _name: &[u8], _mode: u32, _by: Caller) -> FsResult<(Attr, u64)> {
        Err(Errno::EROFS)
    }
    fn mknod(
        &self,
        _parent: u64,
        _name: &[u8],
        _mode: u32,
        _rdev: u32,
        _by: Caller,
    ) -> FsResult<Attr> {
        Err(Errno::EROFS)
    }
    fn mkdir(&self, _parent: u64, _name: &[u8], _mode: u32, _by: Caller) -> FsResult<Attr> {
        Err(Errno::EROFS)
    }
    fn symlink(&self, _parent: u64, _name: &[u8], _target: &[u8], _by: Caller) -> FsResult<Attr> {
        Err(Errno::EROFS)
    }
    fn link(&self, _ino: u64, _parent: u64, _name: &[u8]) -> FsResult<Attr> {
        Err(Errno::EROFS)
    }
    fn unlink(&self, _parent: u64, _name: &[u8]) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    fn rmdir(&self, _parent: u64, _name: &[u8]) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    /// Renames; `flags` are `RENAME_NOREPLACE` and `RENAME_EXCHANGE` (see `rw`).
    fn rename(
        &self,
        _parent: u64,
        _name: &[u8],
        _new_parent: u64,
        _new_name: &[u8],
        _flags: u32,
    ) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    fn fallocate(&self, _ino: u64, _offset: u64, _len: u64, _mode: u32) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    fn setxattr(&self, _ino: u64, _name: &[u8], _value: &[u8], _flags: u32) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    fn removexattr(&self, _ino: u64, _name: &[u8]) -> FsResult<()> {
        Err(Errno::EROFS)
    }
}

impl FsOps for Fs {
    fn writable(&self) -> bool {
        false
    }
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        Fs::lookup(self, parent, name)
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        Fs::getattr(self, ino)
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        Fs::readlink(self, ino)
    }
    fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        Fs::open(self, ino, write || truncate)
    }
    fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        Fs::read(self, fh, offset, size)
    }
    fn release(&self, fh: u64) {
        Fs::release(self, fh)
    }
    fn opendir(&self, ino: u64) -> FsResult<()> {
        self.dir_len(ino).map(|_| ())
    }
    fn readdir(
        &self,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        Fs::readdir(self, ino, offset, add)
    }
    fn statfs(&self) -> Statfs {
        Fs::statfs(self)
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        Fs::getxattr(self, ino, name)
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        Fs::listxattr(self, ino)
    }
    fn access(&self, ino: u64, write: bool) -> FsResult<()> {
        self.exists(ino)?;
        match write {
            true => Err(Errno::EROFS),
            false => Ok(()),
        }
    }
}

impl FsOps for super::rw::RwFs {
    fn writable(&self) -> bool {
        true
    }
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        Self::lookup(self, parent, name)
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        Self::getattr(self, ino)
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        Self::readlink(self, ino)
    }
    fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        Self::open(self, ino, write, truncate)
    }
    fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        Self::read(self, fh, offset, size)
    }
    fn release(&self, fh: u64) {
        Self::release(self, fh)
    }
    fn opendir(&self, ino: u64) -> FsResult<()> {
        Self::getattr(self, ino).map(|_| ())
    }
    fn readdir(
        &self,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        Self::readdir(self, ino, offset, add)
    }
    fn statfs(&self) -> Statfs {
        Self::statfs(self)
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        Self::getxattr(self, ino, name)
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        Self::listxattr(self, ino)
    }
    fn access(&self, ino: u64, _write: bool) -> FsResult<()> {
        Self::getattr(self, ino).map(|_| ())
    }
    fn fsync(&self, ino: u64) -> FsResult<()> {
        Self::fsync(self, ino)
    }
    fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        Self::write(self, ino, offset, data)
    }
    fn setattr(&self, ino: u64, a: &SetAttr) -> FsResult<Attr> {
        Self::setattr(self, ino, a)
    }
    fn create(&self, parent: u64, name: &[u8], mode: u32, by: Caller) -> FsResult<(Attr, u64)> {
        Self::create(self, parent, name, mode, by.uid, by.gid)
    }
    fn mknod(&self, parent: u64, name: &[u8], mode: u32, rdev: u32, by: Caller) -> FsResult<Attr> {
        Self::mknod(self, parent, name, mode, rdev, by.uid, by.gid)
    }
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, by: Caller) -> FsResult<Attr> {
        Self::mkdir(self, parent, name, mode, by.uid, by.gid)
    }
    fn symlink(&self, parent: u64, name: &[u8], target: &[u8], by: Caller) -> FsResult<Attr> {
        Self::symlink(self, parent, name, target, by.uid, by.gid)
    }
    fn link(&self, ino: u64, parent: u64, name: &[u8]) -> FsResult<Attr> {
        Self::link(self, ino, parent, name)
    }
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        Self::unlink(self, parent, name)
    }
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        Self::rmdir(self, parent, name)
    }
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        Self::rename(self, parent, name, new_parent, new_name, flags)
    }
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        Self::fallocate(self, ino, offset, len, mode)
    }
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        Self::setxattr(self, ino, name, value, flags)
    }
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        Self::removexattr(self, ino, name)
    }
}
