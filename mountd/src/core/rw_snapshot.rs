//! The tree of a read-write mount as an image, for a commit.

use super::*;

impl RwFs {
    /// A snapshot of the tree as an image, for commit. Untouched inodes keep everything
    /// the image had; inodes whose data was staged or links made on this mount are listed
    /// in the result for the caller to write and fill in.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let tree = self.tree();
        let (names, inodes) = {
            let b = self.base.image();
            (
                b.dentries.len() + tree.nodes.len() + 1,
                b.inodes.len() + tree.nodes.len(),
            )
        };
        // Sized up front: growing these by doubling would touch twice the memory.
        let mut img = Image {
            index: self.image_index(),
            security: self.security.clone(),
            dentries: Vec::with_capacity(names),
            inodes: Vec::with_capacity(inodes),
        };
        let mut inode_of: rustc_hash::FxHashMap<u64, usize> =
            rustc_hash::FxHashMap::with_capacity_and_hasher(inodes, Default::default());
        let mut staged = Vec::new();
        let mut small = Vec::new();
        let mut reparse = Vec::new();
        let mut streams = Vec::new();
        // Descriptors set on the mount, by their index in the new table.
        let mut new_ids: HashMap<Vec<u8>, i32> = HashMap::new();
        // (dentry id, inode number) of directories still to fill, depth first.
        let mut stack: Vec<(DentryId, u64)> = Vec::new();
        let mut add = |img: &mut Image, ino: u64, name: &str, short: &str, parent: DentryId| {
            let id = *inode_of.entry(ino).or_insert_with(|| {
                let id = img.inodes.len();
                let Some(n) = tree.nodes.get(&ino) else {
                    // Unchanged: the image's record as it is.
                    // (Every listed number has one; an empty file would stand in otherwise.)
                    let mut inode = tree
                        .inode(ino)
                        .cloned()
                        .unwrap_or_else(|| self.new_node(0, Kind::File, 0o644, 0, 0).inode);
                    inode.dentries.clear();
                    img.inodes.push(inode);
                    return id;
                };
                let mut inode = n.inode.clone();
                inode.dentries.clear();
                if n.staged.is_some() || n.small.is_some() {
                    inode
                        .streams
                        .retain(|s| !(s.kind == StreamKind::Data && s.name.is_empty()));
                }
                match (&n.small, n.staged) {
                    (Some(d), _) if d.len() > 0 => small.push((id, d.clone())),
                    (None, Some(len)) if len > 0 => staged.push((id, ino, len)),
                    _ => {}
                }
                if let Some(d) = &n.new_reparse {
                    inode.streams.retain(|s| s.kind != StreamKind::Reparse);
                    reparse.push((id, d.clone()));
                }
                if let Some(sd) = &n.new_security {
                    inode.security_id = security_id(&mut img.security, &mut new_ids, sd);
                }
                if !n.new_streams.is_empty() {
                    streams.push((id, n.new_streams.clone()));
                }
                img.inodes.push(inode);
                id
            });
            let d = img.dentries.len();
            img.dentries.push(wimfs::Dentry {
                name: name.to_string(),
                short_name: short.to_string(),
                parent,
                children: Vec::new(),
                inode: id,
            });
            img.inodes[id].dentries.push(d);
            d
        };
        let root = add(&mut img, ROOT_INO, "", "", 0);
        stack.push((root, ROOT_INO));
        while let Some((d, ino)) = stack.pop() {
            let mut kids = tree.entries(ino);
            kids.sort_by(|a, b| wimfs::image::name_order(a.0, b.0));
            for (name, child, short) in kids {
                let c = add(&mut img, child, name, short, d);
                img.dentries[d].children.push(c);
                if tree.is_dir(child) {
                    stack.push((c, child));
                }
            }
        }
        Snapshot {
            image: img,
            staged,
            small,
            reparse,
            streams,
        }
    }
}

/// The index of descriptor `sd` in `table`, added at its end the first time.
fn security_id(table: &mut Vec<Vec<u8>>, known: &mut HashMap<Vec<u8>, i32>, sd: &[u8]) -> i32 {
    if let Some(&id) = known.get(sd) {
        return id;
    }
    let id = match table.iter().position(|t| t == sd) {
        Some(k) => k as i32,
        None => {
            table.push(sd.to_vec());
            table.len() as i32 - 1
        }
    };
    known.insert(sd.to_vec(), id);
    id
}

/// The tree as an image, plus the data that is not in the WIM yet.
pub(crate) struct Snapshot {
    pub(crate) image: Image,
    /// (image inode, inode number whose overlay file holds the data, its length).
    pub(crate) staged: Vec<(usize, u64, u64)>,
    /// (image inode, where the data of a small file made on the mount is).
    pub(crate) small: Vec<(usize, Small)>,
    /// (image inode, reparse data of a link made on this mount).
    pub(crate) reparse: Vec<(usize, Vec<u8>)>,
    /// (image inode, named data streams set on this mount: name, contents).
    pub(crate) streams: Vec<(usize, tree::NewStreams)>,
}
