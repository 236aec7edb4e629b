//! Commit: writes a read-write mount's tree back into its WIM, in place of the mounted image.
//!
//! Untouched inodes keep everything the image had (stream hashes, security ids, attributes,
//! short names, named streams, reparse data, times); staged data, links and named streams
//! made on the mount become new blobs, written only when the WIM lacks them. The writer
//! appends after the old end of the file and rewrites the header last, so a failed commit
//! leaves the WIM as it was.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::{Digest, Sha1};
use wimfs::format::header::FLAG_RP_FIX;
use wimfs::format::Sha1Hash;
use wimfs::read::BlobLocation;
use wimfs::write::{ImageDescription, ResourceOptions, TargetLock, WimWriter, WriterOptions};
use wimfs::{Error, Result, Stream, StreamKind, Wim};

use crate::core::rw::RwFs;
use crate::journal::Record;

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

fn hash_file(path: &Path) -> Result<Sha1Hash> {
    let mut f = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(path, "reading", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// How a commit writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitOptions {
    /// Give the file an integrity table (one it already has is always kept).
    pub check: bool,
    /// Add the tree as a new image after the others instead of replacing the mounted one.
    pub new_image: bool,
}

/// Writes the tree of `fs` into its WIM under `lock` (the mount's lock on the WIM): in place
/// of the mounted image (keeping its index, name and description), or as a new image.
/// `staged_file` names the file holding the staged data of an inode number. Returns the
/// index the tree now has and the hash of its metadata resource.
pub fn commit(
    fs: &RwFs,
    lock: Arc<TargetLock>,
    how: CommitOptions,
    staged_file: &dyn Fn(u64) -> PathBuf,
) -> Result<(u32, Sha1Hash)> {
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
    let current = Wim::open(&target)?;
    let desc = match current.xml().images.iter().find(|i| i.index == index) {
        Some(info) => ImageDescription {
            name: info.name.clone(),
            description: info.description.clone(),
            boot: false,
        },
        None => ImageDescription::default(),
    };
    let mut snap = fs.snapshot();
    let mut w = WimWriter::append_locked(&target, opts, lock)?;
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
        let hash = hash_file(&path)?;
        if !w.has_blob(&hash) {
            w.write_blob(&path, size, Some(hash), &path, &|_| {})?;
        }
        snap.image.inodes[i]
            .streams
            .insert(0, new_stream(StreamKind::Data, hash, size));
    }
    let new_index = if how.new_image {
        // As wimlib does: the new image carries the mounted one's XML (name included).
        match current.xml().images.iter().find(|i| i.index == index) {
            Some(info) => w.add_image_like(&snap.image, info.element.clone(), &desc)?,
            None => w.add_image(&snap.image, &desc)?,
        }
        w.image_count()
    } else {
        w.replace_image(index, &snap.image, &desc)?;
        index
    };
    w.finish()?;
    // Read back what the header now names: the journal's next base.
    let now = Wim::open(&target)?;
    let meta = now
        .metadata_location(new_index)
        .ok_or_else(|| Error::invalid(&target, format!("image {new_index} missing after commit")))?
        .hash;
    Ok((new_index, meta))
}

/// A read-write mount as the control channel sees it: the tree plus the lock on its WIM,
/// held for the life of the mount so that no other writer can change the file under it.
pub struct RwMount {
    pub fs: Arc<RwFs>,
    pub lock: Arc<TargetLock>,
}

impl RwMount {
    /// Commits the mount's current state. Changes wait while it runs, so the WIM gets one
    /// consistent tree; afterwards the journal starts again from the committed image.
    pub fn commit_now(&self, how: CommitOptions) -> Result<()> {
        let fs = &self.fs;
        let _quiet = fs.gate.write();
        let target = fs.wim().path().to_path_buf();
        fs.journal_now(&Record::Committing)
            .map_err(|e| Error::io(fs.overlay().dir(), "writing the journal", e))?;
        let overlay = fs.overlay();
        let (index, meta) = commit(fs, Arc::clone(&self.lock), how, &|ino| overlay.path(ino))?;
        fs.set_image_index(index);
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
