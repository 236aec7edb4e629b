//! What the WinFsp adapter asks of a mounted image beyond [`FsOps`]: the Windows view (paths
//! with streams, FILE_ATTRIBUTE_* bits, descriptors, reparse buffers, listings by marker and
//! pattern) and the changes Windows makes by path. One interface for read-only and
//! read-write mounts, as [`FsOps`] is for FUSE; a read-only mount refuses every change with
//! EROFS (the default methods).

use super::{DirEntry, Errno, Fs, FsOps, FsResult, Resolved, WinInfo, WinStream, WinVolume};

/// Times and attributes Windows sets on a file (`SetBasicInfo`); `None` leaves one alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasicInfo {
    /// FILE_ATTRIBUTE_* bits (those a file may carry; the kind bits are the core's).
    pub attributes: Option<u32>,
    /// FILETIMEs.
    pub creation_time: Option<u64>,
    pub last_access_time: Option<u64>,
    pub last_write_time: Option<u64>,
}

/// What a new file or directory is made with (`Create`).
#[derive(Debug, Clone, Copy)]
pub struct NewFile<'a> {
    pub directory: bool,
    /// FILE_ATTRIBUTE_* bits asked for.
    pub attributes: u32,
    /// The self-relative descriptor the driver computed (the caller's, or what the parent's
    /// inheritable entries give); `None` for none.
    pub security: Option<&'a [u8]>,
}

/// The Windows side of a mounted image.
pub trait WinOps: FsOps {
    /// Resolves a WinFsp path (see [`super::winpath`]) from the root.
    fn resolve_win_path(&self, path: &str) -> FsResult<Resolved>;
    /// File information for Windows.
    fn win_info(&self, ino: u64) -> FsResult<WinInfo>;
    /// The self-relative security descriptor Windows sees for `ino`.
    fn win_security(&self, ino: u64) -> FsResult<Vec<u8>>;
    /// The full reparse buffer of a reparse point; ENODATA if `ino` is none.
    fn reparse_point(&self, ino: u64) -> FsResult<Vec<u8>>;
    /// The data streams of `ino`: the unnamed one first (not for directories), then the
    /// named ones.
    fn win_streams(&self, ino: u64) -> FsResult<Vec<WinStream>>;
    /// Opens `ino` for a Windows handle with `access` rights: `None` for a directory, else
    /// a handle for `FsOps::read`/`release`.
    fn win_open(&self, ino: u64, access: u32) -> FsResult<Option<u64>>;
    /// Calls `add` for the entries of directory `ino` after `marker` that match `pattern`
    /// (see [`Fs::readdir_after`]) until it returns `true`.
    fn win_readdir(
        &self,
        ino: u64,
        marker: Option<&str>,
        pattern: Option<&str>,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()>;
    /// Volume totals and label.
    fn win_volume(&self) -> WinVolume;

    /// Creates `path` and opens it as [`WinOps::win_open`] would; returns the inode number
    /// and the handle.
    fn win_create(&self, _path: &str, _new: NewFile<'_>) -> FsResult<(u64, Option<u64>)> {
        Err(Errno::EROFS)
    }
    /// Sets attributes and times.
    fn win_set_basic(&self, _ino: u64, _info: BasicInfo) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    /// Replaces the security descriptor (already merged by the driver).
    fn win_set_security(&self, _ino: u64, _sd: &[u8]) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    /// Whether `path` may be deleted (a directory must be empty): checked when a handle
    /// is marked delete-on-close, before [`WinOps::win_delete`] at cleanup.
    fn win_can_delete(&self, _path: &str) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    /// Deletes `path` (a file, a named stream or an empty directory).
    fn win_delete(&self, _path: &str) -> FsResult<()> {
        Err(Errno::EROFS)
    }
    /// Renames `from` to `to`, replacing a file there only with `replace`.
    fn win_rename(&self, _from: &str, _to: &str, _replace: bool) -> FsResult<()> {
        Err(Errno::EROFS)
    }
}

impl WinOps for Fs {
    fn resolve_win_path(&self, path: &str) -> FsResult<Resolved> {
        Fs::resolve_win_path(self, path)
    }
    fn win_info(&self, ino: u64) -> FsResult<WinInfo> {
        Fs::win_info(self, ino)
    }
    fn win_security(&self, ino: u64) -> FsResult<Vec<u8>> {
        Fs::win_security(self, ino).map(|sd| sd.into_owned())
    }
    fn reparse_point(&self, ino: u64) -> FsResult<Vec<u8>> {
        Fs::reparse_point(self, ino)
    }
    fn win_streams(&self, ino: u64) -> FsResult<Vec<WinStream>> {
        Fs::win_streams(self, ino)
    }
    fn win_open(&self, ino: u64, access: u32) -> FsResult<Option<u64>> {
        Fs::win_open(self, ino, access)
    }
    fn win_readdir(
        &self,
        ino: u64,
        marker: Option<&str>,
        pattern: Option<&str>,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        Fs::readdir_after(self, ino, marker, pattern, add)
    }
    fn win_volume(&self) -> WinVolume {
        Fs::win_volume(self)
    }
}
