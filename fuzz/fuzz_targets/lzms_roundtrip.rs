//! Fuzzes the LZMS chunk compressor with the shared round-trip check.
#![no_main]

#[path = "roundtrip.rs"]
mod roundtrip;

use wimfs::codec::Compression;

/// Large enough for any input libFuzzer makes by default (wimlib's LZMS chunk size for non-solid resources).
const CHUNK_SIZE: u32 = 1 << 17;

libfuzzer_sys::fuzz_target!(|data: &[u8]| roundtrip::check(Compression::Lzms, CHUNK_SIZE, data));
