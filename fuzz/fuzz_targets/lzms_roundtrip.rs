//! Fuzzes the LZMS chunk compressor: whatever the input and level, compressing must not
//! panic, must only report success when the output is smaller, and must decode back to the
//! input exactly.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use wimfs::codec::{new_compressor, new_decompressor, Compression, Compressor, Decompressor};

/// Large enough for any input libFuzzer makes by default (wimlib's LZMS chunk size for non-solid resources).
const CHUNK_SIZE: u32 = 1 << 17;
/// Levels covering each parser and option switch; the first input byte picks one.
const LEVELS: [u32; 6] = [1, 20, 35, 50, 70, 100];

type Codecs = (Vec<Box<dyn Compressor>>, Box<dyn Decompressor>);

thread_local! {
    // Reused across inputs, as the writer reuses them across chunks, so state left over from
    // earlier inputs is exercised too.
    static CODECS: RefCell<Option<Codecs>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let input = &input[..input.len().min(CHUNK_SIZE as usize)];
    CODECS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (encoders, decoder) = cell.get_or_insert_with(|| {
            let encoders = LEVELS
                .iter()
                .map(|&l| new_compressor(Compression::Lzms, CHUNK_SIZE, l).unwrap())
                .collect();
            (
                encoders,
                new_decompressor(Compression::Lzms, CHUNK_SIZE).unwrap(),
            )
        });
        let encoder = &mut encoders[pick as usize % LEVELS.len()];
        let mut out = Vec::new();
        if !encoder.compress(input, &mut out) {
            return;
        }
        assert!(out.len() < input.len());
        let mut back = vec![0u8; input.len()];
        decoder
            .decompress(&out, &mut back)
            .expect("own output rejected");
        assert!(back == input, "round trip changed the data");
    });
});
