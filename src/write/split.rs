//! Splitting a WIM into a spanned set of parts (`.swm` files) of bounded size.
//!
//! Every part is a complete WIM file: its own header (same GUID, part number, part count),
//! its own blob table listing the resources it holds, and the whole XML info. Part 1 also
//! holds every image's metadata. Resources are copied as they are, never split, so a part
//! exceeds the size limit only when one resource alone does. Parts are named like wimlib and
//! DISM name them: `NAME.swm`, `NAME2.swm`, `NAME3.swm`, ...

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::replace::{create_temp_beside, random_guid, sync_parent_dir};
use super::writer::integrity_of;
use crate::error::{Error, Result};
use crate::format::blob_table::BlobEntry;
use crate::format::header::{Header, FLAG_SPANNED, HEADER_SIZE};
use crate::format::integrity::serialize_integrity_table;
use crate::format::reshdr::{ResHdr, RESHDR_FLAG_METADATA};
use crate::read::{BlobLocation, Storage, Wim};

/// The file name of part `n` of a set whose first part is `first`.
pub fn part_path(first: &Path, n: u16) -> PathBuf {
    if n == 1 {
        return first.to_path_buf();
    }
    let stem = first
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match first.extension() {
        Some(ext) => format!("{stem}{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}{n}"),
    };
    first.with_file_name(name)
}

/// One resource to place in a part.
struct Item {
    loc: BlobLocation,
    metadata: bool,
}

/// Splits `wim` into parts of at most `part_size` bytes (where resources allow), the first
/// named `first`. Returns the part paths. On failure no part is left behind.
pub fn split(
    wim: &Wim,
    first: &Path,
    part_size: u64,
    check_integrity: bool,
    progress: &dyn Fn(u64),
) -> Result<Vec<PathBuf>> {
    if part_size == 0 {
        return Err(Error::Usage("the part size must be more than 0".into()));
    }
    if wim.header().total_parts != 1 {
        return Err(Error::invalid(wim.path(), "is already part of a split WIM"));
    }
    let mut blobs: Vec<&BlobLocation> = wim.blobs().collect();
    if blobs
        .iter()
        .any(|l| matches!(wim.resource(l).storage, Storage::Solid { .. }))
    {
        return Err(Error::invalid(
            wim.path(),
            "holds solid resources, which cannot be split; export it without --solid first",
        ));
    }
    blobs.sort_by_key(|l| wim.resource(l).offset);
    let mut items: Vec<Item> = (1..=wim.image_count())
        .map(|i| Item {
            loc: *wim
                .metadata_location(i)
                .expect("index within the image count"),
            metadata: true,
        })
        .collect();
    items.extend(blobs.into_iter().map(|l| Item {
        loc: *l,
        metadata: false,
    }));

    // Same packing rule as wimlib: a new part starts when the next resource would reach
    // the limit, unless the part is still empty or the resource is metadata (part 1).
    let mut parts: Vec<Vec<&Item>> = vec![Vec::new()];
    let mut used = 0u64;
    for item in &items {
        let size = wim.resource(&item.loc).size_in_wim;
        if used + size >= part_size && !(item.metadata || used == 0) {
            parts.push(Vec::new());
            used = 0;
        }
        parts.last_mut().expect("at least one part").push(item);
        used += size;
    }
    if parts.len() > u16::MAX as usize {
        return Err(Error::Usage(format!(
            "a part size of {part_size} bytes would make {} parts, more than a WIM allows",
            parts.len()
        )));
    }
    let total = parts.len() as u16;
    let guid = random_guid();
    let mut done: Vec<PathBuf> = Vec::new();
    let mut temps: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| -> Result<()> {
        for (i, part) in parts.iter().enumerate() {
            let n = i as u16 + 1;
            let path = part_path(first, n);
            let (tmp, file) = create_temp_beside(&path)?;
            temps.push((tmp.clone(), path.clone()));
            write_part(
                wim,
                &tmp,
                file,
                part,
                n,
                total,
                guid,
                check_integrity,
                progress,
            )?;
        }
        for (tmp, path) in &temps {
            std::fs::rename(tmp, path).map_err(|e| {
                Error::io(path, format!("renaming {} into place", tmp.display()), e)
            })?;
            done.push(path.clone());
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (tmp, _) in &temps {
            let _ = std::fs::remove_file(tmp);
        }
        for p in &done {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    if let Some(p) = done.first() {
        sync_parent_dir(p);
    }
    Ok(done)
}

#[allow(clippy::too_many_arguments)]
fn write_part(
    wim: &Wim,
    path: &Path,
    file: File,
    items: &[&Item],
    number: u16,
    total: u16,
    guid: [u8; 16],
    check_integrity: bool,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let io = |what: &'static str| move |e: std::io::Error| Error::io(path, what, e);
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&[0u8; HEADER_SIZE]).map_err(io("writing"))?;
    let mut pos = HEADER_SIZE as u64;
    let mut table = Vec::with_capacity(items.len() * 50);
    let mut boot_metadata = ResHdr::default();
    let mut buf = Vec::new();
    for (idx, item) in items.iter().enumerate() {
        let res = wim.resource(&item.loc);
        let src = &wim.parts[res.part];
        buf.resize(res.size_in_wim.min(4 << 20) as usize, 0);
        let mut copied = 0u64;
        while copied < res.size_in_wim {
            let n = (res.size_in_wim - copied).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..n], res.offset + copied, "a resource to copy")?;
            out.write_all(&buf[..n]).map_err(io("writing"))?;
            copied += n as u64;
        }
        let mut flags = res.reshdr_flags();
        if item.metadata {
            flags |= RESHDR_FLAG_METADATA;
        }
        let reshdr = ResHdr {
            size_in_wim: res.size_in_wim,
            flags,
            offset: pos,
            uncompressed_size: res.uncompressed_size,
        };
        if item.metadata && idx as u32 + 1 == wim.header().boot_index {
            boot_metadata = reshdr;
        }
        table.extend_from_slice(
            &BlobEntry {
                reshdr,
                part_number: number,
                refcount: if item.metadata { 1 } else { item.loc.refcount },
                hash: item.loc.hash,
            }
            .to_bytes(),
        );
        pos += res.size_in_wim;
        progress(res.size_in_wim);
    }
    let plain = |offset: u64, len: usize, flags: u8| ResHdr {
        size_in_wim: len as u64,
        flags,
        offset,
        uncompressed_size: len as u64,
    };
    out.write_all(&table).map_err(io("writing"))?;
    let blob_table = plain(pos, table.len(), RESHDR_FLAG_METADATA);
    pos += table.len() as u64;
    // Every part carries the whole XML info, as it was.
    let xml_raw = wim.xml_raw();
    out.write_all(xml_raw).map_err(io("writing"))?;
    let xml = if xml_raw.is_empty() {
        ResHdr::default()
    } else {
        plain(pos, xml_raw.len(), RESHDR_FLAG_METADATA)
    };
    pos += xml_raw.len() as u64;
    out.flush().map_err(io("writing"))?;
    let mut file = out
        .into_inner()
        .map_err(|e| io("writing")(e.into_error()))?;
    let integrity = if check_integrity {
        let t = serialize_integrity_table(&integrity_of(
            &file,
            path,
            blob_table.offset + blob_table.size_in_wim,
        )?);
        file.seek(SeekFrom::Start(pos)).map_err(io("seeking"))?;
        file.write_all(&t).map_err(io("writing"))?;
        plain(pos, t.len(), 0)
    } else {
        ResHdr::default()
    };
    let src = wim.header();
    let header = Header {
        flags: src.flags | FLAG_SPANNED,
        guid,
        part_number: number,
        total_parts: total,
        blob_table,
        xml,
        boot_metadata: if number == 1 {
            boot_metadata
        } else {
            ResHdr::default()
        },
        integrity,
        ..src.clone()
    };
    file.sync_data().map_err(io("syncing"))?;
    file.seek(SeekFrom::Start(0)).map_err(io("seeking"))?;
    file.write_all(&header.to_bytes())
        .map_err(io("writing the header"))?;
    file.sync_all().map_err(io("syncing"))?;
    Ok(())
}
