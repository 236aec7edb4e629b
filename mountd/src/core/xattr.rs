//! Extended attributes: named data streams and the Windows metadata of each file.
//!
//! | name | value |
//! |---|---|
//! | `user.<stream>` | contents of named data stream `<stream>` (streams interface `xattr`) |
//! | `system.wim.attributes` | FILE_ATTRIBUTE_* bits as text, `0x` and 8 hex digits |
//! | `system.wim.short_name` | the DOS 8.3 name, UTF-8 (only if the file has one) |
//! | `system.wim.reparse` | the full reparse buffer: tag (u32 LE), data length (u16 LE), 0 (u16), data |
//! | `system.wim.security` | the self-relative Windows security descriptor, raw |
//! | others | Linux xattrs stored by `wimlib-imagex capture --unix-data` (with `--unix-data`) |
//!
//! A read-write mount shows the same names; there only `user.<stream>` can be set and removed
//! (see `rw_xattr.rs`).

use wimfs::image::InodeId;

use super::{Errno, Fs, FsResult, Node, StreamsInterface};

/// Linux refuses xattr values larger than this.
pub(crate) const XATTR_SIZE_MAX: u64 = 64 << 10;

pub(crate) const ATTRIBUTES: &str = "system.wim.attributes";
pub(crate) const SHORT_NAME: &str = "system.wim.short_name";
pub(crate) const REPARSE: &str = "system.wim.reparse";
pub(crate) const SECURITY: &str = "system.wim.security";

/// Prefix of the names that show named data streams (streams interface `xattr`).
const STREAM_PREFIX: &str = "user.";

/// The xattr name that shows named data stream `stream`.
pub(crate) fn stream_xattr(stream: &str) -> String {
    format!("{STREAM_PREFIX}{stream}")
}

/// The named data stream an xattr name shows, if it names one.
pub(crate) fn stream_of(name: &str) -> Option<&str> {
    name.strip_prefix(STREAM_PREFIX).filter(|s| !s.is_empty())
}

/// Whether `name` is one of the `system.wim.*` attributes (read-only everywhere).
#[cfg(unix)]
pub(crate) fn is_wim_attr(name: &[u8]) -> bool {
    name.starts_with(b"system.wim.")
}

impl Fs {
    fn xattr_inode(&self, ino: u64) -> FsResult<Option<InodeId>> {
        Ok(match self.node(ino)? {
            Node::Inode(i) => Some(i),
            // A stream has no attributes of its own.
            Node::Stream(..) => None,
        })
    }

    /// Names of the extended attributes of `ino`, each NUL-terminated, as `listxattr` wants.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let Some(i) = self.xattr_inode(ino)? else {
            return Ok(Vec::new());
        };
        let inode = &self.img.inodes[i];
        let mut out = Vec::new();
        let mut add = |n: &[u8]| {
            out.extend_from_slice(n);
            out.push(0);
        };
        if self.opts.streams == StreamsInterface::Xattr {
            for s in inode.named_streams() {
                add(stream_xattr(&s.name).as_bytes());
            }
        }
        if self.opts.unix_data {
            for x in &inode.xattrs {
                add(&x.name);
            }
        }
        add(ATTRIBUTES.as_bytes());
        if let Some(&d) = inode.dentries.first() {
            if !self.img.dentries[d].short_name.is_empty() {
                add(SHORT_NAME.as_bytes());
            }
        }
        if inode.is_reparse_point() {
            add(REPARSE.as_bytes());
        }
        if self.security_descriptor(i).is_some() {
            add(SECURITY.as_bytes());
        }
        Ok(out)
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let Some(i) = self.xattr_inode(ino)? else {
            return Err(Errno::ENODATA);
        };
        let inode = &self.img.inodes[i];
        if self.opts.unix_data {
            if let Some(x) = inode.xattrs.iter().find(|x| x.name == name) {
                return Ok(x.value.clone());
            }
        }
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENODATA)?;
        match name {
            ATTRIBUTES => return Ok(format!("{:#010x}", inode.attributes).into_bytes()),
            SHORT_NAME => {
                let d = *inode.dentries.first().ok_or(Errno::ENODATA)?;
                let s = &self.img.dentries[d].short_name;
                return if s.is_empty() {
                    Err(Errno::ENODATA)
                } else {
                    Ok(s.clone().into_bytes())
                };
            }
            REPARSE if inode.is_reparse_point() => return self.reparse_point(ino),
            SECURITY => {
                return self
                    .security_descriptor(i)
                    .map(<[u8]>::to_vec)
                    .ok_or(Errno::ENODATA)
            }
            _ => {}
        }
        if self.opts.streams == StreamsInterface::Xattr {
            if let Some(stream) = stream_of(name) {
                let s = inode
                    .named_streams()
                    .find(|s| s.name == stream)
                    .ok_or(Errno::ENODATA)?;
                return match s.blob {
                    None => Ok(Vec::new()),
                    Some(loc) if loc.size > XATTR_SIZE_MAX => Err(Errno::E2BIG),
                    Some(loc) => self
                        .wim
                        .read_blob(&loc, true)
                        .map_err(|e| self.read_failed(i, &e)),
                };
            }
        }
        Err(Errno::ENODATA)
    }
}
