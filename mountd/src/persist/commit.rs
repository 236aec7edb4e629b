//! Commit: writes a read-write mount's tree back into its WIM, in place of the mounted image.
//!
//! Untouched inodes keep everything the image had (stream hashes, security ids, attributes,
//! short names, named streams, reparse data, times); staged data, links and named streams
//! made on the mount become new blobs, written only when the WIM lacks them. The writer
//! appends after the old end of the file and rewrites the header last, so a failed commit
//! leaves the WIM as it was.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wimfs::format::Sha1Hash;
pub use wimfs::write::CommitOptions;
use wimfs::write::{options_of, write_edited, BlobSource, Edited, NewData, TargetLock};
use wimfs::{Error, Result, Wim};

use crate::core::rw::{RwFs, Small};
use crate::journal::Record;
use crate::overlay::Overlay;

/// A stretch of the data log: the data of one small file.
struct LogSlice {
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl BlobSource for LogSlice {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        let mut f = File::open(&self.path)?;
        f.seek(std::io::SeekFrom::Start(self.offset))?;
        Ok(Box::new(f.take(self.len)))
    }
}

/// Writes the tree of `fs` into its WIM under `lock` (the mount's lock on the WIM): in place
/// of the mounted image (keeping its index, name and description), or as a new image.
/// `staged_file` names the file holding the staged data of an inode number, `log` the data
/// log small files are in. Returns the index the tree now has and the hash of its metadata
/// resource.
pub fn commit(
    fs: &RwFs,
    lock: Arc<TargetLock>,
    how: CommitOptions,
    staged_file: &dyn Fn(u64) -> PathBuf,
    log: &Path,
) -> Result<(u32, Sha1Hash)> {
    let t = std::time::Instant::now();
    // The file as it is now (earlier commits of this mount may have changed its XML).
    let current = Arc::new(Wim::open(fs.wim().path())?);
    let mut opts = options_of(&current)?;
    opts.check_integrity = how.check;
    let snap = fs.snapshot();
    tracing::debug!("snapshot taken in {} ms", t.elapsed().as_millis());
    let mut edited = Edited::new(snap.image);
    edited.reparse = snap.reparse;
    edited.streams = snap.streams;
    for (inode, ino, len) in snap.staged {
        let path = staged_file(ino);
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, "reading metadata", e))?
            .len();
        if size != len {
            return Err(Error::invalid(
                &path,
                format!("staged file holds {size} bytes where {len} were expected"),
            ));
        }
        edited.data.push(NewData {
            inode,
            source: Box::new(path.clone()),
            len,
            what: path,
        });
    }
    for (inode, d) in snap.small {
        let len = d.len();
        let source: Box<dyn BlobSource> = match d {
            Small::Mem(v) => Box::new(v),
            Small::Log { offset, len } => Box::new(LogSlice {
                path: log.to_path_buf(),
                offset,
                len,
            }),
        };
        edited.data.push(NewData {
            inode,
            source,
            len,
            what: log.to_path_buf(),
        });
    }
    let index = fs.image_index();
    write_edited(current, lock, opts, how, index, edited, &|_| {})
}

/// A read-write mount as the control channel sees it: the tree plus the lock on its WIM,
/// held for the life of the mount so that no other writer can change the file under it.
pub struct RwMount {
    pub fs: Arc<RwFs>,
    /// Replaced after a commit that rebuilt the file (the old lock guards the old file).
    pub lock: parking_lot::Mutex<Arc<TargetLock>>,
}

impl RwMount {
    /// Starts a read-write mount of `img` (image `index` of `wim`, whose write lock the
    /// caller took): makes the staging directory (`staging`, default beside the WIM; it must
    /// not exist), starts the journal and registers the directory for recovery. Returns the
    /// mount and the staging directory's absolute path.
    pub fn start(
        wim: &Arc<Wim>,
        img: wimfs::Image,
        opts: crate::core::FsOptions,
        staging: Option<&Path>,
        lock: Arc<TargetLock>,
    ) -> anyhow::Result<(RwMount, PathBuf)> {
        use anyhow::Context;
        let staging = match staging {
            Some(d) => d.to_path_buf(),
            None => Overlay::default_dir(wim.path()),
        };
        if staging.exists() {
            anyhow::bail!(
                "{}: already exists (left by a daemon that died? see wimfs mounts and wimfs \
                 recover)",
                staging.display()
            );
        }
        let overlay = Overlay::create(&staging)?;
        let staging = std::fs::canonicalize(&staging)
            .with_context(|| format!("{}: cannot resolve", staging.display()))?;
        let base = *wim
            .metadata_location(img.index)
            .context("image has no metadata")?;
        let fs = Arc::new(RwFs::new(Arc::clone(wim), img, opts, overlay));
        fs.start_journal(wim.path(), &base.hash)
            .with_context(|| format!("{}: cannot start the journal", staging.display()))?;
        crate::recover::register(&staging);
        let mount = RwMount {
            fs,
            lock: parking_lot::Mutex::new(lock),
        };
        Ok((mount, staging))
    }

    /// Ends the mount's session: its staged work is deleted only when the user said so
    /// (`asked`: `wimfs unmount`, which discards, or commits first with --commit) or when
    /// there is none. Any other end (fusermount3 -u, umount, a shutdown, a FUSE error)
    /// leaves it for `wimfs recover`, listed by `wimfs mounts`.
    pub fn finish(&self, staging: &Path, asked: bool) {
        if asked || !self.fs.has_uncommitted_changes() {
            let t = std::time::Instant::now();
            self.fs.overlay().discard();
            crate::recover::unregister(staging);
            tracing::debug!("staging removed in {} ms", t.elapsed().as_millis());
        } else {
            tracing::warn!(
                "unmounted without `wimfs unmount`: the uncommitted changes stay in {}; \
                 `wimfs recover {} --commit` saves them, --discard drops them",
                staging.display(),
                self.fs.wim().path().display()
            );
        }
    }

    /// Commits the mount's current state. Changes wait while it runs, so the WIM gets one
    /// consistent tree; afterwards the journal starts again from the committed image.
    pub fn commit_now(&self, how: CommitOptions) -> Result<()> {
        let fs = &self.fs;
        let _quiet = fs.gate.write();
        let target = fs.wim().path().to_path_buf();
        // What recovery needs to tell, after a crash, whether this commit reached the WIM:
        // the image it replaces changes; one it adds shows only in the image count.
        let marker = if how.new_image {
            let images = wimfs::Wim::open(&target)?.image_count();
            Record::CommittingNewImage { images }
        } else {
            Record::Committing
        };
        fs.journal_now(&marker)
            .map_err(|e| Error::io(fs.overlay().dir(), "writing the journal", e))?;
        let overlay = fs.overlay();
        let mut lock = self.lock.lock();
        let log = Overlay::log_path_in(overlay.dir());
        let (index, meta) = commit(fs, Arc::clone(&lock), how, &|ino| overlay.path(ino), &log)?;
        if how.rebuild {
            *lock = Arc::new(TargetLock::acquire(&target)?);
        }
        fs.set_image_index(index);
        // Everything up to here is in the WIM (changes waited at the gate meanwhile).
        fs.mark_committed();
        fs.start_journal(&target, &meta)
            .map_err(|e| Error::io(fs.overlay().dir(), "restarting the journal", e))?;
        Ok(())
    }
}

impl crate::control::Mounted for RwMount {
    fn wim(&self) -> &Arc<wimfs::Wim> {
        self.fs.wim()
    }

    fn open_files(&self) -> usize {
        self.fs.open_handles()
    }

    fn commit(&self, how: CommitOptions) -> std::result::Result<(), String> {
        tracing::info!("committing to {}", self.fs.wim().path().display());
        self.commit_now(how).map_err(|e| {
            tracing::error!("commit failed: {e}");
            e.to_string()
        })
    }
}
