//! Image model types and tree queries.

use crate::format::dentry::{FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT};
use crate::format::reparse::is_link_tag;
use crate::format::tagged::{TaggedItem, UnixData, Xattr};
use crate::format::Sha1Hash;
use crate::read::BlobLocation;

/// Index of a dentry in [`Image::dentries`]; the root is 0.
pub type DentryId = usize;
/// Index of an inode in [`Image::inodes`].
pub type InodeId = usize;

/// What a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StreamKind {
    /// File data (unnamed = the main data, named = an alternate data stream).
    Data,
    /// Reparse point data (without its 8-byte header).
    Reparse,
}

/// One stream of an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Empty for the unnamed stream.
    pub name: String,
    pub kind: StreamKind,
    /// SHA-1 of the contents; all zero for an empty stream.
    pub hash: Sha1Hash,
    /// Where the contents are, `None` for an empty stream.
    pub blob: Option<BlobLocation>,
}

impl Stream {
    /// Length in bytes.
    pub fn size(&self) -> u64 {
        self.blob.map_or(0, |b| b.size)
    }
}

/// A file: attributes, times, security, streams; shared by its hard links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub attributes: u32,
    /// Index into [`Image::security`], or -1 for none.
    pub security_id: i32,
    /// Windows FILETIMEs (100 ns since 1601).
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub reparse_tag: u32,
    pub rp_reserved: u16,
    pub rp_flags: u16,
    pub unknown_0x54: u32,
    /// The hard link group id from the image (0 = single link).
    pub link_group: u64,
    pub streams: Vec<Stream>,
    pub unix: Option<UnixData>,
    pub xattrs: Vec<Xattr>,
    /// All tagged items as stored, kept for lossless rewriting.
    pub tagged: Vec<TaggedItem>,
    /// The dentries (names) of this inode.
    pub dentries: Vec<DentryId>,
}

impl Inode {
    /// A new inode with `attributes`, all three times `time`, and nothing else: no
    /// security descriptor, streams, names or extra data.
    pub fn new(attributes: u32, time: u64) -> Inode {
        Inode {
            attributes,
            security_id: -1,
            creation_time: time,
            last_access_time: time,
            last_write_time: time,
            reparse_tag: 0,
            rp_reserved: 0,
            rp_flags: 0,
            unknown_0x54: 0,
            link_group: 0,
            streams: Vec::new(),
            unix: None,
            xattrs: Vec::new(),
            tagged: Vec::new(),
            dentries: Vec::new(),
        }
    }

    /// A directory that holds entries. Reparse points never do (a directory symlink or
    /// junction is a link), matching how Windows and wimlib read the tree.
    pub fn is_directory(&self) -> bool {
        self.attributes & FILE_ATTRIBUTE_DIRECTORY != 0 && !self.is_reparse_point()
    }

    pub fn is_reparse_point(&self) -> bool {
        self.attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0
    }

    /// Whether this is a symbolic link or junction (shown as a symlink on Unix).
    pub fn is_symlink(&self) -> bool {
        self.is_reparse_point() && is_link_tag(self.reparse_tag)
    }

    /// The unnamed data stream, if any.
    pub fn data_stream(&self) -> Option<&Stream> {
        self.streams
            .iter()
            .find(|s| s.kind == StreamKind::Data && s.name.is_empty())
    }

    /// The reparse data stream, if any.
    pub fn reparse_stream(&self) -> Option<&Stream> {
        self.streams.iter().find(|s| s.kind == StreamKind::Reparse)
    }

    /// Named data streams.
    pub fn named_streams(&self) -> impl Iterator<Item = &Stream> {
        self.streams
            .iter()
            .filter(|s| s.kind == StreamKind::Data && !s.name.is_empty())
    }

    /// Size of the unnamed data stream.
    pub fn size(&self) -> u64 {
        self.data_stream().map_or(0, Stream::size)
    }

    pub fn nlink(&self) -> u32 {
        self.dentries.len() as u32
    }
}

/// A name in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dentry {
    pub name: String,
    pub short_name: String,
    /// Parent directory; the root is its own parent.
    pub parent: DentryId,
    /// Children, sorted as Windows lists them (case-insensitive, then case-sensitive).
    pub children: Vec<DentryId>,
    pub inode: InodeId,
}

/// One image of a WIM, fully loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// 1-based image index in its WIM.
    pub index: u32,
    pub security: Vec<Vec<u8>>,
    pub dentries: Vec<Dentry>,
    pub inodes: Vec<Inode>,
}

impl Image {
    /// The root directory's dentry id.
    pub const ROOT: DentryId = 0;

    /// Inode of a dentry.
    pub fn inode_of(&self, d: DentryId) -> &Inode {
        &self.inodes[self.dentries[d].inode]
    }

    /// Absolute path of a dentry inside the image, '/'-separated; "/" for the root.
    pub fn path_of(&self, mut d: DentryId) -> String {
        let mut parts = Vec::new();
        while d != Self::ROOT {
            parts.push(self.dentries[d].name.as_str());
            d = self.dentries[d].parent;
        }
        if parts.is_empty() {
            return "/".to_string();
        }
        parts.reverse();
        let mut s = String::new();
        for p in parts {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    /// Child of `dir` named exactly `name`.
    pub fn child(&self, dir: DentryId, name: &str) -> Option<DentryId> {
        self.dentries[dir]
            .children
            .iter()
            .copied()
            .find(|&c| self.dentries[c].name == name)
    }

    /// Resolves a path ('/' or '\\' separated, leading separator optional; case-sensitive).
    pub fn lookup(&self, path: &str) -> Option<DentryId> {
        let mut cur = Self::ROOT;
        for comp in path.split(['/', '\\']).filter(|c| !c.is_empty()) {
            cur = self.child(cur, comp)?;
        }
        Some(cur)
    }

    /// Dentries below (and including) `start` in depth-first pre-order, children in order.
    pub fn walk(&self, start: DentryId) -> Vec<DentryId> {
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            out.push(d);
            stack.extend(self.dentries[d].children.iter().rev().copied());
        }
        out
    }
}
