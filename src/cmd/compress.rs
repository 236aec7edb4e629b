//! The compression options shared by the verbs that write WIM files.

use anyhow::{bail, Result};
use clap::ValueEnum;
use wimfs::codec::{Compression, DEFAULT_LEVEL};
use wimfs::write::ResourceOptions;

/// Compression names wimlib-imagex accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    None,
    Xpress,
    Lzx,
    Lzms,
    /// Same as xpress.
    Fast,
    /// Same as lzx.
    Maximum,
}

/// The compression a `--compress` value names.
pub fn compression_of(c: CompressArg) -> Compression {
    match c {
        CompressArg::None => Compression::None,
        CompressArg::Xpress | CompressArg::Fast => Compression::Xpress,
        CompressArg::Lzx | CompressArg::Maximum => Compression::Lzx,
        CompressArg::Lzms => Compression::Lzms,
    }
}

/// Checks a chunk size for a compression format, or picks its default.
pub fn chunk_size_for(
    compression: Compression,
    chunk_size: Option<u32>,
    solid: bool,
) -> Result<u32> {
    let (min, max, default) = match compression {
        Compression::None => return Ok(chunk_size.unwrap_or(32768)),
        Compression::Xpress => (1 << 12, 1 << 16, 1 << 15),
        Compression::Lzx => (1 << 15, 1 << 21, 1 << 15),
        Compression::Lzms => (1 << 15, 1 << 30, 1 << 17),
    };
    // Only LZMS goes past its non-solid limit in solid resources.
    let max = if solid && compression == Compression::Lzms {
        1 << 30
    } else {
        max
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
    let default = if solid {
        CompressArg::Lzms
    } else {
        CompressArg::Lzx
    };
    let compression = compression_of(compress.unwrap_or(default));
    let resources = ResourceOptions {
        compression,
        chunk_size: chunk_size_for(compression, chunk_size, false)?,
        level: DEFAULT_LEVEL,
    };
    let solid = if solid {
        let c = compression_of(solid_compress.unwrap_or(CompressArg::Lzms));
        if c == Compression::None {
            bail!("--solid-compress=none: solid resources must be compressed");
        }
        Some(ResourceOptions {
            compression: c,
            chunk_size: chunk_size_for(c, solid_chunk_size, true)?,
            level: DEFAULT_LEVEL,
        })
    } else {
        None
    };
    Ok((resources, solid))
}
