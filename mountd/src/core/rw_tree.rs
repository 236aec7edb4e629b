//! The tree of a read-write mount: the mounted image, served by the read-only core, plus a
//! sparse layer of the inodes this mount changed or made.
//!
//! An inode of the image enters the layer (a copy of its record, and for a directory the
//! list of its entries) the first time something changes it, its names or, for a
//! directory, its entries; until then every question about it goes to the base. So a
//! mount costs nothing per inode of the image, reads of unchanged files take the read-only
//! path, and the layer holds what a commit has to write. Two rules keep the two views
//! consistent: a directory whose entries change is in the layer, and so is an inode whose
//! names change. An image inode that loses its last name (and is closed) is `gone`.
//!
//! Inode numbers of the image are the read-only core's; inodes made on the mount are
//! numbered after them, and no number is reused during a mount.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use wimfs::image::InodeId;
use wimfs::time::now_filetime;
use wimfs::Inode;

use super::super::names::eq_folded;
use super::super::{Errno, Fs, FsResult, Kind, Node, ROOT_INO};
use crate::journal::{self, Record};

/// A name in a directory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) ino: u64,
    /// The DOS name from the image; dropped when the entry moves.
    pub(crate) short_name: String,
    /// Position for `readdir` offsets: given out in increasing order per directory and
    /// never reused, so removing entries during a listing skips none of the others. An
    /// image directory's entries keep the positions the read-only core gives them.
    pub(crate) pos: u64,
}

/// Files made on the mount up to this size keep their data in memory while they are being
/// written and in the staging directory's data log once closed (one append, no file
/// creation each: copying in a tree of small files runs at memory speed). A file that
/// grows past it, and any file of the image that is changed, gets a staging file.
pub(crate) const SMALL_FILE: u64 = 64 << 10;

/// Where the data of a small file made on the mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Small {
    /// In memory, changed since it was last logged.
    Mem(Vec<u8>),
    /// `len` bytes at `offset` of the data log.
    Log { offset: u64, len: u64 },
}

impl Small {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Small::Mem(v) => v.len() as u64,
            Small::Log { len, .. } => *len,
        }
    }
}

/// Named data streams set on a mount: (name, contents).
pub(crate) type NewStreams = Vec<(String, Vec<u8>)>;

/// One inode of the layer.
pub(crate) struct RwNode {
    /// Attributes, times, security, streams, UNIX data, tagged items as in the image (its
    /// `dentries` are not kept up to date; the tree is). The unnamed data stream is stale
    /// once `staged` is set.
    pub(crate) inode: Inode,
    /// Number of names.
    pub(crate) names: u32,
    /// Directory and name of one of its names (for a directory, its only name): how the
    /// journal names it. Stale while the inode has no name left.
    pub(crate) parent: u64,
    pub(crate) name: String,
    /// Entries of a directory, by name.
    pub(crate) children: BTreeMap<String, Entry>,
    /// Length of the data in the overlay, once the data lives there.
    pub(crate) staged: Option<u64>,
    /// The data of a small file made on this mount (then `staged` is `None`).
    pub(crate) small: Option<Small>,
    /// Reparse data of a link made on this mount (not in the WIM).
    pub(crate) new_reparse: Option<Vec<u8>>,
    /// A security descriptor set on this mount (Windows), replacing `inode.security_id`'s.
    pub(crate) new_security: Option<Vec<u8>>,
    /// Named data streams set on this mount, (name, contents); a stream of the same name
    /// is gone from `inode.streams`, which keeps only the untouched ones.
    pub(crate) new_streams: NewStreams,
    /// Data written since the last close (the journal then records the new times).
    pub(crate) written: bool,
    /// Next `readdir` position to give out (0..=2 are the start, "." and "..").
    pub(crate) next_pos: u64,
    /// For a symlink of the image: its target's length, once read (`st_size`).
    pub(crate) link_len: Option<u64>,
    /// Whether the inode comes from the image, whose copy in the read-only core (same
    /// number) serves its data while the data is unchanged.
    pub(crate) from_image: bool,
}

impl RwNode {
    /// A node made on the mount, not yet in a directory.
    pub(crate) fn new(inode: Inode) -> RwNode {
        RwNode {
            inode,
            names: 1,
            parent: ROOT_INO,
            name: String::new(),
            children: BTreeMap::new(),
            staged: None,
            small: None,
            new_reparse: None,
            new_security: None,
            new_streams: Vec::new(),
            written: false,
            next_pos: 3,
            link_len: None,
            from_image: false,
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.inode.is_directory()
    }

    pub(crate) fn add_entry(&mut self, name: &str, ino: u64, short_name: String) {
        let pos = self.next_pos;
        self.next_pos += 1;
        self.children.insert(
            name.to_string(),
            Entry {
                ino,
                short_name,
                pos,
            },
        );
    }

    pub(crate) fn size(&self) -> u64 {
        match &self.small {
            Some(s) => s.len(),
            None => self.staged.unwrap_or_else(|| self.inode.size()),
        }
    }

    /// Whether the unnamed data is still the image's.
    pub(crate) fn data_unchanged(&self) -> bool {
        self.from_image && self.staged.is_none() && self.small.is_none()
    }
}

/// An open file.
pub(crate) struct OpenFile {
    pub(crate) ino: u64,
    /// The handle in the read-only core that reads the image's data of an unchanged file
    /// (opened on the first read).
    pub(crate) base_fh: Option<u64>,
}

pub(crate) struct Tree {
    /// The image as mounted.
    pub(crate) base: Arc<Fs>,
    /// The layer, by inode number (a fast hasher: it is looked up all the time).
    pub(crate) nodes: FxHashMap<u64, RwNode>,
    /// Inodes of the image removed on the mount.
    gone: FxHashSet<u64>,
    /// Open handles per inode.
    open: FxHashMap<u64, u32>,
    pub(crate) next_ino: u64,
    pub(crate) handles: HashMap<u64, OpenFile>,
    pub(crate) next_fh: u64,
    /// Whether changes are journaled (not in tests and during a replay).
    pub(crate) journaling: bool,
    /// Journal lines of changes made under the lock, written to the journal once it is
    /// released (see `RwFs::flush_journal`), in this order.
    pub(crate) pending: Vec<u8>,
    /// Named data streams opened by Windows path (`file:name`), by the number they were
    /// given: (the file's number, the stream's name). Numbers are not reused.
    pub(crate) streams: FxHashMap<u64, (u64, String)>,
    stream_numbers: HashMap<(u64, String), u64>,
    /// Streams written through a handle since their contents were last journaled.
    pub(crate) dirty_streams: FxHashSet<u64>,
    /// Open inodes whose data is the image's, with the flag their lock-free readers check
    /// (cleared by [`Tree::data_may_change`]).
    image_data: FxHashMap<u64, Arc<AtomicBool>>,
}

impl Tree {
    pub(crate) fn new(base: Arc<Fs>) -> Tree {
        Tree {
            next_ino: base.last_ino() + 1,
            base,
            nodes: FxHashMap::default(),
            gone: FxHashSet::default(),
            open: FxHashMap::default(),
            handles: HashMap::new(),
            next_fh: 1,
            journaling: false,
            pending: Vec::new(),
            streams: FxHashMap::default(),
            stream_numbers: HashMap::new(),
            dirty_streams: FxHashSet::default(),
            image_data: FxHashMap::default(),
        }
    }

    /// The number of named stream `name` of file `file`, given out on first use.
    pub(crate) fn stream_number(&mut self, file: u64, name: &str) -> u64 {
        if let Some(&n) = self.stream_numbers.get(&(file, name.to_string())) {
            return n;
        }
        let n = self.next_ino;
        self.next_ino += 1;
        self.streams.insert(n, (file, name.to_string()));
        self.stream_numbers.insert((file, name.to_string()), n);
        n
    }

    /// The entry `name` of directory `dir` as Windows finds it: exactly, else (when `ci`)
    /// ignoring case, else (when `ci`) by DOS name. Returns the entry's number, its stored
    /// name and whether a DOS name matched.
    pub(crate) fn win_child(
        &self,
        dir: u64,
        name: &str,
        ci: bool,
    ) -> FsResult<(u64, String, bool)> {
        self.check_dir(dir)?;
        if let Some(n) = self.nodes.get(&dir) {
            if let Some(e) = n.children.get(name) {
                return Ok((e.ino, name.to_string(), false));
            }
            if !ci {
                return Err(Errno::ENOENT);
            }
            let folded = n.children.iter().find(|(k, _)| eq_folded(k, name));
            if let Some((k, e)) = folded {
                return Ok((e.ino, k.clone(), false));
            }
            let short = n
                .children
                .iter()
                .find(|(_, e)| !e.short_name.is_empty() && eq_folded(&e.short_name, name));
            return short
                .map(|(k, e)| (e.ino, k.clone(), true))
                .ok_or(Errno::ENOENT);
        }
        let i = self.image_inode(dir).ok_or(Errno::ENOENT)?;
        let (c, via_short) = match self.base.child(i, name) {
            Some(c) => (c, false),
            None if ci => (
                self.base
                    .child_by_short_name(i, name)
                    .ok_or(Errno::ENOENT)?,
                true,
            ),
            None => return Err(Errno::ENOENT),
        };
        let d = &self.base.img.dentries[c];
        Ok((self.base.ino_of(d.inode), d.name.clone(), via_short))
    }

    /// The image inode numbered `ino`, unless it is gone or not an inode of the image.
    fn image_inode(&self, ino: u64) -> Option<InodeId> {
        match self.base.node(ino) {
            Ok(Node::Inode(i)) if !self.gone.contains(&ino) => Some(i),
            _ => None,
        }
    }

    /// `Some(node)` for an inode in the layer, `None` for an unchanged inode of the image
    /// (ask the base), ENOENT for no inode.
    pub(crate) fn peek(&self, ino: u64) -> FsResult<Option<&RwNode>> {
        match self.nodes.get(&ino) {
            Some(n) => Ok(Some(n)),
            None if self.image_inode(ino).is_some() => Ok(None),
            None => Err(Errno::ENOENT),
        }
    }

    /// Brings inode `ino` of the image into the layer (a no-op for one there already).
    fn materialize(&mut self, ino: u64) -> FsResult<()> {
        if self.nodes.contains_key(&ino) {
            return Ok(());
        }
        let i = self.image_inode(ino).ok_or(Errno::ENOENT)?;
        let img = &self.base.img;
        let inode = &img.inodes[i];
        let (parent, name) = self.image_parent_name(i).unwrap_or((ROOT_INO, ""));
        let mut n = RwNode::new(inode.clone());
        n.inode.dentries.clear();
        n.names = (inode.dentries.len() as u32).max(1);
        n.parent = parent;
        n.name = name.to_string();
        n.from_image = true;
        if inode.is_directory() {
            let d = self.base.dir_dentry(i);
            for (k, &c) in img.dentries[d].children.iter().enumerate() {
                let child = &img.dentries[c];
                n.children.insert(
                    child.name.clone(),
                    Entry {
                        ino: self.base.ino_of(child.inode),
                        short_name: child.short_name.clone(),
                        // The read-only core's listing offsets: a listing that goes on
                        // across the change skips nothing.
                        pos: 3 + k as u64,
                    },
                );
            }
            n.next_pos = 3 + img.dentries[d].children.len() as u64;
        }
        self.nodes.insert(ino, n);
        Ok(())
    }

    /// The first name of image inode `i`: (its directory's number, the name).
    fn image_parent_name(&self, i: InodeId) -> Option<(u64, &str)> {
        let img = &self.base.img;
        let &d = img.inodes[i].dentries.first()?;
        let dentry = &img.dentries[d];
        if dentry.parent == d {
            return None;
        }
        Some((
            self.base.ino_of(img.dentries[dentry.parent].inode),
            dentry.name.as_str(),
        ))
    }

    /// The node of `ino`, brought into the layer: for changing it, or where a read needs
    /// the layer's view anyway.
    pub(crate) fn get(&mut self, ino: u64) -> FsResult<&RwNode> {
        self.materialize(ino)?;
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    pub(crate) fn get_mut(&mut self, ino: u64) -> FsResult<&mut RwNode> {
        self.materialize(ino)?;
        self.data_may_change(ino);
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    /// Ends the lock-free reads of `ino`'s image data (see `RwFs::fast`): called before
    /// anything about the inode can change, so that a read that starts after the change
    /// takes the locked path.
    pub(crate) fn data_may_change(&mut self, ino: u64) {
        if let Some(flag) = self.image_data.remove(&ino) {
            flag.store(false, Ordering::Release);
        }
    }

    /// A flag that stays set while `ino`'s data is the image's, for a lock-free reader;
    /// `None` if the data changed already.
    pub(crate) fn image_data_flag(&mut self, ino: u64) -> Option<Arc<AtomicBool>> {
        if self.peek(ino).ok()?.is_some_and(|n| !n.data_unchanged()) {
            return None;
        }
        let flag = self
            .image_data
            .entry(ino)
            .or_insert_with(|| Arc::new(AtomicBool::new(true)));
        Some(Arc::clone(flag))
    }

    /// The type of `ino`, from the layer or the image.
    pub(crate) fn kind(&self, ino: u64, unix_data: bool) -> FsResult<Kind> {
        match self.peek(ino)? {
            Some(n) => Ok(super::super::attr::kind_of(&n.inode, unix_data)),
            None => Ok(self
                .base
                .kind_of(self.image_inode(ino).ok_or(Errno::ENOENT)?)),
        }
    }

    pub(crate) fn is_dir(&self, ino: u64) -> bool {
        match self.nodes.get(&ino) {
            Some(n) => n.is_dir(),
            None => self
                .image_inode(ino)
                .is_some_and(|i| self.base.img.inodes[i].is_directory()),
        }
    }

    /// ENOTDIR unless `ino` is a directory (ENOENT if there is no such inode).
    pub(crate) fn check_dir(&self, ino: u64) -> FsResult<()> {
        self.peek(ino)?;
        if !self.is_dir(ino) {
            return Err(Errno::ENOTDIR);
        }
        Ok(())
    }

    /// The number of `dir`'s entry `name`.
    pub(crate) fn child(&self, dir: u64, name: &str) -> FsResult<u64> {
        self.check_dir(dir)?;
        if let Some(n) = self.nodes.get(&dir) {
            return n.children.get(name).map(|e| e.ino).ok_or(Errno::ENOENT);
        }
        let i = self.image_inode(dir).ok_or(Errno::ENOENT)?;
        let c = self.base.child(i, name).ok_or(Errno::ENOENT)?;
        Ok(self.base.ino_of(self.base.img.dentries[c].inode))
    }

    /// The DOS name of `dir`'s entry `name`, if it has one.
    pub(crate) fn short_name_in(&self, dir: u64, name: &str) -> Option<String> {
        let s = match self.nodes.get(&dir) {
            Some(n) => n.children.get(name)?.short_name.clone(),
            None => {
                let c = self.base.child(self.image_inode(dir)?, name)?;
                self.base.img.dentries[c].short_name.clone()
            }
        };
        (!s.is_empty()).then_some(s)
    }

    /// The directory and name the journal knows `ino` by (`None` for the root).
    fn parent_name(&self, ino: u64) -> Option<(u64, &str)> {
        if ino == ROOT_INO {
            return None;
        }
        match self.nodes.get(&ino) {
            Some(n) => Some((n.parent, n.name.as_str())),
            None => self.image_parent_name(self.image_inode(ino)?),
        }
    }

    /// The directory `ino` is in (the root's is the root).
    pub(crate) fn parent(&self, ino: u64) -> u64 {
        self.parent_name(ino).map_or(ROOT_INO, |(p, _)| p)
    }

    fn names(&self, ino: u64) -> u32 {
        match self.nodes.get(&ino) {
            Some(n) => n.names,
            None => u32::from(self.image_inode(ino).is_some()),
        }
    }

    /// Whether `ino` is `anc` or lies below it.
    pub(crate) fn is_within(&self, mut ino: u64, anc: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.parent_name(ino) {
                Some((p, _)) => ino = p,
                None => return false,
            }
        }
    }

    /// The path of `dir/name` from the image root, as the journal writes it.
    pub(crate) fn path_in(&self, dir: u64, name: &str) -> String {
        let mut parts = vec![name];
        let mut ino = dir;
        while let Some((p, n)) = self.parent_name(ino) {
            parts.push(n);
            ino = p;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The path of one of `ino`'s names (`None` once it has none).
    pub(crate) fn path(&self, ino: u64) -> Option<String> {
        if ino == ROOT_INO {
            return Some(String::new());
        }
        if self.names(ino) == 0 {
            return None;
        }
        let (p, n) = self.parent_name(ino)?;
        Some(self.path_in(p, n))
    }

    /// Counts a new handle of `ino`.
    pub(crate) fn opened(&mut self, ino: u64) {
        *self.open.entry(ino).or_default() += 1;
    }

    /// Counts a closed handle of `ino`.
    pub(crate) fn closed(&mut self, ino: u64) {
        if let Some(c) = self.open.get_mut(&ino) {
            *c -= 1;
            if *c == 0 {
                self.open.remove(&ino);
                self.image_data.remove(&ino);
            }
        }
    }

    /// Drops one name of `ino`; returns the inode number if the inode is now gone and its
    /// staging file has to be removed.
    pub(crate) fn drop_name(&mut self, ino: u64) -> Option<u64> {
        let n = self.get_mut(ino).ok()?;
        n.names = n.names.saturating_sub(1);
        self.reap(ino)
    }

    /// Forgets `ino` once it has neither a name nor an open handle; returns it if it had a
    /// staging file to remove.
    pub(crate) fn reap(&mut self, ino: u64) -> Option<u64> {
        let n = self.nodes.get(&ino)?;
        if n.names == 0 && !self.open.contains_key(&ino) {
            let staged = n.staged.is_some();
            if n.from_image {
                self.gone.insert(ino);
            }
            self.nodes.remove(&ino);
            return staged.then_some(ino);
        }
        None
    }

    /// Queues a journal line made by `r` (not called when there is no journal).
    pub(crate) fn log(&mut self, r: impl FnOnce(&Tree) -> Option<Record>) {
        if !self.journaling {
            return;
        }
        if let Some(rec) = r(self) {
            match journal::line(&rec) {
                Ok(l) => self.pending.extend_from_slice(l.as_bytes()),
                Err(e) => tracing::error!("cannot journal {rec:?}: {e}"),
            }
        }
    }

    /// Journals `ino`'s new modification time.
    pub(crate) fn log_mtime(&mut self, ino: u64, mtime: u64) {
        self.log(|t| {
            Some(Record::SetAttr {
                path: t.path(ino)?,
                size: None,
                mode: None,
                uid: None,
                gid: None,
                atime: None,
                mtime: Some(mtime),
                btime: None,
                attributes: None,
            })
        });
    }

    /// `ino` loses its name `dir/name` (already removed from `dir`): if that was the name
    /// the journal knows it by, another of its names takes its place.
    pub(crate) fn unname(&mut self, ino: u64, dir: u64, name: &str) {
        let Ok(n) = self.get(ino) else {
            return;
        };
        if n.names <= 1 || n.parent != dir || n.name != name {
            return;
        }
        // Another name: in a directory of the layer, or one of the image's names in a
        // directory still as it was.
        let in_layer = self.nodes.iter().find_map(|(&d, dn)| {
            dn.children
                .iter()
                .find(|(_, e)| e.ino == ino)
                .map(|(nm, _)| (d, nm.clone()))
        });
        let other = in_layer.or_else(|| {
            let i = self.image_inode(ino)?;
            let img = &self.base.img;
            img.inodes[i].dentries.iter().find_map(|&d| {
                let p = self.base.ino_of(img.dentries[img.dentries[d].parent].inode);
                (!self.nodes.contains_key(&p)).then(|| (p, img.dentries[d].name.clone()))
            })
        });
        if let (Some((d, nm)), Some(n)) = (other, self.nodes.get_mut(&ino)) {
            n.parent = d;
            n.name = nm;
        }
    }

    /// `ino`'s name `from` became `to`: the name the journal knows it by follows.
    pub(crate) fn rename_primary(&mut self, ino: u64, from: (u64, &str), to: (u64, &str)) {
        if let Ok(n) = self.get_mut(ino) {
            if n.parent == from.0 && n.name == from.1 {
                n.parent = to.0;
                n.name = to.1.to_string();
            }
        }
    }

    pub(crate) fn touch_dir(&mut self, dir: u64) {
        if let Ok(n) = self.get_mut(dir) {
            n.inode.last_write_time = now_filetime();
        }
    }

    /// The entries of directory `ino` as (name, number, DOS name), layer or image.
    pub(crate) fn entries(&self, ino: u64) -> Vec<(&str, u64, &str)> {
        match self.nodes.get(&ino) {
            Some(n) => n
                .children
                .iter()
                .map(|(name, e)| (name.as_str(), e.ino, e.short_name.as_str()))
                .collect(),
            None => match self.image_inode(ino) {
                Some(i) => {
                    let img = &self.base.img;
                    img.dentries[self.base.dir_dentry(i)]
                        .children
                        .iter()
                        .map(|&c| {
                            let d = &img.dentries[c];
                            (
                                d.name.as_str(),
                                self.base.ino_of(d.inode),
                                d.short_name.as_str(),
                            )
                        })
                        .collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// The inode record of `ino` as the layer or the image has it.
    pub(crate) fn inode(&self, ino: u64) -> Option<&Inode> {
        match self.nodes.get(&ino) {
            Some(n) => Some(&n.inode),
            None => Some(&self.base.img.inodes[self.image_inode(ino)?]),
        }
    }

    /// Bytes and inodes the tree holds: the image's, corrected by the layer.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let base = self.base.statfs();
        let mut bytes = base.blocks * super::super::attr::BLOCK;
        let mut files = base.files;
        for (&ino, n) in &self.nodes {
            if n.from_image {
                if let Some(i) = self.base.img.inodes.get(self.base_index(ino)) {
                    bytes = bytes.saturating_sub(i.size());
                }
            } else {
                files += 1;
            }
            bytes += n.size();
        }
        for &ino in &self.gone {
            if let Some(i) = self.base.img.inodes.get(self.base_index(ino)) {
                bytes = bytes.saturating_sub(i.size());
            }
            files = files.saturating_sub(1);
        }
        (bytes, files)
    }

    /// The image's index of inode number `ino` (gone or not).
    fn base_index(&self, ino: u64) -> usize {
        match self.base.node(ino) {
            Ok(Node::Inode(i)) => i,
            _ => usize::MAX,
        }
    }
}
