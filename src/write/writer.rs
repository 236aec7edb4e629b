//! `WimWriter`: builds a new WIM file beside its target and renames it into place.
//!
//! Layout, in write order: header placeholder, blobs (deduplicated by SHA-1), one metadata
//! resource per image, blob table, XML info, optional integrity table; then the real header.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use super::lock::TargetLock;
use super::resource::{write_resource, BlobSource, ResourceError, ResourceOptions};
use super::xml::{build_xml, ImageXml};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::format::blob_table::BlobEntry;
use crate::format::header::{
    Header, FLAG_COMPRESSION, FLAG_COMPRESS_LZMS, FLAG_COMPRESS_LZX, FLAG_COMPRESS_XPRESS,
    FLAG_RP_FIX, HEADER_SIZE, VERSION_DEFAULT, WIM_MAGIC,
};
use crate::format::integrity::{serialize_integrity_table, IntegrityTable};
use crate::format::reshdr::{ResHdr, RESHDR_FLAG_METADATA};
use crate::format::Sha1Hash;
use crate::image::Image;

/// Bytes hashed per integrity-table entry, as wimlib and DISM use.
pub const INTEGRITY_CHUNK_SIZE: u32 = 10 * 1024 * 1024;

/// How a new WIM is written.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub resources: ResourceOptions,
    /// Worker threads for compression (0 = one per core).
    pub threads: usize,
    /// Write an integrity table.
    pub check_integrity: bool,
    /// Set the header's RP_FIX flag (absolute links inside the image were made
    /// image-relative at capture).
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

struct BlobRecord {
    reshdr: ResHdr,
    refcount: u32,
}

/// Writes a new WIM file. Nothing appears at the target path until [`WimWriter::finish`].
pub struct WimWriter {
    target: PathBuf,
    tmp_path: PathBuf,
    _lock: TargetLock,
    out: BufWriter<File>,
    pos: u64,
    opts: WriterOptions,
    pool: rayon::ThreadPool,
    blobs: HashMap<Sha1Hash, BlobRecord>,
    /// Blob hashes in the order written, so the blob table follows the file.
    order: Vec<Sha1Hash>,
    metadata: Vec<(ResHdr, Sha1Hash)>,
    xml: Vec<ImageXml>,
    boot_index: u32,
    finished: bool,
}

impl WimWriter {
    /// Locks `target` and starts a temporary file beside it.
    pub fn create(target: &Path, opts: WriterOptions) -> Result<WimWriter> {
        if opts.resources.compression == Compression::Lzms {
            return Err(Error::Usage("LZMS compression is not supported yet".into()));
        }
        let lock = TargetLock::acquire(target)?;
        let (tmp_path, file) = create_temp_beside(target)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .thread_name(|i| format!("wimfs-compress-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start compression threads: {e}")))?;
        let mut w = WimWriter {
            target: target.to_path_buf(),
            tmp_path,
            _lock: lock,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            opts,
            pool,
            blobs: HashMap::new(),
            order: Vec::new(),
            metadata: Vec::new(),
            xml: Vec::new(),
            boot_index: 0,
            finished: false,
        };
        // A zeroed header until the end: a torn temporary file is never mistaken for a WIM.
        w.write_raw(&[0u8; HEADER_SIZE])?;
        Ok(w)
    }

    /// The path of the WIM being written.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether a blob with this hash is already in the new file.
    pub fn has_blob(&self, hash: &Sha1Hash) -> bool {
        self.blobs.contains_key(hash)
    }

    /// Writes a blob unless one with the same hash is already written; returns its hash.
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
        let start = self.pos;
        let opts = self.opts.resources;
        let out = &mut self.out;
        let written = self
            .pool
            .install(|| write_resource(out, start, source, size, &opts, false, progress))
            .map_err(|e| resource_error(what, e))?;
        if expected.is_some_and(|h| h != written.hash) {
            return Err(Error::invalid(
                what,
                "the file changed while it was being captured",
            ));
        }
        if self.blobs.contains_key(&written.hash) {
            // Same data under an unexpected hash-less call: drop the duplicate copy.
            self.seek_to(start)?;
            return Ok(written.hash);
        }
        self.pos = start + written.reshdr.size_in_wim;
        self.blobs.insert(
            written.hash,
            BlobRecord {
                reshdr: written.reshdr,
                refcount: 0,
            },
        );
        self.order.push(written.hash);
        Ok(written.hash)
    }

    /// Writes an image's metadata resource and records its XML info. Every non-empty stream
    /// of the image must already have been written with [`WimWriter::write_blob`].
    pub fn add_image(&mut self, image: &Image, desc: &ImageDescription) -> Result<()> {
        for ino in &image.inodes {
            for s in &ino.streams {
                if crate::format::is_zero_hash(&s.hash) {
                    continue;
                }
                let rec = self.blobs.get_mut(&s.hash).ok_or_else(|| {
                    Error::invalid(
                        &self.target,
                        format!(
                            "image refers to blob {} that was never written",
                            crate::format::hash_hex(&s.hash)
                        ),
                    )
                })?;
                // One reference per name: that is how wimlib and WIMGAPI count them.
                rec.refcount += ino.dentries.len() as u32;
            }
        }
        let meta = image.to_metadata();
        let start = self.pos;
        let opts = self.opts.resources;
        let out = &mut self.out;
        let written = self
            .pool
            .install(|| write_resource(out, start, &meta, meta.len() as u64, &opts, true, &|_| {}))
            .map_err(|e| resource_error(&self.target, e))?;
        self.pos = start + written.reshdr.size_in_wim;
        self.metadata.push((written.reshdr, written.hash));
        let now = crate::time::now_filetime();
        self.xml.push(ImageXml::from_image(
            image,
            desc.name.clone(),
            desc.description.clone(),
            now,
        ));
        if desc.boot {
            self.boot_index = self.metadata.len() as u32;
        }
        Ok(())
    }

    /// Writes the blob table, XML and integrity table, then the header; syncs and renames the
    /// file over the target.
    pub fn finish(mut self) -> Result<()> {
        let mut table = Vec::with_capacity((self.metadata.len() + self.order.len()) * 50);
        for (reshdr, hash) in &self.metadata {
            table.extend_from_slice(
                &BlobEntry {
                    reshdr: *reshdr,
                    part_number: 1,
                    refcount: 1,
                    hash: *hash,
                }
                .to_bytes(),
            );
        }
        for hash in &self.order {
            let rec = &self.blobs[hash];
            if rec.refcount == 0 {
                // Written but no image kept it (e.g. a file skipped after hashing).
                continue;
            }
            table.extend_from_slice(
                &BlobEntry {
                    reshdr: rec.reshdr,
                    part_number: 1,
                    refcount: rec.refcount,
                    hash: *hash,
                }
                .to_bytes(),
            );
        }
        let blob_table = self.write_plain(&table, true)?;
        let xml_offset = self.pos;
        let xml = build_xml(&self.xml, xml_offset);
        let xml = self.write_plain(&xml, true)?;
        let integrity = if self.opts.check_integrity {
            let end = blob_table.offset + blob_table.size_in_wim;
            let table = self.integrity_table(end)?;
            self.write_plain(&serialize_integrity_table(&table), false)?
        } else {
            ResHdr::default()
        };
        let c = self.opts.resources.compression;
        let mut flags = match c {
            Compression::None => 0,
            Compression::Xpress => FLAG_COMPRESSION | FLAG_COMPRESS_XPRESS,
            Compression::Lzx => FLAG_COMPRESSION | FLAG_COMPRESS_LZX,
            Compression::Lzms => FLAG_COMPRESSION | FLAG_COMPRESS_LZMS,
        };
        if self.opts.rp_fix {
            flags |= FLAG_RP_FIX;
        }
        let header = Header {
            magic: WIM_MAGIC,
            version: VERSION_DEFAULT,
            flags,
            chunk_size: if c == Compression::None {
                0
            } else {
                self.opts.resources.chunk_size
            },
            guid: random_guid(),
            part_number: 1,
            total_parts: 1,
            image_count: self.metadata.len() as u32,
            blob_table,
            xml,
            boot_metadata: if self.boot_index == 0 {
                ResHdr::default()
            } else {
                self.metadata[self.boot_index as usize - 1].0
            },
            boot_index: self.boot_index,
            integrity,
        };
        let end = self.pos;
        self.out
            .flush()
            .map_err(|e| Error::io(&self.tmp_path, "writing", e))?;
        let file = self.out.get_mut();
        // Drop bytes left past the end by a compressed attempt that was rewritten stored.
        file.set_len(end)
            .map_err(|e| Error::io(&self.tmp_path, "truncating", e))?;
        // The data must be durable before the header that points at it.
        file.sync_data()
            .map_err(|e| Error::io(&self.tmp_path, "syncing", e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&self.tmp_path, "seeking", e))?;
        file.write_all(&header.to_bytes())
            .map_err(|e| Error::io(&self.tmp_path, "writing the header", e))?;
        file.sync_all()
            .map_err(|e| Error::io(&self.tmp_path, "syncing", e))?;
        std::fs::rename(&self.tmp_path, &self.target).map_err(|e| {
            Error::io(
                &self.target,
                format!("renaming {} into place", self.tmp_path.display()),
                e,
            )
        })?;
        self.finished = true;
        sync_parent_dir(&self.target);
        Ok(())
    }

    fn write_raw(&mut self, data: &[u8]) -> Result<()> {
        self.out
            .write_all(data)
            .map_err(|e| Error::io(&self.tmp_path, "writing", e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn seek_to(&mut self, pos: u64) -> Result<()> {
        self.out
            .seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io(&self.tmp_path, "seeking", e))?;
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
        self.out
            .flush()
            .map_err(|e| Error::io(&self.tmp_path, "writing", e))?;
        let mut f = self
            .out
            .get_ref()
            .try_clone()
            .map_err(|e| Error::io(&self.tmp_path, "reopening", e))?;
        f.seek(SeekFrom::Start(HEADER_SIZE as u64))
            .map_err(|e| Error::io(&self.tmp_path, "seeking", e))?;
        let mut left = end - HEADER_SIZE as u64;
        let mut hashes = Vec::new();
        let mut buf = vec![0u8; INTEGRITY_CHUNK_SIZE as usize];
        while left > 0 {
            let n = left.min(INTEGRITY_CHUNK_SIZE as u64) as usize;
            f.read_exact(&mut buf[..n]).map_err(|e| {
                Error::io(&self.tmp_path, "reading back for the integrity table", e)
            })?;
            hashes.push(Sha1::digest(&buf[..n]).into());
            left -= n as u64;
        }
        // The clone shares the file offset; put it back where the writer continues.
        self.seek_to(self.pos)?;
        Ok(IntegrityTable {
            chunk_size: INTEGRITY_CHUNK_SIZE,
            hashes,
        })
    }
}

impl Drop for WimWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

fn resource_error(path: &Path, e: ResourceError) -> Error {
    match e {
        ResourceError::Read(cause) => Error::io(path, "reading", cause),
        ResourceError::Write(cause) => Error::io(path, "writing the WIM", cause),
        e => Error::invalid(path, e.to_string()),
    }
}

/// Creates `<target>.tmp-XXXX` (exclusive create, so two writers never share one).
fn create_temp_beside(target: &Path) -> Result<(PathBuf, File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seed = u32::from_le_bytes(random_guid()[..4].try_into().expect("4 bytes"));
    for attempt in 0..100u32 {
        let tmp = target.with_file_name(format!("{name}.tmp-{:08x}", seed.wrapping_add(attempt)));
        match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, "creating the temporary file", e)),
        }
    }
    Err(Error::invalid(
        target,
        "cannot find a free temporary file name beside it",
    ))
}

/// 16 random bytes: from the OS where available, else from the clock and process id.
fn random_guid() -> [u8; 16] {
    let mut g = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut g))
        .is_ok()
    {
        return g;
    }
    let seed = format!(
        "{:?} {} {:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    );
    let h: [u8; 20] = Sha1::digest(seed.as_bytes()).into();
    g.copy_from_slice(&h[..16]);
    g
}

/// Makes the rename durable; best effort (not every platform can open a directory).
fn sync_parent_dir(target: &Path) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
}
