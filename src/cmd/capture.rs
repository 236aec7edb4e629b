//! `wimfs capture` and `wimfs append`: a directory tree into a new image of a new or
//! existing WIM file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wimfs::write::capture::{scan, CaptureOptions};
use wimfs::write::{ImageDescription, WimWriter, WriterOptions};

use super::compress::{writer_options, CompressArg};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Directory to capture.
    source: PathBuf,
    /// WIM file to create (replaced if it exists) or, for `append`, to add the image to.
    wimfile: PathBuf,
    /// Image name (default: the source directory's name).
    name: Option<String>,
    /// Image description.
    description: Option<String>,
    /// Compression of file data and metadata: none, xpress (fast), lzx (maximum) or lzms,
    /// optionally with a level from 1 to 100 (`lzx:80`; default 50, higher is smaller and
    /// slower), as wimlib-imagex takes it. Default LZX; `append` uses the file's own.
    #[arg(long, value_name = "TYPE[:LEVEL]")]
    compress: Option<CompressArg>,
    /// Uncompressed bytes per chunk (a power of two; XPRESS 4K..64K, LZX 32K..2M,
    /// LZMS 32K..1G).
    #[arg(long, value_name = "N")]
    chunk_size: Option<u32>,
    /// Put file data into solid resources (LZMS by default), as ESD files do: smaller,
    /// slower to read at random.
    #[arg(long)]
    solid: bool,
    /// Compression of the solid resources.
    #[arg(long, value_name = "TYPE[:LEVEL]")]
    solid_compress: Option<CompressArg>,
    /// Uncompressed bytes per solid chunk (default 64 MiB).
    #[arg(long, value_name = "N")]
    solid_chunk_size: Option<u32>,
    /// Configuration file with [ExclusionList] / [ExclusionException] globs (wimlib's format).
    /// Without it, what wimlib-imagex leaves out by default is left out: /hiberfil.sys,
    /// /pagefile.sys, /swapfile.sys, /$ntfs.log, /System Volume Information, /RECYCLER,
    /// /$RECYCLE.BIN, /$Recycle.Bin and /Windows/CSC.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// `append`: write a new file with the old images and the new one, instead of
    /// appending in place.
    #[arg(long)]
    rebuild: bool,
    /// `append`: make the WIM file, as capture does, if it does not exist.
    #[arg(long)]
    create: bool,
    /// Write a pipable WIM (wimlib's format that can be applied from a pipe; `-` as
    /// WIMFILE writes one to standard output).
    #[arg(long, conflicts_with = "not_pipable")]
    pipable: bool,
    /// Write a normal WIM (`append`: even to a pipable one).
    #[arg(long)]
    not_pipable: bool,
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

/// `wimfs capture`.
pub fn run(a: CaptureArgs) -> Result<i32> {
    if a.rebuild {
        bail!("--rebuild is an option of append");
    }
    let (resources, solid) = writer_options(
        a.compress,
        a.chunk_size,
        a.solid,
        a.solid_compress,
        a.solid_chunk_size,
    )?;
    let opts = WriterOptions {
        resources,
        solid,
        threads: a.threads,
        check_integrity: a.check,
        rp_fix: !a.norpfix,
    };
    let out = super::Output::new(&a.wimfile)?;
    let stdout = matches!(out, super::Output::Stdout(_));
    let pipable = (a.pipable || stdout) && !a.not_pipable;
    if pipable && opts.solid.is_some() {
        bail!("solid resources cannot go into a pipable WIM (leave out --solid or --pipable)");
    }
    if stdout && !pipable {
        bail!("standard output takes only a pipable WIM (leave out --not-pipable)");
    }
    let writer = WimWriter::create(out.path(), opts)
        .with_context(|| format!("{}: creating", a.wimfile.display()))?;
    capture_into(writer, &a)?;
    out.finish(pipable, a.check)
        .with_context(|| format!("{}: writing the pipable WIM", a.wimfile.display()))?;
    Ok(0)
}

/// `wimfs append`.
pub fn run_append(a: CaptureArgs) -> Result<i32> {
    let (resources, solid) = writer_options(
        a.compress,
        a.chunk_size,
        a.solid,
        a.solid_compress,
        a.solid_chunk_size,
    )?;
    let opts = WriterOptions {
        resources,
        solid,
        threads: a.threads,
        check_integrity: a.check,
        rp_fix: !a.norpfix,
    };
    if a.wimfile.to_str().is_some_and(wimfs::read::is_url) {
        bail!(
            "{}: remote images are read-only: write a local copy (wimfs export URL all COPY.wim)",
            a.wimfile.display()
        );
    }
    if a.wimfile == std::path::Path::new("-") {
        bail!("standard output cannot be appended to (use capture to write a WIM there)");
    }
    if !a.wimfile.exists() {
        if a.create {
            return run(a);
        }
        bail!(
            "{}: no such WIM file (use capture, or append --create, to make one)",
            a.wimfile.display()
        );
    }
    // A pipable WIM is rewritten whole (it cannot grow in place), and stays pipable unless
    // --not-pipable, as with wimlib.
    let was_pipable = super::is_pipable(&a.wimfile);
    let pipable = (a.pipable || was_pipable) && !a.not_pipable;
    let writer = if a.rebuild || was_pipable {
        let mut opts = opts;
        if a.compress.is_none() {
            opts.resources = super::file_resources(&a.wimfile)?;
        }
        super::rebuild_writer(&a.wimfile, opts, false, a.quiet, true, &|_| true)?
    } else {
        let w = WimWriter::append(&a.wimfile, opts)
            .with_context(|| format!("{}: opening to append", a.wimfile.display()))?;
        if let Some(c) = a.compress.map(|c| c.compression) {
            if c != w.compression() {
                bail!(
                    "{}: uses {} compression; appended images use the file's own \
                     (leave out --compress, or export to a new file)",
                    a.wimfile.display(),
                    w.compression().name()
                );
            }
        }
        w
    };
    capture_into(writer, &a)?;
    super::Output::File(a.wimfile.clone())
        .finish(pipable, a.check)
        .with_context(|| format!("{}: writing the pipable WIM", a.wimfile.display()))?;
    Ok(0)
}

fn capture_into(mut writer: WimWriter, a: &CaptureArgs) -> Result<()> {
    let name = a.name.clone().or_else(|| {
        std::fs::canonicalize(&a.source)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    });
    if let Some(n) = &name {
        if writer.image_names().iter().flatten().any(|x| x == n) {
            bail!(
                "{}: already has an image named {n:?}; give the new one another name",
                a.wimfile.display()
            );
        }
    }
    let opts = CaptureOptions {
        unix_data: a.unix_data,
        dereference: a.dereference,
        skip_unreadable: a.skip_unreadable,
        rp_fix: !a.norpfix,
        config: match &a.config {
            Some(p) => Some(wimfs::write::config::CaptureConfig::load(p)?),
            None => Some(wimfs::write::config::CaptureConfig::windows_default()),
        },
    };
    let mut tree = scan(&a.source, &opts)
        .with_context(|| format!("capturing {}: scanning", a.source.display()))?;
    let total = tree.data_bytes();
    // Solid resources need every hash up front; otherwise only files that may duplicate
    // each other (same size) are read before writing.
    let hash_all = writer.is_solid();
    let pb = super::progress::bytes_bar(tree.bytes_to_hash(hash_all), "hashing", a.quiet);
    tree.hash(hash_all, &|n| pb.inc(n))
        .with_context(|| format!("capturing {}: hashing file data", a.source.display()))?;
    pb.finish_and_clear();
    writer.plan_solid(total);
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
    Ok(())
}
