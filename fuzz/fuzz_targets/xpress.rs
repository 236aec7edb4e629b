//! Fuzzes the Xpress chunk decoder: arbitrary input, output size and chunk size must never
//! panic, hang or touch memory out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wimfs::codec::{new_decompressor, Compression};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // First bytes choose the chunk size (power of two) and the output length.
    let chunk_size = 1u32 << (12 + (data[0] % 10)).min(21);
    let out_len = (u16::from_le_bytes([data[1], data[2]]) as u32 + 1).min(chunk_size);
    let Ok(mut d) = new_decompressor(Compression::Xpress, chunk_size) else { return };
    let mut out = vec![0u8; out_len as usize];
    let _ = d.decompress(&data[3..], &mut out);
    // The decoder is reused after a failure, as the reader does.
    let _ = d.decompress(&data[3..], &mut out);
});
