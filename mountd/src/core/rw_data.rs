//! Data of a read-write mount: opening and closing files, reads (unchanged data through
//! the read-only core, lock-free after the first read), writes, copy-up, small files in
//! memory and the data log, fallocate, fsync and attribute changes.

use super::*;

impl RwFs {
    /// Opens `ino`; with `truncate` its data is cut to nothing first.
    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        if write && truncate {
            self.setattr(
                ino,
                &SetAttr {
                    size: Some(0),
                    ..SetAttr::default()
                },
            )?;
        }
        let mut tree = self.tree();
        // A named stream opened by Windows path has a number but no node.
        if !tree.streams.contains_key(&ino) {
            tree.peek(ino)?;
        }
        if write && tree.is_dir(ino) {
            return Err(Errno::EISDIR);
        }
        tree.opened(ino);
        let fh = tree.next_fh;
        tree.next_fh += 1;
        tree.handles.insert(fh, OpenFile { ino, base_fh: None });
        Ok(fh)
    }

    /// Closes a handle from `open` or `create`.
    pub fn release(&self, fh: u64) {
        let (gone, base_fh, logged) = {
            let mut tree = self.tree();
            let Some(OpenFile { ino, base_fh }) = tree.handles.remove(&fh) else {
                return;
            };
            tree.closed(ino);
            self.log_stream_if_dirty(&mut tree, ino);
            let mut written = None;
            if let Some(n) = tree.nodes.get_mut(&ino) {
                if std::mem::take(&mut n.written) {
                    written = Some(n.inode.last_write_time);
                }
            }
            if let Some(mtime) = written {
                // Writes are not journaled one by one: their data is in the staging file
                // already; only the time they left is.
                tree.log_mtime(ino, mtime);
            }
            (tree.reap(ino), base_fh, written.map(|_| ino))
        };
        if let Some(ino) = logged {
            self.log_small(ino);
        }
        if let Some(b) = base_fh {
            self.fast.write().remove(&fh);
            self.base.release(b);
        }
        if let Some(ino) = gone {
            self.overlay.remove(ino);
        }
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let fast = {
            let handles = self.fast.read();
            handles
                .get(&fh)
                .filter(|(_, image_data)| image_data.load(Ordering::Acquire))
                .map(|(b, _)| *b)
        };
        if let Some(base_fh) = fast {
            return self.base.read(base_fh, offset, size);
        }
        let (ino, staged, base_fh) = {
            let tree = self.tree();
            let h = tree.handles.get(&fh).ok_or(Errno::EBADF)?;
            let ino = h.ino;
            if let Some((file, name)) = tree.streams.get(&ino).cloned() {
                drop(tree);
                return self.read_stream(fh, file, &name, offset, size);
            }
            match tree.peek(ino)? {
                // Unchanged data of the image, through the read-only core.
                None => (ino, None, Some(h.base_fh)),
                Some(n) if n.is_dir() => return Err(Errno::EISDIR),
                Some(n) => {
                    match &n.small {
                        Some(Small::Mem(v)) => {
                            let from = (offset as usize).min(v.len());
                            let to = (from + size as usize).min(v.len());
                            return Ok(v[from..to].to_vec());
                        }
                        Some(Small::Log { offset: at, len }) => {
                            let want = len.saturating_sub(offset).min(size as u64);
                            let (at, want) = (*at + offset.min(*len), want);
                            drop(tree);
                            return self.overlay.read_log(at, want).map_err(|e| {
                                tracing::error!("inode {ino}: reading the data log failed: {e}");
                                Errno::EIO
                            });
                        }
                        None => {}
                    }
                    (ino, n.staged, n.data_unchanged().then_some(h.base_fh))
                }
            }
        };
        match (staged, base_fh) {
            (Some(len), _) => {
                let want = (len.saturating_sub(offset)).min(size as u64) as usize;
                let mut v = self.overlay.read_at(ino, offset, want).map_err(|e| {
                    tracing::error!("{}: read failed: {e}", self.overlay.path(ino).display());
                    Errno::EIO
                })?;
                // A file extended by truncate has no bytes on disk past its old end yet.
                v.resize(want, 0);
                Ok(v)
            }
            (None, Some(base_fh)) => {
                let base_fh = match base_fh {
                    Some(f) => f,
                    None => self.open_base(fh, ino)?,
                };
                self.base.read(base_fh, offset, size)
            }
            // Made on this mount without data (a special file).
            (None, None) => Ok(Vec::new()),
        }
    }

    /// Opens image inode `b` in the read-only core for handle `fh`, which reads an
    /// unchanged file of the image; returns the base handle.
    pub(super) fn open_base(&self, fh: u64, b: u64) -> FsResult<u64> {
        let base_fh = self.base.open(b, false)?;
        let mut tree = self.tree();
        let Some(h) = tree.handles.get_mut(&fh) else {
            drop(tree);
            self.base.release(base_fh);
            return Err(Errno::EBADF);
        };
        if let Some(other) = h.base_fh {
            // Another read of the same handle got there first.
            drop(tree);
            self.base.release(base_fh);
            return Ok(other);
        }
        h.base_fh = Some(base_fh);
        // Later reads skip the tree while the data stays the image's (not for a stream,
        // whose file's flag says nothing of it).
        let flag = match tree.streams.contains_key(&b) {
            true => None,
            false => tree.image_data_flag(b),
        };
        drop(tree);
        if let Some(flag) = flag {
            self.fast.write().insert(fh, (base_fh, flag));
        }
        Ok(base_fh)
    }

    /// Moves `ino`'s data into the overlay if it is not there yet.
    pub(super) fn copy_up(&self, ino: u64) -> FsResult<()> {
        let _one = self.copy_up.lock();
        self.spill(ino)?;
        let loc = {
            let mut tree = self.tree();
            let n = tree.get(ino)?;
            if n.staged.is_some() {
                return Ok(());
            }
            if self.kind(n) != Kind::File {
                return Err(Errno::EINVAL);
            }
            n.inode.data_stream().and_then(|s| s.blob)
        };
        // Checked: corrupt image data must fail here, not be committed under a new hash.
        let mut r = CheckedBlobReader::new(&self.wim, loc);
        let len = self.overlay.fill(ino, &mut r).map_err(|e| {
            tracing::error!(
                "{}: copying up inode {ino} failed: {e}",
                self.overlay.path(ino).display()
            );
            self.overlay.remove(ino);
            Errno::of_io(&e)
        })?;
        let mut tree = self.tree();
        tree.data_may_change(ino);
        match tree.nodes.get_mut(&ino) {
            Some(n) => {
                n.staged = Some(len);
                tree.log(|t| {
                    Some(Record::Staged {
                        path: t.path(ino)?,
                        file: ino,
                    })
                });
            }
            None => {
                drop(tree);
                self.overlay.remove(ino);
                return Err(Errno::ENOENT);
            }
        }
        Ok(())
    }

    /// Gives a small file a staging file of its own (it is growing past [`SMALL_FILE`]).
    /// The file is written without the tree's lock; if the data changed meanwhile, again.
    pub(super) fn spill(&self, ino: u64) -> FsResult<()> {
        loop {
            let Some(small) = self.tree().get(ino)?.small.clone() else {
                return Ok(());
            };
            let data = match &small {
                Small::Mem(v) => v.clone(),
                Small::Log { offset, len } => {
                    self.overlay.read_log(*offset, *len).map_err(|e| {
                        tracing::error!("inode {ino}: reading the data log failed: {e}");
                        Errno::EIO
                    })?
                }
            };
            self.overlay.fill(ino, &mut data.as_slice()).map_err(|e| {
                tracing::error!("{}: staging failed: {e}", self.overlay.path(ino).display());
                self.overlay.remove(ino);
                Errno::of_io(&e)
            })?;
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if n.small.as_ref() != Some(&small) {
                continue;
            }
            n.small = None;
            n.staged = Some(data.len() as u64);
            tree.log(|t| {
                Some(Record::Staged {
                    path: t.path(ino)?,
                    file: ino,
                })
            });
            return Ok(());
        }
    }

    /// Brings a small file's logged data back into memory, reading the data log without
    /// the tree lock (it is used only if the file still points at the same bytes after).
    pub(super) fn unlog_small(&self, ino: u64) -> FsResult<()> {
        let small = self.tree().nodes.get(&ino).and_then(|n| n.small.clone());
        let Some(logged @ Small::Log { offset, len }) = small else {
            return Ok(());
        };
        let v = self.overlay.read_log(offset, len).map_err(|e| {
            tracing::error!("inode {ino}: reading the data log failed: {e}");
            Errno::EIO
        })?;
        let mut tree = self.tree();
        if let Some(n) = tree.nodes.get_mut(&ino) {
            if n.small.as_ref() == Some(&logged) {
                n.small = Some(Small::Mem(v));
            }
        }
        Ok(())
    }

    /// Makes a small file's data editable in memory; `None` if it is not a small file.
    /// Callers run [`RwFs::unlog_small`] first, so the data log is read under the lock only
    /// when the file was logged again in between.
    pub(super) fn small_mem<'a>(
        &self,
        n: &'a mut RwNode,
        ino: u64,
    ) -> FsResult<Option<&'a mut Vec<u8>>> {
        if let Some(Small::Log { offset, len }) = n.small {
            let v = self.overlay.read_log(offset, len).map_err(|e| {
                tracing::error!("inode {ino}: reading the data log failed: {e}");
                Errno::EIO
            })?;
            n.small = Some(Small::Mem(v));
        }
        Ok(match n.small.as_mut() {
            Some(Small::Mem(v)) => Some(v),
            _ => None,
        })
    }

    /// Appends a changed small file's data to the data log and journals where it is (on
    /// close and fsync), without holding the tree's lock while it writes: the data is
    /// taken as it is, and only if it is still the same afterwards does the file point at
    /// the log (a later change is logged when it is closed). A failure keeps the data in
    /// memory: it is still committed, only a crash would lose it.
    pub(super) fn log_small(&self, ino: u64) {
        let data = match self.tree().nodes.get(&ino).and_then(|n| n.small.as_ref()) {
            Some(Small::Mem(v)) => v.clone(),
            _ => return,
        };
        let len = data.len() as u64;
        let offset = match self.overlay.append_log(&data) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("inode {ino}: writing the data log failed: {e}");
                return;
            }
        };
        let mut tree = self.tree();
        let Some(n) = tree.nodes.get_mut(&ino) else {
            return;
        };
        if !matches!(&n.small, Some(Small::Mem(v)) if *v == data) {
            return;
        }
        n.small = Some(Small::Log { offset, len });
        tree.log(|t| {
            Some(Record::Data {
                path: t.path(ino)?,
                offset,
                len,
            })
        });
    }

    /// Writes `data` at `offset`; returns the bytes written.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        if let Some((file, name)) = self.stream_of(ino) {
            return self.write_stream(ino, file, &name, offset, data);
        }
        let _g = self.changing();
        let end = offset.saturating_add(data.len() as u64);
        if end <= SMALL_FILE {
            self.unlog_small(ino)?;
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if let Some(v) = self.small_mem(n, ino)? {
                if v.len() < end as usize {
                    v.resize(end as usize, 0);
                }
                v[offset as usize..end as usize].copy_from_slice(data);
                n.inode.last_write_time = now_filetime();
                n.written = true;
                return Ok(data.len() as u32);
            }
        }
        self.copy_up(ino)?;
        self.overlay.write_at(ino, offset, data).map_err(|e| {
            tracing::error!("{}: write failed: {e}", self.overlay.path(ino).display());
            Errno::of_io(&e)
        })?;
        let mut tree = self.tree();
        let n = tree.get_mut(ino)?;
        let end = offset + data.len() as u64;
        n.staged = Some(n.staged.unwrap_or(0).max(end));
        n.inode.last_write_time = now_filetime();
        n.written = true;
        Ok(data.len() as u32)
    }

    /// Allocates `len` bytes at `offset` in `ino`'s staged data: `mode` 0 extends the file
    /// if it ends earlier, [`FALLOC_FL_KEEP_SIZE`] reserves space without changing the
    /// visible size (the staging file's length stays the visible size: the space lies past
    /// its end). Other modes: EOPNOTSUPP.
    pub fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        let _g = self.changing();
        if mode & !FALLOC_FL_KEEP_SIZE != 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or(Errno(libc::EFBIG))?;
        match self.kind(self.tree().get(ino)?) {
            Kind::File => {}
            Kind::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno(libc::ENODEV)),
        }
        self.copy_up(ino)?;
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        self.overlay
            .allocate(ino, offset, len, keep_size)
            .map_err(|e| {
                tracing::error!(
                    "{}: fallocate failed: {e}",
                    self.overlay.path(ino).display()
                );
                Errno::of_io(&e)
            })?;
        if !keep_size {
            let mut tree = self.tree();
            let n = tree.get_mut(ino)?;
            if end > n.staged.unwrap_or(0) {
                // The staging file grew with it: replay reads the size from there.
                n.staged = Some(end);
                n.inode.last_write_time = now_filetime();
                n.written = true;
            }
        }
        Ok(())
    }

    /// Flushes `ino`'s staged data to disk.
    pub fn fsync(&self, ino: u64) -> FsResult<()> {
        // The waits for the disk happen outside the tree lock, so other requests go on
        // meanwhile.
        {
            let mut tree = self.tree();
            // A named stream is in memory until its handle closes (journaled then).
            if tree.streams.contains_key(&ino) {
                return Ok(());
            }
            tree.get(ino)?;
        }
        self.log_small(ino);
        let journal = self
            .journal
            .lock()
            .as_ref()
            .map(|j| j.syncer())
            .transpose()
            .map_err(|e| {
                tracing::error!("syncing the journal failed: {e}");
                Errno::of_io(&e)
            })?;
        if let Some(journal) = journal {
            // What the journal points at first, then the journal.
            self.overlay.sync_log().map_err(|e| {
                tracing::error!("syncing the data log failed: {e}");
                Errno::of_io(&e)
            })?;
            journal.sync_data().map_err(|e| {
                tracing::error!("syncing the journal failed: {e}");
                Errno::of_io(&e)
            })?;
        }
        self.overlay.sync(ino).map_err(|e| {
            tracing::error!("{}: sync failed: {e}", self.overlay.path(ino).display());
            Errno::of_io(&e)
        })
    }

    /// Changes size, mode, owner or times of `ino`.
    pub fn setattr(&self, ino: u64, a: &SetAttr) -> FsResult<Attr> {
        // Without --unix-data a WIM has nowhere to keep modes and owners: refused, as
        // wimlib's mount refuses them, rather than accepted and silently dropped.
        if !self.opts.unix_data && (a.mode.is_some() || a.uid.is_some() || a.gid.is_some()) {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if let Some((file, name)) = self.stream_of(ino) {
            if let Some(len) = a.size {
                self.truncate_stream(ino, file, &name, len)?;
            }
            let times = SetAttr {
                size: None,
                ..a.clone()
            };
            return self.setattr(file, &times);
        }
        let _g = self.changing();
        let mut small_done = false;
        if let Some(size) = a.size {
            match self.kind(self.tree().get(ino)?) {
                Kind::Directory => return Err(Errno::EISDIR),
                Kind::File => {}
                _ => return Err(Errno::EINVAL),
            }
            {
                // A small file stays in memory; a file of the image cut to nothing (a copy
                // over it) becomes one, needing none of its old data.
                self.unlog_small(ino)?;
                let mut tree = self.tree();
                let n = tree.get_mut(ino)?;
                if size <= SMALL_FILE && (n.small.is_some() || (size == 0 && n.staged.is_none())) {
                    n.small.get_or_insert(Small::Mem(Vec::new()));
                    if let Some(v) = self.small_mem(n, ino)? {
                        v.resize(size as usize, 0);
                    }
                    small_done = true;
                }
            }
            if !small_done {
                if size > 0 {
                    self.copy_up(ino)?;
                }
                self.overlay.set_len(ino, size).map_err(|e| {
                    tracing::error!("{}: truncate failed: {e}", self.overlay.path(ino).display());
                    Errno::of_io(&e)
                })?;
            }
        }
        let mut tree = self.tree();
        let kind = self.kind(tree.get(ino)?);
        let unix_data = self.opts.unix_data;
        let (uid, gid) = (self.opts.uid, self.opts.gid);
        let n = tree.get_mut(ino)?;
        let now = now_filetime();
        let newly_staged = a.size.is_some() && !small_done && n.staged.is_none();
        if let Some(size) = a.size {
            if !small_done {
                n.staged = Some(size);
            }
            n.inode.last_write_time = now;
        }
        // A cut small file is logged at once (not only when closed): replay has no other
        // way to know what it holds after the cut.
        let log_now = small_done;
        if unix_data && (a.mode.is_some() || a.uid.is_some() || a.gid.is_some()) {
            let mut u = n
                .inode
                .unix
                .unwrap_or_else(|| default_unix(kind, 0o644, uid, gid));
            if let Some(m) = a.mode {
                u.mode = (u.mode & 0o170000) | (m & 0o7777);
            }
            if let Some(v) = a.uid {
                u.uid = v;
            }
            if let Some(v) = a.gid {
                u.gid = v;
            }
            n.inode.unix = Some(u);
        }
        if let Some(t) = a.atime {
            n.inode.last_access_time = system_to_filetime(t);
        }
        if let Some(t) = a.mtime {
            n.inode.last_write_time = system_to_filetime(t);
        }
        let (mode, uid, gid) = match n.inode.unix.filter(|_| unix_data) {
            Some(u) => (
                a.mode.map(|_| u.mode),
                a.uid.map(|_| u.uid),
                a.gid.map(|_| u.gid),
            ),
            None => (None, None, None),
        };
        let (atime, mtime) = (n.inode.last_access_time, n.inode.last_write_time);
        let size = a.size;
        if newly_staged {
            // The staging file first: replay gives the size to the file it names.
            tree.log(|t| {
                Some(Record::Staged {
                    path: t.path(ino)?,
                    file: ino,
                })
            });
        }
        tree.log(|t| {
            let path = t.path(ino)?;
            Some(Record::SetAttr {
                path,
                size,
                mode,
                uid,
                gid,
                atime: (a.atime.is_some() || size.is_some()).then_some(atime),
                mtime: (a.mtime.is_some() || size.is_some()).then_some(mtime),
                btime: None,
                attributes: None,
            })
        });
        drop(tree);
        if log_now {
            self.log_small(ino);
        }
        self.attr_of(&self.tree(), ino)
    }
}
