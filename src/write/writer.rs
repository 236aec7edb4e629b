//! `WimWriter`: writes a new WIM file, or appends to an existing one in place.
//!
//! A new file is written beside its target and renamed over it at the end (capture,
//! optimize, rebuilding delete). An in-place append (append, soft delete, commit of a
//! read-write mount) writes new blobs, metadata, blob table, XML and integrity table after
//! the end of everything the current header points at, syncs, and only then rewrites the
//! 208-byte header and syncs again. Nothing the old header refers to is ever overwritten, so
//! a crash at any moment leaves a file that opens with its old content; a torn tail is cut
//! off by the next append and reclaimed by `optimize`.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::lock::TargetLock;
use super::replace::{create_temp_beside, random_guid, resolve_links, sync_parent_dir};

use super::pipeline::{write_stream, Sink};
use super::resource::{write_resource, BlobSource, ResourceError, ResourceOptions};
use super::solid::{SolidResource, SolidStream};
use super::xml::{build_xml, ImageXml, XmlImage};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::format::blob_table::BlobEntry;
use crate::format::dentry::parse_metadata;
use crate::format::header::{
    Header, FLAG_COMPRESSION, FLAG_COMPRESS_LZMS, FLAG_COMPRESS_LZX, FLAG_COMPRESS_XPRESS,
    FLAG_READONLY, FLAG_RP_FIX, FLAG_WRITE_IN_PROGRESS, HEADER_SIZE, VERSION_DEFAULT,
    VERSION_SOLID, WIM_MAGIC,
};
use crate::format::integrity::{serialize_integrity_table, IntegrityTable};
use crate::format::reshdr::{
    ResHdr, RESHDR_FLAG_METADATA, RESHDR_FLAG_SOLID, SOLID_RESOURCE_MAGIC,
};
use crate::format::{hash_hex, is_zero_hash, Sha1Hash};
use crate::image::Image;
use crate::read::{BlobLocation, BlobReader, Storage, Wim};

/// Bytes hashed per integrity-table entry, as wimlib and DISM use.
pub const INTEGRITY_CHUNK_SIZE: u32 = 10 * 1024 * 1024;

/// How a WIM is written.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Compression of non-solid resources (for an in-place append: taken from the file).
    pub resources: ResourceOptions,
    /// Write file data into solid resources with these parameters (`--solid`).
    pub solid: Option<ResourceOptions>,
    /// Worker threads for compression (0 = one per core).
    pub threads: usize,
    /// Write an integrity table.
    pub check_integrity: bool,
    /// Set the header's RP_FIX flag (absolute links inside the image were made
    /// image-relative at capture). Kept as it was for an in-place append.
    pub rp_fix: bool,
}

/// Descriptive fields of an image for the XML info.
#[derive(Debug, Clone, Default)]
pub struct ImageDescription {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Mark this image bootable (header boot index).
    pub boot: bool,
}

/// Where a blob of the output file lives.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// A whole non-solid resource.
    Plain(ResHdr),
    /// `size` bytes at `offset` of the uncompressed data of output solid resource `res`.
    Solid { res: usize, offset: u64, size: u64 },
}

/// One image of the output file.
struct ImageSlot {
    reshdr: ResHdr,
    hash: Sha1Hash,
    xml: XmlImage,
    refs: Refs,
}

/// References an image makes to each blob (one per name, as WIMGAPI counts them).
enum Refs {
    Counted(FxHashMap<Sha1Hash, u32>),
    /// An image kept from the file appended to: counted from its metadata resource (at this
    /// location of that file) only when the blob table is written, so that an image that is
    /// replaced or deleted is never decoded.
    Kept(BlobLocation),
}

/// Whether the writer makes a new file or appends to its target.
enum Mode {
    NewFile { tmp_path: PathBuf },
    InPlace { old: Header },
}

/// Writes a WIM file. Nothing the target's readers see changes until [`WimWriter::finish`].
pub struct WimWriter {
    target: PathBuf,
    mode: Mode,
    _lock: Arc<TargetLock>,
    out: BufWriter<File>,
    pos: u64,
    opts: WriterOptions,
    pool: rayon::ThreadPool,
    blobs: FxHashMap<Sha1Hash, Placement>,
    /// Blob hashes in table order: kept ones first, then new ones as written.
    order: Vec<Sha1Hash>,
    /// Finished solid resources (kept and new), in table order.
    solid: Vec<SolidResource>,
    open_solid: Option<SolidStream>,
    /// Uncompressed bytes announced with [`WimWriter::plan_solid`] and not yet written.
    solid_plan: u64,
    images: Vec<ImageSlot>,
    /// The file appended to, as it was opened (for the metadata of kept images).
    kept_from: Option<Arc<Wim>>,
    boot_index: u32,
    /// GUID for a new file (random unless set, e.g. to keep a joined split set's).
    guid: Option<[u8; 16]>,
    /// For an in-place write: the old end of the file, where an unfinished write is cut
    /// back to.
    cut_back_to: Option<u64>,
    finished: bool,
}

fn new_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("wimfs-compress-{i}"))
        .build()
        .map_err(|e| Error::Usage(format!("cannot start compression threads: {e}")))
}

fn check_solid_options(opts: &WriterOptions) -> Result<()> {
    if let Some(s) = &opts.solid {
        if s.compression == Compression::None {
            return Err(Error::Usage(
                "solid resources must be compressed (use --compress=lzms, lzx or xpress)".into(),
            ));
        }
    }
    Ok(())
}

impl WimWriter {
    /// Locks `target` and starts a new file beside it, renamed over `target` by `finish`.
    pub fn create(target: &Path, opts: WriterOptions) -> Result<WimWriter> {
        check_solid_options(&opts)?;
        let lock = Arc::new(TargetLock::acquire(target)?);
        Self::create_locked(target, opts, lock)
    }

    /// [`WimWriter::create`] under a lock the caller already holds on `target` (a
    /// read-write mount's, for a commit that rebuilds the file).
    pub fn create_locked(
        target: &Path,
        opts: WriterOptions,
        lock: Arc<TargetLock>,
    ) -> Result<WimWriter> {
        check_solid_options(&opts)?;
        check_lock(&lock, target)?;
        // A WIM reached through a symlink is rebuilt where the link points: the link stays.
        let resolved = resolve_links(target);
        let target = resolved.as_path();
        let (tmp_path, file) = create_temp_beside(target)?;
        let mut w = WimWriter::start(target, Mode::NewFile { tmp_path }, lock, file, opts, 0)?;
        // A zeroed header until the end: a torn temporary file is never mistaken for a WIM.
        w.write_raw(&[0u8; HEADER_SIZE])?;
        Ok(w)
    }

    /// Locks the existing WIM `target` and prepares to append to it in place. Its images,
    /// blobs and XML are kept; new non-solid resources use the file's own compression and
    /// chunk size (`opts.resources` is adjusted to match).
    pub fn append(target: &Path, opts: WriterOptions) -> Result<WimWriter> {
        check_solid_options(&opts)?;
        let lock = Arc::new(TargetLock::acquire(target)?);
        Self::append_locked(target, opts, lock)
    }

    /// [`WimWriter::append`] under a lock the caller already holds on `target` (a second
    /// flock from the same process would conflict with it), e.g. a read-write mount's.
    pub fn append_locked(
        target: &Path,
        opts: WriterOptions,
        lock: Arc<TargetLock>,
    ) -> Result<WimWriter> {
        Self::append_to(Arc::new(Wim::open(target)?), opts, lock)
    }

    /// [`WimWriter::append_locked`] to `wim`, opened by the caller (under `lock`) and not
    /// changed since.
    pub fn append_to(
        wim: Arc<Wim>,
        mut opts: WriterOptions,
        lock: Arc<TargetLock>,
    ) -> Result<WimWriter> {
        let target = wim.path().to_path_buf();
        let target = target.as_path();
        check_solid_options(&opts)?;
        check_lock(&lock, target)?;
        let old = wim.header().clone();
        if old.total_parts != 1 {
            return Err(Error::invalid(
                target,
                "is part of a split WIM; join it first (wimfs join)",
            ));
        }
        if old.flags & FLAG_READONLY != 0 {
            return Err(Error::invalid(
                target,
                "is marked read-only in its header; export it to a new file to change it",
            ));
        }
        if old.magic != WIM_MAGIC {
            return Err(Error::invalid(
                target,
                "is a pipable WIM; it cannot be changed in place (export it to a new file)",
            ));
        }
        let compression = old.compression().map_err(|cause| Error::Format {
            path: target.to_path_buf(),
            cause,
        })?;
        opts.resources.compression = compression;
        // An integrity table, once there, stays (as wimlib and DISM keep it).
        opts.check_integrity |= !old.integrity.is_empty();
        if compression != Compression::None {
            opts.resources.chunk_size = old.chunk_size;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(target)
            .map_err(|e| Error::io(target, "opening for writing", e))?;
        let mut w = WimWriter::start(
            target,
            Mode::InPlace { old: old.clone() },
            lock,
            file,
            opts,
            old.boot_index,
        )?;
        let end = w.keep_contents(&wim)?;
        w.kept_from = Some(Arc::clone(&wim));
        if w.opts.solid.is_none() {
            // A solid file (an ESD) stays solid, as wimlib keeps it.
            w.opts.solid = solid_options_of(&wim);
        }
        // Whatever lies past the last byte the header refers to is the torn tail of an
        // interrupted write: nothing reads it, so it is cut off and written over.
        let file = w.out.get_mut();
        let len = file
            .metadata()
            .map_err(|e| Error::io(target, "reading the size", e))?
            .len();
        if len > end {
            file.set_len(end)
                .map_err(|e| Error::io(target, "cutting off an unfinished earlier write", e))?;
        }
        w.seek_to(end)?;
        w.cut_back_to = Some(end);
        Ok(w)
    }

    /// Takes over the images and blobs of `wim` (the target itself) and returns the end of
    /// everything its header refers to.
    fn keep_contents(&mut self, wim: &Wim) -> Result<u64> {
        let h = wim.header();
        let mut end = HEADER_SIZE as u64;
        for r in [&h.blob_table, &h.xml, &h.integrity, &h.boot_metadata] {
            end = end.max(r.end().unwrap_or(0));
        }
        let mut locs: Vec<&BlobLocation> = wim.blobs().collect();
        locs.sort_by_key(|l| (wim.resource(l).offset, l.offset));
        let mut solid_index: HashMap<u32, usize> = HashMap::new();
        for loc in locs {
            let res = wim.resource(loc);
            end = end.max(res.offset + res.size_in_wim);
            let placement = match res.storage {
                Storage::Solid { .. } => {
                    let idx = *solid_index.entry(loc.resource).or_insert_with(|| {
                        self.solid.push(SolidResource {
                            offset: res.offset,
                            size_in_wim: res.size_in_wim,
                            uncompressed_size: res.uncompressed_size,
                        });
                        self.solid.len() - 1
                    });
                    Placement::Solid {
                        res: idx,
                        offset: loc.offset,
                        size: loc.size,
                    }
                }
                Storage::Raw | Storage::Chunked { .. } => Placement::Plain(ResHdr {
                    size_in_wim: res.size_in_wim,
                    flags: res.reshdr_flags(),
                    offset: res.offset,
                    uncompressed_size: res.uncompressed_size,
                }),
            };
            if self.blobs.insert(loc.hash, placement).is_none() {
                self.order.push(loc.hash);
            }
        }
        for index in 1..=wim.image_count() {
            let loc = *wim
                .metadata_location(index)
                .expect("index within the image count");
            let res = wim.resource(&loc);
            end = end.max(res.offset + res.size_in_wim);
            let xml = match wim.xml().images.get(index as usize - 1) {
                Some(info) => XmlImage::Kept(info.element.clone()),
                None => XmlImage::New(ImageXml::from_image(
                    &Image::from_metadata(wim, index, &wim.read_blob(&loc, true)?)?,
                    None,
                    None,
                    crate::time::now_filetime(),
                )),
            };
            self.images.push(ImageSlot {
                reshdr: ResHdr {
                    size_in_wim: res.size_in_wim,
                    flags: RESHDR_FLAG_METADATA | res.reshdr_flags(),
                    offset: res.offset,
                    uncompressed_size: res.uncompressed_size,
                },
                hash: loc.hash,
                xml,
                refs: Refs::Kept(loc),
            });
        }
        Ok(end)
    }

    /// A writer with nothing written or kept yet.
    fn start(
        target: &Path,
        mode: Mode,
        lock: Arc<TargetLock>,
        file: File,
        opts: WriterOptions,
        boot_index: u32,
    ) -> Result<WimWriter> {
        Ok(WimWriter {
            target: target.to_path_buf(),
            mode,
            _lock: lock,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            pool: new_pool(opts.threads)?,
            opts,
            blobs: FxHashMap::default(),
            order: Vec::new(),
            solid: Vec::new(),
            open_solid: None,
            solid_plan: 0,
            images: Vec::new(),
            kept_from: None,
            boot_index,
            guid: None,
            finished: false,
            cut_back_to: None,
        })
    }

    /// The path of the WIM being written.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The path of the file actually being written (a temporary file for a new WIM).
    fn out_path(&self) -> &Path {
        match &self.mode {
            Mode::NewFile { tmp_path } => tmp_path,
            Mode::InPlace { .. } => &self.target,
        }
    }

    /// Writes new file data into solid resources with these parameters (`None`: non-solid).
    pub fn set_solid(&mut self, solid: Option<ResourceOptions>) -> Result<()> {
        self.close_solid()?;
        self.opts.solid = solid;
        Ok(())
    }

    /// Whether new file data goes into solid resources.
    pub fn is_solid(&self) -> bool {
        self.opts.solid.is_some()
    }

    /// Gives a new file this GUID instead of a random one (ignored when appending in place).
    pub fn set_guid(&mut self, guid: [u8; 16]) {
        self.guid = Some(guid);
    }

    /// Whether to write an integrity table.
    pub fn set_check_integrity(&mut self, on: bool) {
        self.opts.check_integrity = on;
    }

    /// Compression of the file's non-solid resources.
    pub fn compression(&self) -> Compression {
        self.opts.resources.compression
    }

    /// Number of images the file will hold.
    pub fn image_count(&self) -> u32 {
        self.images.len() as u32
    }

    /// Names of the images the file will hold, in order (`None` for unnamed images).
    pub fn image_names(&self) -> Vec<Option<String>> {
        self.images
            .iter()
            .map(|i| i.xml.name().map(str::to_string))
            .collect()
    }

    /// The boot index the file will have (0: none).
    pub fn boot_index(&self) -> u32 {
        self.boot_index
    }

    /// The text of a property of image `index` (1-based) in the XML info, by path
    /// (`NAME`, `WINDOWS/EDITIONID`, `WINDOWS/LANGUAGES/LANGUAGE[2]`), if present.
    pub fn image_property(&self, index: u32, path: &str) -> Option<String> {
        match &self.images.get((index as usize).checked_sub(1)?)?.xml {
            XmlImage::Kept(el) => el.path_text(path).map(str::to_string),
            XmlImage::New(x) => match path {
                "NAME" => x.name.clone(),
                "DESCRIPTION" => x.description.clone(),
                _ => None,
            },
        }
    }

    /// Sets (or, with `None` or an empty value, removes) a property of image `index` in the
    /// XML info. An image name must not be another image's.
    pub fn set_image_property(
        &mut self,
        index: u32,
        path: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let target = self.target.clone();
        let value = value.filter(|v| !v.is_empty());
        if index == 0 || index as usize > self.images.len() {
            return Err(Error::NotFound(format!(
                "{}: there is no image {index}",
                target.display()
            )));
        }
        if let (Some(name), "NAME") = (value, path) {
            let taken = self
                .images
                .iter()
                .enumerate()
                .any(|(i, img)| i + 1 != index as usize && img.xml.name() == Some(name));
            if taken {
                return Err(Error::invalid(
                    &target,
                    format!("there is already an image named \"{name}\""),
                ));
            }
        }
        let slot = &mut self.images[index as usize - 1];
        if let XmlImage::New(x) = &slot.xml {
            // Properties other than name and description live in the element form.
            let text = crate::write::xml::image_xml(x, index as usize);
            let el = crate::format::xml::parse_element_tree(&text)
                .map_err(|e| Error::invalid(&target, e.to_string()))?;
            slot.xml = XmlImage::Kept(el);
        }
        let XmlImage::Kept(el) = &mut slot.xml else {
            unreachable!("converted above")
        };
        el.set_path_text(path, value)
            .map_err(|e| Error::Usage(format!("{}: {e}", target.display())))
    }

    /// Removes image `index` (1-based) from the file being written. Blobs only it used are
    /// left out of the new blob table.
    pub fn delete_image(&mut self, index: u32) -> Result<()> {
        if index == 0 || index as usize > self.images.len() {
            return Err(Error::NotFound(format!(
                "{}: there is no image {index}",
                self.target.display()
            )));
        }
        self.images.remove(index as usize - 1);
        if self.boot_index == index {
            self.boot_index = 0;
        } else if self.boot_index > index {
            self.boot_index -= 1;
        }
        Ok(())
    }

    /// Puts `image` in place of image `index` (1-based), keeping its position, its boot
    /// flag and the name and description given in `desc`.
    pub fn replace_image(
        &mut self,
        index: u32,
        image: &Image,
        desc: &ImageDescription,
    ) -> Result<()> {
        if index == 0 || index as usize > self.images.len() {
            return Err(Error::NotFound(format!(
                "{}: there is no image {index} to replace",
                self.target.display()
            )));
        }
        let boot = self.boot_index;
        let old = match &self.images[index as usize - 1].xml {
            XmlImage::Kept(el) => Some(el.clone()),
            XmlImage::New(_) => None,
        };
        match old {
            // The old `<IMAGE>` element stays, with new counts (and the names given).
            Some(el) => self.add_image_like(image, el, desc)?,
            None => self.add_image(image, desc)?,
        }
        let slot = self.images.pop().expect("add_image pushed a slot");
        self.images[index as usize - 1] = slot;
        self.boot_index = boot;
        Ok(())
    }

    /// Adds `image` described by `el`, the `<IMAGE>` element of the image it derives from
    /// (kept whole: Windows info, flags), with its counts and modification time updated and
    /// the name and description of `desc` where given.
    pub fn add_image_like(
        &mut self,
        image: &Image,
        mut el: crate::format::xml::Element,
        desc: &ImageDescription,
    ) -> Result<()> {
        let now = crate::time::now_filetime();
        let ((xml, refs), meta) = self.pool.install(|| {
            rayon::join(
                || {
                    (
                        ImageXml::from_image(image, None, None, now),
                        image_refs_of(image),
                    )
                },
                || image.to_metadata(),
            )
        });
        xml.update_element(&mut el);
        if desc.name.is_some() {
            el.set_child_text("NAME", desc.name.as_deref());
        }
        if desc.description.is_some() {
            el.set_child_text("DESCRIPTION", desc.description.as_deref());
        }
        self.add_metadata(&meta, XmlImage::Kept(el), refs)?;
        if desc.boot {
            self.boot_index = self.images.len() as u32;
        }
        Ok(())
    }

    /// Sets the bootable image (0 = none).
    pub fn set_boot_index(&mut self, index: u32) -> Result<()> {
        if index as usize > self.images.len() {
            return Err(Error::NotFound(format!(
                "{}: there is no image {index} to make bootable",
                self.target.display()
            )));
        }
        self.boot_index = index;
        Ok(())
    }

    /// The hash of image `index`'s (1-based) metadata resource in the file being written.
    pub fn metadata_hash(&self, index: u32) -> Option<Sha1Hash> {
        let i = (index as usize).checked_sub(1)?;
        self.images.get(i).map(|slot| slot.hash)
    }

    /// Whether a blob with this hash is already in the file.
    pub fn has_blob(&self, hash: &Sha1Hash) -> bool {
        self.blobs.contains_key(hash)
    }

    /// Announces how many uncompressed bytes of new blobs are about to be written, so that
    /// with `--solid` they go into one solid resource (an upper bound is fine).
    pub fn plan_solid(&mut self, bytes: u64) {
        self.solid_plan = bytes;
    }

    /// Writes a blob unless one with the same hash is already in the file; returns its hash.
    /// `expected` (if known from an earlier pass) must match the data read now.
    pub fn write_blob(
        &mut self,
        source: &dyn BlobSource,
        size: u64,
        expected: Option<Sha1Hash>,
        what: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Sha1Hash> {
        if let Some(h) = expected {
            if self.blobs.contains_key(&h) {
                progress(size);
                return Ok(h);
            }
        }
        if self.opts.solid.is_some() && size > 0 {
            return self.write_solid_blob(source, size, expected, what, progress);
        }
        let start = self.pos;
        let opts = self.opts.resources;
        let out = &mut self.out;
        let written = self
            .pool
            .install(|| write_resource(out, start, source, size, &opts, false, progress))
            .map_err(|e| resource_error(what, e))?;
        if expected.is_some_and(|h| h != written.hash) {
            return Err(changed(what));
        }
        if self.blobs.contains_key(&written.hash) {
            // Same data as a blob already written: drop this copy.
            self.seek_to(start)?;
            return Ok(written.hash);
        }
        self.pos = start + written.reshdr.size_in_wim;
        self.blobs
            .insert(written.hash, Placement::Plain(written.reshdr));
        self.order.push(written.hash);
        Ok(written.hash)
    }

    /// Writes many blobs, as [`WimWriter::write_blob`] would one by one, in the order
    /// given, but as one stream of work for every core (see `pipeline`): small blobs are
    /// read and compressed by the workers, a run of them per task, big ones a few chunks
    /// per task.
    /// Returns the hash of each.
    pub fn write_blobs(
        &mut self,
        jobs: &[BlobJob<'_>],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Sha1Hash>> {
        let mut out = vec![[0u8; 20]; jobs.len()];
        if self.opts.solid.is_some() {
            for (i, j) in jobs.iter().enumerate() {
                out[i] = self.write_blob(j.source, j.size, j.expected, j.what, progress)?;
            }
            return Ok(out);
        }
        let blobs = &self.blobs;
        let present = |h: &Sha1Hash| blobs.contains_key(h);
        let mut sink = Sink::new(&mut self.out, self.pos);
        let r = write_stream(
            &self.pool,
            jobs,
            &self.opts.resources,
            &present,
            &mut sink,
            &mut out,
            progress,
        );
        // Blobs written before an error stay recorded, so the positions stay right.
        let (pos, added) = (sink.pos, std::mem::take(&mut sink.added));
        self.pos = pos;
        for (hash, reshdr) in added {
            self.blobs.insert(hash, Placement::Plain(reshdr));
            self.order.push(hash);
        }
        r?;
        Ok(out)
    }

    fn write_solid_blob(
        &mut self,
        source: &dyn BlobSource,
        size: u64,
        expected: Option<Sha1Hash>,
        what: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Sha1Hash> {
        // Bytes pushed into a solid stream cannot be taken back, so a duplicate must be
        // recognised before any of it is written.
        let hash = match expected {
            Some(h) => h,
            None => hash_source(source, size).map_err(|e| resource_error(what, e))?,
        };
        if self.blobs.contains_key(&hash) {
            progress(size);
            return Ok(hash);
        }
        let fits = self
            .open_solid
            .as_ref()
            .is_some_and(|s| s.offset() + size <= s.upper_bound());
        if !fits {
            self.close_solid()?;
            let opts = self.opts.solid.expect("solid mode");
            let bound = self.solid_plan.max(size);
            let start = self.pos;
            let stream = SolidStream::begin(&mut self.out, start, bound, opts)
                .map_err(|e| resource_error(&self.target, e))?;
            self.open_solid = Some(stream);
        }
        let res = self.solid.len();
        let stream = self.open_solid.as_mut().expect("opened above");
        let offset = stream.offset();
        let out = &mut self.out;
        let pool = &self.pool;
        // Read here, compressed on the pool chunk by chunk (see `SolidStream::push`).
        let got = read_hashed(source, size, 4 << 20, &mut |piece| {
            stream.push(out, pool, piece)?;
            progress(piece.len() as u64);
            Ok(())
        })
        .map_err(|e| resource_error(what, e))?;
        if got != hash {
            return Err(changed(what));
        }
        self.pos = stream.end();
        self.solid_plan = self.solid_plan.saturating_sub(size);
        self.blobs
            .insert(hash, Placement::Solid { res, offset, size });
        self.order.push(hash);
        Ok(hash)
    }

    fn close_solid(&mut self) -> Result<()> {
        if let Some(stream) = self.open_solid.take() {
            let done = stream
                .finish(&mut self.out, &self.pool)
                .map_err(|e| resource_error(&self.target, e))?;
            self.pos = done.offset + done.size_in_wim;
            self.solid.push(done);
        }
        Ok(())
    }

    /// Copies blob `loc` of `src` into this file unless it is already here. A non-solid
    /// resource that is already compressed the way this file wants is copied as it is
    /// (unless `recompress`); anything else is decoded, checked and compressed again.
    pub fn copy_blob(
        &mut self,
        src: &Wim,
        loc: &BlobLocation,
        recompress: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        if self.blobs.contains_key(&loc.hash) {
            progress(loc.size);
            return Ok(());
        }
        if self.copies_as_is(src, loc, recompress) {
            let res = src.resource(loc);
            self.close_solid()?;
            let part = &src.parts[res.part];
            let start = self.pos;
            let mut buf = vec![0u8; res.size_in_wim.min(4 << 20) as usize];
            let mut done = 0u64;
            while done < res.size_in_wim {
                let n = (res.size_in_wim - done).min(buf.len() as u64) as usize;
                part.read_exact_at(&mut buf[..n], res.offset + done, "a resource to copy")?;
                self.write_raw(&buf[..n])?;
                done += n as u64;
            }
            progress(loc.size);
            let flags = res.reshdr_flags();
            self.blobs.insert(
                loc.hash,
                Placement::Plain(ResHdr {
                    size_in_wim: res.size_in_wim,
                    flags,
                    offset: start,
                    uncompressed_size: res.uncompressed_size,
                }),
            );
            self.order.push(loc.hash);
            return Ok(());
        }
        self.recompress_blobs(src, std::slice::from_ref(loc), progress)
    }

    /// Whether [`WimWriter::copy_blob`] copies blob `loc` of `src` as it is stored: a
    /// whole non-solid resource already compressed the way this file wants, unless
    /// `recompress`.
    fn copies_as_is(&self, src: &Wim, loc: &BlobLocation, recompress: bool) -> bool {
        let res = src.resource(loc);
        let whole = loc.offset == 0 && loc.size == res.uncompressed_size;
        let same_format = match res.storage {
            Storage::Raw => true,
            Storage::Chunked {
                compression,
                chunk_size,
            } => {
                compression == self.opts.resources.compression
                    && chunk_size == self.opts.resources.chunk_size
            }
            Storage::Solid { .. } => false,
        };
        whole && same_format && !res.pipable && !recompress && self.opts.solid.is_none()
    }

    /// Decodes blobs `locs` of `src` and writes them compressed this file's way, as one
    /// stream of work for every core ([`WimWriter::write_blobs`]); reads of solid
    /// resources go through the source's chunk cache, which decodes each chunk once.
    fn recompress_blobs(
        &mut self,
        src: &Wim,
        locs: &[BlobLocation],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        if locs.is_empty() {
            return Ok(());
        }
        let whats: Vec<PathBuf> = locs
            .iter()
            .map(|l| {
                PathBuf::from(format!(
                    "{}: blob {}",
                    src.path().display(),
                    hash_hex(&l.hash)
                ))
            })
            .collect();
        let sources: Vec<WimBlob<'_>> = locs.iter().map(|&loc| WimBlob { wim: src, loc }).collect();
        let jobs: Vec<BlobJob<'_>> = sources
            .iter()
            .zip(&whats)
            .map(|(s, what)| BlobJob {
                source: s,
                size: s.loc.size,
                expected: Some(s.loc.hash),
                what,
            })
            .collect();
        self.write_blobs(&jobs, progress).map(|_| ())
    }

    /// Adds image `index` of `src` with everything it refers to. `xml` describes it (usually
    /// the source's `<IMAGE>` element, possibly renamed); `None` counts the image anew.
    pub fn export_image(
        &mut self,
        src: &Wim,
        index: u32,
        xml: Option<XmlImage>,
        recompress: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let loc = *src.metadata_location(index).ok_or_else(|| {
            Error::NotFound(format!(
                "{}: there is no image {index}",
                src.path().display()
            ))
        })?;
        let meta = src.read_blob(&loc, true)?;
        let refs = image_refs(&meta).map_err(|e| {
            Error::invalid(src.path(), format!("image {index}: metadata resource: {e}"))
        })?;
        let mut hashes: Vec<&Sha1Hash> = refs.keys().collect();
        hashes.sort_by_key(|h| {
            src.blob(h)
                .map(|l| (src.resource(l).offset, l.offset))
                .unwrap_or((u64::MAX, 0))
        });
        let total: u64 = hashes
            .iter()
            .filter(|h| !self.blobs.contains_key(**h))
            .filter_map(|h| src.blob(h).map(|l| l.size))
            .sum();
        self.plan_solid(total);
        // Blobs copied as they are go one by one; runs of blobs between them that need
        // compressing go to the workers together.
        let mut run: Vec<BlobLocation> = Vec::new();
        for h in hashes {
            let l = *src.blob(h).ok_or_else(|| {
                Error::invalid(
                    src.path(),
                    format!(
                        "image {index} refers to blob {} which is not in the file",
                        hash_hex(h)
                    ),
                )
            })?;
            if self.blobs.contains_key(&l.hash) {
                progress(l.size);
            } else if self.copies_as_is(src, &l, recompress) {
                self.recompress_blobs(src, &std::mem::take(&mut run), progress)?;
                self.copy_blob(src, &l, recompress, progress)?;
            } else {
                run.push(l);
            }
        }
        self.recompress_blobs(src, &run, progress)?;
        let xml = match xml {
            Some(x) => x,
            None => XmlImage::New(ImageXml::from_image(
                &Image::from_metadata(src, index, &meta)?,
                None,
                None,
                crate::time::now_filetime(),
            )),
        };
        self.add_metadata(&meta, xml, refs)
    }

    /// Writes an image's metadata resource and records its XML info. Every non-empty stream
    /// of the image must already have been written with [`WimWriter::write_blob`].
    pub fn add_image(&mut self, image: &Image, desc: &ImageDescription) -> Result<()> {
        let now = crate::time::now_filetime();
        // The counts, the references and the metadata resource are independent walks.
        let ((xml, refs), meta) = self.pool.install(|| {
            rayon::join(
                || {
                    let xml = ImageXml::from_image(
                        image,
                        desc.name.clone(),
                        desc.description.clone(),
                        now,
                    );
                    (xml, image_refs_of(image))
                },
                || image.to_metadata(),
            )
        });
        self.add_metadata(&meta, XmlImage::New(xml), refs)?;
        if desc.boot {
            self.boot_index = self.images.len() as u32;
        }
        Ok(())
    }

    fn add_metadata(
        &mut self,
        meta: &[u8],
        xml: XmlImage,
        refs: FxHashMap<Sha1Hash, u32>,
    ) -> Result<()> {
        if let Some(missing) = refs.keys().find(|h| !self.blobs.contains_key(*h)) {
            return Err(Error::invalid(
                &self.target,
                format!(
                    "image refers to blob {} that was never written",
                    hash_hex(missing)
                ),
            ));
        }
        self.close_solid()?;
        crash_point("data");
        let meta = meta.to_vec();
        let start = self.pos;
        let opts = self.opts.resources;
        let out = &mut self.out;
        let written = self
            .pool
            .install(|| write_resource(out, start, &meta, meta.len() as u64, &opts, true, &|_| {}))
            .map_err(|e| resource_error(&self.target, e))?;
        self.pos = start + written.reshdr.size_in_wim;
        self.images.push(ImageSlot {
            reshdr: written.reshdr,
            hash: written.hash,
            xml,
            refs: Refs::Counted(refs),
        });
        Ok(())
    }

    /// The blob table: metadata resources, then non-solid blobs, then every solid resource
    /// followed by its blobs (offsets counted across all solid resources, as WIMGAPI expects).
    fn blob_table(&self) -> Result<Vec<u8>> {
        let mut counts: FxHashMap<Sha1Hash, u32> = FxHashMap::default();
        for (i, img) in self.images.iter().enumerate() {
            let kept;
            let refs = match &img.refs {
                Refs::Counted(refs) => refs,
                Refs::Kept(loc) => {
                    let wim = self
                        .kept_from
                        .as_ref()
                        .expect("kept images come from a file");
                    let meta = wim.read_blob(loc, true)?;
                    kept = image_refs(&meta).map_err(|e| {
                        Error::invalid(
                            wim.path(),
                            format!("image {}: metadata resource: {e}", i + 1),
                        )
                    })?;
                    &kept
                }
            };
            for (h, n) in refs {
                // An image of the old file that already lacked a blob keeps lacking it;
                // that is not this write's doing and must not stop it.
                if self.blobs.contains_key(h) {
                    *counts.entry(*h).or_default() += n;
                }
            }
        }
        let mut table = Vec::new();
        for img in &self.images {
            table.extend_from_slice(&entry(img.reshdr, 1, img.hash));
        }
        let mut in_solid: Vec<Vec<(u64, u64, Sha1Hash, u32)>> = vec![Vec::new(); self.solid.len()];
        for hash in &self.order {
            // A blob no image refers to any more (deleted image, skipped file) is dropped.
            let Some(&refcount) = counts.get(hash) else {
                continue;
            };
            match self.blobs[hash] {
                Placement::Plain(r) => table.extend_from_slice(&entry(r, refcount, *hash)),
                Placement::Solid { res, offset, size } => {
                    in_solid[res].push((offset, size, *hash, refcount))
                }
            }
        }
        let mut logical = 0u64;
        for (res, blobs) in self.solid.iter().zip(&mut in_solid) {
            if blobs.is_empty() {
                // Nothing in it is used any more: leave the resource out (its bytes are
                // reclaimed by the next rebuild).
                continue;
            }
            blobs.sort_by_key(|b| b.0);
            let r = ResHdr {
                size_in_wim: res.size_in_wim,
                flags: RESHDR_FLAG_SOLID,
                offset: res.offset,
                uncompressed_size: SOLID_RESOURCE_MAGIC,
            };
            table.extend_from_slice(&entry(r, 1, [0; 20]));
            for &(offset, size, hash, refcount) in blobs.iter() {
                let r = ResHdr {
                    size_in_wim: size,
                    flags: RESHDR_FLAG_SOLID,
                    offset: logical + offset,
                    uncompressed_size: 0,
                };
                table.extend_from_slice(&entry(r, refcount, hash));
            }
            logical += res.uncompressed_size;
        }
        Ok(table)
    }

    /// Writes the blob table, XML and integrity table, syncs, then writes the header and
    /// syncs again; a new file is then renamed over the target.
    pub fn finish(mut self) -> Result<()> {
        self.close_solid()?;
        let table = self.blob_table()?;
        let has_solid = table
            .chunks(crate::format::blob_table::BLOB_ENTRY_SIZE)
            .any(|e| e[7] & RESHDR_FLAG_SOLID != 0);
        let blob_table = self.write_plain(&table, true)?;
        let xml_offset = self.pos;
        let xml: Vec<XmlImage> = self.images.iter().map(|i| i.xml.clone()).collect();
        let xml = build_xml(&xml, xml_offset);
        let xml = self.write_plain(&xml, true)?;
        let integrity = if self.opts.check_integrity {
            let end = blob_table.offset + blob_table.size_in_wim;
            let table = self.integrity_table(end)?;
            self.write_plain(&serialize_integrity_table(&table), false)?
        } else {
            ResHdr::default()
        };
        let c = self.opts.resources.compression;
        let header = match &self.mode {
            Mode::InPlace { old } => Header {
                flags: old.flags & !FLAG_WRITE_IN_PROGRESS,
                version: if has_solid {
                    VERSION_SOLID
                } else {
                    old.version
                },
                ..old.clone()
            },
            Mode::NewFile { .. } => {
                let mut flags = match c {
                    Compression::None => 0,
                    Compression::Xpress => FLAG_COMPRESSION | FLAG_COMPRESS_XPRESS,
                    Compression::Lzx => FLAG_COMPRESSION | FLAG_COMPRESS_LZX,
                    Compression::Lzms => FLAG_COMPRESSION | FLAG_COMPRESS_LZMS,
                };
                if self.opts.rp_fix {
                    flags |= FLAG_RP_FIX;
                }
                Header {
                    magic: WIM_MAGIC,
                    version: if has_solid {
                        VERSION_SOLID
                    } else {
                        VERSION_DEFAULT
                    },
                    flags,
                    chunk_size: if c == Compression::None {
                        0
                    } else {
                        self.opts.resources.chunk_size
                    },
                    guid: self.guid.unwrap_or_else(random_guid),
                    part_number: 1,
                    total_parts: 1,
                    ..Header::default_empty()
                }
            }
        };
        let header = Header {
            image_count: self.images.len() as u32,
            blob_table,
            xml,
            boot_metadata: if self.boot_index == 0 {
                ResHdr::default()
            } else {
                self.images[self.boot_index as usize - 1].reshdr
            },
            boot_index: self.boot_index,
            integrity,
            ..header
        };
        let end = self.pos;
        let out_path = self.out_path().to_path_buf();
        self.out
            .flush()
            .map_err(|e| Error::io(&out_path, "writing", e))?;
        let file = self.out.get_mut();
        // Drop bytes left past the end by a compressed attempt that was rewritten stored.
        file.set_len(end)
            .map_err(|e| Error::io(&out_path, "truncating", e))?;
        // The data must be durable before the header that points at it.
        file.sync_data()
            .map_err(|e| Error::io(&out_path, "syncing", e))?;
        crash_point("tables");
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&out_path, "seeking", e))?;
        file.write_all(&header.to_bytes())
            .map_err(|e| Error::io(&out_path, "writing the header", e))?;
        crash_point("header");
        file.sync_all()
            .map_err(|e| Error::io(&out_path, "syncing", e))?;
        if let Mode::NewFile { tmp_path } = &self.mode {
            std::fs::rename(tmp_path, &self.target).map_err(|e| {
                Error::io(
                    &self.target,
                    format!("renaming {} into place", tmp_path.display()),
                    e,
                )
            })?;
            sync_parent_dir(&self.target);
            crash_point("renamed");
        }
        self.finished = true;
        Ok(())
    }

    fn write_raw(&mut self, data: &[u8]) -> Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::io(&self.target, "writing", e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn seek_to(&mut self, pos: u64) -> Result<()> {
        self.out
            .seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io(&self.target, "seeking", e))?;
        self.pos = pos;
        Ok(())
    }

    /// Writes an uncompressed resource (blob table, XML, integrity table stay uncompressed
    /// because WIMGAPI cannot read them otherwise).
    fn write_plain(&mut self, data: &[u8], metadata: bool) -> Result<ResHdr> {
        let offset = self.pos;
        self.write_raw(data)?;
        Ok(ResHdr {
            size_in_wim: data.len() as u64,
            flags: if metadata { RESHDR_FLAG_METADATA } else { 0 },
            offset,
            uncompressed_size: data.len() as u64,
        })
    }

    /// Hashes bytes `HEADER_SIZE..end` of the file written so far in integrity chunks.
    fn integrity_table(&mut self, end: u64) -> Result<IntegrityTable> {
        let path = self.out_path().to_path_buf();
        self.out
            .flush()
            .map_err(|e| Error::io(&path, "writing", e))?;
        let table = integrity_of(self.out.get_ref(), &path, end)?;
        // The hashing moved the shared file offset; put it back where the writer continues.
        self.seek_to(self.pos)?;
        Ok(table)
    }
}

/// The integrity table of bytes `HEADER_SIZE..end` of `file` (moves its file offset).
pub(super) fn integrity_of(file: &File, path: &Path, end: u64) -> Result<IntegrityTable> {
    let mut f = file
        .try_clone()
        .map_err(|e| Error::io(path, "reopening", e))?;
    f.seek(SeekFrom::Start(HEADER_SIZE as u64))
        .map_err(|e| Error::io(path, "seeking", e))?;
    let mut left = end - HEADER_SIZE as u64;
    let mut hashes = Vec::new();
    let mut buf = vec![0u8; INTEGRITY_CHUNK_SIZE as usize];
    while left > 0 {
        let n = left.min(INTEGRITY_CHUNK_SIZE as u64) as usize;
        f.read_exact(&mut buf[..n])
            .map_err(|e| Error::io(path, "reading back for the integrity table", e))?;
        hashes.push(Sha1::digest(&buf[..n]).into());
        left -= n as u64;
    }
    Ok(IntegrityTable {
        chunk_size: INTEGRITY_CHUNK_SIZE,
        hashes,
    })
}

impl Drop for WimWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Mode::NewFile { tmp_path } = &self.mode {
            let _ = std::fs::remove_file(tmp_path);
        }
        // An in-place write that failed (a full disk, say) takes its partial tail off again,
        // so the file is as long as before. Buffered bytes are dropped, not flushed past it.
        if let Some(end) = self.cut_back_to {
            if let Ok(spare) = self.out.get_ref().try_clone() {
                let out = std::mem::replace(&mut self.out, BufWriter::new(spare));
                let (file, _unwritten) = out.into_parts();
                if let Err(e) = file.set_len(end) {
                    tracing::warn!(
                        "{}: cannot cut off the unfinished write ({e}); the next write will",
                        self.target.display()
                    );
                }
            }
        }
    }
}

/// References `image` makes to each blob: one per name of each inode with the stream.
fn image_refs_of(image: &Image) -> FxHashMap<Sha1Hash, u32> {
    let mut refs: FxHashMap<Sha1Hash, u32> = FxHashMap::default();
    for ino in &image.inodes {
        for s in &ino.streams {
            if !is_zero_hash(&s.hash) {
                *refs.entry(s.hash).or_default() += ino.dentries.len() as u32;
            }
        }
    }
    refs
}

/// Fails unless `lock` guards `target` (a lock taken before the file was replaced does not).
fn check_lock(lock: &TargetLock, target: &Path) -> Result<()> {
    if lock.guards(target) {
        return Ok(());
    }
    Err(Error::invalid(
        target,
        "the lock held is not on this file (was it replaced?)",
    ))
}

/// One blob for [`WimWriter::write_blobs`].
pub struct BlobJob<'a> {
    pub source: &'a dyn BlobSource,
    pub size: u64,
    /// Its hash if known (then a blob already written is not read again).
    pub expected: Option<Sha1Hash>,
    /// What to name in errors.
    pub what: &'a Path,
}

/// Blobs up to this size are encoded whole, one per worker; larger ones chunk by chunk.
pub const SMALL_BLOB: u64 = 1 << 20;

/// Test hook for the crash-safety tests: when `WIMFS_CRASH_AT` names this point, the process
/// kills itself with SIGKILL right here, as a power cut or `kill -9` would stop it.
fn crash_point(name: &str) {
    #[cfg(unix)]
    if std::env::var_os("WIMFS_CRASH_AT").is_some_and(|v| v == name) {
        use rustix::process::{getpid, kill_process, Signal};
        let _ = kill_process(getpid(), Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = name;
}

fn entry(reshdr: ResHdr, refcount: u32, hash: Sha1Hash) -> [u8; 50] {
    BlobEntry {
        reshdr,
        part_number: 1,
        refcount,
        hash,
    }
    .to_bytes()
}

pub(super) fn changed(what: &Path) -> Error {
    Error::invalid(
        what,
        "the data read does not match its SHA-1 (it changed while being written, or is corrupt)",
    )
}

/// Counts the references an image's metadata makes to each blob: every stream of every
/// name (hard links repeat their streams on each name, which is how WIMGAPI counts).
pub fn image_refs(meta: &[u8]) -> std::result::Result<FxHashMap<Sha1Hash, u32>, String> {
    let tree = parse_metadata(meta).map_err(|e| e.to_string())?;
    let mut refs: FxHashMap<Sha1Hash, u32> = FxHashMap::default();
    for d in &tree.dentries {
        let mut seen: Vec<&Sha1Hash> = Vec::new();
        for h in std::iter::once(&d.main_hash).chain(d.streams.iter().map(|s| &s.hash)) {
            // The unnamed stream may appear both as the main hash and as an extra entry.
            if !is_zero_hash(h) && !seen.contains(&h) {
                seen.push(h);
                *refs.entry(*h).or_default() += 1;
            }
        }
    }
    Ok(refs)
}

/// The compression of `wim`'s first solid resource, if it has one.
pub fn solid_options_of(wim: &Wim) -> Option<ResourceOptions> {
    wim.blobs().find_map(|l| match wim.resource(l).storage {
        Storage::Solid {
            compression,
            chunk_size,
        } => Some(ResourceOptions {
            compression,
            chunk_size,
            level: crate::codec::DEFAULT_LEVEL,
        }),
        _ => None,
    })
}

/// Reads a whole source once to learn its SHA-1.
fn hash_source(source: &dyn BlobSource, size: u64) -> std::result::Result<Sha1Hash, ResourceError> {
    read_hashed(source, size, 1 << 20, &mut |_| Ok(()))
}

/// The SHA-1 of all `size` bytes of `source`; errors name `what`.
pub(crate) fn hash_source_at(source: &dyn BlobSource, size: u64, what: &Path) -> Result<Sha1Hash> {
    hash_source(source, size).map_err(|e| resource_error(what, e))
}

/// How the non-solid resources of the WIM with header `h` (at `path`) are compressed,
/// for writing more of them (default level).
pub fn resource_options_of(h: &Header, path: &Path) -> Result<ResourceOptions> {
    Ok(ResourceOptions {
        compression: h.compression().map_err(|cause| Error::Format {
            path: path.to_path_buf(),
            cause,
        })?,
        chunk_size: if h.chunk_size == 0 {
            32768
        } else {
            h.chunk_size
        },
        level: crate::codec::DEFAULT_LEVEL,
    })
}

/// The options to write more into the WIM `wim` as it is: its compression and chunk size,
/// its RP_FIX flag; no integrity table unless asked, not solid.
pub fn options_of(wim: &Wim) -> Result<WriterOptions> {
    let h = wim.header();
    Ok(WriterOptions {
        resources: resource_options_of(h, wim.path())?,
        solid: None,
        threads: 0,
        check_integrity: false,
        rp_fix: h.flags & FLAG_RP_FIX != 0,
    })
}

/// Reads all `size` bytes of `source` in pieces of up to `piece` bytes, handing each to
/// `each`, and returns the data's SHA-1. A source that is shorter or longer is an error.
fn read_hashed(
    source: &dyn BlobSource,
    size: u64,
    piece: usize,
    each: &mut dyn FnMut(&[u8]) -> std::result::Result<(), ResourceError>,
) -> std::result::Result<Sha1Hash, ResourceError> {
    let mut src = source.open().map_err(ResourceError::Read)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; size.min(piece as u64) as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        super::resource::fill(&mut *src, &mut buf[..n], size)?;
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
        left -= n as u64;
    }
    super::resource::expect_eof(&mut *src, size)?;
    Ok(hasher.finalize().into())
}

/// A blob of an open WIM as a source for writing.
struct WimBlob<'a> {
    wim: &'a Wim,
    loc: BlobLocation,
}

impl BlobSource for WimBlob<'_> {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(BlobReader::new(self.wim, Some(self.loc))))
    }
}

pub(super) fn resource_error(path: &Path, e: ResourceError) -> Error {
    match e {
        ResourceError::Read(cause) => Error::io(path, "reading", cause),
        ResourceError::Write(cause) => Error::io(path, "writing the WIM", cause),
        e => Error::invalid(path, e.to_string()),
    }
}
