//! The compression options shared by the verbs that write WIM files.

use anyhow::{bail, Result};
use wimfs::codec::{Compression, DEFAULT_LEVEL};
use wimfs::write::ResourceOptions;

/// A `--compress` value as wimlib-imagex takes it: `TYPE[:LEVEL]`, where TYPE is none,
/// xpress (fast), lzx (maximum, max), lzms or recovery, in any case, and LEVEL (1-100,
/// default 50) trades time for size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressArg {
    pub compression: Compression,
    pub level: Option<u32>,
}

impl CompressArg {
    pub const fn of(compression: Compression) -> Self {
        Self {
            compression,
            level: None,
        }
    }
}

impl std::str::FromStr for CompressArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let compression = match name.to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "xpress" | "fast" => Compression::Xpress,
            "lzx" | "maximum" | "max" => Compression::Lzx,
            "lzms" | "recovery" => Compression::Lzms,
            _ => {
                return Err(format!(
                    "unknown compression type \"{name}\" (none, xpress, lzx, lzms; or fast, \
                     maximum, recovery)"
                ))
            }
        };
        let level = match level {
            None => None,
            Some(l) => match l.parse::<u32>() {
                Ok(v @ 1..=100) => Some(v),
                _ => {
                    return Err(format!(
                        "compression level \"{l}\" is not a number from 1 to 100 \
                         (e.g. --compress=lzx:80)"
                    ))
                }
            },
        };
        Ok(Self { compression, level })
    }
}

/// Checks a chunk size for a compression format, or picks its default.
pub fn chunk_size_for(
    compression: Compression,
    chunk_size: Option<u32>,
    solid: bool,
) -> Result<u32> {
    let Some((min, max)) = compression.chunk_size_range() else {
        return Ok(chunk_size.unwrap_or(32768));
    };
    let default = if compression == Compression::Lzms {
        1 << 17
    } else {
        1 << 15
    };
    let default = if solid {
        wimfs::write::DEFAULT_SOLID_CHUNK_SIZE.min(max)
    } else {
        default
    };
    let chunk_size = chunk_size.unwrap_or(default);
    if !chunk_size.is_power_of_two() || !(min..=max).contains(&chunk_size) {
        bail!(
            "chunk size {chunk_size} is not valid for {}: use a power of two from {min} to {max}",
            compression.name()
        );
    }
    Ok(chunk_size)
}

/// Compression settings from the common options: (non-solid resources, solid resources).
pub fn writer_options(
    compress: Option<CompressArg>,
    chunk_size: Option<u32>,
    solid: bool,
    solid_compress: Option<CompressArg>,
    solid_chunk_size: Option<u32>,
) -> Result<(ResourceOptions, Option<ResourceOptions>)> {
    // As wimlib: a solid WIM's metadata is LZMS-compressed unless told otherwise.
    let default = CompressArg::of(if solid {
        Compression::Lzms
    } else {
        Compression::Lzx
    });
    let compress = compress.unwrap_or(default);
    let compression = compress.compression;
    let resources = ResourceOptions {
        compression,
        chunk_size: chunk_size_for(compression, chunk_size, false)?,
        level: compress.level.unwrap_or(DEFAULT_LEVEL),
    };
    let solid = if solid {
        let s = solid_compress.unwrap_or(CompressArg::of(Compression::Lzms));
        let c = s.compression;
        if c == Compression::None {
            bail!("--solid-compress=none: solid resources must be compressed");
        }
        Some(ResourceOptions {
            compression: c,
            chunk_size: chunk_size_for(c, solid_chunk_size, true)?,
            level: s.level.unwrap_or(DEFAULT_LEVEL),
        })
    } else {
        None
    };
    Ok((resources, solid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_values_parse_as_wimlib_takes_them() {
        let p = |s: &str| s.parse::<CompressArg>();
        assert_eq!(p("lzx"), Ok(CompressArg::of(Compression::Lzx)));
        assert_eq!(p("Maximum").unwrap().compression, Compression::Lzx);
        assert_eq!(p("FAST").unwrap().compression, Compression::Xpress);
        assert_eq!(p("recovery").unwrap().compression, Compression::Lzms);
        assert_eq!(p("none").unwrap().compression, Compression::None);
        let l = p("lzx:80").unwrap();
        assert_eq!((l.compression, l.level), (Compression::Lzx, Some(80)));
        for bad in ["lzx:0", "lzx:101", "lzx:", "lzx:x", "zip", "lzx:80:1"] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("level") || e.contains("type"), "{bad}: {e}");
        }
    }
}
