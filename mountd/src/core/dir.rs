//! Directory listing and the per-directory name index.
//!
//! Lookups binary-search a per-directory vector of children in collation order (see
//! [`super::names`]), built on the first lookup in that directory, so a directory of a million
//! entries costs one sort instead of a scan per lookup.
//!
//! Case-insensitive lookups (the default on Windows) can meet several children whose names
//! differ only in case (a WIM captured on Linux may hold `README` and `readme`). The rule: an
//! exact match wins; otherwise the first of them in collation order, i.e. the one whose name is
//! smallest by UTF-16 code unit (upper case before lower case). The others stay reachable by
//! their exact names and are all listed.

use std::cmp::Ordering;

use wimfs::format::dentry::FILE_ATTRIBUTE_DIRECTORY;
use wimfs::image::{DentryId, InodeId};

use super::names::{cmp_folded, collate, matches_all, wildcard_match};
use super::{Errno, Fs, FsResult, Kind, Node};

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
    /// Children of directory inode `dir` in collation order.
    pub(crate) fn sorted_children(&self, dir: InodeId) -> &[DentryId] {
        self.names[dir].get_or_init(|| {
            let mut v: Vec<DentryId> = self.img.dentries[self.dir_dentry(dir)].children.clone();
            let ci = self.opts.case_insensitive;
            v.sort_by(|&a, &b| collate(&self.img.dentries[a].name, &self.img.dentries[b].name, ci));
            v.into_boxed_slice()
        })
    }

    /// The child of directory inode `dir` called `name`: exactly, or ignoring case in a
    /// case-insensitive mount (with the collision rule of the module docs).
    pub(crate) fn child(&self, dir: InodeId, name: &str) -> Option<DentryId> {
        let index = self.sorted_children(dir);
        let name_of = |c: DentryId| self.img.dentries[c].name.as_str();
        if !self.opts.case_insensitive {
            return index
                .binary_search_by(|&c| name_of(c).cmp(name))
                .ok()
                .map(|k| index[k]);
        }
        let lo = index.partition_point(|&c| cmp_folded(name_of(c), name) == Ordering::Less);
        let hi =
            lo + index[lo..].partition_point(|&c| cmp_folded(name_of(c), name) == Ordering::Equal);
        let same = &index[lo..hi];
        same.iter()
            .copied()
            .find(|&c| name_of(c) == name)
            .or_else(|| same.first().copied())
    }

    /// The child of `dir` whose DOS short name is `name` (ignoring case), for Windows opens
    /// by 8.3 name.
    pub(crate) fn child_by_short_name(&self, dir: InodeId, name: &str) -> Option<DentryId> {
        let index = self.short_names[dir].get_or_init(|| {
            let mut v: Vec<DentryId> = self.img.dentries[self.dir_dentry(dir)]
                .children
                .iter()
                .copied()
                .filter(|&c| !self.img.dentries[c].short_name.is_empty())
                .collect();
            v.sort_by(|&a, &b| {
                cmp_folded(
                    &self.img.dentries[a].short_name,
                    &self.img.dentries[b].short_name,
                )
            });
            v.into_boxed_slice()
        });
        index
            .binary_search_by(|&c| cmp_folded(&self.img.dentries[c].short_name, name))
            .ok()
            .map(|k| index[k])
    }

    /// Calls `add` for the entries of directory `ino` that come after `marker` (all of them
    /// without one) and match `pattern`, until it returns `true` (full). This is how WinFsp
    /// lists: it resumes after the last name it got. Order: `.` and `..` (except in the root,
    /// as on NTFS), then the children in collation order. A directory that is a reparse point
    /// (a directory link or junction) lists nothing but the dots.
    pub fn readdir_after(
        &self,
        ino: u64,
        marker: Option<&str>,
        pattern: Option<&str>,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        let i = match self.node(ino)? {
            Node::Inode(i) if self.img.inodes[i].attributes & FILE_ATTRIBUTE_DIRECTORY != 0 => i,
            _ => return Err(Errno::ENOTDIR),
        };
        let ci = self.opts.case_insensitive;
        let pattern = pattern.filter(|p| !matches_all(p));
        let wanted = |name: &str| pattern.is_none_or(|p| wildcard_match(p, name, ci));
        if i != self.root {
            let parent = self.img.dentries[self.dir_dentry(i)].parent;
            let dots = [
                (".", ino),
                ("..", self.ino_of(self.img.dentries[parent].inode)),
            ];
            let skip = match marker {
                None => 0,
                Some(".") => 1,
                Some(_) => 2,
            };
            for (name, dot_ino) in dots.into_iter().skip(skip) {
                let e = DirEntry {
                    ino: dot_ino,
                    next: 0,
                    kind: Kind::Directory,
                    name,
                };
                if wanted(name) && add(e) {
                    return Ok(());
                }
            }
        }
        if !self.img.inodes[i].is_directory() {
            return Ok(());
        }
        let index = self.sorted_children(i);
        let start = match marker {
            // The dots are not children, and a child may sort before them ("!x" < ".").
            None | Some(".") | Some("..") => 0,
            Some(m) => index.partition_point(|&c| {
                collate(&self.img.dentries[c].name, m, ci) != Ordering::Greater
            }),
        };
        for (k, &c) in index.iter().enumerate().skip(start) {
            let name = self.img.dentries[c].name.as_str();
            if !wanted(name) {
                continue;
            }
            let child = self.img.dentries[c].inode;
            let entry = DirEntry {
                ino: self.ino_of(child),
                next: k as u64 + 1,
                kind: self.kind_of(child),
                name,
            };
            if add(entry) {
                break;
            }
        }
        Ok(())
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
