//! Commit: writes a read-write mount's tree back into its WIM, in place of the mounted image.
//!
//! Untouched inodes keep everything the image had (stream hashes, security ids, attributes,
//! short names, named streams, reparse data, times); staged data and links made on the mount
//! become new blobs, written only when the WIM lacks them. The writer appends after the old
//! end of the file and rewrites the header last, so a failed commit leaves the WIM as it was.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::{Digest, Sha1};
use wimfs::format::header::FLAG_RP_FIX;
use wimfs::format::Sha1Hash;
use wimfs::read::BlobLocation;
use wimfs::write::{ImageDescription, ResourceOptions, TargetLock, WimWriter, WriterOptions};
use wimfs::{Error, Result, Stream, StreamKind};

use crate::core::rw::RwFs;

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

/// Replaces the mounted image in its WIM with the tree of `fs`, under `lock` (the mount's
/// lock on the WIM). The image keeps its index, name and description. With `check` the
/// file gets an integrity table (one it already has is always kept).
pub fn commit(fs: &RwFs, lock: Arc<TargetLock>, check: bool) -> Result<()> {
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
        check_integrity: check,
        rp_fix: h.flags & FLAG_RP_FIX != 0,
    };
    let desc = match wim.xml().images.get(index as usize - 1) {
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
    for &(i, ino, len) in &snap.staged {
        let path = fs.overlay().path(ino);
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
    w.replace_image(index, &snap.image, &desc)?;
    w.finish()
}

/// A read-write mount as the control channel sees it: the tree plus the lock on its WIM,
/// held for the life of the mount so that no other writer can change the file under it.
pub struct RwMount {
    pub fs: Arc<RwFs>,
    pub lock: Arc<TargetLock>,
}

impl crate::control::Mounted for RwMount {
    fn wim(&self) -> &Arc<wimfs::Wim> {
        self.fs.wim()
    }

    fn open_files(&self) -> usize {
        self.fs.open_handles()
    }

    fn commit(&self, check: bool) -> std::result::Result<(), String> {
        tracing::info!("committing to {}", self.fs.wim().path().display());
        commit(&self.fs, Arc::clone(&self.lock), check).map_err(|e| {
            tracing::error!("commit failed: {e}");
            e.to_string()
        })
    }
}
