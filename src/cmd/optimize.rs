//! `wimfs optimize`: rewrite a WIM without wasted space, optionally recompressed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use wimfs::write::WriterOptions;

use super::compress::{writer_options, CompressArg};

#[derive(Args, Debug)]
pub struct OptimizeArgs {
    /// WIM file to rewrite.
    wimfile: PathBuf,
    /// Decode and compress all data again (smaller with a better compressor).
    #[arg(long)]
    recompress: bool,
    /// New compression (default: keep the file's).
    #[arg(long, value_name = "TYPE[:LEVEL]")]
    compress: Option<CompressArg>,
    /// New chunk size.
    #[arg(long, value_name = "N")]
    chunk_size: Option<u32>,
    /// Put file data into solid resources (LZMS by default).
    #[arg(long)]
    solid: bool,
    /// Compression of the solid resources.
    #[arg(long, value_name = "TYPE[:LEVEL]")]
    solid_compress: Option<CompressArg>,
    /// Uncompressed bytes per solid chunk (default 64 MiB).
    #[arg(long, value_name = "N")]
    solid_chunk_size: Option<u32>,
    /// Write an integrity table.
    #[arg(long)]
    check: bool,
    /// Make the file pipable (wimlib's format that can be applied from a pipe).
    #[arg(long, conflicts_with = "not_pipable")]
    pipable: bool,
    /// Make a pipable file normal again (otherwise it stays pipable).
    #[arg(long)]
    not_pipable: bool,
    /// Compression threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: OptimizeArgs) -> Result<i32> {
    let before = std::fs::metadata(&a.wimfile)
        .with_context(|| format!("{}: cannot read", a.wimfile.display()))?
        .len();
    let file = super::file_resources(&a.wimfile)?;
    let (mut resources, solid) = writer_options(
        a.compress,
        a.chunk_size,
        a.solid,
        a.solid_compress,
        a.solid_chunk_size,
    )?;
    if a.compress.is_none() && !a.solid {
        resources.compression = file.compression;
        resources.chunk_size = a.chunk_size.unwrap_or(file.chunk_size);
    }
    let opts = WriterOptions {
        resources,
        solid,
        threads: a.threads,
        check_integrity: a.check,
        rp_fix: wimfs::Wim::open(&a.wimfile)?.header().flags & wimfs::format::header::FLAG_RP_FIX
            != 0,
    };
    let pipable = (a.pipable || super::is_pipable(&a.wimfile)) && !a.not_pipable;
    if pipable && solid.is_some() {
        anyhow::bail!(
            "solid resources cannot go into a pipable WIM (leave out --solid or --pipable)"
        );
    }
    let writer = super::rebuild_writer(
        &a.wimfile,
        opts,
        a.recompress,
        a.quiet,
        a.compress.is_none(),
        &|_| true,
    )?;
    writer
        .finish()
        .with_context(|| format!("{}: finishing", a.wimfile.display()))?;
    super::Output::File(a.wimfile.clone())
        .finish(pipable, a.check)
        .with_context(|| format!("{}: writing the pipable WIM", a.wimfile.display()))?;
    let after = std::fs::metadata(&a.wimfile)?.len();
    if !a.quiet {
        eprintln!(
            "{}: {before} bytes before, {after} bytes after",
            a.wimfile.display()
        );
    }
    Ok(0)
}
