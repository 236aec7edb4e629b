//! Codec driver for profiling: compresses a file in chunks and prints the total size and a
//! SHA-1 of the compressed chunks (to check that a change leaves the output as it was).
//! Usage: codec_bench <xpress|lzx|lzms> <file> [chunk_size] [level]
use sha1::{Digest, Sha1};
use wimfs::codec::{new_compressor, new_decompressor, Compression};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let c = match args[1].as_str() {
        "xpress" => Compression::Xpress,
        "lzx" => Compression::Lzx,
        "lzms" => Compression::Lzms,
        other => panic!("unknown format {other}"),
    };
    let data = std::fs::read(&args[2]).expect("read input");
    let default_chunk = if c == Compression::Lzms {
        1 << 17
    } else {
        1 << 15
    };
    let chunk: u32 = args.get(3).map_or(default_chunk, |s| s.parse().unwrap());
    let level: u32 = args.get(4).map_or(50, |s| s.parse().unwrap());
    let verify = std::env::var_os("VERIFY").is_some();
    let mut comp = new_compressor(c, chunk, level).unwrap();
    let mut dec = new_decompressor(c, chunk).unwrap();
    let mut out = Vec::new();
    let mut back = vec![0u8; chunk as usize];
    let mut total = 0usize;
    let mut digest = Sha1::new();
    for piece in data.chunks(chunk as usize) {
        if comp.compress(piece, &mut out) {
            total += out.len();
            digest.update(&out);
            if verify {
                dec.decompress(&out, &mut back[..piece.len()]).unwrap();
                assert_eq!(&back[..piece.len()], piece);
            }
        } else {
            total += piece.len();
        }
    }
    let digest: [u8; 20] = digest.finalize().into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{} {} -> {} sha1 {hex}", c.name(), data.len(), total);
}
