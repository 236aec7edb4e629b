//! Writing a changed image back into its WIM: the one path for a read-write mount's commit
//! and for `wimfs update`.
//!
//! The caller hands over the image as it should be ([`Edited`]): inodes it did not touch
//! keep their streams (hashes of blobs the WIM holds); new data comes as sources to read.
//! New data is written only when the WIM lacks it. By default the writer appends after
//! the old end of the file and rewrites the header last, so a failed write leaves the WIM
//! as it was; with [`CommitOptions::rebuild`] a new file replaces it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::lock::TargetLock;
use super::resource::BlobSource;
use super::writer::{
    hash_source_at, solid_options_of, BlobJob, ImageDescription, WimWriter, WriterOptions,
    SMALL_BLOB,
};
use super::xml::XmlImage;
use crate::error::{Error, Result};
use crate::format::{hash_hex, Sha1Hash};
use crate::image::{Image, InodeId, Stream, StreamKind};
use crate::read::{BlobLocation, Wim};

/// How a changed image is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitOptions {
    /// Give the file an integrity table (one it already has is always kept).
    pub check: bool,
    /// Add the tree as a new image after the others instead of replacing the one it came
    /// from.
    pub new_image: bool,
    /// Write a new file holding every image and rename it over the WIM, instead of
    /// appending in place (reclaims the space of replaced data).
    pub rebuild: bool,
}

/// New unnamed data for an inode of an [`Edited`] image.
pub struct NewData {
    pub inode: InodeId,
    pub source: Box<dyn BlobSource>,
    pub len: u64,
    /// What to name in errors (the file the data comes from).
    pub what: PathBuf,
}

/// Named data streams (name, contents) to add to an inode.
pub type NamedStreams = Vec<(String, Vec<u8>)>;

/// A changed image and the data it needs that is not in the WIM yet.
pub struct Edited {
    pub image: Image,
    /// Main data streams, put first in their inode's streams (the inode has none).
    pub data: Vec<NewData>,
    /// Reparse data (without its header) for inodes that have none in `image`.
    pub reparse: Vec<(InodeId, Vec<u8>)>,
    /// Named data streams to add to inodes.
    pub streams: Vec<(InodeId, NamedStreams)>,
}

impl Edited {
    /// An image with nothing new to write yet.
    pub fn new(image: Image) -> Self {
        Edited {
            image,
            data: Vec::new(),
            reparse: Vec::new(),
            streams: Vec::new(),
        }
    }

    /// Moves every inode id along `map` (as [`Image::compact`] returns it), dropping data
    /// of inodes that are gone. `image` must be compacted by the caller with that map.
    pub fn remap(&mut self, map: &[Option<InodeId>]) {
        self.data.retain_mut(|d| match map[d.inode] {
            Some(i) => {
                d.inode = i;
                true
            }
            None => false,
        });
        self.reparse.retain_mut(|(i, _)| match map[*i] {
            Some(n) => {
                *i = n;
                true
            }
            None => false,
        });
        self.streams.retain_mut(|(i, _)| match map[*i] {
            Some(n) => {
                *i = n;
                true
            }
            None => false,
        });
    }
}

/// A stream of data the file being written holds.
pub(crate) fn new_stream(kind: StreamKind, hash: Sha1Hash, size: u64) -> Stream {
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

/// Sort key of a file's data in a solid resource: its name's extension, then its name,
/// both folded to lower case (similar files side by side compress best; wimlib's order).
pub(crate) fn solid_key(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let ext = match name.rfind('.') {
        Some(dot) => name[dot + 1..].to_string(),
        None => String::new(),
    };
    (ext, name)
}

/// Wall time of the phases of a write, logged at debug level when it ends.
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

/// Starts a new file to replace `current` (under `lock`), holding its images before `upto`
/// (1-based, exclusive) and keeping its integrity table, solid format and boot image.
pub fn start_rebuild(
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
        w.set_solid(solid_options_of(current))?;
    }
    copy_images(current, &mut w, 1, upto, &|_| {})?;
    Ok(w)
}

/// Copies images `from..upto` of `current` into `w` with their XML and boot flag.
pub fn copy_images(
    current: &Wim,
    w: &mut WimWriter,
    from: u32,
    upto: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    for i in from..upto {
        let xml = current
            .xml()
            .images
            .iter()
            .find(|x| x.index == i)
            .map(|x| XmlImage::Kept(x.element.clone()));
        w.export_image(current, i, xml, false, progress)?;
        if current.header().boot_index == i {
            w.set_boot_index(w.image_count())?;
        }
    }
    Ok(())
}

/// Writes `edited` into `current` (opened by the caller under `lock`, the lock on the
/// WIM's path) in place of image `index`, or after the others with
/// [`CommitOptions::new_image`]. The image keeps the index, name, description, XML and boot
/// flag of the one it replaces. `progress` gets bytes of new data written. Returns the
/// index the image now has and the hash of its metadata resource.
pub fn write_edited(
    current: Arc<Wim>,
    lock: Arc<TargetLock>,
    opts: WriterOptions,
    how: CommitOptions,
    index: u32,
    mut edited: Edited,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(u32, Sha1Hash)> {
    let mut phases = Phases::start();
    let target = current.path().to_path_buf();
    let desc = match current.xml().images.iter().find(|i| i.index == index) {
        Some(info) => ImageDescription {
            name: info.name.clone(),
            description: info.description.clone(),
            boot: false,
        },
        None => ImageDescription::default(),
    };
    let count = current.image_count();
    // With --rebuild, the images before the new one are copied first.
    let mut w = match (how.rebuild, how.new_image) {
        (false, _) => WimWriter::append_to(Arc::clone(&current), opts, lock)?,
        (true, false) => start_rebuild(&current, opts, lock, index)?,
        (true, true) => start_rebuild(&current, opts, lock, count + 1)?,
    };
    phases.lap("writer start");
    let image = &mut edited.image;
    if w.is_solid() {
        // An upper bound of what this image adds, so that it forms one solid resource.
        let new: u64 = edited.data.iter().map(|d| d.len).sum();
        let kept: u64 = image
            .inodes
            .iter()
            .flat_map(|i| i.streams.iter().map(|s| s.size()))
            .sum();
        w.plan_solid(new + kept);
    }
    for (i, data) in std::mem::take(&mut edited.reparse) {
        let size = data.len() as u64;
        let hash = w.write_blob(&data, size, None, Path::new("reparse data"), &|_| {})?;
        image.inodes[i]
            .streams
            .push(new_stream(StreamKind::Reparse, hash, size));
    }
    for (i, streams) in std::mem::take(&mut edited.streams) {
        for (name, data) in streams {
            let size = data.len() as u64;
            // An empty stream has no blob: its hash is all zero.
            let mut s = Stream {
                name: String::new(),
                kind: StreamKind::Data,
                hash: [0; 20],
                blob: None,
            };
            if size > 0 {
                let hash = w.write_blob(&data, size, None, Path::new("named stream"), &|_| {})?;
                s = new_stream(StreamKind::Data, hash, size);
            }
            s.name = name;
            image.inodes[i].streams.push(s);
        }
    }
    // Large new data that may already be in the WIM (or twice among the new data) is
    // hashed first, in parallel, so that it is not compressed again; data of a size no
    // blob has is read and hashed once, while it is compressed (the rule wimlib and capture
    // use). Small data is read whole and hashed before it is compressed anyway.
    let mut data = std::mem::take(&mut edited.data);
    if w.is_solid() {
        data.sort_by_cached_key(|d| solid_key(&d.what));
    }
    let mut sizes: HashMap<u64, u32> = HashMap::new();
    for b in current.blobs() {
        *sizes.entry(b.size).or_default() += 1;
    }
    for d in &data {
        *sizes.entry(d.len).or_default() += 1;
    }
    let known: Vec<Option<Sha1Hash>> = data
        .par_iter()
        .map(|d| match d.len > SMALL_BLOB && sizes[&d.len] > 1 {
            true => hash_source_at(&*d.source, d.len, &d.what).map(Some),
            false => Ok(None),
        })
        .collect::<Result<_>>()?;
    phases.lap("pre-hash");
    let jobs: Vec<BlobJob<'_>> = data
        .iter()
        .zip(&known)
        .map(|(d, h)| BlobJob {
            source: &*d.source,
            size: d.len,
            expected: *h,
            what: &d.what,
        })
        .collect();
    let hashes = w.write_blobs(&jobs, progress)?;
    phases.lap("new data");
    for (d, h) in data.iter().zip(&hashes) {
        image.inodes[d.inode]
            .streams
            .insert(0, new_stream(StreamKind::Data, *h, d.len));
    }
    if how.rebuild {
        // The new file has none of the data the image kept: copy it.
        let mut hashes: Vec<Sha1Hash> = image
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
                    format!("blob {} of the image is missing", hash_hex(&h)),
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
            Some(el) => w.add_image_like(image, el, &desc)?,
            None => w.add_image(image, &desc)?,
        }
        let at = w.image_count();
        if current.header().boot_index == index && !how.new_image {
            w.set_boot_index(at)?;
        }
        if !how.new_image {
            copy_images(&current, &mut w, index + 1, count + 1, &|_| {})?;
        }
        at
    } else if how.new_image {
        // As wimlib does: the new image carries the old one's XML (name included).
        match element {
            Some(el) => w.add_image_like(image, el, &desc)?,
            None => w.add_image(image, &desc)?,
        }
        w.image_count()
    } else {
        w.replace_image(index, image, &desc)?;
        index
    };
    phases.lap("metadata");
    let meta = w.metadata_hash(new_index).ok_or_else(|| {
        Error::invalid(
            &target,
            format!("image {new_index} missing after the write"),
        )
    })?;
    w.finish()?;
    phases.lap("tables and header");
    phases.log();
    Ok((new_index, meta))
}
