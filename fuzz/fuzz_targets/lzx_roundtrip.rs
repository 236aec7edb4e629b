//! Fuzzes the LZX chunk compressor with the shared round-trip check.
#![no_main]

#[path = "roundtrip.rs"]
mod roundtrip;

use wimfs::codec::Compression;

/// Large enough for any input libFuzzer makes by default (the smallest LZX window).
const CHUNK_SIZE: u32 = 1 << 15;

libfuzzer_sys::fuzz_target!(|data: &[u8]| roundtrip::check(Compression::Lzx, CHUNK_SIZE, data));
