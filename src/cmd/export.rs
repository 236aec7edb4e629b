//! `wimfs export`: copy images from one WIM into another (new or existing) WIM.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wimfs::write::{WimWriter, WriterOptions, XmlImage};

use super::compress::{writer_options, CompressArg};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// WIM to copy from.
    src_wim: PathBuf,
    /// Image to copy (index or name), or `all`.
    src_image: String,
    /// WIM to copy into: appended to in place if it exists, else created.
    dest_wim: PathBuf,
    /// New name for the image (only when exporting one image).
    dest_name: Option<String>,
    /// New description for the image (only when exporting one image).
    dest_description: Option<String>,
    /// Compression of a new DEST_WIM (default: the source's). An existing DEST_WIM keeps its own.
    #[arg(long, value_name = "TYPE[:LEVEL]")]
    compress: Option<CompressArg>,
    /// Uncompressed bytes per chunk of a new DEST_WIM.
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
    /// Decode and compress all data again even where it could be copied as it is.
    #[arg(long)]
    recompress: bool,
    /// Mark the (single) exported image bootable.
    #[arg(long)]
    boot: bool,
    /// Write an integrity table.
    #[arg(long)]
    check: bool,
    /// Rewrite an existing DEST_WIM as a new file instead of appending in place.
    #[arg(long)]
    rebuild: bool,
    /// Other parts of a split SRC_WIM.
    /// Write a pipable WIM (wimlib's format that can be applied from a pipe; `-` as
    /// DEST_WIM writes one to standard output). An existing pipable DEST_WIM stays pipable.
    #[arg(long, conflicts_with = "not_pipable")]
    pipable: bool,
    /// Write a normal WIM, even into a pipable DEST_WIM.
    #[arg(long)]
    not_pipable: bool,
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Compression threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: ExportArgs) -> Result<i32> {
    let src = super::open_wim(&a.src_wim, &a.refs, false)?;
    let images: Vec<u32> = if a.src_image.eq_ignore_ascii_case("all") {
        (1..=src.image_count()).collect()
    } else {
        vec![src.resolve_image(&a.src_image)?]
    };
    if images.len() != 1 && (a.dest_name.is_some() || a.dest_description.is_some() || a.boot) {
        bail!("a new name, description or --boot needs a single source image, not `all`");
    }
    if images.is_empty() {
        bail!("{}: holds no images", a.src_wim.display());
    }
    let same = std::fs::canonicalize(&a.src_wim).ok() == std::fs::canonicalize(&a.dest_wim).ok();
    if same {
        bail!(
            "{}: exporting a WIM into itself is not supported",
            a.dest_wim.display()
        );
    }
    let src_compress = {
        let h = src.header();
        (
            h.compression()
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.src_wim.display()))?,
            h.chunk_size,
        )
    };
    let out = super::Output::new(&a.dest_wim)?;
    let stdout = matches!(out, super::Output::Stdout(_));
    let exists = !stdout && a.dest_wim.exists() && std::fs::metadata(&a.dest_wim)?.len() > 0;
    // A pipable WIM is rewritten whole, and stays pipable unless --not-pipable (wimlib's
    // rule); standard output only takes a pipable one.
    let was_pipable = exists && super::is_pipable(&a.dest_wim);
    let pipable = (a.pipable || stdout || was_pipable) && !a.not_pipable;
    if stdout && !pipable {
        bail!("standard output takes only a pipable WIM (leave out --not-pipable)");
    }
    if pipable && a.solid {
        bail!("solid resources cannot go into a pipable WIM (leave out --solid or --pipable)");
    }
    let compress = a.compress.or(Some(CompressArg::of(src_compress.0)));
    let chunk_size = a
        .chunk_size
        .or(if a.compress.is_none() && src_compress.1 != 0 {
            Some(src_compress.1)
        } else {
            None
        });
    let (mut resources, solid) = writer_options(
        compress,
        chunk_size,
        a.solid,
        a.solid_compress,
        a.solid_chunk_size,
    )?;
    if exists {
        let file = super::file_resources(&a.dest_wim)?;
        if let Some(c) = a.compress.map(|c| c.compression) {
            if c != file.compression && !a.rebuild {
                bail!(
                    "{}: uses {} compression; images exported into it use the file's own \
                     (leave out --compress, or add --rebuild)",
                    a.dest_wim.display(),
                    file.compression.name()
                );
            }
        }
        if a.compress.is_none() {
            resources = file;
        }
    }
    let opts = WriterOptions {
        resources,
        solid,
        threads: a.threads,
        check_integrity: a.check,
        rp_fix: src.header().flags & wimfs::format::header::FLAG_RP_FIX != 0,
    };
    let mut writer = if !exists {
        WimWriter::create(out.path(), opts)
            .with_context(|| format!("{}: creating", a.dest_wim.display()))?
    } else if a.rebuild || was_pipable {
        super::rebuild_writer(&a.dest_wim, opts, a.recompress, a.quiet, true, &|_| true)?
    } else {
        WimWriter::append(&a.dest_wim, opts)
            .with_context(|| format!("{}: opening to append", a.dest_wim.display()))?
    };
    let total: u64 = src.blobs().map(|b| b.size).sum();
    let pb = super::progress::bytes_bar(total, "exporting", a.quiet);
    for &i in &images {
        let mut el = src
            .xml()
            .images
            .get(i as usize - 1)
            .map(|info| info.element.clone());
        if let (Some(el), Some(n)) = (el.as_mut(), &a.dest_name) {
            el.set_child_text("NAME", Some(n));
        }
        if let (Some(el), Some(d)) = (el.as_mut(), &a.dest_description) {
            el.set_child_text("DESCRIPTION", Some(d));
        }
        let xml = el.map(XmlImage::Kept);
        let name = xml
            .as_ref()
            .and_then(|x| x.name().map(str::to_string))
            .or_else(|| a.dest_name.clone());
        if let Some(n) = &name {
            if writer.image_names().iter().flatten().any(|x| x == n) {
                bail!(
                    "{}: already has an image named {n:?}; give the exported image a new name",
                    a.dest_wim.display()
                );
            }
        }
        writer
            .export_image(&src, i, xml, a.recompress, &|n| pb.inc(n))
            .with_context(|| {
                format!(
                    "exporting image {i} of {} into {}",
                    a.src_wim.display(),
                    a.dest_wim.display()
                )
            })?;
        if a.boot {
            writer.set_boot_index(writer.image_count())?;
        }
    }
    pb.finish_and_clear();
    writer
        .finish()
        .with_context(|| format!("{}: finishing", a.dest_wim.display()))?;
    out.finish(pipable, a.check)
        .with_context(|| format!("{}: writing the pipable WIM", a.dest_wim.display()))?;
    Ok(0)
}
