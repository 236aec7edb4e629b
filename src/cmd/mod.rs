//! One module per CLI verb.

mod apply;
#[cfg(unix)]
mod capture;
mod dir;
mod info;
#[cfg(unix)]
mod mount;
mod progress;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use wimfs::{OpenOptions, Wim};

/// Windows Imaging (WIM/ESD) files: inspect, verify, extract.
#[derive(Parser, Debug)]
#[command(name = "wimfs", version, about)]
pub struct Cli {
    /// Log debugging detail to stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the header, images and XML info of a WIM.
    Info(info::InfoArgs),
    /// List the files of an image.
    Dir(dir::DirArgs),
    /// Decode and check every blob, the metadata and the integrity table.
    Verify(verify::VerifyArgs),
    /// Extract an image to a directory.
    Apply(apply::ApplyArgs),
    /// Extract files or directories from an image.
    Extract(apply::ExtractArgs),
    /// Capture a directory tree into a new WIM file.
    #[cfg(unix)]
    Capture(capture::CaptureArgs),
    /// Mount an image read-only (FUSE).
    #[cfg(unix)]
    Mount(mount::MountArgs),
    /// Unmount a mounted image.
    #[cfg(unix)]
    Unmount(mount::UnmountArgs),
    /// List mounted images.
    #[cfg(unix)]
    Mounts(mount::MountsArgs),
}

pub fn init_logging(debug: bool) {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Dir(a) => dir::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Apply(a) => apply::run_apply(a),
        Command::Extract(a) => apply::run_extract(a),
        #[cfg(unix)]
        Command::Capture(a) => capture::run(a),
        #[cfg(unix)]
        Command::Mount(a) => mount::run_mount(a, cli.debug),
        #[cfg(unix)]
        Command::Unmount(a) => mount::run_unmount(a),
        #[cfg(unix)]
        Command::Mounts(a) => mount::run_mounts(a),
    }
}

/// Expands `--ref` globs into part paths.
pub fn expand_refs(globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for g in globs {
        let mut matched = false;
        for p in glob::glob(g).with_context(|| format!("bad --ref pattern {g:?}"))? {
            out.push(p.with_context(|| format!("reading --ref {g:?}"))?);
            matched = true;
        }
        if !matched {
            anyhow::bail!("--ref {g:?} matches no file");
        }
    }
    Ok(out)
}

/// Opens a WIM for a command, with split parts from `--ref`.
pub fn open_wim(path: &std::path::Path, refs: &[String], check: bool) -> Result<Wim> {
    let opts = OpenOptions {
        refs: expand_refs(refs)?,
        check_integrity: check,
        cache: None,
    };
    Ok(Wim::open_with(path, opts)?)
}

/// Resolves an optional IMAGE argument: required unless the WIM has exactly one image.
pub fn pick_image(wim: &Wim, spec: Option<&str>) -> Result<u32> {
    match spec {
        Some(s) => Ok(wim.resolve_image(s)?),
        None if wim.image_count() == 1 => Ok(1),
        None => anyhow::bail!(
            "{}: holds {} images; name one (by index or name)",
            wim.path().display(),
            wim.image_count()
        ),
    }
}
