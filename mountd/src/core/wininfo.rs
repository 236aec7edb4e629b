//! What a Windows file system reports: paths resolved case-insensitively, FILE_ATTRIBUTE_*
//! bits, FILETIMEs, security descriptors, reparse buffers, named streams, NTSTATUS codes.
//!
//! Platform-neutral so that every rule is tested on Linux; the WinFsp adapter only copies
//! these values into WinFsp's structures.
//!
//! Decisions:
//! - Attributes are the image's own (what `wimfs apply` on Windows would restore), with the
//!   usual normalization: `FILE_ATTRIBUTE_NORMAL` only alone, and a named stream is never a
//!   directory or reparse point. READONLY is *not* added to every file of a read-only mount:
//!   the volume itself is flagged read-only (Explorer and the I/O manager refuse writes with
//!   "write protected"), and copies taken from the mount keep the attributes they had when
//!   captured instead of all turning read-only.
//! - Security descriptors are passed through byte for byte. A file without one, or with one
//!   that is not a well-formed self-relative descriptor, gets [`DEFAULT_SECURITY`]
//!   (Administrators own it, everyone may read and execute).
//! - Reparse points (symbolic links, junctions, and any other tag) are served as stored.
//!   Absolute link targets are not rewritten to point into the mount.
//! - Times are the image's FILETIMEs; a WIM has no change time, so it is the last write time.

use std::borrow::Cow;

use wimfs::format::dentry::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT,
};
use wimfs::image::InodeId;
use wimfs::Inode;

use super::attr::BLOCK;
use super::names::eq_folded;
use super::winpath::parse_win_path;
use super::{Errno, Fs, FsResult, Node, StreamsInterface};

/// FILE_ATTRIBUTE_DIRECTORY, for adapters.
pub const ATTR_DIRECTORY: u32 = FILE_ATTRIBUTE_DIRECTORY;

/// Access rights that would modify a file (FILE_WRITE_DATA, FILE_APPEND_DATA, FILE_WRITE_EA,
/// FILE_WRITE_ATTRIBUTES, DELETE, WRITE_DAC, WRITE_OWNER, GENERIC_WRITE, GENERIC_ALL).
pub const WRITE_ACCESS: u32 = 0x0002
    | 0x0004
    | 0x0010
    | 0x0100
    | 0x0001_0000
    | 0x0004_0000
    | 0x0008_0000
    | 0x4000_0000
    | 0x1000_0000;

/// Self-relative descriptor for files the image gives none: owner and group
/// BUILTIN\Administrators, DACL granting Everyone FILE_GENERIC_READ | FILE_GENERIC_EXECUTE
/// (SDDL `O:BAG:BAD:(A;;0x1200a9;;;WD)`).
pub const DEFAULT_SECURITY: [u8; 80] = [
    // header: revision 1, control SE_SELF_RELATIVE | SE_DACL_PRESENT,
    // owner at 20, group at 36, no SACL, DACL at 52
    1, 0, 0x04, 0x80, 20, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 52, 0, 0, 0,
    // owner S-1-5-32-544
    1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0, // group S-1-5-32-544
    1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0,
    // ACL: revision 2, size 28, one ACE
    2, 0, 28, 0, 1, 0, 0, 0,
    // ACCESS_ALLOWED_ACE, no flags, size 20, mask 0x001200A9, SID S-1-1-0
    0, 0, 20, 0, 0xA9, 0x00, 0x12, 0x00, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
];

/// File information in the shape of WinFsp's FSP_FSCTL_FILE_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WinInfo {
    /// FILE_ATTRIBUTE_* bits.
    pub attributes: u32,
    /// The reparse tag if `attributes` has FILE_ATTRIBUTE_REPARSE_POINT, else 0.
    pub reparse_tag: u32,
    pub size: u64,
    /// `size` rounded up to the block size.
    pub allocation_size: u64,
    /// FILETIMEs (100 ns ticks since 1601).
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub change_time: u64,
    /// The file's number: the inode number the FUSE adapter uses too.
    pub index_number: u64,
}

/// A path resolved to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub ino: u64,
    /// The path with every component spelled as stored (`\Dir\File.txt:stream`), when the
    /// request differed only in case; `None` if it was exact, or went through a DOS short name
    /// (which the driver cannot take as a normalized name).
    pub normalized: Option<String>,
}

/// One named stream of a file, as listed to Windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinStream {
    /// Empty for the unnamed (main) stream.
    pub name: String,
    pub size: u64,
    pub allocation_size: u64,
}

/// Totals for the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinVolume {
    pub total_size: u64,
    pub free_size: u64,
    /// At most 32 UTF-16 units, as the volume label field holds.
    pub label: String,
}

/// NTSTATUS values the adapter hands to WinFsp.
pub mod nt {
    pub const STATUS_OBJECT_NAME_INVALID: i32 = 0xC000_0033_u32 as i32;
    pub const STATUS_OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034_u32 as i32;
    pub const STATUS_OBJECT_PATH_NOT_FOUND: i32 = 0xC000_003A_u32 as i32;
    pub const STATUS_FILE_IS_A_DIRECTORY: i32 = 0xC000_00BA_u32 as i32;
    pub const STATUS_NOT_A_DIRECTORY: i32 = 0xC000_0103_u32 as i32;
    pub const STATUS_MEDIA_WRITE_PROTECTED: i32 = 0xC000_00A2_u32 as i32;
    pub const STATUS_INVALID_HANDLE: i32 = 0xC000_0008_u32 as i32;
    pub const STATUS_NOT_A_REPARSE_POINT: i32 = 0xC000_0275_u32 as i32;
    pub const STATUS_BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32 as i32;
    pub const STATUS_BUFFER_OVERFLOW: i32 = 0x8000_0005_u32 as i32;
    pub const STATUS_FILE_CORRUPT_ERROR: i32 = 0xC000_0102_u32 as i32;
    pub const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
    pub const STATUS_END_OF_FILE: i32 = 0xC000_0011_u32 as i32;
    pub const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
    pub const STATUS_UNEXPECTED_IO_ERROR: i32 = 0xC000_00E9_u32 as i32;
    pub const STATUS_DISK_FULL: i32 = 0xC000_007F_u32 as i32;
    pub const STATUS_OBJECT_NAME_COLLISION: i32 = 0xC000_0035_u32 as i32;
    pub const STATUS_DIRECTORY_NOT_EMPTY: i32 = 0xC000_0101_u32 as i32;
    pub const STATUS_INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;
    pub const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
    pub const STATUS_CANNOT_DELETE: i32 = 0xC000_0121_u32 as i32;
}

impl Errno {
    /// The NTSTATUS for this error in a Windows file system.
    ///
    /// The Windows path calls use ENOENT for a missing last component, ENOTDIR for a missing
    /// or non-directory intermediate one and EINVAL for a malformed name, which is what tells
    /// "name not found", "path not found" and "name invalid" apart.
    pub fn nt_status(self) -> i32 {
        use nt::*;
        match self {
            Errno::ENOENT => STATUS_OBJECT_NAME_NOT_FOUND,
            Errno::ENOTDIR => STATUS_OBJECT_PATH_NOT_FOUND,
            Errno::EINVAL => STATUS_OBJECT_NAME_INVALID,
            Errno::EISDIR => STATUS_FILE_IS_A_DIRECTORY,
            Errno::EROFS => STATUS_MEDIA_WRITE_PROTECTED,
            Errno::EBADF => STATUS_INVALID_HANDLE,
            Errno::ENODATA => STATUS_NOT_A_REPARSE_POINT,
            Errno::E2BIG | Errno::ERANGE => STATUS_BUFFER_TOO_SMALL,
            Errno::EIO => STATUS_FILE_CORRUPT_ERROR,
            Errno(e) if e == libc::EACCES || e == libc::EPERM => STATUS_ACCESS_DENIED,
            Errno(e) if e == libc::ENOSPC => STATUS_DISK_FULL,
            Errno(e) if e == libc::EEXIST => STATUS_OBJECT_NAME_COLLISION,
            Errno(e) if e == libc::ENOTEMPTY => STATUS_DIRECTORY_NOT_EMPTY,
            Errno(e) if e == libc::ENAMETOOLONG => STATUS_OBJECT_NAME_INVALID,
            Errno(e) if e == libc::EFBIG => STATUS_DISK_FULL,
            Errno(e) if e == libc::ENOMEM => STATUS_INSUFFICIENT_RESOURCES,
            Errno(e) if e == libc::EOPNOTSUPP => STATUS_NOT_SUPPORTED,
            _ => STATUS_UNEXPECTED_IO_ERROR,
        }
    }
}

/// Normalizes stored attribute bits for Windows (see the module docs).
pub fn win_attributes(stored: u32, is_stream: bool) -> u32 {
    let mut a = stored;
    if is_stream {
        a &= !(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT);
    }
    if a & !FILE_ATTRIBUTE_NORMAL == 0 {
        FILE_ATTRIBUTE_NORMAL
    } else {
        a & !FILE_ATTRIBUTE_NORMAL
    }
}

/// Whether `sd` is a well-formed self-relative security descriptor: revision 1, the
/// self-relative flag, and owner, group and ACLs inside the buffer.
pub fn is_valid_security_descriptor(sd: &[u8]) -> bool {
    const SE_DACL_PRESENT: u16 = 0x0004;
    const SE_SACL_PRESENT: u16 = 0x0010;
    const SE_SELF_RELATIVE: u16 = 0x8000;
    let u16_at = |o: usize| sd.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        sd.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if sd.len() < 20 || sd[0] != 1 {
        return false;
    }
    let control = u16_at(2).unwrap_or(0);
    if control & SE_SELF_RELATIVE == 0 {
        return false;
    }
    let sid_ok = |off: usize| {
        off == 0
            || (off >= 20
                && sd.get(off) == Some(&1)
                && sd
                    .get(off + 1)
                    .is_some_and(|&n| n <= 15 && off + 8 + 4 * n as usize <= sd.len()))
    };
    let acl_ok = |off: usize, present: bool| {
        !present
            || off == 0
            || (off >= 20
                && matches!(sd.get(off), Some(2 | 4))
                && u16_at(off + 2).is_some_and(|size| size >= 8 && off + size as usize <= sd.len()))
    };
    let (Some(owner), Some(group), Some(sacl), Some(dacl)) =
        (u32_at(4), u32_at(8), u32_at(12), u32_at(16))
    else {
        return false;
    };
    sid_ok(owner)
        && sid_ok(group)
        && acl_ok(sacl, control & SE_SACL_PRESENT != 0)
        && acl_ok(dacl, control & SE_DACL_PRESENT != 0)
}

/// Copies `src` into the caller's buffer: `Ok(len)`, or `Err(needed)` if it does not fit.
pub fn copy_into(src: &[u8], dst: &mut [u8]) -> Result<usize, usize> {
    match dst.get_mut(..src.len()) {
        Some(d) => {
            d.copy_from_slice(src);
            Ok(src.len())
        }
        None => Err(src.len()),
    }
}

impl Fs {
    fn node_inode(&self, ino: u64) -> FsResult<(InodeId, Option<usize>)> {
        Ok(match self.node(ino)? {
            Node::Inode(i) => (i, None),
            Node::Stream(i, k) => (i, Some(k)),
        })
    }

    /// Resolves a WinFsp path (see [`super::winpath`]) from the root.
    ///
    /// In a case-insensitive mount a component may also be a DOS short name. Named streams are
    /// found only with the `windows` streams interface (always used by the WinFsp daemon).
    pub fn resolve_win_path(&self, path: &str) -> FsResult<Resolved> {
        let p = parse_win_path(path)?;
        let ci = self.opts.case_insensitive;
        let mut dir = self.root;
        let mut exact = true;
        let mut via_short = false;
        let mut normalized = String::new();
        let last = p.components.len();
        for (n, comp) in p.components.iter().enumerate() {
            let missing = if n + 1 == last {
                Errno::ENOENT
            } else {
                Errno::ENOTDIR
            };
            if !self.img.inodes[dir].is_directory() {
                return Err(Errno::ENOTDIR);
            }
            let child = match self.child(dir, comp) {
                Some(c) => c,
                None if ci => {
                    via_short = true;
                    self.child_by_short_name(dir, comp).ok_or(missing)?
                }
                None => return Err(missing),
            };
            let stored = &self.img.dentries[child].name;
            exact &= stored == comp;
            normalized.push('\\');
            normalized.push_str(stored);
            dir = self.img.dentries[child].inode;
        }
        let mut ino = self.ino_of(dir);
        if let Some(s) = p.stream {
            if self.opts.streams != StreamsInterface::Windows {
                return Err(Errno::ENOENT);
            }
            let streams = &self.img.inodes[dir].streams;
            let named = |k: usize| {
                streams[k].kind == wimfs::StreamKind::Data && !streams[k].name.is_empty()
            };
            let k = (0..streams.len())
                .find(|&k| named(k) && streams[k].name == s)
                .or_else(|| {
                    (0..streams.len()).find(|&k| ci && named(k) && eq_folded(&streams[k].name, s))
                })
                .ok_or(Errno::ENOENT)?;
            exact &= streams[k].name == s;
            normalized.push(':');
            normalized.push_str(&streams[k].name);
            ino = *self.stream_ino.get(&(dir, k)).ok_or(Errno::ENOENT)?;
        }
        if normalized.is_empty() {
            normalized.push('\\');
        }
        Ok(Resolved {
            ino,
            normalized: (ci && !exact && !via_short).then_some(normalized),
        })
    }

    /// File information for Windows.
    pub fn win_info(&self, ino: u64) -> FsResult<WinInfo> {
        let (i, stream) = self.node_inode(ino)?;
        let inode = &self.img.inodes[i];
        let size = match stream {
            Some(k) => inode.streams[k].size(),
            None => inode.size(),
        };
        Ok(info_of(inode, stream.is_some(), size, ino))
    }

    /// Whether `ino` is a directory to Windows (directory links and junctions included).
    pub fn win_is_directory(&self, ino: u64) -> FsResult<bool> {
        Ok(self.win_info(ino)?.attributes & FILE_ATTRIBUTE_DIRECTORY != 0)
    }

    /// The stored security descriptor of an inode, if it has a usable one.
    pub(crate) fn security_descriptor(&self, i: InodeId) -> Option<&[u8]> {
        let id = usize::try_from(self.img.inodes[i].security_id).ok()?;
        self.img.security.get(id).map(Vec::as_slice)
    }

    /// The security descriptor Windows sees for `ino` (a stream shares its file's): the
    /// image's bytes unchanged, or [`DEFAULT_SECURITY`].
    pub fn win_security(&self, ino: u64) -> FsResult<Cow<'_, [u8]>> {
        let (i, _) = self.node_inode(ino)?;
        Ok(security_or_default(self.security_descriptor(i), || {
            self.path_of(i)
        }))
    }

    /// The full reparse buffer (REPARSE_DATA_BUFFER: tag u32, data length u16, reserved u16,
    /// data) of a reparse point; ENODATA if `ino` is none.
    pub fn reparse_point(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (i, stream) = self.node_inode(ino)?;
        let inode = &self.img.inodes[i];
        if stream.is_some() || !inode.is_reparse_point() {
            return Err(Errno::ENODATA);
        }
        let data = match inode.reparse_stream().and_then(|s| s.blob) {
            Some(loc) => self
                .wim
                .read_blob(&loc, true)
                .map_err(|e| self.read_failed(i, &e))?,
            None => Vec::new(),
        };
        super::xattr::reparse_buffer((inode.reparse_tag, inode.rp_reserved), &data)
    }

    /// The data streams of `ino` as Windows lists them: the unnamed one first (not for
    /// directories), then the named ones in stored order.
    pub fn win_streams(&self, ino: u64) -> FsResult<Vec<WinStream>> {
        let (i, stream) = self.node_inode(ino)?;
        if stream.is_some() {
            return Err(Errno::EINVAL);
        }
        let inode = &self.img.inodes[i];
        Ok(streams_of(inode, inode.size(), &[]))
    }

    /// Opens `ino` for a Windows handle: `None` for a directory (nothing to read), else a
    /// read handle. Any of [`WRITE_ACCESS`] in `access` fails with EROFS.
    pub fn win_open(&self, ino: u64, access: u32) -> FsResult<Option<u64>> {
        if access & WRITE_ACCESS != 0 {
            return Err(Errno::EROFS);
        }
        if self.win_is_directory(ino)? {
            return Ok(None);
        }
        self.open(ino, false).map(Some)
    }

    /// Volume totals and label (the image's name, cut to 32 UTF-16 units).
    pub fn win_volume(&self) -> WinVolume {
        let name = self
            .wim
            .xml()
            .images
            .iter()
            .find(|i| i.index == self.img.index)
            .and_then(|i| i.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "wimfs".to_string());
        WinVolume {
            total_size: self.statfs().blocks * BLOCK,
            free_size: 0,
            label: truncate_utf16(&name, 32),
        }
    }
}

/// What Windows is told of `inode` (or of one of its named streams, `is_stream`) whose data
/// is `size` bytes, numbered `ino`: one rule for both kinds of mount.
pub(crate) fn info_of(inode: &Inode, is_stream: bool, size: u64, ino: u64) -> WinInfo {
    let attributes = win_attributes(inode.attributes, is_stream);
    let size = if !is_stream && inode.attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        0
    } else {
        size
    };
    WinInfo {
        attributes,
        reparse_tag: if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            inode.reparse_tag
        } else {
            0
        },
        size,
        allocation_size: size.div_ceil(BLOCK) * BLOCK,
        creation_time: inode.creation_time,
        last_access_time: inode.last_access_time,
        last_write_time: inode.last_write_time,
        change_time: inode.last_write_time,
        index_number: ino,
    }
}

/// The descriptor Windows sees: `sd` if it is well formed, else [`DEFAULT_SECURITY`] (a
/// malformed one is logged with the path `path` gives).
pub(crate) fn security_or_default(
    sd: Option<&[u8]>,
    path: impl FnOnce() -> String,
) -> Cow<'_, [u8]> {
    match sd {
        Some(sd) if is_valid_security_descriptor(sd) => Cow::Borrowed(sd),
        Some(_) => {
            tracing::warn!(
                "\"{}\": malformed security descriptor, using the default",
                path()
            );
            Cow::Borrowed(&DEFAULT_SECURITY[..])
        }
        None => Cow::Borrowed(&DEFAULT_SECURITY[..]),
    }
}

/// The data streams Windows lists for `inode` whose unnamed stream is `size` bytes: the
/// unnamed one first (not for a directory), then the image's named ones, then `extra`.
pub(crate) fn streams_of(inode: &Inode, size: u64, extra: &[(String, Vec<u8>)]) -> Vec<WinStream> {
    let mut out = Vec::new();
    let mut add = |name: &str, size: u64| {
        out.push(WinStream {
            name: name.to_string(),
            size,
            allocation_size: size.div_ceil(BLOCK) * BLOCK,
        })
    };
    if inode.attributes & FILE_ATTRIBUTE_DIRECTORY == 0 {
        add("", size);
    }
    for s in inode.named_streams() {
        add(&s.name, s.size());
    }
    for (name, v) in extra {
        add(name, v.len() as u64);
    }
    out
}

/// The longest prefix of `s` that fits in `units` UTF-16 code units, cut between characters.
pub fn truncate_utf16(s: &str, units: usize) -> String {
    let mut used = 0;
    s.chars()
        .take_while(|c| {
            used += c.len_utf16();
            used <= units
        })
        .collect()
}
