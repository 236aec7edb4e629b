//! Changing an image by path, as `wimfs update` does: grafting a captured branch in,
//! deleting and renaming, with wimlib-imagex's rules for each.
//!
//! Edits never reuse arena slots: an unlinked subtree stays in [`Image::dentries`] and
//! [`Image::inodes`] until [`Image::compact`] drops everything the root no longer reaches.
//! So ids handed out before a run of edits (say, of files whose data is still to be
//! written) stay valid until then, and `compact` says where each inode went.

use thiserror::Error;

use super::model::{Dentry, DentryId, Image, Inode, InodeId};
use crate::format::dentry::FILE_ATTRIBUTE_DIRECTORY;

/// How names in paths are compared with names in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Case {
    /// Exactly (wimlib-imagex's default on Unix).
    #[default]
    Sensitive,
    /// Ignoring case (its default on Windows, or `WIMLIB_IMAGEX_IGNORE_CASE=1`).
    Insensitive,
}

impl Case {
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            Case::Sensitive => a == b,
            Case::Insensitive => a
                .chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase)),
        }
    }
}

/// What kind of failure an edit met; the command line maps these to exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// A path that must exist does not.
    NotFound,
    /// A directory was needed and something else is there.
    NotDir,
    /// A non-directory was needed and a directory is there.
    IsDir,
    /// A directory that must be empty is not, or a rename would put a directory inside
    /// itself.
    NotEmpty,
    /// `--no-replace`: an existing file would have been replaced.
    Exists,
    /// A name an image cannot hold.
    BadName,
}

/// An edit the image's current state refuses; the image is unchanged by the failed edit.
#[derive(Debug, Clone, Error)]
#[error("{detail}")]
pub struct EditError {
    pub kind: EditKind,
    pub detail: String,
}

fn fail<T>(kind: EditKind, detail: String) -> Result<T, EditError> {
    Err(EditError { kind, detail })
}

/// The components of an image path: '/' or '\\' separated, empty ones (leading, trailing,
/// doubled separators) ignored; none for the root.
pub fn components(path: &str) -> Vec<&str> {
    path.split(['/', '\\']).filter(|c| !c.is_empty()).collect()
}

/// `/a/b` for the components `a`, `b`; `/` for none.
fn display(comps: &[&str]) -> String {
    if comps.is_empty() {
        return "/".into();
    }
    comps.iter().map(|c| format!("/{c}")).collect()
}

impl Image {
    /// Child of directory `dir` named `name` under `case`.
    pub fn child_named(&self, dir: DentryId, name: &str, case: Case) -> Option<DentryId> {
        if case == Case::Sensitive {
            return self.child(dir, name);
        }
        self.dentries[dir]
            .children
            .iter()
            .copied()
            .find(|&c| case.same(&self.dentries[c].name, name))
    }

    /// Resolves a path under `case` (symbolic links are names like any other: never
    /// followed).
    pub fn resolve(&self, path: &str, case: Case) -> Option<DentryId> {
        let mut cur = Self::ROOT;
        for c in components(path) {
            cur = self.child_named(cur, c, case)?;
        }
        Some(cur)
    }

    fn is_dir(&self, d: DentryId) -> bool {
        self.inode_of(d).is_directory()
    }

    /// Puts dentry `d` into directory `parent`, in listing order.
    fn link(&mut self, d: DentryId, parent: DentryId) {
        self.dentries[d].parent = parent;
        let name = self.dentries[d].name.clone();
        let dentries = &self.dentries;
        let at = dentries[parent]
            .children
            .partition_point(|&c| super::name_order(&dentries[c].name, &name).is_lt());
        self.dentries[parent].children.insert(at, d);
        let ino = self.dentries[d].inode;
        self.inodes[ino].dentries.push(d);
    }

    /// Takes dentry `d` out of its directory (its subtree goes with it, unreachable).
    fn unlink(&mut self, d: DentryId) {
        let parent = self.dentries[d].parent;
        self.dentries[parent].children.retain(|&c| c != d);
        let ino = self.dentries[d].inode;
        self.inodes[ino].dentries.retain(|&x| x != d);
    }

    /// A new empty directory named `name` (what a graft makes for missing parents).
    fn new_directory(&mut self, name: &str) -> DentryId {
        let ino = self.inodes.len();
        self.inodes.push(Inode::new(
            FILE_ATTRIBUTE_DIRECTORY,
            crate::time::now_filetime(),
        ));
        let d = self.dentries.len();
        self.dentries.push(Dentry {
            name: name.to_string(),
            short_name: String::new(),
            parent: Self::ROOT,
            children: Vec::new(),
            inode: ino,
        });
        d
    }

    /// Adds `branch` (a captured tree; its root may be a file) at `target`, as wimlib's
    /// `add` command does. A missing parent directory is made; a directory branch at an
    /// existing directory merges into it (the existing directories keep their metadata), a
    /// file replaces an existing file (an error with `no_replace`); a directory never
    /// replaces a file nor a file a directory. Returns the offset added to the branch's
    /// inode ids (branch inode `i` is now inode `offset + i`).
    pub fn graft(
        &mut self,
        branch: Image,
        target: &str,
        case: Case,
        no_replace: bool,
    ) -> Result<usize, EditError> {
        let comps = components(target);
        let root_is_dir = branch.inodes[branch.dentries[Self::ROOT].inode].is_directory();
        if comps.is_empty() && !root_is_dir {
            return fail(
                EditKind::NotDir,
                "only a directory can be added at the root of the image".into(),
            );
        }
        if let Some(c) = comps
            .iter()
            .find(|c| super::names::unix_name_problem(c).is_some())
        {
            return fail(EditKind::BadName, format!("{c:?} is not a valid file name"));
        }
        // Walk to the parent first: nothing changes unless the whole graft can be made.
        let (last, parents) = match comps.split_last() {
            Some((l, p)) => (Some(*l), p),
            None => (None, &comps[..]),
        };
        let mut cur = Some(Self::ROOT);
        for (i, c) in parents.iter().enumerate() {
            let Some(d) = cur else { break };
            if !self.is_dir(d) {
                return fail(
                    EditKind::NotDir,
                    format!("{:?} in the image is not a directory", display(&comps[..i])),
                );
            }
            cur = self.child_named(d, c, case);
        }
        if let Some(d) = cur.filter(|&d| !self.is_dir(d)) {
            return fail(
                EditKind::NotDir,
                format!("{:?} in the image is not a directory", self.path_of(d)),
            );
        }
        let existing = match (cur, last) {
            (Some(parent), Some(last)) => self.child_named(parent, last, case),
            (Some(_), None) => Some(Self::ROOT),
            (None, _) => None,
        };
        if let Some(e) = existing {
            self.check_conflict(&branch, Self::ROOT, e, case, no_replace)?;
        }
        // Checked: now it cannot fail.
        let (doff, ioff) = (self.dentries.len(), self.inodes.len());
        for mut d in branch.dentries {
            d.parent += doff;
            d.inode += ioff;
            d.children.iter_mut().for_each(|c| *c += doff);
            self.dentries.push(d);
        }
        for mut ino in branch.inodes {
            ino.dentries.iter_mut().for_each(|d| *d += doff);
            self.inodes.push(ino);
        }
        let broot = doff;
        if let Some(last) = last {
            self.dentries[broot].name = last.to_string();
        }
        // The branch root is no one's child yet.
        let ino = self.dentries[broot].inode;
        self.inodes[ino].dentries.retain(|&x| x != broot);
        match existing {
            Some(e) => self.merge(broot, e, case),
            None => {
                let mut parent = Self::ROOT;
                for c in parents {
                    parent = match self.child_named(parent, c, case) {
                        Some(d) => d,
                        None => {
                            let d = self.new_directory(c);
                            self.link(d, parent);
                            d
                        }
                    };
                }
                self.link(broot, parent);
            }
        }
        Ok(ioff)
    }

    /// Whether `bd` of `branch` can go where `existing` is (see [`Image::graft`]).
    fn check_conflict(
        &self,
        branch: &Image,
        bd: DentryId,
        existing: DentryId,
        case: Case,
        no_replace: bool,
    ) -> Result<(), EditError> {
        let b_dir = branch.inodes[branch.dentries[bd].inode].is_directory();
        let e_dir = self.is_dir(existing);
        let path = || self.path_of(existing);
        match (b_dir, e_dir) {
            (false, true) => fail(
                EditKind::IsDir,
                format!(
                    "{:?} is a directory: name the path to place the file at inside it",
                    path()
                ),
            ),
            (true, false) => fail(
                EditKind::NotDir,
                format!(
                    "cannot place a directory at {:?}: a file that is not a directory is there",
                    path()
                ),
            ),
            (false, false) if no_replace => fail(
                EditKind::Exists,
                format!("refusing to replace {:?} (--no-replace)", path()),
            ),
            (false, false) => Ok(()),
            (true, true) => {
                for &c in &branch.dentries[bd].children {
                    if let Some(e) = self.child_named(existing, &branch.dentries[c].name, case) {
                        self.check_conflict(branch, c, e, case, no_replace)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Puts the (unlinked, already checked) branch dentry `b` where `existing` is.
    fn merge(&mut self, b: DentryId, existing: DentryId, case: Case) {
        if !self.is_dir(existing) {
            let parent = self.dentries[existing].parent;
            self.unlink(existing);
            self.link(b, parent);
            return;
        }
        for c in std::mem::take(&mut self.dentries[b].children) {
            let ino = self.dentries[c].inode;
            self.inodes[ino].dentries.retain(|&x| x != c);
            match self.child_named(existing, &self.dentries[c].name.clone(), case) {
                Some(e) => self.merge(c, e, case),
                None => self.link(c, existing),
            }
        }
    }

    /// Deletes `path`, as wimlib's `delete` command does: a missing path is an error unless
    /// `force`, a directory needs `recursive`. Deleting the root empties the image.
    pub fn delete_path(
        &mut self,
        path: &str,
        case: Case,
        force: bool,
        recursive: bool,
    ) -> Result<(), EditError> {
        let Some(d) = self.resolve(path, case) else {
            if force {
                return Ok(());
            }
            return fail(
                EditKind::NotFound,
                format!("{path:?} does not exist in the image"),
            );
        };
        if self.is_dir(d) && !recursive {
            return fail(
                EditKind::IsDir,
                format!("{path:?} is a directory (delete it with --recursive)"),
            );
        }
        if d == Self::ROOT {
            for c in self.dentries[d].children.clone() {
                self.unlink(c);
            }
        } else {
            self.unlink(d);
        }
        Ok(())
    }

    /// Renames `from` to `to` with POSIX `rename` rules: an existing `to` is replaced if it
    /// is a file and `from` is one too, or if both are directories and `to` is empty; a
    /// directory cannot move below itself.
    pub fn rename_path(&mut self, from: &str, to: &str, case: Case) -> Result<(), EditError> {
        let why =
            |kind, what: &str| fail(kind, format!("cannot rename {from:?} to {to:?}: {what}"));
        let Some(src) = self.resolve(from, case) else {
            return why(EditKind::NotFound, "no such file or directory");
        };
        let comps = components(to);
        let Some((last, parents)) = comps.split_last() else {
            return why(EditKind::NotEmpty, "the root cannot be replaced");
        };
        if super::names::unix_name_problem(last).is_some() {
            return why(EditKind::BadName, "not a valid file name");
        }
        let dst = self.resolve(to, case);
        let parent = match dst {
            Some(dst) => {
                if dst == src {
                    return Ok(());
                }
                match (self.is_dir(src), self.is_dir(dst)) {
                    (false, true) => return why(EditKind::IsDir, "the target is a directory"),
                    (true, false) => return why(EditKind::NotDir, "the target is not a directory"),
                    (true, true) if !self.dentries[dst].children.is_empty() => {
                        return why(EditKind::NotEmpty, "the target directory is not empty")
                    }
                    _ => {}
                }
                self.dentries[dst].parent
            }
            None => {
                let Some(p) = self.resolve(&display(parents), case) else {
                    return why(EditKind::NotFound, "no such file or directory");
                };
                if !self.is_dir(p) {
                    return why(
                        EditKind::NotDir,
                        "a parent of the target is not a directory",
                    );
                }
                p
            }
        };
        // `src` may not be `parent` or above it.
        let mut up = parent;
        loop {
            if up == src {
                return why(
                    EditKind::NotEmpty,
                    "a directory cannot be moved into itself",
                );
            }
            if up == Self::ROOT {
                break;
            }
            up = self.dentries[up].parent;
        }
        if let Some(dst) = dst {
            self.unlink(dst);
        }
        self.unlink(src);
        self.dentries[src].name = last.to_string();
        // A new long name has no DOS name to go with it.
        self.dentries[src].short_name.clear();
        self.link(src, parent);
        Ok(())
    }

    /// Drops every dentry and inode the root no longer reaches and renumbers the rest in
    /// tree order. Returns where each old inode went (`None`: dropped).
    pub fn compact(&mut self) -> Vec<Option<InodeId>> {
        let mut inode_map: Vec<Option<InodeId>> = vec![None; self.inodes.len()];
        let mut dentries: Vec<Dentry> = Vec::with_capacity(self.dentries.len());
        let mut inodes: Vec<Inode> = Vec::with_capacity(self.inodes.len());
        // (old dentry, new parent)
        let mut stack = vec![(Self::ROOT, Self::ROOT)];
        while let Some((old, parent)) = stack.pop() {
            let new = dentries.len();
            let o = &self.dentries[old];
            let ino = *inode_map[o.inode].get_or_insert_with(|| {
                let mut i = self.inodes[o.inode].clone();
                i.dentries.clear();
                inodes.push(i);
                inodes.len() - 1
            });
            inodes[ino].dentries.push(new);
            dentries.push(Dentry {
                name: o.name.clone(),
                short_name: o.short_name.clone(),
                parent,
                children: Vec::new(),
                inode: ino,
            });
            if new != Self::ROOT {
                dentries[parent].children.push(new);
            }
            stack.extend(o.children.iter().rev().map(|&c| (c, new)));
        }
        self.dentries = dentries;
        self.inodes = inodes;
        inode_map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_inode() -> Inode {
        Inode::new(FILE_ATTRIBUTE_DIRECTORY, 1)
    }

    /// An image of `paths` (a trailing '/' makes a directory), parents listed first.
    fn image(paths: &[&str]) -> Image {
        let mut img = Image {
            index: 1,
            security: Vec::new(),
            dentries: vec![Dentry {
                name: String::new(),
                short_name: String::new(),
                parent: 0,
                children: Vec::new(),
                inode: 0,
            }],
            inodes: vec![dir_inode()],
        };
        img.inodes[0].dentries.push(0);
        for p in paths {
            let comps = components(p);
            let (last, parents) = comps.split_last().unwrap();
            let parent = img.resolve(&display(parents), Case::Sensitive).unwrap();
            let mut ino = dir_inode();
            if !p.ends_with('/') {
                ino.attributes = 0;
            }
            img.inodes.push(ino);
            img.dentries.push(Dentry {
                name: last.to_string(),
                short_name: String::new(),
                parent,
                children: Vec::new(),
                inode: img.inodes.len() - 1,
            });
            img.link(img.dentries.len() - 1, parent);
            let d = img.dentries.len() - 1;
            img.inodes[img.dentries[d].inode]
                .dentries
                .retain(|&x| x != d);
            img.inodes[img.dentries[d].inode].dentries.push(d);
        }
        img
    }

    fn listing(img: &Image) -> Vec<String> {
        img.walk(Image::ROOT)
            .into_iter()
            .map(|d| {
                let mut p = img.path_of(d);
                if img.is_dir(d) && d != Image::ROOT {
                    p.push('/');
                }
                p
            })
            .collect()
    }

    #[test]
    fn grafts_merge_replace_and_make_parents() {
        let mut img = image(&["/a", "/d/", "/d/x", "/d/e/"]);
        let branch = image(&["/x", "/e/", "/e/y", "/n"]);
        img.graft(branch, "\\d", Case::Sensitive, false).unwrap();
        assert_eq!(
            listing(&img),
            ["/", "/a", "/d/", "/d/e/", "/d/e/y", "/d/n", "/d/x"]
        );
        let file = image(&[]);
        let mut file = file;
        file.inodes[0].attributes = 0;
        img.graft(file.clone(), "/p/q/r", Case::Sensitive, false)
            .unwrap();
        assert!(listing(&img).contains(&"/p/q/r".to_string()));
        assert!(listing(&img).contains(&"/p/q/".to_string()));
        // Below a file, at a directory, a directory over a file, no-replace: refused,
        // and nothing changed.
        let before = listing(&img);
        let kind = |r: Result<usize, EditError>| r.unwrap_err().kind;
        assert_eq!(
            kind(img.graft(file.clone(), "/a/z", Case::Sensitive, false)),
            EditKind::NotDir
        );
        assert_eq!(
            kind(img.graft(file.clone(), "/d", Case::Sensitive, false)),
            EditKind::IsDir
        );
        assert_eq!(
            kind(img.graft(image(&["/a/"]), "/", Case::Sensitive, false)),
            EditKind::NotDir
        );
        assert_eq!(
            kind(img.graft(image(&["/x"]), "/D", Case::Insensitive, true)),
            EditKind::Exists
        );
        assert_eq!(listing(&img), before);
        let map = img.compact();
        assert_eq!(listing(&img), before);
        assert_eq!(map.iter().flatten().count(), img.inodes.len());
    }

    #[test]
    fn deletes_and_renames_follow_wimlib() {
        let mut img = image(&["/a", "/d/", "/d/x", "/e/", "/f/", "/f/g"]);
        let kind = |r: Result<(), EditError>| r.unwrap_err().kind;
        assert_eq!(
            kind(img.delete_path("/nope", Case::Sensitive, false, false)),
            EditKind::NotFound
        );
        img.delete_path("/nope", Case::Sensitive, true, false)
            .unwrap();
        assert_eq!(
            kind(img.delete_path("/d", Case::Sensitive, false, false)),
            EditKind::IsDir
        );
        assert_eq!(
            kind(img.rename_path("/a", "/d", Case::Sensitive)),
            EditKind::IsDir
        );
        assert_eq!(
            kind(img.rename_path("/d", "/a", Case::Sensitive)),
            EditKind::NotDir
        );
        assert_eq!(
            kind(img.rename_path("/d", "/f", Case::Sensitive)),
            EditKind::NotEmpty
        );
        assert_eq!(
            kind(img.rename_path("/d", "/d/x/y", Case::Sensitive)),
            EditKind::NotDir
        );
        assert_eq!(
            kind(img.rename_path("/f", "/f/h", Case::Sensitive)),
            EditKind::NotEmpty
        );
        img.rename_path("/d", "/e", Case::Sensitive).unwrap();
        img.rename_path("/A", "/e/b", Case::Insensitive).unwrap();
        img.delete_path("/f", Case::Sensitive, false, true).unwrap();
        img.compact();
        assert_eq!(listing(&img), ["/", "/e/", "/e/b", "/e/x"]);
        img.delete_path("/", Case::Sensitive, false, true).unwrap();
        img.compact();
        assert_eq!(listing(&img), ["/"]);
    }
}
