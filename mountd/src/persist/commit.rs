//! Commit: writes a read-write mount's tree back into its WIM, in place of the mounted image.
//!
//! Untouched inodes keep everything the image had (stream hashes, security ids, attributes,
//! short names, named streams, reparse data, times); staged data, links and named streams
//! made on the mount become new blobs, written only when the WIM lacks them. The writer
//! appends after the old end of the file and rewrites the header last, so a failed commit
//! leaves the WIM as it was.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use sha1::{Digest, Sha1};
use wimfs::format::header::FLAG_RP_FIX;
use wimfs::format::Sha1Hash;
use wimfs::read::BlobLocation;
use wimfs::write::{
    BlobJob, BlobSource, ImageDescription, ResourceOptions, TargetLock, WimWriter, WriterOptions,
    XmlImage, SMALL_BLOB,
};
use wimfs::{Error, Result, Stream, StreamKind, Wim};

use crate::core::rw::{RwFs, Small};
use crate::journal::{self, Record};
use crate::overlay::Overlay;

fn new_stream(kind: StreamKind, hash: Sha1Hash, size: u64) -> Stream {
    Stream {
        name: String::new(),
        kind,
        hash,
        // The data lives in the WIM being written; only the size and hash matter here.
        blob: Some(BlobLocation {
            resource: u32::MAX,
            offset: 0,
            size,
            hash,
            refcount: 0,
        }),
    }
}

fn hash_source(src: &dyn BlobSource, len: u64, what: &Path) -> Result<Sha1Hash> {
    let mut r = src.open().map_err(|e| Error::io(what, "opening", e))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; (len.min(1 << 20)) as usize];
    let mut done = 0u64;
    while done < len {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::io(what, "reading", e))?;
        if n == 0 {
            return Err(Error::invalid(
                what,
                format!("holds {done} bytes where {len} were expected"),
            ));
        }
        let n = n.min((len - done) as usize);
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(h.finalize().into())
}

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

/// Wall time of the phases of a commit, logged at debug level when it ends.
struct Phases {
    last: std::time::Instant,
    done: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            done: Vec::new(),
        }
    }

    /// Ends phase `name` (begun when the previous one ended).
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }

    fn log(&self) {
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(n, d)| format!("{n} {} ms", d.as_millis()))
            .collect();
        tracing::debug!("commit phases: {}", parts.join(", "));
    }
}

/// How a commit writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitOptions {
    /// Give the file an integrity table (one it already has is always kept).
    pub check: bool,
    /// Add the tree as a new image after the others instead of replacing the mounted one.
    pub new_image: bool,
    /// Write a new file holding every image and rename it over the WIM, instead of
    /// appending in place (reclaims the space of replaced data).
    pub rebuild: bool,
}

/// Starts a rebuilt copy of `current` holding its images before `upto` (1-based,
/// exclusive), keeping its integrity table, solidness and boot image.
fn start_rebuild(
    current: &Wim,
    opts: WriterOptions,
    lock: Arc<TargetLock>,
    upto: u32,
) -> Result<WimWriter> {
    let mut w = WimWriter::create_locked(current.path(), opts, lock)?;
    if !current.header().integrity.is_empty() {
        w.set_check_integrity(true);
    }
    if !w.is_solid() {
        w.set_solid(wimfs::write::solid_options_of(current))?;
    }
    copy_images(current, &mut w, 1, upto)?;
    Ok(w)
}

/// Copies images `from..upto` of `current` into `w` with their XML and boot flag.
fn copy_images(current: &Wim, w: &mut WimWriter, from: u32, upto: u32) -> Result<()> {
    for i in from..upto {
        let xml = current
            .xml()
            .images
            .iter()
            .find(|x| x.index == i)
            .map(|x| XmlImage::Kept(x.element.clone()));
        w.export_image(current, i, xml, false, &|_| {})?;
        if current.header().boot_index == i {
            w.set_boot_index(w.image_count())?;
        }
    }
    Ok(())
}

/// Writes the tree of `fs` into its WIM under `lock` (the mount's lock on the WIM): in place
/// of the mounted image (keeping its index, name and description), or as a new image.
/// `staged_file` names the file holding the staged data of an inode number, `log` the data
/// log small files are in. Returns the
/// index the tree now has and the hash of its metadata resource.
pub fn commit(
    fs: &RwFs,
    lock: Arc<TargetLock>,
    how: CommitOptions,
    staged_file: &dyn Fn(u64) -> PathBuf,
    log: &Path,
) -> Result<(u32, Sha1Hash)> {
    let mut phases = Phases::start();
    let wim = fs.wim();
    let target: PathBuf = wim.path().to_path_buf();
    let index = fs.image_index();
    let h = wim.header();
    let compression = h.compression().map_err(|cause| Error::Format {
        path: target.clone(),
        cause,
    })?;
    let opts = WriterOptions {
        resources: ResourceOptions {
            compression,
            chunk_size: if h.chunk_size == 0 {
                32768
            } else {
                h.chunk_size
            },
            level: wimfs::codec::DEFAULT_LEVEL,
        },
        solid: None,
        threads: 0,
        check_integrity: how.check,
        rp_fix: h.flags & FLAG_RP_FIX != 0,
    };
    // The file as it is now (earlier commits of this mount may have changed its XML).
    let current = Arc::new(Wim::open(&target)?);
    let desc = match current.xml().images.iter().find(|i| i.index == index) {
        Some(info) => ImageDescription {
            name: info.name.clone(),
            description: info.description.clone(),
            boot: false,
        },
        None => ImageDescription::default(),
    };
    phases.lap("open");
    let mut snap = fs.snapshot();
    phases.lap("snapshot");
    let count = current.image_count();
    // With --rebuild, the images before the new one are copied first.
    let mut w = match (how.rebuild, how.new_image) {
        (false, _) => WimWriter::append_to(Arc::clone(&current), opts, lock)?,
        (true, false) => start_rebuild(&current, opts, lock, index)?,
        (true, true) => start_rebuild(&current, opts, lock, count + 1)?,
    };
    phases.lap("writer start");
    if w.is_solid() {
        // An upper bound of what this image adds, so that it forms one solid resource.
        let staged: u64 = snap.staged.iter().map(|&(_, _, len)| len).sum::<u64>()
            + snap.small.iter().map(|(_, d)| d.len()).sum::<u64>();
        let kept: u64 = snap
            .image
            .inodes
            .iter()
            .flat_map(|i| i.streams.iter().map(|s| s.size()))
            .sum();
        w.plan_solid(staged + kept);
    }
    for (i, data) in std::mem::take(&mut snap.reparse) {
        let hash = w.write_blob(
            &data,
            data.len() as u64,
            None,
            Path::new("reparse data"),
            &|_| {},
        )?;
        snap.image.inodes[i]
            .streams
            .push(new_stream(StreamKind::Reparse, hash, data.len() as u64));
    }
    for (i, streams) in std::mem::take(&mut snap.streams) {
        for (name, data) in streams {
            let mut s = Stream {
                name,
                kind: StreamKind::Data,
                hash: [0; 20],
                blob: None,
            };
            // An empty stream has no blob: its hash is all zero.
            if !data.is_empty() {
                let size = data.len() as u64;
                let hash = w.write_blob(&data, size, None, Path::new("named stream"), &|_| {})?;
                s = Stream {
                    name: s.name,
                    ..new_stream(StreamKind::Data, hash, size)
                };
            }
            snap.image.inodes[i].streams.push(s);
        }
    }
    // New data is hashed first (in parallel), so that data the WIM holds already (a file
    // copied in twice, a change undone) is not compressed again; the rest is compressed
    // side by side.
    let mut sources: Vec<(usize, Box<dyn BlobSource>, u64, PathBuf)> = Vec::new();
    for &(i, ino, len) in &snap.staged {
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
        sources.push((i, Box::new(path.clone()), len, path));
    }
    for (i, d) in std::mem::take(&mut snap.small) {
        let len = d.len();
        let source: Box<dyn BlobSource> = match d {
            Small::Mem(v) => Box::new(v),
            Small::Log { offset, len } => Box::new(LogSlice {
                path: log.to_path_buf(),
                offset,
                len,
            }),
        };
        sources.push((i, source, len, log.to_path_buf()));
    }
    // Only large data that may already be in the WIM (or twice among the new data) is
    // hashed before writing, to skip it: data of a size no blob has is read and hashed once,
    // while it is compressed (the rule wimlib and capture use). Small data is read whole
    // and hashed before it is compressed anyway, and not compressed if the WIM has it.
    let mut sizes: HashMap<u64, u32> = HashMap::new();
    for b in current.blobs() {
        *sizes.entry(b.size).or_default() += 1;
    }
    for (_, _, len, _) in &sources {
        *sizes.entry(*len).or_default() += 1;
    }
    let known: Vec<Option<Sha1Hash>> = sources
        .par_iter()
        .map(
            |(_, src, len, what)| match *len > SMALL_BLOB && sizes[len] > 1 {
                true => hash_source(&**src, *len, what).map(Some),
                false => Ok(None),
            },
        )
        .collect::<Result<_>>()?;
    phases.lap("pre-hash");
    let jobs: Vec<BlobJob<'_>> = sources
        .iter()
        .zip(&known)
        .map(|((_, src, len, what), h)| BlobJob {
            source: &**src,
            size: *len,
            expected: *h,
            what,
        })
        .collect();
    let hashes = w.write_blobs(&jobs, &|_| {})?;
    phases.lap("new data");
    for ((i, _, len, _), h) in sources.iter().zip(&hashes) {
        snap.image.inodes[*i]
            .streams
            .insert(0, new_stream(StreamKind::Data, *h, *len));
    }
    if how.rebuild {
        // The new file has none of the data the image kept: copy it.
        let mut hashes: Vec<Sha1Hash> = snap
            .image
            .inodes
            .iter()
            .flat_map(|i| i.streams.iter().map(|s| s.hash))
            .filter(|h| *h != [0u8; 20] && !w.has_blob(h))
            .collect();
        hashes.sort_by_key(|h| {
            current
                .blob(h)
                .map(|l| (current.resource(l).offset, l.offset))
                .unwrap_or((u64::MAX, 0))
        });
        hashes.dedup();
        for h in hashes {
            let loc = *current.blob(&h).ok_or_else(|| {
                Error::invalid(
                    &target,
                    format!("blob {} of the mounted image is missing", journal::hex(&h)),
                )
            })?;
            w.copy_blob(&current, &loc, false, &|_| {})?;
        }
    }
    let element = current
        .xml()
        .images
        .iter()
        .find(|i| i.index == index)
        .map(|i| i.element.clone());
    let new_index = if how.rebuild {
        match element {
            Some(el) => w.add_image_like(&snap.image, el, &desc)?,
            None => w.add_image(&snap.image, &desc)?,
        }
        let at = w.image_count();
        if current.header().boot_index == index && !how.new_image {
            w.set_boot_index(at)?;
        }
        if !how.new_image {
            copy_images(&current, &mut w, index + 1, count + 1)?;
        }
        at
    } else if how.new_image {
        // As wimlib does: the new image carries the mounted one's XML (name included).
        match element {
            Some(el) => w.add_image_like(&snap.image, el, &desc)?,
            None => w.add_image(&snap.image, &desc)?,
        }
        w.image_count()
    } else {
        w.replace_image(index, &snap.image, &desc)?;
        index
    };
    phases.lap("metadata");
    // The journal's next base.
    let meta = w.metadata_hash(new_index).ok_or_else(|| {
        Error::invalid(&target, format!("image {new_index} missing after commit"))
    })?;
    w.finish()?;
    phases.lap("tables and header");
    phases.log();
    Ok((new_index, meta))
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
