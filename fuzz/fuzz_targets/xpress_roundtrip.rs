//! Fuzzes the XPRESS chunk compressor with the shared round-trip check.
#![no_main]

#[path = "roundtrip.rs"]
mod roundtrip;

use wimfs::codec::Compression;

/// Large enough for any input libFuzzer makes by default (XPRESS chunks are at most 64 KiB).
const CHUNK_SIZE: u32 = 1 << 16;

libfuzzer_sys::fuzz_target!(|data: &[u8]| roundtrip::check(Compression::Xpress, CHUNK_SIZE, data));
