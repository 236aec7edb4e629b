//! `wimfs capture`: a directory tree into a new WIM file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use wimfs::codec::{Compression, DEFAULT_LEVEL};
use wimfs::write::capture::{scan, CaptureOptions};
use wimfs::write::{ImageDescription, ResourceOptions, WimWriter, WriterOptions};

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

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Directory to capture.
    source: PathBuf,
    /// WIM file to create (replaced if it exists).
    wimfile: PathBuf,
    /// Image name (default: the source directory's name).
    name: Option<String>,
    /// Image description.
    description: Option<String>,
    /// Compression of file data and metadata.
    #[arg(long, value_enum, default_value = "lzx")]
    compress: CompressArg,
    /// Uncompressed bytes per chunk (a power of two; XPRESS 4K..64K, LZX 32K..2M).
    #[arg(long, value_name = "N")]
    chunk_size: Option<u32>,
    /// Compression threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Write an integrity table.
    #[arg(long)]
    check: bool,
    /// Store UNIX owners, modes, and special files.
    #[arg(long)]
    unix_data: bool,
    /// Mark the image bootable.
    #[arg(long)]
    boot: bool,
    /// Store what symlinks point to instead of the links.
    #[arg(long)]
    dereference: bool,
    /// Keep absolute symlink targets as they are (no reparse-point fix-ups).
    #[arg(long)]
    norpfix: bool,
    /// Skip files that cannot be read, with a warning, instead of failing.
    #[arg(long)]
    skip_unreadable: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn resource_options(a: &CaptureArgs) -> Result<ResourceOptions> {
    let compression = match a.compress {
        CompressArg::None => Compression::None,
        CompressArg::Xpress | CompressArg::Fast => Compression::Xpress,
        CompressArg::Lzx | CompressArg::Maximum => Compression::Lzx,
        CompressArg::Lzms => bail!("--compress=lzms is not supported yet (use lzx or xpress)"),
    };
    let (min, max) = match compression {
        Compression::Xpress => (1 << 12, 1 << 16),
        _ => (1 << 15, 1 << 21),
    };
    let chunk_size = a.chunk_size.unwrap_or(32768);
    if compression != Compression::None
        && (!chunk_size.is_power_of_two() || !(min..=max).contains(&chunk_size))
    {
        bail!(
            "--chunk-size {chunk_size} is not valid for {}: use a power of two from {min} to {max}",
            compression.name()
        );
    }
    Ok(ResourceOptions {
        compression,
        chunk_size,
        level: DEFAULT_LEVEL,
    })
}

pub fn run(a: CaptureArgs) -> Result<i32> {
    let resources = resource_options(&a)?;
    let name = a.name.clone().or_else(|| {
        std::fs::canonicalize(&a.source)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    });
    let opts = CaptureOptions {
        unix_data: a.unix_data,
        dereference: a.dereference,
        skip_unreadable: a.skip_unreadable,
        rp_fix: !a.norpfix,
    };
    let mut tree = scan(&a.source, &opts)
        .with_context(|| format!("capturing {}: scanning", a.source.display()))?;
    let mut writer = WimWriter::create(
        &a.wimfile,
        WriterOptions {
            resources,
            threads: a.threads,
            check_integrity: a.check,
            rp_fix: opts.rp_fix,
        },
    )
    .with_context(|| format!("{}: creating", a.wimfile.display()))?;
    let total = tree.data_bytes();
    let pb = super::progress::bytes_bar(total, "hashing", a.quiet);
    tree.hash(&|n| pb.inc(n))
        .with_context(|| format!("capturing {}: hashing file data", a.source.display()))?;
    pb.finish_and_clear();
    let pb = super::progress::bytes_bar(total, "writing", a.quiet);
    let image = tree
        .write(&mut writer, &|n| pb.inc(n))
        .with_context(|| format!("{}: writing file data", a.wimfile.display()))?;
    pb.finish_and_clear();
    let desc = ImageDescription {
        name,
        description: a.description.clone(),
        boot: a.boot,
    };
    writer
        .add_image(&image, &desc)
        .with_context(|| format!("{}: writing the image metadata", a.wimfile.display()))?;
    writer
        .finish()
        .with_context(|| format!("{}: finishing", a.wimfile.display()))?;
    Ok(0)
}
