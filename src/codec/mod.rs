//! Chunk codecs used by WIM files: XPRESS (Huffman variant), the WIM flavour of LZX, and LZMS.
//!
//! Each codec decompresses exactly one chunk: the caller knows the chunk's uncompressed size
//! (from the resource's chunk table) and hands an output buffer of exactly that length. The
//! codecs know nothing about WIM files; they are pure functions of their input bytes.

pub mod lzms;
pub mod lzms_enc;
mod lzms_mf;
pub mod lzx;
pub mod lzx_enc;
pub mod xpress;
pub mod xpress_enc;

use thiserror::Error;

/// Hints the CPU to start loading the cache line holding `x`; no effect on results.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch only hints the cache; it never faults (and `x` is a valid
        // reference anyway) and changes no program state.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// A failure to decode one chunk. Corrupt or truncated data never panics; it yields this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The compressed stream is malformed or ends early.
    #[error("corrupt {codec} data: {what}")]
    Corrupt {
        codec: &'static str,
        what: &'static str,
    },
    /// The decoder was asked for something it does not support (e.g. an invalid chunk size).
    #[error("unsupported {codec} parameters: {what}")]
    Unsupported {
        codec: &'static str,
        what: &'static str,
    },
}

/// A compression format as named in the WIM header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Compression {
    None,
    Xpress,
    Lzx,
    Lzms,
}

impl Compression {
    /// The name wimlib and DISM print for this format.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "None",
            Compression::Xpress => "XPRESS",
            Compression::Lzx => "LZX",
            Compression::Lzms => "LZMS",
        }
    }

    /// The smallest and largest chunk size a WIM may use with this format (powers of two in
    /// between, as wimlib writes and accepts): XPRESS 4 KiB-64 KiB, LZX 32 KiB-2 MiB, LZMS
    /// 32 KiB-1 GiB. `None` for uncompressed data, which has no chunks.
    pub fn chunk_size_range(self) -> Option<(u32, u32)> {
        match self {
            Compression::None => None,
            Compression::Xpress => Some((1 << 12, 1 << 16)),
            Compression::Lzx => Some((1 << 15, 1 << 21)),
            Compression::Lzms => Some((1 << 15, 1 << 30)),
        }
    }

    /// Whether `chunk_size` is one this format may use (any size for uncompressed data,
    /// where it is ignored).
    pub fn chunk_size_is_valid(self, chunk_size: u32) -> bool {
        self.chunk_size_range().is_none_or(|(min, max)| {
            chunk_size.is_power_of_two() && (min..=max).contains(&chunk_size)
        })
    }
}

/// A reusable per-thread decompressor for one format and maximum chunk size.
pub trait Decompressor: Send {
    /// Decompresses `input` (one compressed chunk) into all of `output`, whose length is the
    /// chunk's uncompressed size (at most the chunk size the decompressor was made for).
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError>;
}

/// A reusable per-thread compressor for one format, maximum chunk size and level.
pub trait Compressor: Send {
    /// Compresses one chunk (`input.len()` ≤ the chunk size the compressor was made for).
    /// Returns the compressed bytes in `out` (cleared first), or `false` if the result would
    /// not be smaller than the input — the caller then stores the chunk raw, as WIM allows.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool;
}

/// Makes a decompressor for `compression` and chunks of up to `chunk_size` bytes.
pub fn new_decompressor(
    compression: Compression,
    chunk_size: u32,
) -> Result<Box<dyn Decompressor>, CodecError> {
    Ok(match compression {
        Compression::None => Box::new(Stored),
        Compression::Xpress => Box::new(xpress::XpressDecoder::new(chunk_size)?),
        Compression::Lzx => Box::new(lzx::LzxDecoder::new(chunk_size)?),
        Compression::Lzms => Box::new(lzms::LzmsDecoder::new(chunk_size)?),
    })
}

/// Default compression level (1..=100), as wimlib's.
pub const DEFAULT_LEVEL: u32 = 50;

/// Makes a compressor for `compression`, chunks of up to `chunk_size` bytes and `level`
/// (1..=100; higher is smaller and slower).
pub fn new_compressor(
    compression: Compression,
    chunk_size: u32,
    level: u32,
) -> Result<Box<dyn Compressor>, CodecError> {
    Ok(match compression {
        Compression::None => {
            return Err(CodecError::Unsupported {
                codec: "none",
                what: "stored data needs no compressor",
            })
        }
        Compression::Xpress => Box::new(xpress_enc::XpressEncoder::new(chunk_size, level)?),
        Compression::Lzx => Box::new(lzx_enc::LzxEncoder::new(chunk_size, level)?),
        Compression::Lzms => Box::new(lzms_enc::LzmsEncoder::new(chunk_size, level)?),
    })
}

struct Stored;

impl Decompressor for Stored {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        if input.len() != output.len() {
            return Err(CodecError::Corrupt {
                codec: "stored",
                what: "length mismatch",
            });
        }
        output.copy_from_slice(input);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_as_wimlib_accepts_them() {
        assert!(Compression::Xpress.chunk_size_is_valid(4096));
        assert!(!Compression::Xpress.chunk_size_is_valid(1 << 17));
        assert!(!Compression::Lzx.chunk_size_is_valid(4096));
        assert!(Compression::Lzx.chunk_size_is_valid(1 << 21));
        assert!(!Compression::Lzx.chunk_size_is_valid(3 << 15));
        assert!(Compression::Lzms.chunk_size_is_valid(1 << 30));
        assert!(!Compression::Lzms.chunk_size_is_valid(1 << 31));
        assert!(!Compression::Lzms.chunk_size_is_valid(1));
        assert!(Compression::None.chunk_size_is_valid(0));
    }
}
