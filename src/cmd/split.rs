//! `wimfs split` and `wimfs join`: a WIM into a spanned set of parts, and back.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wimfs::format::header::FLAG_RP_FIX;
use wimfs::write::{WimWriter, WriterOptions, XmlImage};
use wimfs::{OpenOptions, Wim};

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// WIM file to split.
    wimfile: PathBuf,
    /// Name of the first part (e.g. install.swm; later parts become install2.swm, ...).
    swmfile: PathBuf,
    /// Largest part size in MiB, decimals allowed as wimlib-imagex takes them (`0.5`); a
    /// single resource bigger than this gets a part of its own.
    #[arg(value_parser = parse_part_size, value_name = "PART_MIB")]
    part_bytes: u64,
    /// Write an integrity table into each part.
    #[arg(long)]
    check: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// WIM file to create.
    out: PathBuf,
    /// Every part of the split set, in any order.
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Write an integrity table.
    #[arg(long)]
    check: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// A part size in MiB, as a decimal number, in bytes (the fraction of a byte dropped).
fn parse_part_size(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(mib) if mib.is_finite() && mib * 1048576.0 >= 1.0 => Ok((mib * 1048576.0) as u64),
        _ => Err(format!(
            "invalid part size {s:?}: give the largest part in MiB, e.g. 100 or 0.5"
        )),
    }
}

pub fn run_split(a: SplitArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &[], false)?;
    let total: u64 = wim.blobs().map(|b| wim.resource(b).size_in_wim).sum();
    let pb = super::progress::bytes_bar(total, "splitting", a.quiet);
    let parts = wimfs::write::split::split(&wim, &a.swmfile, a.part_bytes, a.check, &|n| pb.inc(n))
        .with_context(|| {
            format!(
                "splitting {} into {}",
                a.wimfile.display(),
                a.swmfile.display()
            )
        })?;
    pb.finish_and_clear();
    if !a.quiet {
        for p in &parts {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(0)
}

pub fn run_join(a: JoinArgs) -> Result<i32> {
    // Part 1 is the one whose header says so; the others are references.
    let mut first = None;
    for p in &a.parts {
        let h = Wim::read_header(p)?.part_number;
        if h == 1 {
            first = Some(p.clone());
        }
    }
    let Some(first) = first else {
        bail!("none of the files given is part 1 of a split WIM");
    };
    let refs: Vec<PathBuf> = a.parts.iter().filter(|p| **p != first).cloned().collect();
    let wim = Wim::open_with(
        &first,
        OpenOptions {
            refs,
            ..Default::default()
        },
    )?;
    let h = wim.header().clone();
    if h.total_parts as usize != a.parts.len() {
        bail!(
            "{}: the set has {} parts but {} files were given",
            first.display(),
            h.total_parts,
            a.parts.len()
        );
    }
    let opts = WriterOptions {
        resources: super::file_resources(&first)?,
        solid: None,
        threads: 0,
        check_integrity: a.check,
        rp_fix: h.flags & FLAG_RP_FIX != 0,
    };
    let mut writer = WimWriter::create(&a.out, opts)
        .with_context(|| format!("{}: creating", a.out.display()))?;
    writer.set_guid(h.guid);
    let total: u64 = wim.blobs().map(|b| b.size).sum();
    let pb = super::progress::bytes_bar(total, "joining", a.quiet);
    for i in 1..=wim.image_count() {
        let xml = wim
            .xml()
            .images
            .get(i as usize - 1)
            .map(|info| XmlImage::Kept(info.element.clone()));
        writer
            .export_image(&wim, i, xml, false, &|n| pb.inc(n))
            .with_context(|| format!("joining image {i}"))?;
    }
    writer.set_boot_index(h.boot_index)?;
    pb.finish_and_clear();
    writer
        .finish()
        .with_context(|| format!("{}: finishing", a.out.display()))?;
    Ok(0)
}
