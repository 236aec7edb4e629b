//! The names of a read-write mount: new nodes (files, special files, directories, links)
//! and removing and renaming them.

use super::*;

impl RwFs {
    pub(super) fn new_node(
        &self,
        attributes: u32,
        kind: Kind,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> RwNode {
        // No security descriptor: Windows gives the file its directory's inherited ACL on
        // apply, as it does for files wimlib captures on Linux.
        RwNode::new(Inode {
            unix: self
                .opts
                .unix_data
                .then(|| default_unix(kind, mode, uid, gid)),
            ..Inode::new(attributes, now_filetime())
        })
    }

    /// Adds `node` as `name` in `parent`; returns its attributes.
    pub(super) fn insert(
        &self,
        tree: &mut Tree,
        parent: u64,
        name: &str,
        mut node: RwNode,
    ) -> FsResult<Attr> {
        tree.check_dir(parent)?;
        if tree.child(parent, name).is_ok() {
            return Err(Errno(libc::EEXIST));
        }
        let ino = tree.next_ino;
        tree.next_ino += 1;
        node.parent = parent;
        node.name = name.to_string();
        tree.nodes.insert(ino, node);
        tree.get_mut(parent)?.add_entry(name, ino, String::new());
        tree.touch_dir(parent);
        self.attr_of(tree, ino)
    }

    /// Creates and opens an empty regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        if self.opts.streams == StreamsInterface::Windows {
            if let Some((file, stream)) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.split_once(':'))
            {
                let file = self.tree().child(parent, file)?;
                let s = self.new_stream(file, stream)?;
                return Ok((self.getattr(s)?, self.open(s, true, false)?));
            }
        }
        let _g = self.changing();
        let name = check_name(name)?;
        let mut node = self.new_node(FILE_ATTRIBUTE_NORMAL, Kind::File, mode, uid, gid);
        node.small = Some(Small::Mem(Vec::new()));
        let attr = {
            let mut tree = self.tree();
            let attr = self.insert(&mut tree, parent, name, node)?;
            tree.log(|t| {
                Some(Record::Create {
                    path: t.path_in(parent, name),
                    file: attr.ino,
                    mode,
                    uid,
                    gid,
                })
            });
            attr
        };
        let fh = self.open(attr.ino, true, false)?;
        Ok((attr, fh))
    }

    /// Creates a node of the type in `mode`'s S_IFMT bits, not opened: a regular file, or
    /// with --unix-data a character or block device, fifo or socket, stored as wimlib stores
    /// them (no attributes, no data, UNIX data with the mode and, for devices, `rdev`).
    /// Without --unix-data a WIM has no way to say what such a file is: EPERM.
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let kind = match mode & 0o170000 {
            0 | 0o100000 => Kind::File,
            0o020000 => Kind::CharDevice,
            0o060000 => Kind::BlockDevice,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => return Err(Errno::EINVAL),
        };
        let node = if kind == Kind::File {
            let mut node = self.new_node(FILE_ATTRIBUTE_NORMAL, kind, mode, uid, gid);
            node.small = Some(Small::Mem(Vec::new()));
            node
        } else {
            if !self.opts.unix_data {
                return Err(Errno(libc::EPERM));
            }
            let mut node = self.new_node(0, kind, mode, uid, gid);
            let device = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
            node.inode.unix = Some(UnixData {
                uid,
                gid,
                mode: mode & 0o177777,
                rdev: if device { rdev } else { 0 },
            });
            node
        };
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            let path = t.path_in(parent, name);
            Some(match kind {
                Kind::File => Record::Create {
                    path,
                    file: attr.ino,
                    mode,
                    uid,
                    gid,
                },
                _ => Record::Mknod {
                    path,
                    mode,
                    rdev,
                    uid,
                    gid,
                },
            })
        });
        Ok(attr)
    }

    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let node = self.new_node(FILE_ATTRIBUTE_DIRECTORY, Kind::Directory, mode, uid, gid);
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            Some(Record::Mkdir {
                path: t.path_in(parent, name),
                mode,
                uid,
                gid,
            })
        });
        Ok(attr)
    }

    /// Creates a symbolic link, stored as a Windows symlink reparse point.
    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let target = std::str::from_utf8(target).map_err(|_| Errno::EINVAL)?;
        let data = wimfs::format::reparse::symlink_reparse_data(target)
            .ok_or(Errno(libc::ENAMETOOLONG))?;
        let mut node = self.new_node(FILE_ATTRIBUTE_REPARSE_POINT, Kind::Symlink, 0o777, uid, gid);
        node.inode.reparse_tag = IO_REPARSE_TAG_SYMLINK;
        node.inode.rp_flags = RP_FLAG_NOT_FIXED;
        node.new_reparse = Some(data);
        let mut tree = self.tree();
        let attr = self.insert(&mut tree, parent, name, node)?;
        tree.log(|t| {
            Some(Record::Symlink {
                path: t.path_in(parent, name),
                target: target.to_string(),
                uid,
                gid,
            })
        });
        Ok(attr)
    }

    /// Gives `ino` another name (a hard link).
    pub fn link(&self, ino: u64, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let _g = self.changing();
        let name = check_name(name)?;
        let mut tree = self.tree();
        if tree.get(ino)?.is_dir() {
            return Err(Errno(libc::EPERM));
        }
        tree.check_dir(parent)?;
        if tree.child(parent, name).is_ok() {
            return Err(Errno(libc::EEXIST));
        }
        let from = tree.path(ino);
        let n = tree.get_mut(ino)?;
        if n.names == 0 {
            // Linking an open but unlinked file back in: this is its name now.
            n.parent = parent;
            n.name = name.to_string();
        }
        n.names += 1;
        tree.get_mut(parent)?.add_entry(name, ino, String::new());
        tree.touch_dir(parent);
        // A file that had no name has no path to link from: the journal cannot express
        // that (its data would be lost on recovery), so it is left out.
        tree.log(|t| {
            from.map(|from| Record::Link {
                from,
                to: t.path_in(parent, name),
            })
        });
        self.attr_of(&tree, ino)
    }

    /// Removes a non-directory name.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        if self.tree().child(parent, name).is_err() {
            if let Some(s) = self.stream_by_name(parent, name) {
                let (file, stream) = self.stream_of(s?).ok_or(Errno::ENOENT)?;
                return self.remove_stream(file, &stream);
            }
        }
        let _g = self.changing();
        let gone = {
            let mut tree = self.tree();
            let ino = tree.child(parent, name)?;
            if tree.get(ino)?.is_dir() {
                return Err(Errno::EISDIR);
            }
            let path = tree.path_in(parent, name);
            tree.get_mut(parent)?.children.remove(name);
            tree.touch_dir(parent);
            tree.unname(ino, parent, name);
            tree.log(|_| Some(Record::Unlink { path }));
            tree.drop_name(ino)
        };
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let _g = self.changing();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let mut tree = self.tree();
        let ino = tree.child(parent, name)?;
        let n = tree.get(ino)?;
        if !n.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !n.children.is_empty() {
            return Err(Errno(libc::ENOTEMPTY));
        }
        tree.log(|t| {
            Some(Record::Rmdir {
                path: t.path_in(parent, name),
            })
        });
        tree.get_mut(parent)?.children.remove(name);
        tree.touch_dir(parent);
        tree.drop_name(ino);
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name` (`flags`: [`RENAME_NOREPLACE`],
    /// [`RENAME_EXCHANGE`]); an existing target is replaced unless told otherwise.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let _g = self.changing();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let new_name = check_name(new_name)?;
        let gone = {
            let mut tree = self.tree();
            let record = |t: &Tree| Record::Rename {
                from: t.path_in(parent, name),
                to: t.path_in(new_parent, new_name),
                flags,
            };
            let src = tree.child(parent, name)?;
            tree.check_dir(new_parent)?;
            let dst = tree.child(new_parent, new_name).ok();
            let src_dir = tree.get(src)?.is_dir();
            if src_dir && tree.is_within(new_parent, src) {
                return Err(Errno::EINVAL);
            }
            if flags & RENAME_EXCHANGE != 0 {
                let dst = dst.ok_or(Errno::ENOENT)?;
                if tree.get(dst)?.is_dir() && tree.is_within(parent, dst) {
                    return Err(Errno::EINVAL);
                }
                let a = tree
                    .get_mut(parent)?
                    .children
                    .remove(name)
                    .expect("looked up");
                let b = tree
                    .get_mut(new_parent)?
                    .children
                    .remove(new_name)
                    .expect("looked up");
                let rec = record(&tree);
                tree.get_mut(parent)?.add_entry(name, b.ino, String::new());
                tree.get_mut(new_parent)?
                    .add_entry(new_name, a.ino, String::new());
                if src == dst {
                    // Two names of one file swapped: nothing changes.
                } else {
                    tree.rename_primary(src, (parent, name), (new_parent, new_name));
                    tree.rename_primary(dst, (new_parent, new_name), (parent, name));
                }
                tree.log(|_| Some(rec));
                tree.touch_dir(parent);
                tree.touch_dir(new_parent);
                return Ok(());
            }
            let mut gone = None;
            if let Some(dst) = dst {
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(Errno(libc::EEXIST));
                }
                if dst == src {
                    // Two names of one file: POSIX says nothing happens.
                    return Ok(());
                }
                let d = tree.get(dst)?;
                match (src_dir, d.is_dir()) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) if !d.children.is_empty() => return Err(Errno(libc::ENOTEMPTY)),
                    _ => {}
                }
                let rec = record(&tree);
                tree.get_mut(new_parent)?.children.remove(new_name);
                tree.unname(dst, new_parent, new_name);
                gone = tree.drop_name(dst);
                tree.log(|_| Some(rec));
            } else {
                tree.log(|t| Some(record(t)));
            }
            tree.get_mut(parent)?.children.remove(name);
            tree.get_mut(new_parent)?
                .add_entry(new_name, src, String::new());
            tree.rename_primary(src, (parent, name), (new_parent, new_name));
            tree.touch_dir(parent);
            tree.touch_dir(new_parent);
            gone
        };
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
        Ok(())
    }
}
