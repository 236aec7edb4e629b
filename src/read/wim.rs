//! An open WIM file or split set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::cache::{ChunkCache, DEFAULT_CACHE_BYTES};
use super::file::PartFile;
use super::resource::{Resource, Storage};
use crate::codec::{new_decompressor, Compression, Decompressor};
use crate::error::{Error, Result};
use crate::format::blob_table::{parse_blob_table, BlobEntry};
use crate::format::chunk_table::{self, ChunkTable};
use crate::format::header::{Header, HEADER_SIZE, PWM_MAGIC};
use crate::format::integrity::parse_integrity_table;
use crate::format::reshdr::{ResHdr, SOLID_RESOURCE_MAGIC};
use crate::format::xml::{parse_xml, WimXml};
use crate::format::{hash_hex, is_zero_hash, Sha1Hash};

static NEXT_WIM_ID: AtomicU64 = AtomicU64::new(1);

/// Idle decompressors, reused so their tables are allocated once per thread's worth of work.
type DecoderPool = HashMap<(Compression, u32), Vec<Box<dyn Decompressor>>>;

/// Where a blob's bytes are: a range of a resource's uncompressed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub resource: u32,
    pub offset: u64,
    pub size: u64,
    pub hash: Sha1Hash,
    pub refcount: u32,
}

/// A run of chunks of one compressed resource (see [`Wim::chunk_span`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    pub resource: u32,
    /// First and last chunk index, inclusive.
    pub first: u64,
    pub last: u64,
    /// Uncompressed size of every chunk of the resource but possibly its last.
    pub chunk_size: u32,
}

/// Options for [`Wim::open_with`].
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// Other parts of a split set.
    pub refs: Vec<PathBuf>,
    /// Check the integrity table (if present) while opening.
    pub check_integrity: bool,
    /// A chunk cache to share; a private 256 MiB cache if `None`.
    pub cache: Option<Arc<ChunkCache>>,
    /// Open part 1 of a split set without its other parts (for what needs only the header,
    /// the XML and the metadata, all in part 1, as `info` and `dir`); reading a blob that
    /// lies in a missing part fails.
    pub allow_missing_parts: bool,
}

/// An open WIM: header, XML, the blob index and everything needed to read blobs.
pub struct Wim {
    /// Parts of a split set opened without (see [`OpenOptions::allow_missing_parts`]).
    missing_parts: Vec<u16>,
    pub(crate) id: u64,
    pub(crate) parts: Vec<PartFile>,
    /// The part number of each of `parts`.
    part_numbers: Vec<u16>,
    header: Header,
    xml: WimXml,
    xml_raw: Vec<u8>,
    pub(crate) resources: Vec<Resource>,
    /// By hash (a fast hasher: SHA-1 hashes are evenly spread already).
    blobs: rustc_hash::FxHashMap<Sha1Hash, BlobLocation>,
    metadata: Vec<BlobLocation>,
    pub(crate) cache: Arc<ChunkCache>,
    decoders: Mutex<DecoderPool>,
    /// Where decoded solid chunks are kept once decoded, if anywhere (mounts).
    spill: Option<super::spill::Spill>,
}

impl std::fmt::Debug for Wim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wim")
            .field("path", &self.path())
            .field("images", &self.image_count())
            .finish()
    }
}

fn read_header(part: &PartFile) -> Result<Header> {
    let mut buf = [0u8; HEADER_SIZE];
    if part.len < HEADER_SIZE as u64 {
        return Err(Error::invalid(
            &part.path,
            format!("file is {} bytes, too short for a WIM header", part.len),
        ));
    }
    part.read_exact_at(&mut buf, 0, "header")?;
    if buf[..8] == PWM_MAGIC {
        // A pipable WIM: the header at the start was written before the tables; the full
        // one is at the end of the file.
        part.read_exact_at(&mut buf, part.len - HEADER_SIZE as u64, "header at the end")?;
        if buf[..8] != PWM_MAGIC {
            return Err(Error::invalid(
                &part.path,
                "is a pipable WIM without its header at the end (cut short?)",
            ));
        }
    }
    Header::parse(&buf).map_err(|source| Error::Format {
        path: part.path.clone(),
        cause: source,
    })
}

impl Wim {
    /// Reads just the header of a WIM file (any part of a split set).
    pub fn read_header(path: impl AsRef<Path>) -> Result<Header> {
        read_header(&PartFile::open_location(path.as_ref())?)
    }

    /// Opens a standalone WIM file.
    pub fn open(path: impl AsRef<Path>) -> Result<Wim> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a WIM file, or the first part of a split set together with `opts.refs`; each
    /// may be a URL (see [`PartFile::open_location`]).
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Wim> {
        let path = path.as_ref();
        let first = PartFile::open_location(path)?;
        let mut refs = Vec::new();
        for r in &opts.refs {
            if !same_file(r, path) {
                refs.push(PartFile::open_location(r)?);
            }
        }
        Self::open_parts(first, refs, opts)
    }

    /// Opens a WIM held in memory, called `name` in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Wim> {
        Self::open_parts(
            PartFile::from_bytes(name, bytes),
            Vec::new(),
            OpenOptions::default(),
        )
    }

    /// Opens a WIM from parts read through any source (files, memory, ...): `first` is the
    /// WIM or part 1 of a split set, `refs` its other parts (`opts.refs` is not used).
    pub fn open_parts(first: PartFile, refs: Vec<PartFile>, opts: OpenOptions) -> Result<Wim> {
        let path = &first.path.clone();
        let header = read_header(&first)?;
        let mut parts = vec![first];
        let mut headers = vec![header.clone()];
        for p in refs {
            let h = read_header(&p)?;
            if h.guid != header.guid {
                return Err(Error::invalid(
                    &p.path,
                    format!("is not part of the same split WIM as {}", path.display()),
                ));
            }
            if headers.iter().any(|o| o.part_number == h.part_number) {
                continue;
            }
            parts.push(p);
            headers.push(h);
        }
        let mut missing_parts = Vec::new();
        if header.total_parts > 1 {
            if header.part_number != 1 {
                return Err(Error::invalid(
                    path,
                    format!(
                        "is part {} of a split WIM; give part 1 and the others with --ref",
                        header.part_number
                    ),
                ));
            }
            let mut missing: Vec<u16> = (1..=header.total_parts)
                .filter(|n| !headers.iter().any(|h| h.part_number == *n))
                .collect();
            missing.sort();
            if !missing.is_empty() && !opts.allow_missing_parts {
                return Err(Error::invalid(
                    path,
                    format!(
                        "split WIM of {} parts is missing part(s) {:?}; name them with --ref",
                        header.total_parts, missing
                    ),
                ));
            }
            missing_parts = missing;
        }
        let cache = opts
            .cache
            .clone()
            .unwrap_or_else(|| Arc::new(ChunkCache::new(DEFAULT_CACHE_BYTES)));
        let mut wim = Wim {
            id: NEXT_WIM_ID.fetch_add(1, Ordering::Relaxed),
            part_numbers: headers.iter().map(|h| h.part_number).collect(),
            parts,
            header: header.clone(),
            xml: WimXml::default(),
            xml_raw: Vec::new(),
            resources: Vec::new(),
            blobs: rustc_hash::FxHashMap::default(),
            metadata: Vec::new(),
            cache,
            decoders: Mutex::new(HashMap::new()),
            spill: None,
            missing_parts,
        };
        for (i, h) in headers.iter().enumerate() {
            wim.load_blob_table(i, h)?;
        }
        if (wim.metadata.len() as u32) < header.image_count {
            return Err(Error::invalid(
                path,
                format!(
                    "header says {} images but the blob table has {} metadata resources",
                    header.image_count,
                    wim.metadata.len()
                ),
            ));
        }
        wim.metadata.truncate(header.image_count as usize);
        if !header.xml.is_empty() {
            let xml_res = wim.add_resource(0, &header.xml)?;
            let loc = BlobLocation {
                resource: xml_res,
                offset: 0,
                size: header.xml.uncompressed_size,
                hash: [0; 20],
                refcount: 0,
            };
            wim.xml_raw = wim.read_blob(&loc, false)?;
            wim.xml = parse_xml(&wim.xml_raw).map_err(|source| Error::Format {
                path: path.to_path_buf(),
                cause: source,
            })?;
        }
        if opts.check_integrity {
            wim.check_integrity()?;
        }
        Ok(wim)
    }

    fn add_resource(&mut self, part: usize, r: &ResHdr) -> Result<u32> {
        let path = &self.parts[part].path;
        let end = r
            .end()
            .filter(|&e| e <= self.parts[part].len)
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    format!(
                    "resource at offset {} ({} bytes) lies beyond the end of the file ({} bytes)",
                    r.offset, r.size_in_wim, self.parts[part].len
                ),
                )
            })?;
        let _ = end;
        let storage = if r.is_compressed() {
            let h = &self.header;
            let compression = h.compression().map_err(|source| Error::Format {
                path: path.clone(),
                cause: source,
            })?;
            if compression == Compression::None {
                return Err(Error::invalid(
                    path,
                    format!(
                        "resource at offset {} is compressed but the WIM is not",
                        r.offset
                    ),
                ));
            }
            chunk_table::check_plausible(r.uncompressed_size, r.size_in_wim, h.chunk_size, false)
                .map_err(|source| Error::Format {
                path: path.clone(),
                cause: source,
            })?;
            Storage::Chunked {
                compression,
                chunk_size: h.chunk_size,
            }
        } else {
            if r.size_in_wim != r.uncompressed_size {
                return Err(Error::invalid(
                    path,
                    format!(
                        "uncompressed resource at offset {} has stored size {} != size {}",
                        r.offset, r.size_in_wim, r.uncompressed_size
                    ),
                ));
            }
            Storage::Raw
        };
        let mut res = Resource::new(part, r.offset, r.size_in_wim, r.uncompressed_size, storage);
        res.pipable = self.header.magic == PWM_MAGIC;
        self.resources.push(res);
        Ok(self.resources.len() as u32 - 1)
    }

    fn add_solid_resource(&mut self, part: usize, r: &ResHdr) -> Result<u32> {
        let p = &self.parts[part];
        if r.end().is_none_or(|e| e > p.len) || r.size_in_wim < chunk_table::SOLID_HEADER_SIZE {
            return Err(Error::invalid(
                &p.path,
                format!(
                    "solid resource at offset {} lies beyond the end of the file",
                    r.offset
                ),
            ));
        }
        let hdr = p.read_vec(
            r.offset,
            chunk_table::SOLID_HEADER_SIZE,
            "solid resource header",
        )?;
        let (usize, chunk_size, compression) =
            chunk_table::parse_solid_header(&hdr).map_err(|source| Error::Format {
                path: p.path.clone(),
                cause: source,
            })?;
        chunk_table::check_plausible(usize, r.size_in_wim, chunk_size, true).map_err(|source| {
            Error::Format {
                path: p.path.clone(),
                cause: source,
            }
        })?;
        let storage = Storage::Solid {
            compression,
            chunk_size,
        };
        self.resources
            .push(Resource::new(part, r.offset, r.size_in_wim, usize, storage));
        Ok(self.resources.len() as u32 - 1)
    }

    fn load_blob_table(&mut self, part: usize, h: &Header) -> Result<()> {
        let path = self.parts[part].path.clone();
        if h.blob_table.is_empty() {
            return Ok(());
        }
        let res = self.add_resource(part, &h.blob_table)?;
        let loc = BlobLocation {
            resource: res,
            offset: 0,
            size: h.blob_table.uncompressed_size,
            hash: [0; 20],
            refcount: 0,
        };
        let data = self.read_blob(&loc, false)?;
        let entries = parse_blob_table(&data).map_err(|source| Error::Format {
            path: path.clone(),
            cause: source,
        })?;
        let solid_allowed = h.version == crate::format::header::VERSION_SOLID;
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            if solid_allowed && e.reshdr.is_solid() {
                // A run of solid entries: resource entries (magic size) and the blobs packed in
                // them, addressed by offset into the run's concatenated uncompressed data.
                let run_end = entries[i..]
                    .iter()
                    .position(|e| !e.reshdr.is_solid())
                    .map_or(entries.len(), |n| i + n);
                let mut run_res = Vec::new();
                for e in &entries[i..run_end] {
                    if e.reshdr.uncompressed_size == SOLID_RESOURCE_MAGIC {
                        run_res.push(self.add_solid_resource(part, &e.reshdr)?);
                    }
                }
                for e in &entries[i..run_end] {
                    if e.reshdr.uncompressed_size == SOLID_RESOURCE_MAGIC {
                        continue;
                    }
                    let size = e.reshdr.size_in_wim;
                    let mut off = e.reshdr.offset;
                    let mut placed = None;
                    for &r in &run_res {
                        let rsize = self.resources[r as usize].uncompressed_size;
                        if off.checked_add(size).is_some_and(|end| end <= rsize) {
                            placed = Some((r, off));
                            break;
                        }
                        match off.checked_sub(rsize) {
                            Some(o) => off = o,
                            None => break,
                        }
                    }
                    let (r, off) = placed.ok_or_else(|| {
                        Error::invalid(
                            &path,
                            format!(
                                "blob {} lies outside its solid resources",
                                hash_hex(&e.hash)
                            ),
                        )
                    })?;
                    self.insert_blob(
                        part,
                        h,
                        e,
                        BlobLocation {
                            resource: r,
                            offset: off,
                            size,
                            hash: e.hash,
                            refcount: e.refcount,
                        },
                    )?;
                }
                i = run_end;
                continue;
            }
            let mut r = e.reshdr;
            if !solid_allowed {
                r.flags &= !crate::format::reshdr::RESHDR_FLAG_SOLID;
            }
            if e.part_number == h.part_number && !is_zero_hash(&e.hash) && r.uncompressed_size > 0 {
                let res = self.add_resource(part, &r)?;
                self.insert_blob(
                    part,
                    h,
                    e,
                    BlobLocation {
                        resource: res,
                        offset: 0,
                        size: r.uncompressed_size,
                        hash: e.hash,
                        refcount: e.refcount,
                    },
                )?;
            }
            i += 1;
        }
        Ok(())
    }

    fn insert_blob(
        &mut self,
        part: usize,
        h: &Header,
        e: &BlobEntry,
        loc: BlobLocation,
    ) -> Result<()> {
        if e.part_number != h.part_number || is_zero_hash(&e.hash) || loc.size == 0 {
            return Ok(());
        }
        if e.reshdr.is_metadata() {
            if e.refcount == 0 || h.part_number != 1 || part != 0 {
                return Ok(());
            }
            if e.reshdr.is_solid() {
                return Err(Error::invalid(
                    &self.parts[part].path,
                    "image metadata in a solid resource is not supported",
                ));
            }
            self.metadata.push(loc);
        } else {
            self.blobs.entry(e.hash).or_insert(loc);
        }
        Ok(())
    }

    /// Path of the (first part) file.
    pub fn path(&self) -> &Path {
        &self.parts[0].path
    }

    /// The header of the (first part) file.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The parsed XML info.
    pub fn xml(&self) -> &WimXml {
        &self.xml
    }

    /// The raw XML info resource (UTF-16LE).
    pub fn xml_raw(&self) -> &[u8] {
        &self.xml_raw
    }

    /// Number of images.
    pub fn image_count(&self) -> u32 {
        self.metadata.len() as u32
    }

    /// Size in bytes of the file (sum of all parts).
    pub fn file_size(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// The part files.
    pub fn part_paths(&self) -> Vec<&Path> {
        self.parts.iter().map(|p| p.path.as_path()).collect()
    }

    /// The chunk cache this WIM reads through.
    pub fn cache(&self) -> &Arc<ChunkCache> {
        &self.cache
    }

    /// Parts of the split set that were allowed to be missing and are.
    pub fn missing_parts(&self) -> &[u16] {
        &self.missing_parts
    }

    /// Looks up a blob by SHA-1.
    pub fn blob(&self, hash: &Sha1Hash) -> Option<&BlobLocation> {
        self.blobs.get(hash)
    }

    /// All blobs (excluding metadata resources).
    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }

    /// The metadata resource of image `index` (1-based).
    pub fn metadata_location(&self, index: u32) -> Option<&BlobLocation> {
        index
            .checked_sub(1)
            .and_then(|i| self.metadata.get(i as usize))
    }

    /// The number of the part of a split set a blob is stored in (1 for a whole WIM).
    pub fn part_number_of(&self, loc: &BlobLocation) -> u16 {
        self.part_numbers[self.resources[loc.resource as usize].part]
    }

    /// The resource a blob is stored in.
    pub fn resource(&self, loc: &BlobLocation) -> &Resource {
        &self.resources[loc.resource as usize]
    }

    /// Resolves an image given by 1-based index or by name.
    pub fn resolve_image(&self, spec: &str) -> Result<u32> {
        if let Ok(n) = spec.parse::<u32>() {
            if n >= 1 && n <= self.image_count() {
                return Ok(n);
            }
            return Err(Error::NotFound(format!(
                "{}: there is no image {n} (the file has {} image(s))",
                self.path().display(),
                self.image_count()
            )));
        }
        self.xml
            .images
            .iter()
            .find(|i| i.name.as_deref() == Some(spec))
            .map(|i| i.index)
            .filter(|&i| i >= 1 && i <= self.image_count())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}: no image is named \"{spec}\"",
                    self.path().display()
                ))
            })
    }

    pub(crate) fn chunk_table(&self, res_idx: u32) -> Result<Arc<ChunkTable>> {
        let res = &self.resources[res_idx as usize];
        if let Some(t) = res.table.get() {
            return Ok(Arc::clone(t));
        }
        let part = &self.parts[res.part];
        let (start, len) = res.table_range();
        if start.checked_add(len).is_none_or(|e| e > res.size_in_wim) {
            return Err(Error::invalid(
                &part.path,
                format!(
                    "chunk table of the resource at offset {} is larger than the resource",
                    res.offset
                ),
            ));
        }
        let raw = part.read_vec_in(res.offset + start, len, res.span(), "chunk table")?;
        let parsed = match res.storage {
            Storage::Raw => unreachable!("raw resources have no chunk table"),
            Storage::Chunked {
                compression,
                chunk_size,
            } => {
                let parse = match res.pipable {
                    true => chunk_table::parse_pipable,
                    false => chunk_table::parse_normal,
                };
                parse(
                    &raw,
                    res.uncompressed_size,
                    res.size_in_wim,
                    chunk_size,
                    compression,
                )
            }
            Storage::Solid {
                compression,
                chunk_size,
            } => chunk_table::parse_solid(
                &raw,
                res.uncompressed_size,
                res.size_in_wim,
                chunk_size,
                compression,
            ),
        }
        .map_err(|e| {
            Error::invalid(
                &part.path,
                format!("resource at offset {}: {e}", res.offset),
            )
        })?;
        let t = Arc::new(parsed);
        Ok(Arc::clone(res.table.get_or_init(|| t)))
    }

    fn take_decoder(
        &self,
        c: Compression,
        chunk_size: u32,
    ) -> std::result::Result<Box<dyn Decompressor>, crate::codec::CodecError> {
        if let Some(d) = self
            .decoders
            .lock()
            .get_mut(&(c, chunk_size))
            .and_then(|v| v.pop())
        {
            return Ok(d);
        }
        new_decompressor(c, chunk_size)
    }

    fn return_decoder(&self, c: Compression, chunk_size: u32, d: Box<dyn Decompressor>) {
        let mut g = self.decoders.lock();
        let v = g.entry((c, chunk_size)).or_default();
        if v.len() < 16 {
            v.push(d);
        }
    }

    /// Keeps every solid chunk, once decoded, in a scratch file in `dir` (unlinked: it goes
    /// when the WIM is closed), so that it is never decoded twice however little memory
    /// the cache has. For a mount of a solid image (an ESD), whose files are read in an
    /// order that has nothing to do with their place in the solid chunks. Needs up to the
    /// uncompressed size of the solid resources on disk, at most `cap` bytes (default: half
    /// the space free in `dir`); past the cap, or after a failure to write there (logged),
    /// reads go on decoding chunks in memory. Does nothing for a WIM without solid resources.
    pub fn keep_solid_chunks_in(&mut self, dir: &Path, cap: Option<u64>) -> Result<()> {
        if !self
            .resources
            .iter()
            .any(|r| matches!(r.storage, Storage::Solid { .. }))
        {
            return Ok(());
        }
        let cap = match cap {
            Some(c) => c,
            None => default_scratch_cap(dir),
        };
        let spill = super::spill::Spill::create(dir, cap)
            .map_err(|e| Error::io(dir, "creating a scratch file for decoded solid chunks", e))?;
        self.spill = Some(spill);
        Ok(())
    }

    /// Drops a solid chunk kept on disk from the memory cache: reads take just their bytes
    /// from the disk copy, so the memory goes to the chunks of other resources.
    fn drop_if_kept(&self, res: u32, i: u64) {
        if self
            .spill_of(res)
            .is_some_and(|sp| sp.find(res, i).is_some())
        {
            self.cache.remove(&(self.id, res, i));
        }
    }

    /// The spill store if resource `res` is solid and one is kept.
    fn spill_of(&self, res: u32) -> Option<&super::spill::Spill> {
        self.spill.as_ref().filter(|_| self.is_solid(res))
    }

    /// Reads and decodes chunk `i` of a resource (not through the cache), or reads it back
    /// from the spill store.
    pub(crate) fn decode_chunk(
        &self,
        res_idx: u32,
        table: &ChunkTable,
        i: usize,
    ) -> Result<Arc<[u8]>> {
        let res = &self.resources[res_idx as usize];
        let part = &self.parts[res.part];
        let (s, e) = table.chunk_range(i);
        let usize = table.chunk_usize(i) as usize;
        ensure_allocatable(usize, &part.path, "a decoded chunk")?;
        // Allocated once, in its final place: converting a Vec would copy the chunk again.
        let mut out: Arc<[u8]> = std::iter::repeat_n(0u8, usize).collect();
        let buf = Arc::get_mut(&mut out).expect("just allocated");
        let spill = self.spill_of(res_idx);
        if let Some(at) = spill.and_then(|sp| sp.find(res_idx, i as u64)) {
            let sp = spill.expect("found in it");
            if sp.read(at, 0, buf).is_ok() {
                return Ok(out);
            }
        }
        if (e - s) as usize == usize {
            part.read_in(buf, res.offset + s, res.span(), "chunk")?;
            return Ok(out);
        }
        let comp = part.read_vec_in(res.offset + s, e - s, res.span(), "chunk")?;
        self.decode_into(res, table, i, &comp, buf)?;
        if let Some(sp) = spill {
            sp.put(res_idx, i as u64, buf);
        }
        Ok(out)
    }

    /// Loads chunk `i` of a resource for the cache: decoded into memory, or, for a solid
    /// chunk kept on disk, decoded straight into the spill store, which the empty result
    /// then stands for ([`Wim::drop_if_kept`] takes that out of the cache again).
    fn load_for_cache(&self, res_idx: u32, table: &ChunkTable, i: usize) -> Result<Arc<[u8]>> {
        #[cfg(unix)]
        if let Some(sp) = self.spill_of(res_idx) {
            if sp.find(res_idx, i as u64).is_some() {
                return Ok(Arc::from(&[][..]));
            }
            let res = &self.resources[res_idx as usize];
            let part = &self.parts[res.part];
            let (s, e) = table.chunk_range(i);
            let len = table.chunk_usize(i) as usize;
            let comp = part.read_vec_in(res.offset + s, e - s, res.span(), "chunk")?;
            let kept = sp.decode_into(res_idx, i as u64, len, |buf| {
                if comp.len() == len {
                    buf.copy_from_slice(&comp);
                    Ok(())
                } else {
                    self.decode_into(res, table, i, &comp, buf)
                }
            })?;
            if kept {
                return Ok(Arc::from(&[][..]));
            }
        }
        self.decode_chunk(res_idx, table, i)
    }

    /// Copies bytes `within..` of solid chunk `i` from the spill store into `buf` (as many
    /// as the chunk and `buf` have); `None` if it is not kept there or cannot be read.
    fn read_kept(
        &self,
        res_idx: u32,
        table: &ChunkTable,
        i: usize,
        within: usize,
        buf: &mut [u8],
    ) -> Option<usize> {
        let sp = self.spill_of(res_idx)?;
        let at = sp.find(res_idx, i as u64)?;
        let n = (table.chunk_usize(i) as usize - within).min(buf.len());
        sp.read(at, within as u64, &mut buf[..n]).ok().map(|()| n)
    }

    fn decode_into(
        &self,
        res: &Resource,
        table: &ChunkTable,
        i: usize,
        comp: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let path = &self.parts[res.part].path;
        let map = |source| Error::Decompress {
            path: path.clone(),
            offset: res.offset,
            chunk: i as u64,
            cause: source,
        };
        let mut d = self
            .take_decoder(table.compression, table.chunk_size)
            .map_err(map)?;
        let r = d.decompress(comp, out).map_err(map);
        self.return_decoder(table.compression, table.chunk_size, d);
        r
    }

    /// Chunk `i` of a resource through the shared cache.
    pub(crate) fn cached_chunk(
        &self,
        res_idx: u32,
        table: &ChunkTable,
        i: usize,
    ) -> Result<Arc<[u8]>> {
        let chunk = self.cache.get_or_load((self.id, res_idx, i as u64), || {
            self.load_for_cache(res_idx, table, i)
        })?;
        if chunk.is_empty() {
            // Kept on disk: read back whole.
            self.drop_if_kept(res_idx, i as u64);
            return self.decode_chunk(res_idx, table, i);
        }
        Ok(chunk)
    }

    /// Reads `buf.len()` bytes at `offset` of a blob, decoding only the chunks touched.
    pub fn read_blob_at(&self, loc: &BlobLocation, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > loc.size)
        {
            return Err(Error::Usage(format!(
                "read of {} bytes at {offset} past the end of a {}-byte blob",
                buf.len(),
                loc.size
            )));
        }
        let res = &self.resources[loc.resource as usize];
        let start = loc.offset + offset;
        if let Storage::Raw = res.storage {
            return self.parts[res.part].read_in(buf, res.offset + start, res.span(), "blob data");
        }
        let table = self.chunk_table(loc.resource)?;
        let cs = table.chunk_size as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = start + done as u64;
            let ci = (pos / cs) as usize;
            let within = (pos % cs) as usize;
            let key = (self.id, loc.resource, ci as u64);
            // A solid chunk kept on disk (and not in memory): read just these bytes.
            if !self.cache.contains(&key) {
                if let Some(n) = self.read_kept(loc.resource, &table, ci, within, &mut buf[done..])
                {
                    done += n;
                    continue;
                }
            }
            let mut chunk = self
                .cache
                .get_or_load(key, || self.load_for_cache(loc.resource, &table, ci))?;
            self.drop_if_kept(loc.resource, ci as u64);
            if chunk.is_empty() {
                // Decoded straight to disk.
                if let Some(n) = self.read_kept(loc.resource, &table, ci, within, &mut buf[done..])
                {
                    done += n;
                    continue;
                }
                // The disk copy cannot be read back: decode again, into memory.
                chunk = self.decode_chunk(loc.resource, &table, ci)?;
            }
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(())
    }

    /// The chunks of its resource that hold `len` bytes at `offset` of a blob; `None` if
    /// the blob is stored uncompressed (nothing to decode) or the range is empty.
    pub fn chunk_span(
        &self,
        loc: &BlobLocation,
        offset: u64,
        len: u64,
    ) -> Result<Option<ChunkSpan>> {
        let end = offset.saturating_add(len).min(loc.size);
        let res = &self.resources[loc.resource as usize];
        if offset >= end || matches!(res.storage, Storage::Raw) {
            return Ok(None);
        }
        let table = self.chunk_table(loc.resource)?;
        let cs = table.chunk_size as u64;
        Ok(Some(ChunkSpan {
            resource: loc.resource,
            first: (loc.offset + offset) / cs,
            last: (loc.offset + end - 1) / cs,
            chunk_size: table.chunk_size,
        }))
    }

    /// Drops chunks `first..last` (exclusive) of a resource from the cache, for a reader that
    /// is done with them and knows nobody else needs them soon (e.g. a sequential reader of
    /// a non-solid resource, whose data the kernel's page cache now holds). Frees the memory
    /// for the chunks decoded next instead of growing the cache to its bound.
    pub fn forget_chunks(&self, resource: u32, first: u64, last: u64) {
        for i in first..last {
            self.cache.remove(&(self.id, resource, i));
        }
    }

    /// Whether a resource is solid (its chunks hold many blobs).
    pub fn is_solid(&self, resource: u32) -> bool {
        matches!(
            self.resources[resource as usize].storage,
            Storage::Solid { .. }
        )
    }

    /// Number of chunks of a compressed resource (0 for an uncompressed one).
    pub fn chunk_count(&self, resource: u32) -> Result<u64> {
        if matches!(self.resources[resource as usize].storage, Storage::Raw) {
            return Ok(0);
        }
        Ok(self.chunk_table(resource)?.num_chunks() as u64)
    }

    /// Whether chunk `i` of a resource is in the cache (its LRU position is not touched), or
    /// kept decoded on disk.
    pub fn chunk_cached(&self, resource: u32, i: u64) -> bool {
        self.cache.contains(&(self.id, resource, i))
            || self
                .spill_of(resource)
                .is_some_and(|sp| sp.find(resource, i).is_some())
    }

    /// Decodes chunk `i` of a resource into the cache unless it is there already or being
    /// decoded by another thread (this does not wait for that one).
    pub fn load_chunk(&self, resource: u32, i: u64) -> Result<()> {
        if self.chunk_cached(resource, i) {
            return Ok(());
        }
        let table = self.chunk_table(resource)?;
        if i >= table.num_chunks() as u64 {
            return Err(Error::Usage(format!(
                "chunk {i} is past the end of its resource"
            )));
        }
        self.cache.load_unless_present((self.id, resource, i), || {
            self.load_for_cache(resource, &table, i as usize)
        })?;
        self.drop_if_kept(resource, i);
        Ok(())
    }

    /// Decodes, in parallel, the chunks holding `len` bytes at `offset` of a blob into the
    /// cache, so that following [`Wim::read_blob_at`] calls hit it (read-ahead for mounts).
    pub fn prefetch(&self, loc: &BlobLocation, offset: u64, len: u64) -> Result<()> {
        let end = offset.saturating_add(len).min(loc.size);
        let res = &self.resources[loc.resource as usize];
        if offset >= end || matches!(res.storage, Storage::Raw) {
            return Ok(());
        }
        let table = self.chunk_table(loc.resource)?;
        let cs = table.chunk_size as u64;
        let first = (loc.offset + offset) / cs;
        let last = (loc.offset + end - 1) / cs;
        (first..=last)
            .into_par_iter()
            .filter(|&i| !self.cache.contains(&(self.id, loc.resource, i)))
            .try_for_each(|i| {
                self.cached_chunk(loc.resource, &table, i as usize)
                    .map(|_| ())
            })
    }

    /// Reads a whole blob, decoding its chunks in parallel; checks its SHA-1 when `verify`.
    pub fn read_blob(&self, loc: &BlobLocation, verify: bool) -> Result<Vec<u8>> {
        // The size comes from the file: checked against its resource (whose size was checked
        // against the file) before anything is allocated, and allocated fallibly.
        let res = self
            .resources
            .get(loc.resource as usize)
            .ok_or_else(|| Error::invalid(self.path(), format!("no resource {}", loc.resource)))?;
        let path = &self.parts[res.part].path;
        if loc
            .offset
            .checked_add(loc.size)
            .is_none_or(|e| e > res.uncompressed_size)
        {
            return Err(Error::invalid(path, "blob extends past its resource"));
        }
        let size = usize::try_from(loc.size)
            .map_err(|_| Error::invalid(path, format!("blob of {} bytes", loc.size)))?;
        let mut out = Vec::new();
        out.try_reserve_exact(size).map_err(|_| {
            Error::invalid(
                path,
                format!("a blob of {size} bytes does not fit in memory"),
            )
        })?;
        if self.spill_of(loc.resource).is_some() {
            // Just this blob's bytes of the solid chunks, not whole chunks.
            out.resize(loc.size as usize, 0);
            self.read_blob_at(loc, 0, &mut out)?;
        } else {
            self.stream_blob(loc, &mut |piece| {
                out.extend_from_slice(piece);
                Ok(())
            })?;
        }
        if verify {
            self.check_hash(loc, &Sha1::digest(&out).into())?;
        }
        Ok(out)
    }

    pub(crate) fn check_hash(&self, loc: &BlobLocation, actual: &Sha1Hash) -> Result<()> {
        if actual != &loc.hash {
            let res = &self.resources[loc.resource as usize];
            return Err(Error::HashMismatch {
                path: self.parts[res.part].path.clone(),
                what: format!("blob at resource offset {} (+{})", res.offset, loc.offset),
                expected: hash_hex(&loc.hash),
                actual: hash_hex(actual),
            });
        }
        Ok(())
    }

    /// Streams a blob's bytes in order to `sink`, decoding chunks in parallel batches. Solid
    /// chunks go through the cache (neighbouring blobs share them); others do not, so one
    /// big sequential read does not evict what random readers need.
    pub fn stream_blob(
        &self,
        loc: &BlobLocation,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let res = &self.resources[loc.resource as usize];
        if loc.size == 0 {
            return Ok(());
        }
        if loc
            .offset
            .checked_add(loc.size)
            .is_none_or(|e| e > res.uncompressed_size)
        {
            return Err(Error::invalid(
                &self.parts[res.part].path,
                "blob extends past its resource",
            ));
        }
        if let Storage::Raw = res.storage {
            let part = &self.parts[res.part];
            let mut buf = vec![0u8; (1 << 20).min(loc.size as usize)];
            let mut pos = 0u64;
            while pos < loc.size {
                let n = (loc.size - pos).min(buf.len() as u64) as usize;
                part.read_in(
                    &mut buf[..n],
                    res.offset + loc.offset + pos,
                    res.span(),
                    "blob data",
                )?;
                sink(&buf[..n])?;
                pos += n as u64;
            }
            return Ok(());
        }
        let table = self.chunk_table(loc.resource)?;
        let cs = table.chunk_size as u64;
        let first = (loc.offset / cs) as usize;
        let last = ((loc.offset + loc.size - 1) / cs) as usize;
        let solid = matches!(res.storage, Storage::Solid { .. });
        let batch = if solid {
            rayon::current_num_threads().max(1)
        } else {
            (rayon::current_num_threads() * 4).max(4)
        };
        let mut ci = first;
        while ci <= last {
            let end = (ci + batch).min(last + 1);
            let chunks: Vec<Result<Arc<[u8]>>> = if end - ci == 1 {
                vec![if solid {
                    self.cached_chunk(loc.resource, &table, ci)
                } else {
                    self.decode_chunk(loc.resource, &table, ci)
                }]
            } else {
                (ci..end)
                    .into_par_iter()
                    .map(|i| {
                        if solid {
                            self.cached_chunk(loc.resource, &table, i)
                        } else {
                            self.decode_chunk(loc.resource, &table, i)
                        }
                    })
                    .collect()
            };
            for (k, c) in chunks.into_iter().enumerate() {
                let c = c?;
                let i = ci + k;
                let chunk_start = i as u64 * cs;
                let lo = loc.offset.saturating_sub(chunk_start) as usize;
                let hi = ((loc.offset + loc.size - chunk_start) as usize).min(c.len());
                sink(&c[lo..hi])?;
            }
            ci = end;
        }
        Ok(())
    }

    /// Checks the integrity table, if the file has one. `Ok(false)` if it has none.
    pub fn check_integrity(&self) -> Result<bool> {
        let h = &self.header;
        if h.integrity.is_empty() {
            return Ok(false);
        }
        let part = &self.parts[0];
        let raw = part.read_vec(
            h.integrity.offset,
            h.integrity.size_in_wim,
            "integrity table",
        )?;
        let table = parse_integrity_table(&raw).map_err(|source| Error::Format {
            path: part.path.clone(),
            cause: source,
        })?;
        let end = h.blob_table.end().unwrap_or(0);
        if end < HEADER_SIZE as u64 || end > part.len {
            return Err(Error::invalid(
                &part.path,
                "blob table end is outside the file",
            ));
        }
        let bytes = end - HEADER_SIZE as u64;
        let cs = table.chunk_size as u64;
        let need = bytes.div_ceil(cs);
        if need != table.hashes.len() as u64 {
            return Err(Error::invalid(
                &part.path,
                format!(
                    "integrity table has {} entries, the file needs {need}",
                    table.hashes.len()
                ),
            ));
        }
        let bad: Vec<usize> = (0..table.hashes.len())
            .into_par_iter()
            .filter_map(|i| {
                let off = HEADER_SIZE as u64 + i as u64 * cs;
                let len = cs.min(end - off);
                let ok = part
                    .read_vec(off, len, "integrity chunk")
                    .map(|d| Sha1::digest(&d)[..] == table.hashes[i][..]);
                (!matches!(ok, Ok(true))).then_some(i)
            })
            .collect();
        if let Some(&i) = bad.first() {
            return Err(Error::invalid(
                &part.path,
                format!(
                    "integrity check failed: bytes {}..{} do not match the integrity table",
                    HEADER_SIZE as u64 + i as u64 * cs,
                    (HEADER_SIZE as u64 + (i as u64 + 1) * cs).min(end)
                ),
            ));
        }
        Ok(true)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Fails cleanly where an allocation of `bytes` (a size read from `path`) could not be
/// made, instead of letting the allocator abort the process. Small sizes always pass.
pub(crate) fn ensure_allocatable(bytes: usize, path: &Path, what: &str) -> Result<()> {
    if bytes < 16 << 20 {
        return Ok(());
    }
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| {
        Error::invalid(
            path,
            format!("{what} of {bytes} bytes does not fit in memory"),
        )
    })
}

/// The default bound of a mount's scratch file: half the space free in `dir` when the mount
/// starts (on tmpfs that is memory), so the mount never fills the disk it shares.
fn default_scratch_cap(dir: &Path) -> u64 {
    #[cfg(unix)]
    if let Ok(st) = rustix::fs::statvfs(dir) {
        return st.f_bavail.saturating_mul(st.f_frsize) / 2;
    }
    let _ = dir;
    u64::MAX
}
