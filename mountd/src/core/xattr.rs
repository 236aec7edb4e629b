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
use wimfs::read::BlobLocation;
use wimfs::Inode;

use super::{Errno, Fs, FsOptions, FsResult, Node, StreamsInterface};

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
pub(crate) fn is_wim_attr(name: &[u8]) -> bool {
    name.starts_with(b"system.wim.")
}

/// What the extended attributes of one file are made of, on either kind of mount.
pub(crate) struct XattrSource<'a> {
    pub(crate) inode: &'a Inode,
    pub(crate) short_name: Option<&'a str>,
    pub(crate) security: Option<&'a [u8]>,
    /// Named streams set on a read-write mount, (name, contents); the inode no longer has
    /// streams of those names.
    pub(crate) new_streams: &'a [(String, Vec<u8>)],
    /// Reparse data set on the mount (a link made there), instead of the stored one.
    pub(crate) new_reparse: Option<&'a [u8]>,
}

/// The value of an attribute: at hand, or in the WIM (a stream to read, perhaps to be
/// given a reparse header); reading is left to the caller, who does it without locks.
pub(crate) enum XattrValue {
    Ready(Vec<u8>),
    Stored {
        blob: Option<BlobLocation>,
        reparse: Option<(u32, u16)>,
    },
}

impl XattrValue {
    /// The bytes, reading a stored value with `read`.
    pub(crate) fn into_bytes(
        self,
        read: impl FnOnce(&BlobLocation) -> FsResult<Vec<u8>>,
    ) -> FsResult<Vec<u8>> {
        match self {
            XattrValue::Ready(v) => Ok(v),
            XattrValue::Stored { blob, reparse } => {
                let data = match blob {
                    Some(loc) => read(&loc)?,
                    None => Vec::new(),
                };
                match reparse {
                    Some(header) => reparse_buffer(header, &data),
                    None => Ok(data),
                }
            }
        }
    }
}

impl XattrSource<'_> {
    /// The stored Linux xattr `name` (shown with --unix-data only).
    pub(crate) fn linux_xattr(&self, name: &[u8], opts: &FsOptions) -> Option<&[u8]> {
        if !opts.unix_data {
            return None;
        }
        self.inode
            .xattrs
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.value.as_slice())
    }

    /// Whether the file has named data stream `stream`.
    pub(crate) fn has_stream(&self, stream: &str) -> bool {
        self.new_streams.iter().any(|(s, _)| s == stream)
            || self.inode.named_streams().any(|s| s.name == stream)
    }

    /// The names, each NUL-terminated, as `listxattr` wants them.
    pub(crate) fn list(&self, opts: &FsOptions) -> Vec<u8> {
        let mut out = Vec::new();
        let mut add = |n: &[u8]| {
            out.extend_from_slice(n);
            out.push(0);
        };
        if opts.streams == StreamsInterface::Xattr {
            for s in self.inode.named_streams() {
                add(stream_xattr(&s.name).as_bytes());
            }
            for (s, _) in self.new_streams {
                add(stream_xattr(s).as_bytes());
            }
        }
        if opts.unix_data {
            for x in &self.inode.xattrs {
                add(&x.name);
            }
        }
        add(ATTRIBUTES.as_bytes());
        if self.short_name.is_some() {
            add(SHORT_NAME.as_bytes());
        }
        if self.inode.is_reparse_point() {
            add(REPARSE.as_bytes());
        }
        if self.security.is_some() {
            add(SECURITY.as_bytes());
        }
        out
    }

    /// The value of attribute `name`.
    pub(crate) fn get(&self, name: &[u8], opts: &FsOptions) -> FsResult<XattrValue> {
        if let Some(v) = self.linux_xattr(name, opts) {
            return Ok(XattrValue::Ready(v.to_vec()));
        }
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENODATA)?;
        let inode = self.inode;
        match name {
            ATTRIBUTES => {
                return Ok(XattrValue::Ready(
                    format!("{:#010x}", inode.attributes).into_bytes(),
                ))
            }
            SHORT_NAME => {
                return self
                    .short_name
                    .map(|s| XattrValue::Ready(s.as_bytes().to_vec()))
                    .ok_or(Errno::ENODATA)
            }
            SECURITY => {
                return self
                    .security
                    .map(|s| XattrValue::Ready(s.to_vec()))
                    .ok_or(Errno::ENODATA)
            }
            REPARSE if inode.is_reparse_point() => {
                let header = (inode.reparse_tag, inode.rp_reserved);
                return Ok(match self.new_reparse {
                    Some(d) => XattrValue::Ready(reparse_buffer(header, d)?),
                    None => XattrValue::Stored {
                        blob: inode.reparse_stream().and_then(|s| s.blob),
                        reparse: Some(header),
                    },
                });
            }
            _ => {}
        }
        let stream = stream_of(name)
            .filter(|_| opts.streams == StreamsInterface::Xattr)
            .ok_or(Errno::ENODATA)?;
        if let Some((_, v)) = self.new_streams.iter().find(|(s, _)| s == stream) {
            return Ok(XattrValue::Ready(v.clone()));
        }
        let s = inode
            .named_streams()
            .find(|s| s.name == stream)
            .ok_or(Errno::ENODATA)?;
        if s.size() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        Ok(XattrValue::Stored {
            blob: s.blob,
            reparse: None,
        })
    }
}

/// A full reparse buffer: tag (u32 LE), data length (u16 LE), reserved (u16 LE), data.
pub(crate) fn reparse_buffer((tag, reserved): (u32, u16), data: &[u8]) -> FsResult<Vec<u8>> {
    let len = u16::try_from(data.len()).map_err(|_| Errno::E2BIG)?;
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&reserved.to_le_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

impl Fs {
    /// What the attributes of image inode `i` are made of.
    fn xattr_source(&self, i: InodeId) -> XattrSource<'_> {
        let inode = &self.img.inodes[i];
        XattrSource {
            inode,
            short_name: inode
                .dentries
                .first()
                .map(|&d| self.img.dentries[d].short_name.as_str())
                .filter(|s| !s.is_empty()),
            security: self.security_descriptor(i),
            new_streams: &[],
            new_reparse: None,
        }
    }

    fn xattr_inode(&self, ino: u64) -> FsResult<Option<InodeId>> {
        Ok(match self.node(ino)? {
            Node::Inode(i) => Some(i),
            // A stream has no attributes of its own.
            Node::Stream(..) => None,
        })
    }

    /// Names of the extended attributes of `ino`, each NUL-terminated, as `listxattr` wants.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        Ok(match self.xattr_inode(ino)? {
            Some(i) => self.xattr_source(i).list(&self.opts),
            None => Vec::new(),
        })
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let Some(i) = self.xattr_inode(ino)? else {
            return Err(Errno::ENODATA);
        };
        self.xattr_source(i)
            .get(name, &self.opts)?
            .into_bytes(|loc| {
                self.wim
                    .read_blob(loc, true)
                    .map_err(|e| self.read_failed(i, &e))
            })
    }
}
