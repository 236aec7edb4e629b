//! Extended attributes of a read-write mount: the same names and values as on a read-only
//! mount, by the same rule (`core/xattr.rs`, [`XattrSource`]); only the named data streams
//! can be changed.
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
use crate::core::xattr::{is_wim_attr, stream_of, XattrSource, XATTR_SIZE_MAX};
use crate::core::StreamsInterface;
use crate::journal::Record;
use wimfs::time::now_filetime;
use wimfs::StreamKind;

/// `setxattr` flag: fail with EEXIST if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// `setxattr` flag: fail with ENODATA unless the attribute exists.
pub const XATTR_REPLACE: u32 = 2;

impl RwFs {
    /// What the attributes of node `n` of the layer are made of (its DOS name is the
    /// caller's to add: it lives in the directory entry).
    fn layer_source<'a>(&'a self, n: &'a RwNode) -> XattrSource<'a> {
        XattrSource {
            inode: &n.inode,
            short_name: None,
            security: self.security_of(n),
            new_streams: &n.new_streams,
            new_reparse: n.new_reparse.as_deref(),
        }
    }

    /// The named stream that `setxattr`/`removexattr` of `name` on `n` would change, or why
    /// the name cannot be changed.
    fn writable_stream<'a>(&self, n: &RwNode, name: &'a [u8]) -> FsResult<&'a str> {
        if self.layer_source(n).linux_xattr(name, &self.opts).is_some() || is_wim_attr(name) {
            return Err(Errno(libc::EPERM));
        }
        let xattr_streams = self.opts.streams == StreamsInterface::Xattr;
        let stream = match std::str::from_utf8(name).ok().and_then(stream_of) {
            Some(s) if xattr_streams => s,
            _ if name.starts_with(b"user.") && xattr_streams => return Err(Errno::EINVAL),
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
        // The DOS name lives in the directory entry, which the source borrows apart.
        let short = tree.short_name_in(n.parent, &n.name);
        let src = XattrSource {
            short_name: short.as_deref(),
            ..self.layer_source(n)
        };
        Ok(src.list(&self.opts))
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let value = {
            let tree = self.tree();
            let Some(n) = tree.peek(ino)? else {
                drop(tree);
                return self.base.getxattr(ino, name);
            };
            let short = tree.short_name_in(n.parent, &n.name);
            let src = XattrSource {
                short_name: short.as_deref(),
                ..self.layer_source(n)
            };
            src.get(name, &self.opts)?
        };
        // A stored value is read once the lock is dropped.
        value.into_bytes(|loc| {
            self.wim.read_blob(loc, true).map_err(|e| {
                tracing::error!("inode {ino}: reading a stream failed: {e}");
                Errno::EIO
            })
        })
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
        let exists = self.layer_source(n).has_stream(stream);
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
        if !self.layer_source(n).has_stream(stream) {
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
pub(crate) fn log_stream(tree: &mut Tree, ino: u64, name: &[u8], value: Option<&[u8]>) {
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
