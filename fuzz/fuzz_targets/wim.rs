//! Fuzzes the whole reader: a WIM opened from bytes in memory (header, blob table, XML,
//! integrity table), every image loaded, walked as a mount walks it (lookup, getattr,
//! readdir, readlink, xattrs) through the read-only mount core, every file read through it,
//! every blob decoded and checked by `verify`, and each image lowered back to metadata. The
//! reader's own arithmetic and allocations are in reach here, which the per-structure targets
//! do not reach; run it under a memory limit (scripts/fuzz.sh passes one).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wimfs::{Image, Wim};
use wimfs_mountd::core::{Fs, FsOps, FsOptions, Kind, ROOT_INO};

/// Bounds per input, so one input cannot take seconds.
const MAX_IMAGES: u32 = 4;
const MAX_ENTRIES: usize = 2000;
const MAX_READ: u64 = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(wim) = Wim::from_bytes("fuzz.wim", data.to_vec()) else {
        return;
    };
    let wim = Arc::new(wim);
    let _ = wimfs::read::verify::verify_wim(&wim, &|_| {});
    for index in 1..=wim.image_count().min(MAX_IMAGES) {
        let Ok(img) = Image::load(&wim, index) else {
            continue;
        };
        let _ = img.to_metadata();
        let opts = FsOptions {
            unix_data: true,
            ..FsOptions::default()
        };
        walk(&Fs::new(Arc::clone(&wim), img, opts));
    }
});

fn walk(fs: &dyn FsOps) {
    let mut budget = MAX_READ;
    let mut stack = vec![ROOT_INO];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        if fs.opendir(dir).is_err() {
            continue;
        }
        let mut names = Vec::new();
        let _ = fs.readdir(dir, 0, &mut |e| {
            names.push(e.name.to_string());
            names.len() >= MAX_ENTRIES
        });
        for name in names {
            seen += 1;
            if seen > MAX_ENTRIES {
                return;
            }
            let Ok(attr) = fs.lookup(dir, name.as_bytes()) else {
                continue;
            };
            let _ = fs.getattr(attr.ino);
            if let Ok(list) = fs.listxattr(attr.ino) {
                for x in list.split(|&b| b == 0).filter(|x| !x.is_empty()) {
                    let _ = fs.getxattr(attr.ino, x);
                }
            }
            match attr.kind {
                Kind::Directory if name != "." && name != ".." => stack.push(attr.ino),
                Kind::Symlink => {
                    let _ = fs.readlink(attr.ino);
                }
                Kind::File => {
                    if let Ok(fh) = fs.open(attr.ino, false, false) {
                        let mut off = 0;
                        while off < attr.size && budget > 0 {
                            match fs.read(fh, off, 128 << 10) {
                                Ok(b) if !b.is_empty() => {
                                    off += b.len() as u64;
                                    budget = budget.saturating_sub(b.len() as u64);
                                }
                                _ => break,
                            }
                        }
                        fs.release(fh);
                    }
                }
                _ => {}
            }
        }
    }
}
