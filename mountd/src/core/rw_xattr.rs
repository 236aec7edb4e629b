//! Extended attributes of a read-write mount: the same names as on a read-only mount (see
//! `core/xattr.rs`), of which only the named data streams can be changed.
//!
//! With streams interface `xattr`, `user.<stream>` shows named data stream `<stream>`;
//! `setxattr` creates or replaces the stream (up to 64 KiB, else E2BIG), `removexattr`
//! deletes it. New and changed streams are kept in memory and become new blobs on commit;
//! untouched streams keep their blobs.
//!
//! Everything else is read-only: changing a `system.wim.*` attribute, or (with
//! --unix-data) a stored Linux xattr, gives EPERM (they exist, but this mount does not
//! change them); names that cannot be stored at all (other namespaces, or `user.*` with the
//! `windows` or `none` streams interface) give EOPNOTSUPP. A `user.*` name that is no valid
//! stream name (containing `:`, `/`, `\` or NUL) gives EINVAL, one too long ERANGE.

use super::{Errno, FsResult, RwFs, RwNode, Tree, NAME_MAX};
use crate::core::xattr::{
    is_wim_attr, stream_of, stream_xattr, ATTRIBUTES, REPARSE, SECURITY, SHORT_NAME, XATTR_SIZE_MAX,
};
use crate::core::StreamsInterface;
use crate::journal::Record;
use wimfs::time::now_filetime;
use wimfs::StreamKind;

/// `setxattr` flag: fail with EEXIST if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// `setxattr` flag: fail with ENODATA unless the attribute exists.
pub const XATTR_REPLACE: u32 = 2;

/// The DOS name of `ino` (in the layer), if its name in its parent directory still has one.
fn short_name(tree: &Tree, ino: u64) -> Option<String> {
    let n = tree.nodes.get(&ino)?;
    tree.short_name_in(n.parent, &n.name)
}

fn has_stream(n: &RwNode, stream: &str) -> bool {
    n.new_streams.iter().any(|(s, _)| s == stream)
        || n.inode.named_streams().any(|s| s.name == stream)
}

impl RwFs {
    fn xattr_streams(&self) -> bool {
        self.opts.streams == StreamsInterface::Xattr
    }

    /// The stored Linux xattr `name` of `n` (shown with --unix-data only).
    fn linux_xattr<'a>(&self, n: &'a RwNode, name: &[u8]) -> Option<&'a [u8]> {
        if !self.opts.unix_data {
            return None;
        }
        n.inode
            .xattrs
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.value.as_slice())
    }

    /// The named stream that `setxattr`/`removexattr` of `name` on `n` would change, or why
    /// the name cannot be changed.
    fn writable_stream<'a>(&self, n: &RwNode, name: &'a [u8]) -> FsResult<&'a str> {
        if self.linux_xattr(n, name).is_some() || is_wim_attr(name) {
            return Err(Errno(libc::EPERM));
        }
        let stream = match std::str::from_utf8(name).ok().and_then(stream_of) {
            Some(s) if self.xattr_streams() => s,
            _ if name.starts_with(b"user.") && self.xattr_streams() => return Err(Errno::EINVAL),
            _ => return Err(Errno(libc::EOPNOTSUPP)),
        };
        if stream.contains([':', '/', '\\', '\0']) {
            return Err(Errno::EINVAL);
        }
        if stream.encode_utf16().count() > NAME_MAX {
            return Err(Errno::ERANGE);
        }
        Ok(stream)
    }

    /// Names of the extended attributes of `ino`, each NUL-terminated, as `listxattr` wants.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let tree = self.tree();
        let Some(n) = tree.peek(ino)? else {
            drop(tree);
            return self.base.listxattr(ino);
        };
        let mut out = Vec::new();
        let mut add = |name: &[u8]| {
            out.extend_from_slice(name);
            out.push(0);
        };
        if self.xattr_streams() {
            for s in n.inode.named_streams() {
                add(stream_xattr(&s.name).as_bytes());
            }
            for (s, _) in &n.new_streams {
                add(stream_xattr(s).as_bytes());
            }
        }
        if self.opts.unix_data {
            for x in &n.inode.xattrs {
                add(&x.name);
            }
        }
        add(ATTRIBUTES.as_bytes());
        if short_name(&tree, ino).is_some() {
            add(SHORT_NAME.as_bytes());
        }
        if n.inode.is_reparse_point() {
            add(REPARSE.as_bytes());
        }
        if self.security_of(n).is_some() {
            add(SECURITY.as_bytes());
        }
        Ok(out)
    }

    fn security_of(&self, n: &RwNode) -> Option<&[u8]> {
        let id = usize::try_from(n.inode.security_id).ok()?;
        self.security.get(id).map(Vec::as_slice)
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        // What to read from the WIM once the lock is dropped: (blob, reparse header).
        let (loc, header) = {
            let tree = self.tree();
            let Some(n) = tree.peek(ino)? else {
                drop(tree);
                return self.base.getxattr(ino, name);
            };
            if let Some(v) = self.linux_xattr(n, name) {
                return Ok(v.to_vec());
            }
            let name = std::str::from_utf8(name).map_err(|_| Errno::ENODATA)?;
            match name {
                ATTRIBUTES => return Ok(format!("{:#010x}", n.inode.attributes).into_bytes()),
                SHORT_NAME => {
                    return short_name(&tree, ino)
                        .map(String::into_bytes)
                        .ok_or(Errno::ENODATA)
                }
                SECURITY => {
                    return self
                        .security_of(n)
                        .map(<[u8]>::to_vec)
                        .ok_or(Errno::ENODATA)
                }
                REPARSE if n.inode.is_reparse_point() => {
                    let header = (n.inode.reparse_tag, n.inode.rp_reserved);
                    match &n.new_reparse {
                        Some(d) => return reparse_buffer(header, d),
                        None => (n.inode.reparse_stream().and_then(|s| s.blob), Some(header)),
                    }
                }
                _ => {
                    let stream = stream_of(name)
                        .filter(|_| self.xattr_streams())
                        .ok_or(Errno::ENODATA)?;
                    if let Some((_, v)) = n.new_streams.iter().find(|(s, _)| s == stream) {
                        return Ok(v.clone());
                    }
                    let s = n
                        .inode
                        .named_streams()
                        .find(|s| s.name == stream)
                        .ok_or(Errno::ENODATA)?;
                    if s.size() > XATTR_SIZE_MAX {
                        return Err(Errno::E2BIG);
                    }
                    (s.blob, None)
                }
            }
        };
        let data = match loc {
            None => Vec::new(),
            Some(loc) => self.wim.read_blob(&loc, true).map_err(|e| {
                tracing::error!("inode {ino}: reading a stream failed: {e}");
                Errno::EIO
            })?,
        };
        match header {
            Some(h) => reparse_buffer(h, &data),
            None => Ok(data),
        }
    }

    /// Creates or replaces extended attribute `name` of `ino` (`flags`: [`XATTR_CREATE`],
    /// [`XATTR_REPLACE`]); only named data streams can be set (see the module notes).
    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        let _g = self.changing();
        let mut tree = self.tree();
        let n = tree.get_mut(ino)?;
        let stream = self.writable_stream(n, name)?;
        if value.len() as u64 > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        let exists = has_stream(n, stream);
        if exists && flags & XATTR_CREATE != 0 {
            return Err(Errno(libc::EEXIST));
        }
        if !exists && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        n.inode
            .streams
            .retain(|s| !(s.kind == StreamKind::Data && s.name == stream));
        match n.new_streams.iter_mut().find(|(s, _)| s == stream) {
            Some((_, v)) => *v = value.to_vec(),
            None => n.new_streams.push((stream.to_string(), value.to_vec())),
        }
        n.inode.last_write_time = now_filetime();
        log_stream(&mut tree, ino, name, Some(value));
        Ok(())
    }

    /// Removes extended attribute `name` of `ino`: deletes a named data stream.
    pub fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        let _g = self.changing();
        let mut tree = self.tree();
        let n = tree.get_mut(ino)?;
        let stream = self.writable_stream(n, name)?;
        if !has_stream(n, stream) {
            return Err(Errno::ENODATA);
        }
        n.inode
            .streams
            .retain(|s| !(s.kind == StreamKind::Data && s.name == stream));
        n.new_streams.retain(|(s, _)| s != stream);
        n.inode.last_write_time = now_filetime();
        log_stream(&mut tree, ino, name, None);
        Ok(())
    }
}

/// Journals a stream set to `value` (removed if `None`) under its attribute name.
fn log_stream(tree: &mut Tree, ino: u64, name: &[u8], value: Option<&[u8]>) {
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let mtime = tree.nodes.get(&ino).map(|n| n.inode.last_write_time);
    tree.log(|t| {
        Some(Record::Stream {
            path: t.path(ino)?,
            name: name.to_string(),
            value: value.map(<[u8]>::to_vec),
        })
    });
    if let Some(mtime) = mtime {
        tree.log_mtime(ino, mtime);
    }
}

/// A full reparse buffer: tag (u32 LE), data length (u16 LE), reserved (u16 LE), data.
fn reparse_buffer((tag, reserved): (u32, u16), data: &[u8]) -> FsResult<Vec<u8>> {
    let len = u16::try_from(data.len()).map_err(|_| Errno::E2BIG)?;
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&reserved.to_le_bytes());
    out.extend_from_slice(data);
    Ok(out)
}
