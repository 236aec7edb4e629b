//! The journal of a read-write mount as the tree sees it: starting it (again after a
//! commit) and replaying one onto the image, as recovery does.

use super::*;

impl RwFs {
    /// Starts the journal in the staging directory (again, after a commit): its base is
    /// image `self.image_index()` of `wim`, whose metadata resource has hash `metadata`;
    /// files whose data is staged are listed so that later changes to them replay.
    pub fn start_journal(&self, wim: &Path, metadata: &Sha1Hash) -> std::io::Result<()> {
        // No change runs meanwhile (at mount, or under a commit's gate).
        let mut journal = self.journal.lock();
        let tree = self.tree.lock();
        let base = Record::Base {
            version: journal::VERSION,
            wim: wim.to_string_lossy().into_owned(),
            image: self.image_index(),
            metadata: journal::hex(metadata),
            unix_data: self.opts.unix_data,
        };
        let mut staged: Vec<(u64, String)> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.staged.is_some())
            .filter_map(|(&ino, _)| tree.path(ino).map(|p| (ino, p)))
            .collect();
        staged.sort();
        let mut lines: Vec<Record> = staged
            .into_iter()
            .map(|(file, path)| Record::Staged { path, file })
            .collect();
        // Small files keep their place in the data log (those changed in memory are logged
        // when closed).
        let mut logged: Vec<(String, u64, u64)> = tree
            .nodes
            .iter()
            .filter_map(|(&ino, n)| match n.small {
                Some(Small::Log { offset, len }) => tree.path(ino).map(|p| (p, offset, len)),
                _ => None,
            })
            .collect();
        logged.sort();
        lines.extend(logged.into_iter().map(|(path, offset, len)| Record::Data {
            path,
            offset,
            len,
        }));
        drop(tree);
        *journal = Some(Journal::start(self.overlay.dir(), &base, &lines)?);
        let mut tree = self.tree.lock();
        tree.journaling = true;
        tree.pending.clear();
        Ok(())
    }

    /// Appends `r` to the journal now (for the commit's `committing` line) and syncs it.
    pub(crate) fn journal_now(&self, r: &Record) -> std::io::Result<()> {
        self.flush_journal();
        let syncer = {
            let mut journal = self.journal.lock();
            match journal.as_mut() {
                Some(j) => {
                    j.append(r);
                    Some(j.syncer()?)
                }
                None => None,
            }
        };
        // The wait for the disk outside the tree lock: lookups and reads go on.
        syncer.map_or(Ok(()), |f| f.sync_data())
    }

    pub(super) fn resolve(&self, path: &str) -> Result<u64, String> {
        let tree = self.tree();
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = tree
                .child(ino, part)
                .map_err(|e| format!("{path}: not found ({e:?})"))?;
        }
        Ok(ino)
    }

    pub(super) fn resolve_parent<'a>(&self, path: &'a str) -> Result<(u64, &'a str), String> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok((self.resolve(dir)?, name))
    }

    /// Replays journal lines (after the base line) against this tree, which must have been
    /// built from the journal's base image and have no journal itself. Returns which
    /// staging file holds the data of each inode number of this tree; the sizes of staged
    /// files are those of the files in `staging`.
    pub fn replay(&self, records: &[Record], staging: &Path) -> Result<HashMap<u64, u64>, String> {
        let mut files: HashMap<u64, u64> = HashMap::new();
        // The least each staging file must hold: what it started with, or the size of its
        // last journaled truncate (later writes only add to that). Shorter means data was
        // lost, and committing it would store a damaged file.
        let mut least: HashMap<u64, u64> = HashMap::new();
        let fail = |r: &Record, e: Errno| format!("replaying {r:?}: error {}", e.0);
        for r in records {
            match r {
                Record::Base { .. } => return Err("a second base line".into()),
                Record::Committing | Record::CommittingNewImage { .. } => {}
                Record::Create {
                    path,
                    file,
                    mode,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    let (attr, fh) = self
                        .create(dir, name.as_bytes(), *mode, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                    self.release(fh);
                    files.insert(attr.ino, *file);
                }
                Record::Mkdir {
                    path,
                    mode,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.mkdir(dir, name.as_bytes(), *mode, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Symlink {
                    path,
                    target,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.symlink(dir, name.as_bytes(), target.as_bytes(), *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Mknod {
                    path,
                    mode,
                    rdev,
                    uid,
                    gid,
                } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.mknod(dir, name.as_bytes(), *mode, *rdev, *uid, *gid)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Link { from, to } => {
                    let ino = self.resolve(from)?;
                    let (dir, name) = self.resolve_parent(to)?;
                    self.link(ino, dir, name.as_bytes())
                        .map_err(|e| fail(r, e))?;
                }
                Record::Unlink { path } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.unlink(dir, name.as_bytes()).map_err(|e| fail(r, e))?;
                }
                Record::Rmdir { path } => {
                    let (dir, name) = self.resolve_parent(path)?;
                    self.rmdir(dir, name.as_bytes()).map_err(|e| fail(r, e))?;
                }
                Record::Rename { from, to, flags } => {
                    let (d1, n1) = self.resolve_parent(from)?;
                    let (d2, n2) = self.resolve_parent(to)?;
                    self.rename(d1, n1.as_bytes(), d2, n2.as_bytes(), *flags)
                        .map_err(|e| fail(r, e))?;
                }
                Record::Staged { path, file } => {
                    let ino = self.resolve(path)?;
                    let mut tree = self.tree();
                    let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                    least.insert(ino, n.size());
                    n.small = None;
                    n.staged.get_or_insert(0);
                    files.insert(ino, *file);
                }
                Record::Data { path, offset, len } => {
                    if *len > SMALL_FILE {
                        return Err(format!("{r:?}: more data than a small file holds"));
                    }
                    let ino = self.resolve(path)?;
                    let mut tree = self.tree();
                    let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                    n.staged = None;
                    n.small = Some(Small::Log {
                        offset: *offset,
                        len: *len,
                    });
                    files.remove(&ino);
                }
                Record::SetAttr {
                    path,
                    size,
                    mode,
                    uid,
                    gid,
                    atime,
                    mtime,
                    btime,
                    attributes,
                } => {
                    let ino = self.resolve(path)?;
                    if btime.is_some() || attributes.is_some() {
                        let info = BasicInfo {
                            attributes: *attributes,
                            creation_time: *btime,
                            ..BasicInfo::default()
                        };
                        self.win_set_basic(ino, info).map_err(|e| fail(r, e))?;
                    }
                    if let Some(size) = size {
                        // The staging file has the size already; only the tree learns it.
                        // A small file's data comes with its next `data` line; until then,
                        // what the cut left of it.
                        let mut tree = self.tree();
                        let n = tree.get_mut(ino).map_err(|e| fail(r, e))?;
                        if n.small.is_some() || (n.staged.is_none() && *size == 0) {
                            if *size > SMALL_FILE {
                                return Err(format!("{r:?}: bigger than a small file"));
                            }
                            n.small = Some(match n.small.take() {
                                Some(Small::Log { offset, len }) if *size <= len => {
                                    Small::Log { offset, len: *size }
                                }
                                _ => Small::Mem(vec![0; *size as usize]),
                            });
                        } else {
                            n.staged = Some(*size);
                            least.insert(ino, *size);
                        }
                    }
                    // Modes and owners exist only with --unix-data (older journals may
                    // carry them without it).
                    let unix = self.opts.unix_data;
                    self.setattr(
                        ino,
                        &SetAttr {
                            size: None,
                            mode: mode.filter(|_| unix),
                            uid: uid.filter(|_| unix),
                            gid: gid.filter(|_| unix),
                            atime: atime.map(filetime_to_system),
                            mtime: mtime.map(filetime_to_system),
                        },
                    )
                    .map_err(|e| fail(r, e))?;
                }
                Record::Security { path, sd } => {
                    let ino = self.resolve(path)?;
                    self.win_set_security(ino, sd).map_err(|e| fail(r, e))?;
                }
                Record::Stream { path, name, value } => {
                    let ino = self.resolve(path)?;
                    // Named by its xattr (`user.NAME`); set whatever interface made it, with
                    // the limit of the Windows view (streams written there may pass the
                    // xattr limit).
                    let stream = name
                        .strip_prefix("user.")
                        .ok_or_else(|| format!("{r:?}: not a stream"))?;
                    self.set_stream(ino, stream, value.as_deref())
                        .map_err(|e| fail(r, e))?;
                }
            }
        }
        let mut tree = self.tree();
        files.retain(|ino, _| tree.nodes.contains_key(ino));
        for (ino, file) in &files {
            let path = staging.join(file.to_string());
            if tree.nodes.get(ino).is_none_or(|n| n.small.is_some()) {
                continue;
            }
            let name = tree.path(*ino).unwrap_or_default();
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "{}: missing: the staged data of /{name} is gone, so the changes \
                         cannot be committed whole (--discard drops them)",
                        path.display()
                    ))
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            let want = least.get(ino).copied().unwrap_or(0);
            if len < want {
                return Err(format!(
                    "{}: holds {len} bytes where the journal says /{name} had at least {want}: \
                     staged data was lost, so the changes cannot be committed whole \
                     (--discard drops them)",
                    path.display()
                ));
            }
            if let Some(n) = tree.nodes.get_mut(ino) {
                n.staged = Some(len);
            }
        }
        Ok(files)
    }
}
