//! One module per CLI verb.

mod apply;
#[cfg(unix)]
mod capture;
mod compress;
mod delete;
mod dir;
mod export;
mod info;
#[cfg(any(unix, windows))]
mod mount;
#[cfg(unix)]
pub mod mount_helper;
mod optimize;
mod progress;
mod split;
pub mod status;
#[cfg(unix)]
mod update;
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
    /// Keep data fetched from remote images (URLs) in DIR, across runs and mounts, so that
    /// nothing is fetched twice (default: $WIMFS_CACHE_DIR, else none).
    #[cfg(feature = "remote")]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes --cache-dir holds; least recently used data goes first.
    #[cfg(feature = "remote")]
    #[arg(long, global = true, value_name = "SIZE", default_value = "10G",
          value_parser = wimfs::units::parse_size)]
    pub cache_dir_size: u64,
    /// Send s3:// requests to this S3-compatible store (Garage, MinIO, Ceph RGW, ...) rather
    /// than the endpoint of the environment (AWS_ENDPOINT_URL) or profile, or AWS.
    #[cfg(feature = "remote")]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
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
    /// Capture a directory tree as a new image of an existing WIM file.
    #[cfg(unix)]
    Append(capture::CaptureArgs),
    /// Add, delete and rename files in an image (commands on standard input or --command).
    #[cfg(unix)]
    Update(update::UpdateArgs),
    /// Copy images into another (new or existing) WIM file.
    Export(export::ExportArgs),
    /// Remove images from a WIM file.
    Delete(delete::DeleteArgs),
    /// Rewrite a WIM file without wasted space, optionally recompressed.
    Optimize(optimize::OptimizeArgs),
    /// Split a WIM file into parts of bounded size.
    Split(split::SplitArgs),
    /// Join the parts of a split WIM into one file.
    Join(split::JoinArgs),
    /// Mount an image read-only (FUSE on Linux, WinFsp on Windows).
    #[cfg(any(unix, windows))]
    Mount(mount::MountArgs),
    /// Mount an image read-write (FUSE on Linux, WinFsp on Windows); `unmount --commit` writes
    /// the changes back.
    #[cfg(any(unix, windows))]
    Mountrw(mount::MountRwArgs),
    /// Unmount a mounted image.
    #[cfg(any(unix, windows))]
    Unmount(mount::UnmountArgs),
    /// Write a read-write mount's changes into the WIM and keep it mounted.
    #[cfg(any(unix, windows))]
    Commit(mount::CommitArgs),
    /// Commit or discard what a read-write mount whose daemon died left behind.
    #[cfg(any(unix, windows))]
    Recover(mount::RecoverArgs),
    /// List mounted images.
    #[cfg(any(unix, windows))]
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

/// wimlib's per-verb program names, as its package installs them: run under one of these
/// names (a link to wimfs), wimfs does that verb.
pub const SHORT_NAMES: &[(&str, &str)] = &[
    ("wimapply", "apply"),
    ("wimcapture", "capture"),
    ("wimappend", "append"),
    ("wimdelete", "delete"),
    ("wimdir", "dir"),
    ("wimexport", "export"),
    ("wimextract", "extract"),
    ("wiminfo", "info"),
    ("wimjoin", "join"),
    ("wimmount", "mount"),
    ("wimmountrw", "mountrw"),
    ("wimoptimize", "optimize"),
    ("wimsplit", "split"),
    ("wimunmount", "unmount"),
    ("wimupdate", "update"),
    ("wimverify", "verify"),
];

/// The arguments with the verb that the program's name stands for put in front, if it is
/// one of [`SHORT_NAMES`] (`wimapply X.wim 1 DIR` is `wimfs apply X.wim 1 DIR`).
pub fn expand_short_name(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let verb = args
        .first()
        .and_then(|a0| std::path::Path::new(a0).file_stem())
        .and_then(|s| s.to_str())
        .and_then(|s| SHORT_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)))
        .map(|&(_, verb)| verb);
    if let Some(verb) = verb {
        args.insert(1.min(args.len()), verb.into());
    }
    args
}

pub fn run(cli: Cli) -> Result<i32> {
    #[cfg(feature = "remote")]
    {
        use wimfs::read::remote;
        let cache = match cli.cache_dir {
            Some(dir) => Some((dir, cli.cache_dir_size)),
            None => remote::disk_cache_from_env().map_err(anyhow::Error::msg)?,
        };
        if let Some((dir, limit)) = cache {
            remote::set_disk_cache(dir, limit);
        }
        if let Some(url) = cli.endpoint {
            remote::set_endpoint(url);
        }
    }
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Dir(a) => dir::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Apply(a) => apply::run_apply(a),
        Command::Extract(a) => apply::run_extract(a),
        #[cfg(unix)]
        Command::Capture(a) => capture::run(a),
        #[cfg(unix)]
        Command::Append(a) => capture::run_append(a),
        #[cfg(unix)]
        Command::Update(a) => update::run(a),
        Command::Export(a) => export::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Optimize(a) => optimize::run(a),
        Command::Split(a) => split::run_split(a),
        Command::Join(a) => split::run_join(a),
        #[cfg(any(unix, windows))]
        Command::Mount(a) => mount::run_mount(a, cli.debug),
        #[cfg(any(unix, windows))]
        Command::Mountrw(a) => mount::run_mountrw(a, cli.debug),
        #[cfg(any(unix, windows))]
        Command::Unmount(a) => mount::run_unmount(a),
        #[cfg(any(unix, windows))]
        Command::Commit(a) => mount::run_commit(a),
        #[cfg(any(unix, windows))]
        Command::Recover(a) => mount::run_recover(a),
        #[cfg(any(unix, windows))]
        Command::Mounts(a) => mount::run_mounts(a),
    }
}

/// Expands `--ref` globs into part paths.
pub fn expand_refs(globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for g in globs {
        if wimfs::read::is_url(g) {
            out.push(PathBuf::from(g));
            continue;
        }
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
    open_wim_with(path, refs, check, false)
}

/// [`open_wim`] for verbs that need only what part 1 of a split set holds (header, XML,
/// metadata): with `part1_enough`, the other parts may be missing, as wimlib-imagex allows
/// for `info` and `dir`.
pub fn open_wim_with(
    path: &std::path::Path,
    refs: &[String],
    check: bool,
    part1_enough: bool,
) -> Result<Wim> {
    let opts = OpenOptions {
        refs: expand_refs(refs)?,
        check_integrity: check,
        cache: None,
        allow_missing_parts: part1_enough,
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

/// The non-solid compression settings of an existing WIM.
pub fn file_resources(path: &std::path::Path) -> Result<wimfs::write::ResourceOptions> {
    let h = Wim::read_header(path)?;
    Ok(wimfs::write::resource_options_of(&h, path)?)
}

/// Starts a new file that will replace `path`, already holding the images of `path` that
/// `keep` selects (with their XML and boot flag); resources are copied as they are when
/// their compression matches `opts`, else recompressed (always with `recompress`). A solid
/// file stays solid when `keep_solid`.
pub fn rebuild_writer(
    path: &std::path::Path,
    opts: wimfs::write::WriterOptions,
    recompress: bool,
    quiet: bool,
    keep_solid: bool,
    keep: &dyn Fn(u32) -> bool,
) -> Result<wimfs::write::WimWriter> {
    use wimfs::write::{WimWriter, XmlImage};
    let mut writer = WimWriter::create(path, opts)
        .with_context(|| format!("{}: starting the rebuilt file", path.display()))?;
    let wim = Wim::open(path)?;
    let h = wim.header().clone();
    if h.total_parts != 1 {
        anyhow::bail!("{}: is part of a split WIM; join it first", path.display());
    }
    if !h.integrity.is_empty() {
        // Keep the integrity table the file had.
        writer.set_check_integrity(true);
    }
    if !writer.is_solid() && keep_solid {
        // A solid file (an ESD) stays solid unless told otherwise, as with wimlib.
        writer.set_solid(wimfs::write::solid_options_of(&wim))?;
    }
    let kept: Vec<u32> = (1..=wim.image_count()).filter(|&i| keep(i)).collect();
    let total: u64 = wim.blobs().map(|b| b.size).sum();
    let pb = progress::bytes_bar(total, "copying", quiet);
    for &i in &kept {
        let xml = wim
            .xml()
            .images
            .get(i as usize - 1)
            .map(|info| XmlImage::Kept(info.element.clone()));
        writer
            .export_image(&wim, i, xml, recompress, &|n| pb.inc(n))
            .with_context(|| format!("{}: copying image {i}", path.display()))?;
        if h.boot_index == i {
            writer.set_boot_index(writer.image_count())?;
        }
    }
    pb.finish_and_clear();
    Ok(writer)
}

pub use wimfs::image::names::printable;

/// Whether the WIM at `path` is pipable (wimlib's `WLPWM` magic).
pub fn is_pipable(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| magic == wimfs::format::header::PWM_MAGIC)
}

/// Where a verb that makes a WIM writes it: `-` is standard output, which gets a pipable
/// WIM made from a normal one written first to a temporary file.
pub enum Output {
    File(PathBuf),
    Stdout(tempfile::TempPath),
}

impl Output {
    pub fn new(target: &std::path::Path) -> Result<Output> {
        if target != std::path::Path::new("-") {
            return Ok(Output::File(target.to_path_buf()));
        }
        let tmp = tempfile::Builder::new()
            .prefix(".wimfs-")
            .suffix(".wim")
            .tempfile()
            .context("making a temporary file for the WIM")?
            .into_temp_path();
        Ok(Output::Stdout(tmp))
    }

    /// The file the WIM is written to first.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Output::File(p) => p,
            Output::Stdout(t) => t,
        }
    }

    /// After the normal WIM is written: makes it pipable in place when `pipable`, or sends
    /// it to standard output as a pipable WIM.
    pub fn finish(self, pipable: bool, check: bool) -> Result<()> {
        match self {
            Output::File(p) if pipable => {
                wimfs::write::pipable::convert_in_place(&p, check)?;
            }
            Output::File(_) => {}
            Output::Stdout(tmp) => {
                let wim = Wim::open(&tmp)?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                wimfs::write::pipable::write_pipable(
                    &wim,
                    &mut out,
                    std::path::Path::new("standard output"),
                    check,
                )?;
            }
        }
        Ok(())
    }
}

/// A text file's contents as wimlib-imagex reads them: UTF-16LE with a byte-order mark,
/// else UTF-8 (a byte-order mark dropped).
pub fn decode_text(bytes: &[u8]) -> Result<String> {
    use status::{code, failure};
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        return String::from_utf16(&units)
            .map_err(|_| failure(code::USAGE, "the text is not valid UTF-16"));
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec())
        .map_err(|_| failure(code::USAGE, "the text is not valid UTF-8"))
}

/// How paths in an image are matched: `WIMLIB_IMAGEX_IGNORE_CASE` (1/yes, 0/no) as
/// wimlib-imagex reads it, else exactly on Unix and ignoring case on Windows.
pub fn case_rule() -> wimfs::image::Case {
    use wimfs::image::Case;
    let default = if cfg!(windows) {
        Case::Insensitive
    } else {
        Case::Sensitive
    };
    match std::env::var("WIMLIB_IMAGEX_IGNORE_CASE").as_deref() {
        Ok("1") | Ok("yes") => Case::Insensitive,
        Ok("0") | Ok("no") => Case::Sensitive,
        Ok(other) => {
            tracing::warn!("ignoring the unknown setting WIMLIB_IMAGEX_IGNORE_CASE={other:?}");
            default
        }
        Err(_) => default,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("plain/Ünïcödé"), "plain/Ünïcödé");
        assert_eq!(
            super::printable("evil\u{1b}]0;title\u{7}\n\u{9b}"),
            "evil\\x1b]0;title\\x07\\x0a\\x9b"
        );
    }
}
