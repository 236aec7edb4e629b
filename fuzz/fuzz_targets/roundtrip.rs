//! The round-trip check shared by the `*_roundtrip` targets: whatever the input and level,
//! compressing must not panic, must only report success when the output is smaller, and
//! must decode back to the input exactly. Included by each target with `#[path]`.

use std::cell::RefCell;

use wimfs::codec::{new_compressor, new_decompressor, Compression, Compressor, Decompressor};

/// Levels covering each parser and option switch; the first input byte picks one.
const LEVELS: [u32; 6] = [1, 20, 35, 50, 70, 100];

type Codecs = (Vec<Box<dyn Compressor>>, Box<dyn Decompressor>);

thread_local! {
    // Reused across inputs, as the writer reuses them across chunks, so state left over from
    // earlier inputs is exercised too.
    static CODECS: RefCell<Option<Codecs>> = const { RefCell::new(None) };
}

/// Checks one fuzz input against `format`'s encoders for chunks of `chunk_size` bytes (a
/// target always passes the same two).
pub fn check(format: Compression, chunk_size: u32, data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let input = &input[..input.len().min(chunk_size as usize)];
    CODECS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (encoders, decoder) = cell.get_or_insert_with(|| {
            let encoders = LEVELS
                .iter()
                .map(|&l| new_compressor(format, chunk_size, l).unwrap())
                .collect();
            (encoders, new_decompressor(format, chunk_size).unwrap())
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
}
