//! Directory listing and the per-directory name index.
//!
//! Lookups binary-search a per-directory vector of children sorted by name, built on the
//! first lookup in that directory, so a directory of a million entries costs one sort
//! instead of a scan per lookup. A case-insensitive mode (for WinFsp) would build the same
//! index with a folded comparison; nothing else needs to change.

use wimfs::image::{DentryId, InodeId};

use super::{Fs, FsResult, Kind};

/// One entry returned by [`Fs::readdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub ino: u64,
    /// Offset to resume after this entry.
    pub next: u64,
    pub kind: Kind,
    pub name: &'a str,
}

impl Fs {
    /// The child of directory inode `dir` named exactly `name`.
    pub(crate) fn child(&self, dir: InodeId, name: &str) -> Option<DentryId> {
        let index = self.names[dir].get_or_init(|| {
            let mut v: Vec<DentryId> = self.img.dentries[self.dir_dentry(dir)].children.clone();
            v.sort_by(|&a, &b| self.img.dentries[a].name.cmp(&self.img.dentries[b].name));
            v.into_boxed_slice()
        });
        index
            .binary_search_by(|&c| self.img.dentries[c].name.as_str().cmp(name))
            .ok()
            .map(|k| index[k])
    }

    /// Calls `add` for the entries of directory `ino` from `offset` on ('.' is offset 0,
    /// '..' offset 1, then the children in image order) until it returns `true` (full).
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        let dir = self.dir_inode(ino)?;
        let d = self.dir_dentry(dir);
        let children = &self.img.dentries[d].children;
        let parent_ino = self.ino_of(self.img.dentries[self.img.dentries[d].parent].inode);
        let mut pos = offset;
        loop {
            let entry = match pos {
                0 => DirEntry {
                    ino,
                    next: 1,
                    kind: Kind::Directory,
                    name: ".",
                },
                1 => DirEntry {
                    ino: parent_ino,
                    next: 2,
                    kind: Kind::Directory,
                    name: "..",
                },
                p => match children.get((p - 2) as usize) {
                    Some(&c) => {
                        let i = self.img.dentries[c].inode;
                        DirEntry {
                            ino: self.ino_of(i),
                            next: p + 1,
                            kind: self.kind_of(i),
                            name: &self.img.dentries[c].name,
                        }
                    }
                    None => return Ok(()),
                },
            };
            if add(entry) {
                return Ok(());
            }
            pos += 1;
        }
    }

    /// Number of entries in a directory, '.' and '..' included.
    pub fn dir_len(&self, ino: u64) -> FsResult<u64> {
        let dir = self.dir_inode(ino)?;
        Ok(self.img.dentries[self.dir_dentry(dir)].children.len() as u64 + 2)
    }
}
