//! Writing pipable WIMs (wimlib's `WLPWM` layout), which can be written to and applied from
//! a pipe: header (its tables left zero), a copy of the XML, the metadata resources, the
//! file data, then the blob table, the XML, an optional integrity table and the full header
//! again. Every resource is preceded by a 40-byte blob header (magic, size, SHA-1, flags);
//! in a compressed resource each chunk is preceded by its 4-byte compressed size and the
//! chunk table comes after the chunks.
//!
//! A pipable WIM is made from a normal one written first ([`write_pipable`] reads `src`
//! front to back and writes strictly sequentially): its compressed chunks are copied as
//! they are, so nothing is compressed twice.

use std::io::Write;

use sha1::{Digest, Sha1};

use super::writer::INTEGRITY_CHUNK_SIZE;
use super::xml::{build_xml, XmlImage};
use crate::error::{Error, Result};
use crate::format::blob_table::BlobEntry;
use crate::format::chunk_table::normal_table_size;
use crate::format::header::{Header, FLAG_WRITE_IN_PROGRESS, HEADER_SIZE, PWM_MAGIC};
use crate::format::integrity::{serialize_integrity_table, IntegrityTable};
use crate::format::reshdr::{ResHdr, RESHDR_FLAG_COMPRESSED, RESHDR_FLAG_METADATA};
use crate::read::{BlobLocation, Storage, Wim};

/// Magic of the header in front of each resource of a pipable WIM.
pub const PWM_BLOB_MAGIC: u64 = 0x2b9b_9ba2_443d_b9d8;

/// The output: counts bytes and hashes them for the integrity table as they pass.
struct Out<'a> {
    w: &'a mut dyn Write,
    pos: u64,
    /// Integrity hashing (from the end of the header until it is taken).
    integrity: Option<(Sha1, u64, Vec<[u8; 20]>)>,
    name: &'a std::path::Path,
}

impl Out<'_> {
    fn put(&mut self, mut data: &[u8]) -> Result<()> {
        self.w
            .write_all(data)
            .map_err(|e| Error::io(self.name, "writing the pipable WIM", e))?;
        self.pos += data.len() as u64;
        if let Some((h, filled, done)) = &mut self.integrity {
            while !data.is_empty() {
                let n = data
                    .len()
                    .min((INTEGRITY_CHUNK_SIZE as u64 - *filled) as usize);
                h.update(&data[..n]);
                *filled += n as u64;
                data = &data[n..];
                if *filled == INTEGRITY_CHUNK_SIZE as u64 {
                    done.push(std::mem::take(h).finalize().into());
                    *filled = 0;
                }
            }
        }
        Ok(())
    }

    fn blob_header(&mut self, size: u64, hash: &[u8; 20], flags: u8) -> Result<()> {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&PWM_BLOB_MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&size.to_le_bytes());
        b[16..36].copy_from_slice(hash);
        b[36..40].copy_from_slice(&(flags as u32).to_le_bytes());
        self.put(&b)
    }

    /// Ends integrity hashing: the table of everything since the header.
    fn integrity_table(&mut self) -> Option<IntegrityTable> {
        let (h, filled, mut hashes) = self.integrity.take()?;
        if filled > 0 {
            hashes.push(h.finalize().into());
        }
        Some(IntegrityTable {
            chunk_size: INTEGRITY_CHUNK_SIZE,
            hashes,
        })
    }
}

/// Copies blob `loc` of `src` as a pipable resource; returns its resource header.
fn copy_resource(src: &Wim, loc: &BlobLocation, metadata: bool, out: &mut Out) -> Result<ResHdr> {
    let res = src.resource(loc);
    let part = &src.parts[res.part];
    if loc.offset != 0 || loc.size != res.uncompressed_size || res.pipable {
        return Err(Error::invalid(
            &part.path,
            "a blob that is not a whole normal resource cannot be copied into a pipable WIM",
        ));
    }
    let meta = if metadata { RESHDR_FLAG_METADATA } else { 0 };
    match res.storage {
        Storage::Raw => {
            out.blob_header(loc.size, &loc.hash, meta)?;
            let offset = out.pos;
            let mut done = 0;
            while done < res.size_in_wim {
                let n = (res.size_in_wim - done).min(1 << 20);
                let buf = part.read_vec_in(res.offset + done, n, res.span(), "resource")?;
                out.put(&buf)?;
                done += n;
            }
            Ok(ResHdr {
                size_in_wim: res.size_in_wim,
                flags: meta,
                offset,
                uncompressed_size: res.uncompressed_size,
            })
        }
        Storage::Chunked { chunk_size, .. } => {
            out.blob_header(loc.size, &loc.hash, meta | RESHDR_FLAG_COMPRESSED)?;
            let offset = out.pos;
            let table = src.chunk_table(loc.resource)?;
            let wide = res.uncompressed_size > u32::MAX as u64;
            let mut entries = Vec::new();
            let mut data = 0u64;
            for i in 0..table.num_chunks() {
                let (s, e) = table.chunk_range(i);
                if i > 0 {
                    match wide {
                        true => entries.extend_from_slice(&data.to_le_bytes()),
                        false => entries.extend_from_slice(&(data as u32).to_le_bytes()),
                    }
                }
                let chunk = part.read_vec_in(res.offset + s, e - s, res.span(), "chunk")?;
                out.put(&((e - s) as u32).to_le_bytes())?;
                out.put(&chunk)?;
                data += e - s;
            }
            debug_assert_eq!(
                Some(entries.len() as u64),
                normal_table_size(res.uncompressed_size, chunk_size)
            );
            out.put(&entries)?;
            Ok(ResHdr {
                size_in_wim: out.pos - offset,
                flags: meta | RESHDR_FLAG_COMPRESSED,
                offset,
                uncompressed_size: res.uncompressed_size,
            })
        }
        Storage::Solid { .. } => Err(Error::invalid(
            &part.path,
            "solid resources cannot go into a pipable WIM (export without --solid first)",
        )),
    }
}

/// Writes all images of `src` (a normal, standalone WIM without solid resources) as a
/// pipable WIM to `w`, strictly front to back, with an integrity table if `check`. `name`
/// is what errors call the output. Returns the bytes written.
pub fn write_pipable(
    src: &Wim,
    w: &mut dyn Write,
    name: &std::path::Path,
    check: bool,
) -> Result<u64> {
    let h = src.header();
    if h.total_parts != 1 {
        return Err(Error::invalid(
            src.path(),
            "is part of a split WIM; join it first",
        ));
    }
    let mut out = Out {
        w,
        pos: 0,
        integrity: None,
        name,
    };
    // The header as it can be known now: no tables yet.
    let first = Header {
        magic: PWM_MAGIC,
        flags: h.flags & !FLAG_WRITE_IN_PROGRESS,
        part_number: 1,
        total_parts: 1,
        image_count: src.image_count(),
        blob_table: ResHdr::default(),
        xml: ResHdr::default(),
        boot_metadata: ResHdr::default(),
        boot_index: 0,
        integrity: ResHdr::default(),
        ..h.clone()
    };
    out.put(&first.to_bytes())?;
    if check {
        out.integrity = Some((Sha1::new(), 0, Vec::new()));
    }
    // A copy of the XML for a reader on a pipe (names and counts before the data).
    let elements: Vec<XmlImage> = src
        .xml()
        .images
        .iter()
        .map(|i| XmlImage::Kept(i.element.clone()))
        .collect();
    let xml = build_xml(&elements, 0);
    out.blob_header(
        xml.len() as u64,
        &Sha1::digest(&xml).into(),
        RESHDR_FLAG_METADATA,
    )?;
    out.put(&xml)?;
    let mut entries = Vec::new();
    let mut boot_metadata = ResHdr::default();
    for i in 1..=src.image_count() {
        let loc = src.metadata_location(i).ok_or_else(|| {
            Error::invalid(src.path(), format!("image {i} has no metadata resource"))
        })?;
        let reshdr = copy_resource(src, loc, true, &mut out)?;
        if h.boot_index == i {
            boot_metadata = reshdr;
        }
        entries.push(BlobEntry {
            reshdr,
            part_number: 1,
            refcount: 1,
            hash: loc.hash,
        });
    }
    let metadata: std::collections::HashSet<[u8; 20]> = entries.iter().map(|e| e.hash).collect();
    // File data in the order it lies in the source (read front to back).
    let mut blobs: Vec<&BlobLocation> = src
        .blobs()
        .filter(|b| b.size > 0 && !metadata.contains(&b.hash))
        .collect();
    blobs.sort_by_key(|b| src.resource(b).offset);
    for loc in blobs {
        let reshdr = copy_resource(src, loc, false, &mut out)?;
        entries.push(BlobEntry {
            reshdr,
            part_number: 1,
            refcount: loc.refcount,
            hash: loc.hash,
        });
    }
    // An uncompressed resource of `len` bytes at the current position.
    let plain = |out: &Out, len: usize, flags: u8| ResHdr {
        size_in_wim: len as u64,
        flags,
        offset: out.pos,
        uncompressed_size: len as u64,
    };
    let table: Vec<u8> = entries.iter().flat_map(|e| e.to_bytes()).collect();
    let blob_table = plain(&out, table.len(), RESHDR_FLAG_METADATA);
    out.put(&table)?;
    let integrity_table = out.integrity_table();
    let xml = build_xml(&elements, out.pos);
    let xml_hdr = plain(&out, xml.len(), RESHDR_FLAG_METADATA);
    out.put(&xml)?;
    let integrity = match integrity_table {
        Some(t) => {
            let bytes = serialize_integrity_table(&t);
            let r = plain(&out, bytes.len(), 0);
            out.put(&bytes)?;
            r
        }
        None => ResHdr::default(),
    };
    let last = Header {
        blob_table,
        xml: xml_hdr,
        boot_metadata,
        boot_index: h.boot_index,
        integrity,
        ..first
    };
    out.put(&last.to_bytes())?;
    out.w
        .flush()
        .map_err(|e| Error::io(name, "writing the pipable WIM", e))?;
    debug_assert!(out.pos >= 2 * HEADER_SIZE as u64);
    Ok(out.pos)
}

/// Rewrites the normal WIM at `path` as a pipable one: written to a new file beside it (the
/// real file, if `path` is a symlink) and renamed over it, under the writers' lock, so a
/// crash leaves one or the other whole.
pub fn convert_in_place(path: &std::path::Path, check: bool) -> Result<()> {
    let _lock = super::TargetLock::acquire(path)?;
    let real = super::replace::resolve_links(path);
    let src = Wim::open(&real)?;
    let (tmp, file) = super::replace::create_temp_beside(&real)?;
    let written = (|| {
        let mut w = std::io::BufWriter::new(file);
        write_pipable(&src, &mut w, &tmp, check)?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, "writing the pipable WIM", e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io(&tmp, "syncing the pipable WIM", e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(src);
    std::fs::rename(&tmp, &real).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&real, "replacing it with the pipable WIM", e)
    })?;
    super::replace::sync_parent_dir(&real);
    Ok(())
}
