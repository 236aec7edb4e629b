//! The daemon on Windows: mounts one image over WinFsp on a drive letter or a directory,
//! read-only or (`--rw`) read-write, and serves it until `wimfs unmount` asks over the
//! control pipe. A read-write daemon stages changes, journals them and commits on request
//! exactly as on Unix (`persist`); a daemon that ends any other way leaves its staging
//! directory for `wimfs recover`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Parser;
use wimfs::write::TargetLock;
use wimfs::{ChunkCache, Image, OpenOptions, Wim};
use wimfs_mountd::commit::RwMount;
use wimfs_mountd::control::{mount_hash, Control, Mounted, Status};
use wimfs_mountd::core::{Fs, FsOptions, StreamsInterface, WinOps};
use wimfs_mountd::mountpoint::WinMountpoint;
use wimfs_mountd::options::parse_size;
use wimfs_mountd::winfsp::{self, VolumeOptions};

/// Mounts an image of a WIM file (WinFsp).
#[derive(Parser, Debug)]
#[command(name = "wimfs-mountd", version)]
struct Args {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image: 1-based index or name.
    image: String,
    /// Mountpoint: a free drive letter (M:) or an empty or absent directory.
    dir: String,
    /// Other parts of a split WIM (paths; `wimfs mount` expands globs).
    #[arg(long = "ref", value_name = "PATH")]
    refs: Vec<PathBuf>,
    /// Check the integrity table before mounting.
    #[arg(long)]
    check: bool,
    /// Look names up case-sensitively (Windows' own default is case-insensitive).
    #[arg(long)]
    case_sensitive: bool,
    /// Bound of the decompressed-chunk cache (K/M/G suffixes).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    cache_size: usize,
    /// Bound of the scratch file for decoded solid chunks (default: half the space free in
    /// $TMPDIR at mount time); past it, chunks are decoded in memory as needed.
    #[arg(long, value_parser = parse_size)]
    scratch_size: Option<usize>,
    /// Log debugging detail.
    #[arg(long)]
    debug: bool,
    /// Send log output to this file; `auto` puts it in %LOCALAPPDATA%\wimfs.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Mount read-write: changes are staged and written back into the WIM on
    /// `wimfs unmount --commit`, discarded otherwise.
    #[arg(long)]
    rw: bool,
    /// Where a read-write mount stages new and changed file data (default: beside the
    /// WIM, named `<wim>.staging-<pid>`).
    #[arg(long, value_name = "DIR")]
    staging_dir: Option<PathBuf>,
    /// Write `ok` or `error: ...` to this descriptor once mounted (only 1, stdout, here).
    #[arg(long, value_name = "FD")]
    ready_fd: Option<i32>,
}

pub fn main() {
    if let Some(verb) = std::env::args().nth(1) {
        if let Some(code) = wimfs_mountd::helper_verbs::run(&verb, || {
            let _ = init_logging(false, None);
        }) {
            std::process::exit(code);
        }
    }
    let args = Args::parse();
    let mut ready = args.ready_fd == Some(1);
    let code = match run(args, &mut ready) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e:#}");
            if ready {
                println!("error: {e:#}");
            } else {
                eprintln!("wimfs-mountd: {e:#}");
            }
            1
        }
    };
    std::process::exit(code);
}

fn init_logging(debug: bool, log: Option<&Path>) -> Result<()> {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match log {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            let f = File::create(path)
                .with_context(|| format!("{}: cannot open log", path.display()))?;
            let _ = builder.with_writer(std::sync::Mutex::new(f)).try_init();
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
    Ok(())
}

fn run(args: Args, ready: &mut bool) -> Result<()> {
    if args.ready_fd.is_some_and(|fd| fd != 1) {
        bail!("--ready-fd: only 1 (standard output) is supported on Windows");
    }
    let mountpoint = match WinMountpoint::parse(&args.dir).map_err(anyhow::Error::msg)? {
        WinMountpoint::Directory(d) => WinMountpoint::Directory(
            std::path::absolute(&d)
                .with_context(|| format!("{d}: cannot resolve"))?
                .to_string_lossy()
                .into_owned(),
        ),
        drive => drive,
    };
    let mp = mountpoint.name();
    let log = match &args.log {
        Some(p) if p.as_os_str() == "auto" => Some(
            wimfs::mount_proto::runtime_dir()
                .join(format!("mnt-{:016x}.log", mount_hash(mp.as_bytes()))),
        ),
        other => other.clone(),
    };
    init_logging(args.debug, log.as_deref())?;

    let wimfile = wimfs_mountd::options::wim_location(&args.wimfile, args.rw)?;
    // Taken before reading the WIM and held until the daemon exits: nothing else may
    // change the file under a read-write mount.
    let lock = match args.rw {
        true => Some(Arc::new(TargetLock::acquire(&wimfile).with_context(
            || format!("{}: cannot mount read-write", wimfile.display()),
        )?)),
        false => None,
    };
    let wim = Wim::open_with(
        &wimfile,
        OpenOptions {
            refs: wimfs_mountd::options::ref_locations(&args.refs),
            check_integrity: args.check,
            cache: Some(Arc::new(ChunkCache::new(args.cache_size))),
            allow_missing_parts: false,
        },
    )?;
    if lock.is_some() && (wim.header().total_parts != 1 || !args.refs.is_empty()) {
        bail!(
            "{}: a split WIM cannot be mounted read-write; join it first (wimfs join)",
            wimfile.display()
        );
    }
    let index = wim.resolve_image(&args.image)?;
    let img = Image::load(&wim, index)?;
    let image_name = wim
        .xml()
        .images
        .iter()
        .find(|i| i.index == index)
        .and_then(|i| i.name.clone());
    let created = img.inode_of(Image::ROOT).creation_time;
    let mut wim = wim;
    // Each solid chunk is decoded once for the life of the mount (kept on disk after).
    if let Err(e) =
        wim.keep_solid_chunks_in(&std::env::temp_dir(), args.scratch_size.map(|n| n as u64))
    {
        tracing::warn!("{e}");
    }
    let wim = Arc::new(wim);
    let opts = FsOptions {
        streams: StreamsInterface::Windows,
        case_insensitive: !args.case_sensitive,
        ..FsOptions::default()
    };
    let control = Control::bind(&mp)?;
    // The file system, what the control pipe serves, and the staging directory of a
    // read-write mount.
    let (fs, served, staging): (Arc<dyn WinOps>, Arc<dyn Mounted>, _) = match lock {
        None => {
            let fs = Arc::new(Fs::new(Arc::clone(&wim), img, opts));
            (fs.clone(), fs, None)
        }
        Some(lock) => {
            let (mount, staging) =
                RwMount::start(&wim, img, opts, args.staging_dir.as_deref(), lock)?;
            let served = Arc::new(mount);
            let fs = Arc::clone(&served.fs);
            (fs, served.clone(), Some((served, staging)))
        }
    };
    winfsp::init()?;

    // WinFsp makes the mountpoint directory itself: an empty one is moved out of the way and
    // put back after unmounting.
    let mut restore_dir = None;
    if let WinMountpoint::Directory(d) = &mountpoint {
        let path = Path::new(d);
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.is_dir() {
                bail!("{d}: not a directory");
            }
            std::fs::remove_dir(path)
                .with_context(|| format!("{d}: cannot use as mountpoint (not empty?)"))?;
            restore_dir = Some(path.to_path_buf());
        }
    }
    let put_back = |dir: &Option<PathBuf>| {
        if let Some(d) = dir {
            if let Err(e) = std::fs::create_dir(d) {
                tracing::warn!("{}: cannot recreate the mountpoint: {e}", d.display());
            }
        }
    };
    let volume = VolumeOptions {
        case_insensitive: !args.case_sensitive,
        serial: mount_hash(format!("{}|{index}", wim.path().display()).as_bytes()) as u32,
        created,
    };
    let mounted = match winfsp::mount(fs, &mp, &volume) {
        Ok(m) => m,
        Err(e) => {
            put_back(&restore_dir);
            return Err(e);
        }
    };
    let status = Status {
        wim: wim.path().to_string_lossy().into_owned(),
        image: index,
        image_name,
        dir: mp.clone(),
        mode: if staging.is_some() { "rw" } else { "ro" }.into(),
        pid: std::process::id(),
        log: log.map(|l| l.to_string_lossy().into_owned()),
        open_files: 0,
        cache_bytes: 0,
        cache_capacity: args.cache_size,
        cache_hits: 0,
        cache_misses: 0,
    };
    let (tx, rx) = mpsc::channel::<bool>();
    let served = control.serve(
        served,
        status,
        Box::new(move |_lazy| {
            let _ = tx.send(true);
        }),
    );
    tracing::info!("mounted image {index} of {} on {mp}", wim.path().display());
    if std::mem::take(ready) {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ok");
        let _ = out.flush();
    }
    let _ = rx.recv();
    mounted.unmount();
    put_back(&restore_dir);
    served.finish();
    tracing::info!("{mp} unmounted");
    // Only `wimfs unmount` ends the daemon this way: what it did not commit is discarded,
    // as asked. (A daemon killed or stopped by a shutdown leaves the staging directory for
    // `wimfs recover`.)
    if let Some((mount, staging)) = staging {
        mount.finish(&staging, true);
    }
    Ok(())
}
