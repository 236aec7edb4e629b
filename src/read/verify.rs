//! Whole-file verification: every blob and metadata resource decoded and hashed, in
//! parallel, each resource read once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::resource::Storage;
use super::wim::{BlobLocation, Wim};
use crate::error::{Error, Result};
use crate::format::chunk_table::ChunkTable;
use crate::image::Image;

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub blobs: u64,
    pub bytes: u64,
    pub images: u32,
    pub integrity_checked: bool,
    /// Every problem found (verification goes on past the first).
    pub errors: Vec<Error>,
}

/// Decodes and hashes every blob and metadata resource, loads every image (checking that
/// each blob it references exists) and checks the integrity table if present. `progress`
/// receives byte counts as they are verified.
pub fn verify_wim(wim: &Wim, progress: &(dyn Fn(u64) + Sync)) -> VerifyReport {
    verify_wim_with(wim, true, progress)
}

/// [`verify_wim`], leaving the integrity table unchecked unless `integrity` (as
/// `wimlib-imagex verify --nocheck` does).
pub fn verify_wim_with(
    wim: &Wim,
    integrity: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> VerifyReport {
    let mut report = VerifyReport::default();
    if integrity {
        match wim.check_integrity() {
            Ok(checked) => report.integrity_checked = checked,
            Err(e) => report.errors.push(e),
        }
    }
    let mut by_res: HashMap<u32, Vec<BlobLocation>> = HashMap::new();
    for b in wim.blobs() {
        by_res.entry(b.resource).or_default().push(*b);
    }
    for i in 1..=wim.image_count() {
        if let Some(m) = wim.metadata_location(i) {
            by_res.entry(m.resource).or_default().push(*m);
        }
    }
    let mut groups: Vec<(u32, Vec<BlobLocation>)> = by_res.into_iter().collect();
    // Big resources first so the parallel tail is short; ties in file order.
    groups.sort_by_key(|(r, _)| {
        let res = &wim.resources[*r as usize];
        (
            std::cmp::Reverse(res.uncompressed_size >> 24),
            res.part,
            res.offset,
        )
    });
    let bytes = AtomicU64::new(0);
    let errors: Vec<Error> = groups
        .par_iter()
        .flat_map_iter(|(r, blobs)| {
            let res = &wim.resources[*r as usize];
            let errs = if matches!(res.storage, Storage::Solid { .. }) || blobs.len() > 1 {
                verify_shared_resource(wim, *r, blobs, progress)
            } else {
                verify_one(wim, &blobs[0], progress)
                    .err()
                    .into_iter()
                    .collect()
            };
            bytes.fetch_add(blobs.iter().map(|b| b.size).sum::<u64>(), Ordering::Relaxed);
            errs
        })
        .collect();
    report.blobs = groups.iter().map(|(_, b)| b.len() as u64).sum();
    report.bytes = bytes.into_inner();
    report.errors.extend(errors);
    for i in 1..=wim.image_count() {
        match Image::load(wim, i) {
            Ok(_) => report.images += 1,
            Err(e) => report.errors.push(e),
        }
    }
    report
}

fn verify_one(wim: &Wim, loc: &BlobLocation, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
    let mut h = Sha1::new();
    wim.stream_blob(loc, &mut |piece| {
        h.update(piece);
        progress(piece.len() as u64);
        Ok(())
    })?;
    wim.check_hash(loc, &h.finalize().into())
}

/// Verifies several blobs packed in one resource, decoding each of its chunks once.
fn verify_shared_resource(
    wim: &Wim,
    r: u32,
    blobs: &[BlobLocation],
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Error> {
    let res = &wim.resources[r as usize];
    let mut sorted = blobs.to_vec();
    sorted.sort_by_key(|b| (b.offset, b.size));
    if let Storage::Raw = res.storage {
        return sorted
            .iter()
            .filter_map(|b| verify_one(wim, b, progress).err())
            .collect();
    }
    let table = match wim.chunk_table(r) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let cs = table.chunk_size as u64;
    let mut hashers: Vec<Option<Sha1>> = sorted.iter().map(|_| Some(Sha1::new())).collect();
    let mut errors = Vec::new();
    let mut first_open = 0usize;
    decode_in_order(wim, r, &table, &mut |i, c| {
        let (cstart, cend) = (i as u64 * cs, i as u64 * cs + table.chunk_usize(i) as u64);
        let data = match c {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                // Everything overlapping this chunk is unverifiable.
                for (j, b) in sorted.iter().enumerate() {
                    if b.offset < cend && b.offset + b.size > cstart {
                        hashers[j] = None;
                    }
                }
                return;
            }
        };
        progress(data.len() as u64);
        for j in first_open..sorted.len() {
            let b = &sorted[j];
            if b.offset >= cend {
                break;
            }
            let (bs, be) = (b.offset.max(cstart), (b.offset + b.size).min(cend));
            if bs < be {
                if let Some(h) = hashers[j].as_mut() {
                    h.update(&data[(bs - cstart) as usize..(be - cstart) as usize]);
                }
            }
        }
        while first_open < sorted.len()
            && sorted[first_open].offset + sorted[first_open].size <= cend
        {
            first_open += 1;
        }
    });
    for (j, b) in sorted.iter().enumerate() {
        if let Some(h) = hashers[j].take() {
            if let Err(e) = wim.check_hash(b, &h.finalize().into()) {
                errors.push(e);
            }
        }
    }
    errors
}

/// Decodes every chunk of resource `r` on worker threads and hands them to `sink` in order,
/// so hashing one chunk overlaps decoding the next ones. At most about three chunks per
/// worker are held at once (solid chunks are up to 64 MiB). Plain threads, not the rayon
/// pool: the caller may itself be a pool thread blocked on the results.
fn decode_in_order(
    wim: &Wim,
    r: u32,
    table: &ChunkTable,
    sink: &mut dyn FnMut(usize, Result<std::sync::Arc<[u8]>>),
) {
    let n = table.num_chunks();
    let workers = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .min(n);
    if workers <= 1 {
        for i in 0..n {
            sink(i, wim.decode_chunk(r, table, i));
        }
        return;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<(usize, Result<std::sync::Arc<[u8]>>)>(workers);
        for _ in 0..workers {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if tx.send((i, wim.decode_chunk(r, table, i))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        for (i, c) in rx.iter() {
            pending.insert(i, c);
            while let Some(c) = pending.remove(&want) {
                sink(want, c);
                want += 1;
            }
        }
    });
}
