//! The Windows view of a read-write mount ([`WinOps`]): the read-only core's answers for
//! what the layer does not hold, the same rules (`wininfo`) over the layer's nodes for what
//! it does, and the changes Windows makes by path.
//!
//! Decisions:
//! - Names are found as on a read-only mount: exactly, else ignoring case, else by DOS name
//!   (case-insensitive mounts). A new name that equals an existing one but for case is the
//!   existing one (EEXIST), as on NTFS; a rename that changes only case keeps the file.
//! - New files and directories get the security descriptor the WinFsp driver computes for
//!   them (the creator's, or the inheritable entries of the parent's descriptor, as NTFS
//!   would); it is stored with the image on commit. Without one they show the default.
//! - Named data streams (`file:name`) are kept in memory while the mount lives, up to
//!   [`STREAM_MAX`] each, and written as blobs on commit; a stream's contents are journaled
//!   when its last writer closes it. Streams of unchanged files are read through the
//!   read-only core.
//! - Attributes: the kind bits (directory, reparse point) are the core's; READONLY, HIDDEN,
//!   SYSTEM, ARCHIVE, TEMPORARY, OFFLINE and NOT_CONTENT_INDEXED are the caller's.

use wimfs::format::dentry::{FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL};
use wimfs::time::now_filetime;
use wimfs::StreamKind;

use super::super::names::{collate, eq_folded, matches_all, wildcard_match};
use super::super::wininfo::{
    info_of, is_valid_security_descriptor, security_or_default, streams_of, WRITE_ACCESS,
};
use super::super::winpath::parse_win_path;
use super::super::{BasicInfo, NewFile, Resolved, WinInfo, WinOps, WinStream, WinVolume};
use super::{attr_of, Attr, Errno, FsResult, Kind, RwFs, RwNode, Tree, ROOT_INO, RW_FILE_BLKSIZE};
use crate::core::{DirEntry, FsOps};
use crate::journal::Record;

/// Largest named data stream a read-write mount takes (they live in memory until commit).
pub const STREAM_MAX: u64 = 64 << 20;

/// FILE_ATTRIBUTE_* bits a caller may set.
const SETTABLE: u32 = 0x1 | 0x2 | 0x4 | 0x20 | 0x100 | 0x1000 | 0x2000;

impl RwFs {
    /// The descriptor of layer node `n`: one set on the mount, else the image's.
    pub(crate) fn security_of<'a>(&'a self, n: &'a RwNode) -> Option<&'a [u8]> {
        match &n.new_security {
            Some(sd) => Some(sd),
            None => usize::try_from(n.inode.security_id)
                .ok()
                .and_then(|id| self.security.get(id))
                .map(Vec::as_slice),
        }
    }

    /// The file and name of stream number `ino`, if it is one.
    pub(crate) fn stream_of(&self, ino: u64) -> Option<(u64, String)> {
        self.tree().streams.get(&ino).cloned()
    }

    /// The parent directory and stored name of `path` (which must not name a stream).
    fn win_parent(&self, path: &str) -> FsResult<(u64, String)> {
        let p = parse_win_path(path)?;
        let Some((last, dirs)) = p.components.split_last() else {
            return Err(Errno(libc::EPERM));
        };
        let ci = self.opts.case_insensitive;
        let tree = self.tree();
        let mut dir = ROOT_INO;
        for comp in dirs {
            dir = tree.win_child(dir, comp, ci).map_err(|_| Errno::ENOTDIR)?.0;
        }
        match tree.win_child(dir, last, ci) {
            Ok((_, stored, _)) => Ok((dir, stored)),
            Err(e) if e == Errno::ENOENT => Ok((dir, last.to_string())),
            Err(e) => Err(e),
        }
    }

    /// The named streams of `file` (untouched ones of the image, then those set on the
    /// mount), with their sizes.
    fn stream_names(&self, tree: &Tree, file: u64) -> FsResult<Vec<(String, u64)>> {
        Ok(match tree.peek(file)? {
            Some(n) => n
                .inode
                .named_streams()
                .map(|s| (s.name.clone(), s.size()))
                .chain(
                    n.new_streams
                        .iter()
                        .map(|(k, v)| (k.clone(), v.len() as u64)),
                )
                .collect(),
            None => self
                .base
                .win_streams(file)?
                .into_iter()
                .filter(|s| !s.name.is_empty())
                .map(|s| (s.name, s.size))
                .collect(),
        })
    }

    /// Makes stream `name` of `file` one of the layer's (`new_streams`), with the image's
    /// contents if it had it (read outside the tree lock), or empty.
    fn stream_in_layer(&self, file: u64, name: &str) -> FsResult<()> {
        let loc = {
            let mut tree = self.tree();
            let n = tree.get_mut(file)?;
            if n.new_streams.iter().any(|(k, _)| k == name) {
                return Ok(());
            }
            let loc = n
                .inode
                .named_streams()
                .find(|s| s.name == name)
                .and_then(|s| s.blob);
            loc
        };
        let value = match loc {
            Some(loc) => self.wim.read_blob(&loc, true).map_err(|e| {
                tracing::error!("inode {file}: reading stream {name:?} failed: {e}");
                Errno::EIO
            })?,
            None => Vec::new(),
        };
        let mut tree = self.tree();
        let n = tree.get_mut(file)?;
        if !n.new_streams.iter().any(|(k, _)| k == name) {
            n.inode
                .streams
                .retain(|s| !(s.kind == StreamKind::Data && s.name == name));
            n.new_streams.push((name.to_string(), value));
        }
        Ok(())
    }

    /// Makes named stream `name` of file `file`, empty; returns its number. EEXIST if the
    /// file has a stream of that name (ignoring case on a case-insensitive mount).
    pub(crate) fn new_stream(&self, file: u64, name: &str) -> FsResult<u64> {
        check_stream_name(name)?;
        let _g = self.changing();
        {
            let tree = self.tree();
            if tree.streams.contains_key(&file) || tree.is_dir(file) {
                return Err(Errno::EINVAL);
            }
            let ci = self.opts.case_insensitive;
            let taken = self
                .stream_names(&tree, file)?
                .iter()
                .any(|(k, _)| k == name || (ci && eq_folded(k, name)));
            if taken {
                return Err(Errno(libc::EEXIST));
            }
        }
        self.stream_in_layer(file, name)?;
        let mut tree = self.tree();
        let s = tree.stream_number(file, name);
        if let Some(n) = tree.nodes.get_mut(&file) {
            n.inode.last_write_time = now_filetime();
        }
        tree.dirty_streams.insert(s);
        self.log_stream_if_dirty(&mut tree, s);
        Ok(s)
    }

    /// Sets named stream `name` of file `file` to `value`, or removes it (`None`): a
    /// journal's `stream` line replayed.
    pub(crate) fn set_stream(&self, file: u64, name: &str, value: Option<&[u8]>) -> FsResult<()> {
        let Some(value) = value else {
            return self.remove_stream(file, name);
        };
        check_stream_name(name)?;
        if value.len() as u64 > STREAM_MAX {
            return Err(Errno(libc::EFBIG));
        }
        let _g = self.changing();
        let mut tree = self.tree();
        let n = tree.get_mut(file)?;
        n.inode
            .streams
            .retain(|s| !(s.kind == StreamKind::Data && s.name == name));
        match n.new_streams.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => n.new_streams.push((name.to_string(), value.to_vec())),
        }
        n.inode.last_write_time = now_filetime();
        super::xattr::log_stream(
            &mut tree,
            file,
            format!("user.{name}").as_bytes(),
            Some(value),
        );
        Ok(())
    }

    /// Removes named stream `name` of file `file`.
    pub(crate) fn remove_stream(&self, file: u64, name: &str) -> FsResult<()> {
        let _g = self.changing();
        let mut tree = self.tree();
        if !self
            .stream_names(&tree, file)?
            .iter()
            .any(|(k, _)| k == name)
        {
            return Err(Errno::ENOENT);
        }
        let s = tree.stream_number(file, name);
        tree.dirty_streams.remove(&s);
        let n = tree.get_mut(file)?;
        n.inode
            .streams
            .retain(|s| !(s.kind == StreamKind::Data && s.name == name));
        n.new_streams.retain(|(k, _)| k != name);
        n.inode.last_write_time = now_filetime();
        super::xattr::log_stream(&mut tree, file, format!("user.{name}").as_bytes(), None);
        Ok(())
    }

    /// The number of `file:stream` name `name` in directory `parent` (FUSE with the
    /// `windows` streams interface), if `name` is one.
    pub(crate) fn stream_by_name(&self, parent: u64, name: &str) -> Option<FsResult<u64>> {
        if self.opts.streams != super::super::StreamsInterface::Windows {
            return None;
        }
        let (file, stream) = name.split_once(':')?;
        Some((|| {
            let mut tree = self.tree();
            let file = tree.child(parent, file)?;
            let known = self
                .stream_names(&tree, file)?
                .iter()
                .any(|(k, _)| k == stream);
            if !known {
                return Err(Errno::ENOENT);
            }
            Ok(tree.stream_number(file, stream))
        })())
    }

    /// Attributes of stream number `s` (stream `name` of `file`): its file's, as a regular
    /// file of the stream's size with one name, by the read-only core's rule.
    pub(crate) fn stream_attr(&self, s: u64, file: u64, name: &str) -> FsResult<Attr> {
        let tree = self.tree();
        let size = self
            .stream_names(&tree, file)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, size)| size)
            .ok_or(Errno::ENOENT)?;
        let inode = tree.inode(file).ok_or(Errno::ENOENT)?;
        Ok(attr_of(
            inode,
            s,
            Kind::File,
            size,
            1,
            &self.opts,
            RW_FILE_BLKSIZE,
        ))
    }

    /// Writes `data` at `offset` of stream number `s` (stream `name` of `file`).
    pub(crate) fn write_stream(
        &self,
        s: u64,
        file: u64,
        name: &str,
        offset: u64,
        data: &[u8],
    ) -> FsResult<u32> {
        let _g = self.changing();
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= STREAM_MAX)
            .ok_or(Errno(libc::EFBIG))?;
        self.stream_in_layer(file, name)?;
        let mut tree = self.tree();
        let n = tree.get_mut(file)?;
        let v = n
            .new_streams
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or(Errno::ENOENT)?;
        if (v.len() as u64) < end {
            v.resize(end as usize, 0);
        }
        v[offset as usize..end as usize].copy_from_slice(data);
        n.inode.last_write_time = now_filetime();
        tree.dirty_streams.insert(s);
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    /// Sets the length of stream number `s`.
    pub(crate) fn truncate_stream(&self, s: u64, file: u64, name: &str, len: u64) -> FsResult<()> {
        let _g = self.changing();
        if len > STREAM_MAX {
            return Err(Errno(libc::EFBIG));
        }
        self.stream_in_layer(file, name)?;
        let mut tree = self.tree();
        let n = tree.get_mut(file)?;
        if let Some((_, v)) = n.new_streams.iter_mut().find(|(k, _)| k == name) {
            v.resize(len as usize, 0);
        }
        n.inode.last_write_time = now_filetime();
        tree.dirty_streams.insert(s);
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Up to `size` bytes at `offset` of stream `name` of `file`, for handle `fh`.
    pub(crate) fn read_stream(
        &self,
        fh: u64,
        file: u64,
        name: &str,
        offset: u64,
        size: u32,
    ) -> FsResult<Vec<u8>> {
        {
            let tree = self.tree();
            if let Some(n) = tree.peek(file)? {
                if let Some((_, v)) = n.new_streams.iter().find(|(k, _)| k == name) {
                    let from = (offset as usize).min(v.len());
                    let to = from.saturating_add(size as usize).min(v.len());
                    return Ok(v[from..to].to_vec());
                }
            }
        }
        // A stream of the image, as the read-only core serves it.
        let base = self
            .base
            .resolve_win_path(&format!("{}:{name}", self.win_path(file)?))?;
        let opened = self.tree().handles.get(&fh).and_then(|h| h.base_fh);
        let base_fh = match opened {
            Some(b) => b,
            None => self.open_base(fh, base.ino)?,
        };
        self.base.read(base_fh, offset, size)
    }

    /// The Windows path of `ino` (`\dir\name`), for asking the base about the image's
    /// original of an inode.
    fn win_path(&self, ino: u64) -> FsResult<String> {
        let tree = self.tree();
        let p = tree.path(ino).ok_or(Errno::ENOENT)?;
        Ok(format!("\\{}", p.replace('/', "\\")))
    }

    /// Journals the contents of stream number `s` if written since they last were.
    pub(crate) fn log_stream_if_dirty(&self, tree: &mut Tree, s: u64) {
        if !tree.dirty_streams.remove(&s) {
            return;
        }
        let Some((file, name)) = tree.streams.get(&s).cloned() else {
            return;
        };
        let value = tree.nodes.get(&file).and_then(|n| {
            n.new_streams
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        });
        if let Some(value) = value {
            super::xattr::log_stream(tree, file, format!("user.{name}").as_bytes(), Some(&value));
        }
    }

    /// Entries of layer directory `ino` for [`WinOps::win_readdir`]: (name, number, kind),
    /// the dots first (not in the root), then the children in collation order.
    fn layer_listing(&self, tree: &Tree, ino: u64, n: &RwNode) -> Vec<(String, u64, Kind)> {
        let ci = self.opts.case_insensitive;
        let mut out = Vec::new();
        if ino != ROOT_INO {
            out.push((".".to_string(), ino, Kind::Directory));
            out.push(("..".to_string(), tree.parent(ino), Kind::Directory));
        }
        if !n.inode.is_directory() {
            // A directory link or junction lists nothing but the dots.
            return out;
        }
        let mut kids: Vec<(String, u64, Kind)> = n
            .children
            .iter()
            .map(|(k, e)| {
                let kind = tree.kind(e.ino, self.opts.unix_data).unwrap_or(Kind::File);
                (k.clone(), e.ino, kind)
            })
            .collect();
        kids.sort_by(|a, b| collate(&a.0, &b.0, ci));
        out.extend(kids);
        out
    }
}

impl WinOps for RwFs {
    fn resolve_win_path(&self, path: &str) -> FsResult<Resolved> {
        let p = parse_win_path(path)?;
        let ci = self.opts.case_insensitive;
        let mut tree = self.tree();
        let mut ino = ROOT_INO;
        let mut exact = true;
        let mut via_short = false;
        let mut normalized = String::new();
        let last = p.components.len();
        for (k, comp) in p.components.iter().enumerate() {
            let missing = if k + 1 == last {
                Errno::ENOENT
            } else {
                Errno::ENOTDIR
            };
            if !tree.is_dir(ino) {
                return Err(Errno::ENOTDIR);
            }
            let (child, stored, short) = tree.win_child(ino, comp, ci).map_err(|_| missing)?;
            via_short |= short;
            exact &= stored == *comp;
            normalized.push('\\');
            normalized.push_str(&stored);
            ino = child;
        }
        if let Some(s) = p.stream {
            let names = self.stream_names(&tree, ino)?;
            let stored = names
                .iter()
                .find(|(k, _)| k == s)
                .or_else(|| names.iter().find(|(k, _)| ci && eq_folded(k, s)))
                .map(|(k, _)| k.clone())
                .ok_or(Errno::ENOENT)?;
            exact &= stored == s;
            normalized.push(':');
            normalized.push_str(&stored);
            ino = tree.stream_number(ino, &stored);
        }
        if normalized.is_empty() {
            normalized.push('\\');
        }
        Ok(Resolved {
            ino,
            normalized: (ci && !exact && !via_short).then_some(normalized),
        })
    }

    fn win_info(&self, ino: u64) -> FsResult<WinInfo> {
        let tree = self.tree();
        if let Some((file, name)) = tree.streams.get(&ino).cloned() {
            let size = self
                .stream_names(&tree, file)?
                .into_iter()
                .find(|(k, _)| *k == name)
                .map(|(_, size)| size)
                .ok_or(Errno::ENOENT)?;
            // The layer's record or the image's, by the one rule.
            let inode = tree.inode(file).ok_or(Errno::ENOENT)?;
            return Ok(info_of(inode, true, size, ino));
        }
        match tree.peek(ino)? {
            Some(n) => Ok(info_of(&n.inode, false, n.size(), ino)),
            None => {
                drop(tree);
                self.base.win_info(ino)
            }
        }
    }

    fn win_security(&self, ino: u64) -> FsResult<Vec<u8>> {
        let tree = self.tree();
        let file = tree.streams.get(&ino).map_or(ino, |(f, _)| *f);
        match tree.peek(file)? {
            Some(n) => {
                Ok(
                    security_or_default(self.security_of(n), || {
                        tree.path(file).unwrap_or_default()
                    })
                    .into_owned(),
                )
            }
            None => {
                drop(tree);
                Ok(self.base.win_security(file)?.into_owned())
            }
        }
    }

    fn reparse_point(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (tag, data, stored) = {
            let tree = self.tree();
            if tree.streams.contains_key(&ino) {
                return Err(Errno::ENODATA);
            }
            let Some(n) = tree.peek(ino)? else {
                drop(tree);
                return self.base.reparse_point(ino);
            };
            if !n.inode.is_reparse_point() {
                return Err(Errno::ENODATA);
            }
            let stored = n.inode.reparse_stream().and_then(|s| s.blob);
            (
                (n.inode.reparse_tag, n.inode.rp_reserved),
                n.new_reparse.clone(),
                stored,
            )
        };
        let data = match (data, stored) {
            (Some(d), _) => d,
            // Read once the lock is dropped.
            (None, Some(loc)) => self.wim.read_blob(&loc, true).map_err(|e| {
                tracing::error!("inode {ino}: reading reparse data failed: {e}");
                Errno::EIO
            })?,
            (None, None) => Vec::new(),
        };
        super::super::xattr::reparse_buffer(tag, &data)
    }

    fn win_streams(&self, ino: u64) -> FsResult<Vec<WinStream>> {
        let tree = self.tree();
        if tree.streams.contains_key(&ino) {
            return Err(Errno::EINVAL);
        }
        match tree.peek(ino)? {
            Some(n) => Ok(streams_of(&n.inode, n.size(), &n.new_streams)),
            None => {
                drop(tree);
                self.base.win_streams(ino)
            }
        }
    }

    /// Any access is granted (the driver checked it against the descriptor); opening
    /// changes nothing, data is copied up on the first write.
    fn win_open(&self, ino: u64, _access: u32) -> FsResult<Option<u64>> {
        // Directory links and junctions are directories to Windows too.
        if self.win_info(ino)?.attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
            return Ok(None);
        }
        FsOps::open(self, ino, false, false).map(Some)
    }

    fn win_readdir(
        &self,
        ino: u64,
        marker: Option<&str>,
        pattern: Option<&str>,
        add: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        let ci = self.opts.case_insensitive;
        let listing = {
            let tree = self.tree();
            if tree.streams.contains_key(&ino) {
                return Err(Errno::ENOTDIR);
            }
            match tree.peek(ino)? {
                Some(n) if n.inode.attributes & FILE_ATTRIBUTE_DIRECTORY == 0 => {
                    return Err(Errno::ENOTDIR)
                }
                Some(n) => self.layer_listing(&tree, ino, n),
                None => {
                    drop(tree);
                    return self.base.readdir_after(ino, marker, pattern, add);
                }
            }
        };
        let pattern = pattern.filter(|p| !matches_all(p));
        let after = |name: &str| match marker {
            None => true,
            Some(".") => name != ".",
            Some("..") => name != "." && name != "..",
            Some(m) => {
                name != "." && name != ".." && collate(name, m, ci) == std::cmp::Ordering::Greater
            }
        };
        for (name, child, kind) in &listing {
            if !after(name) || pattern.is_some_and(|p| !wildcard_match(p, name, ci)) {
                continue;
            }
            let e = DirEntry {
                ino: *child,
                next: 0,
                kind: *kind,
                name,
            };
            if add(e) {
                break;
            }
        }
        Ok(())
    }

    /// The same totals as `statfs` gives FUSE: what the mount holds, and room for more
    /// (Explorer checks it before it copies anything in).
    fn win_volume(&self) -> WinVolume {
        let st = self.statfs();
        let block = u64::from(st.bsize);
        WinVolume {
            total_size: (st.blocks + st.free_blocks) * block,
            free_size: st.free_blocks * block,
            ..self.base.win_volume()
        }
    }

    fn win_create(&self, path: &str, new: NewFile<'_>) -> FsResult<(u64, Option<u64>)> {
        if let Some(sd) = new.security {
            if !is_valid_security_descriptor(sd) {
                return Err(Errno::EINVAL);
            }
        }
        let p = parse_win_path(path)?;
        if let Some(stream) = p.stream {
            if new.directory {
                return Err(Errno::EINVAL);
            }
            let file = self.resolve_win_path(&format!("\\{}", p.components.join("\\")))?;
            if self.tree().streams.contains_key(&file.ino) {
                return Err(Errno::EINVAL);
            }
            let s = self.new_stream(file.ino, stream)?;
            return Ok((s, self.win_open(s, WRITE_ACCESS)?));
        }
        let (parent, name) = self.win_parent(path)?;
        // A name that matches an entry but for case is that entry.
        if self
            .tree()
            .win_child(parent, &name, self.opts.case_insensitive)
            .is_ok()
        {
            return Err(Errno(libc::EEXIST));
        }
        let (uid, gid) = (self.opts.uid, self.opts.gid);
        let (ino, fh) = if new.directory {
            (
                self.mkdir(parent, name.as_bytes(), 0o755, uid, gid)?.ino,
                None,
            )
        } else {
            let (attr, fh) = self.create(parent, name.as_bytes(), 0o644, uid, gid)?;
            (attr.ino, Some(fh))
        };
        let done = (|| {
            if let Some(sd) = new.security {
                self.win_set_security(ino, sd)?;
            }
            self.win_set_basic(
                ino,
                BasicInfo {
                    attributes: Some(new.attributes),
                    ..BasicInfo::default()
                },
            )
        })();
        if let Err(e) = done {
            if let Some(fh) = fh {
                self.release(fh);
            }
            let _ = self.win_delete(path);
            return Err(e);
        }
        Ok((ino, fh))
    }

    fn win_set_basic(&self, ino: u64, info: BasicInfo) -> FsResult<()> {
        let _g = self.changing();
        let file = self.stream_of(ino).map_or(ino, |(f, _)| f);
        let mut tree = self.tree();
        let n = tree.get_mut(file)?;
        let attributes = info.attributes.map(|a| {
            let kind = n.inode.attributes & !(SETTABLE | FILE_ATTRIBUTE_NORMAL);
            let a = kind | (a & SETTABLE);
            if a == 0 {
                FILE_ATTRIBUTE_NORMAL
            } else {
                a
            }
        });
        if let Some(a) = attributes {
            n.inode.attributes = a;
        }
        if let Some(t) = info.creation_time {
            n.inode.creation_time = t;
        }
        if let Some(t) = info.last_access_time {
            n.inode.last_access_time = t;
        }
        if let Some(t) = info.last_write_time {
            n.inode.last_write_time = t;
        }
        tree.log(|t| {
            Some(Record::SetAttr {
                path: t.path(file)?,
                size: None,
                mode: None,
                uid: None,
                gid: None,
                atime: info.last_access_time,
                mtime: info.last_write_time,
                btime: info.creation_time,
                attributes,
            })
        });
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn win_set_security(&self, ino: u64, sd: &[u8]) -> FsResult<()> {
        if !is_valid_security_descriptor(sd) {
            return Err(Errno::EINVAL);
        }
        let _g = self.changing();
        let file = self.stream_of(ino).map_or(ino, |(f, _)| f);
        let mut tree = self.tree();
        tree.get_mut(file)?.new_security = Some(sd.to_vec());
        tree.log(|t| {
            Some(Record::Security {
                path: t.path(file)?,
                sd: sd.to_vec(),
            })
        });
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn win_can_delete(&self, path: &str) -> FsResult<()> {
        let r = self.resolve_win_path(path)?;
        if r.ino == ROOT_INO {
            return Err(Errno(libc::EACCES));
        }
        let tree = self.tree();
        if tree.streams.contains_key(&r.ino) || !tree.is_dir(r.ino) {
            return Ok(());
        }
        if tree.entries(r.ino).is_empty() {
            Ok(())
        } else {
            Err(Errno(libc::ENOTEMPTY))
        }
    }

    fn win_delete(&self, path: &str) -> FsResult<()> {
        let r = self.resolve_win_path(path)?;
        if let Some((file, name)) = self.stream_of(r.ino) {
            return self.remove_stream(file, &name);
        }
        let (parent, name) = self.win_parent(path)?;
        let dir = self.tree().is_dir(r.ino);
        match dir {
            true => self.rmdir(parent, name.as_bytes()),
            false => self.unlink(parent, name.as_bytes()),
        }
    }

    fn win_rename(&self, from: &str, to: &str, replace: bool) -> FsResult<()> {
        let r = self.resolve_win_path(from)?;
        if self.stream_of(r.ino).is_some() || parse_win_path(to)?.stream.is_some() {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        let (parent, name) = self.win_parent(from)?;
        let (new_parent, stored) = self.win_parent(to)?;
        let asked = parse_win_path(to)?
            .components
            .last()
            .map(|s| s.to_string())
            .ok_or(Errno::EINVAL)?;
        let existing = self
            .tree()
            .win_child(new_parent, &asked, self.opts.case_insensitive)
            .ok();
        let new_name = match existing {
            // The same file under another case: a rename of the case only.
            Some((ino, _, _)) if ino == r.ino => asked,
            Some(_) if !replace => return Err(Errno(libc::EEXIST)),
            Some((ino, _, _)) if self.tree().is_dir(ino) => return Err(Errno(libc::EACCES)),
            // Replaces the entry there, under its stored name.
            Some(_) => stored,
            None => asked,
        };
        let flags = if replace { 0 } else { 1 };
        self.rename(
            parent,
            name.as_bytes(),
            new_parent,
            new_name.as_bytes(),
            flags,
        )
    }
}

/// EINVAL for a stream name Windows could not have sent or a WIM cannot hold.
fn check_stream_name(name: &str) -> FsResult<()> {
    if name.is_empty() || name.contains([':', '/', '\\', '\0']) {
        return Err(Errno::EINVAL);
    }
    if name.encode_utf16().count() > super::NAME_MAX {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    Ok(())
}
