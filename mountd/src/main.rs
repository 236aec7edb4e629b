//! wimfs-mountd: mounts one image of a WIM read-only (FUSE on Unix, WinFsp on Windows) and
//! serves it until unmounted.
//!
//! Normally started by `wimfs mount`, which passes `--ready-fd` and waits for one line on it:
//! `ok` once the mount is live, or `error: ...`. Logs go to stderr (`wimfs mount` points that
//! at a log file beside the control socket; on Windows, in %LOCALAPPDATA%\wimfs).

#[cfg(unix)]
fn main() {
    unix::main()
}

#[cfg(windows)]
fn main() {
    windows::main()
}

#[cfg(not(any(unix, windows)))]
fn main() {
    eprintln!("wimfs-mountd: mounts need FUSE (Unix) or WinFsp (Windows)");
    std::process::exit(2);
}

#[cfg(windows)]
#[path = "main_windows.rs"]
mod windows;

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use anyhow::{bail, Context, Result};
    use clap::Parser;
    use fuser::Filesystem;
    use fuser::{Config, MountOption, SessionACL};
    use wimfs::format::header::FLAG_RP_FIX;
    use wimfs::write::TargetLock;
    use wimfs::{ChunkCache, Image, OpenOptions, Wim};
    use wimfs_mountd::commit::RwMount;
    use wimfs_mountd::control::{Control, Mounted, Status};
    use wimfs_mountd::core::{Fs, FsOps, FsOptions, StreamsInterface};
    use wimfs_mountd::fuse::{FuseFs, MAX_READ};
    use wimfs_mountd::options::{parse_mount_options, parse_size};

    /// Mounts an image of a WIM file read-only (FUSE).
    #[derive(Parser, Debug)]
    #[command(name = "wimfs-mountd", version)]
    struct Args {
        /// The WIM file (part 1 of a split set).
        wimfile: PathBuf,
        /// Image: 1-based index or name.
        image: String,
        /// Mountpoint (an existing directory).
        dir: PathBuf,
        /// Other parts of a split WIM (paths; `wimfs mount` expands globs).
        #[arg(long = "ref", value_name = "PATH")]
        refs: Vec<PathBuf>,
        /// Check the integrity table before mounting.
        #[arg(long)]
        check: bool,
        /// Show UNIX owners, modes and special files saved with --unix-data.
        #[arg(long)]
        unix_data: bool,
        /// How named data streams are shown: xattr, windows or none.
        #[arg(long, default_value = "xattr")]
        streams_interface: StreamsInterface,
        /// Let other users access the mount.
        #[arg(long)]
        allow_other: bool,
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
        /// Extra FUSE mount options, comma-separated.
        #[arg(short = 'o', value_name = "OPTS")]
        options: Vec<String>,
        /// Send log output to this file; `auto` puts it beside the control socket.
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
        /// Write `ok` or `error: ...` to this file descriptor once mounted (or failed).
        #[arg(long, value_name = "FD")]
        ready_fd: Option<i32>,
    }

    fn init_log(debug: bool) {
        let filter = if debug {
            tracing_subscriber::EnvFilter::new("debug")
        } else {
            tracing_subscriber::EnvFilter::try_from_default_env()
                // fuser warns when its own unmount-on-exit finds the mount already gone.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fuser=error"))
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
    }

    pub fn main() {
        if let Some(verb) = std::env::args().nth(1) {
            if let Some(code) = wimfs_mountd::helper_verbs::run(&verb, || init_log(false)) {
                std::process::exit(code);
            }
        }
        let args = Args::parse();
        init_log(args.debug);
        let mut ready = args.ready_fd.map(|fd| {
            // SAFETY: the parent handed us this descriptor for our exclusive use; nothing else
            // in this process opens or closes it.
            unsafe { File::from_raw_fd(fd) }
        });
        let code = match run(args, &mut ready) {
            Ok(()) => {
                tracing::debug!("exiting");
                0
            }
            Err(e) => {
                tracing::error!("{e:#}");
                if let Some(mut r) = ready.take() {
                    let _ = writeln!(r, "error: {e:#}");
                }
                1
            }
        };
        std::process::exit(code);
    }

    fn run(args: Args, ready: &mut Option<File>) -> Result<()> {
        let dir = absolute_dir(&args.dir)?;
        let log = match &args.log {
            Some(p) if p.as_os_str() == "auto" => {
                Some(wimfs_mountd::control::socket_path(&dir).with_extension("log"))
            }
            other => other.clone(),
        };
        if let Some(log) = &log {
            redirect_stderr(log)?;
        }
        let wimfile = wimfs_mountd::options::wim_location(&args.wimfile, args.rw)?;
        // Taken before reading the WIM and held until the daemon exits: nothing else may
        // change the file under a read-write mount.
        let lock = match args.rw {
            true => Some(Arc::new(TargetLock::acquire(&wimfile).with_context(
                || format!("{}: cannot mount read-write", wimfile.display()),
            )?)),
            false => None,
        };
        if lock.is_some() && !args.refs.is_empty() {
            bail!(
                "{}: a split WIM cannot be mounted read-write; join it first (wimfs join)",
                wimfile.display()
            );
        }
        let wim = Wim::open_with(
            &wimfile,
            OpenOptions {
                refs: wimfs_mountd::options::ref_locations(&args.refs),
                check_integrity: args.check,
                cache: Some(Arc::new(ChunkCache::new(args.cache_size))),
                allow_missing_parts: false,
            },
        )?;
        if lock.is_some() && wim.header().total_parts != 1 {
            bail!(
                "{}: a split WIM cannot be mounted read-write; join it first (wimfs join)",
                wimfile.display()
            );
        }
        let index = wim.resolve_image(&args.image)?;
        let img = Image::load(&wim, index)?;
        let link_root =
            (wim.header().flags & FLAG_RP_FIX != 0).then(|| dir.to_string_lossy().into_owned());
        let image_name = wim
            .xml()
            .images
            .iter()
            .find(|i| i.index == index)
            .and_then(|i| i.name.clone());
        let mut wim = wim;
        // Each solid chunk is decoded once for the life of the mount (kept on disk after).
        if let Err(e) =
            wim.keep_solid_chunks_in(&std::env::temp_dir(), args.scratch_size.map(|n| n as u64))
        {
            tracing::warn!("{e}");
        }
        let wim = Arc::new(wim);
        let opts = FsOptions {
            unix_data: args.unix_data,
            streams: args.streams_interface,
            link_root,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            ..FsOptions::default()
        };
        let control = Control::bind(&dir)?;

        let mut mount_options = vec![
            MountOption::FSName(wim.path().to_string_lossy().into_owned()),
            // As a kernel option (not fuser's Subtype, which only fusermount passes on) so
            // that a direct mount shows as fuse.wimfs too.
            MountOption::CUSTOM("subtype=wimfs".into()),
            if lock.is_some() {
                MountOption::RW
            } else {
                MountOption::RO
            },
            MountOption::DefaultPermissions,
            MountOption::CUSTOM(format!("max_read={MAX_READ}")),
        ];
        for o in &args.options {
            mount_options.extend(parse_mount_options(o).map_err(anyhow::Error::msg)?);
        }
        if lock.is_none() && mount_options.contains(&MountOption::RW) {
            bail!("this mount is read-only (use wimfs mountrw)");
        }
        let mut config = Config::default();
        config.mount_options = mount_options;
        config.acl = if args.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        // A read-write mount's changes wait while a commit runs, each holding a worker:
        // more workers keep lookups and reads answered meanwhile.
        let least = if lock.is_some() { 4 } else { 2 };
        config.n_threads = Some(threads.clamp(least, 8));
        config.clone_fd = true;

        // Detach from the caller's session so its terminal's signals do not reach us.
        // Failure (already a session leader) is fine.
        let _ = rustix::process::setsid();
        let mut status = Status {
            wim: wim.path().to_string_lossy().into_owned(),
            image: index,
            image_name,
            dir: dir.to_string_lossy().into_owned(),
            mode: "ro".into(),
            pid: std::process::id(),
            log: log.map(|l| l.to_string_lossy().into_owned()),
            open_files: 0,
            cache_bytes: 0,
            cache_capacity: args.cache_size,
            cache_hits: 0,
            cache_misses: 0,
        };
        match lock {
            None => {
                let fs = Arc::new(Fs::new(Arc::clone(&wim), img, opts));
                let served = Arc::clone(&fs) as Arc<dyn Mounted>;
                serve(
                    FuseFs::new(fs as Arc<dyn FsOps>),
                    served,
                    &dir,
                    &config,
                    control,
                    status,
                    ready,
                )
                .map(|_| ())
            }
            Some(lock) => {
                let (mount, staging) =
                    RwMount::start(&wim, img, opts, args.staging_dir.as_deref(), lock)?;
                status.mode = "rw".into();
                let served = Arc::new(mount);
                let adapter = FuseFs::new(Arc::clone(&served.fs) as Arc<dyn FsOps>);
                let result = serve(
                    adapter,
                    Arc::clone(&served) as Arc<dyn Mounted>,
                    &dir,
                    &config,
                    control,
                    status,
                    ready,
                );
                served.finish(&staging, matches!(result, Ok(true)));
                result.map(|_| ())
            }
        }
    }

    /// Mounts `filesystem` on `dir`, answers control requests about `served`, reports
    /// readiness and runs until unmounted. Returns whether `wimfs unmount` asked for the end.
    fn serve<F: Filesystem + Send + Sync + 'static>(
        filesystem: F,
        served: Arc<dyn Mounted>,
        dir: &Path,
        config: &Config,
        control: Control,
        status: Status,
        ready: &mut Option<File>,
    ) -> Result<bool> {
        let session = fuser::Session::new(filesystem, dir, config)
            .with_context(|| format!("{}: cannot mount", dir.display()))?;
        let wim = status.wim.clone();
        let index = status.image;
        let served = control.serve(served, status);
        tracing::info!("mounted image {index} of {wim} on {}", dir.display());
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok");
        }
        detach_stdio();
        let result = session.run();
        let asked = served.finish();
        tracing::info!("{} unmounted", dir.display());
        result
            .map(|()| asked)
            .with_context(|| format!("{}: FUSE session failed", dir.display()))
    }

    /// The mountpoint as an absolute path without resolving a final symlink-free component
    /// through the (possibly already mounted) directory itself.
    fn absolute_dir(dir: &Path) -> Result<PathBuf> {
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("{}: cannot use as mountpoint", dir.display()))?;
        if !meta.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        std::fs::canonicalize(dir).with_context(|| format!("{}: cannot resolve", dir.display()))
    }

    /// Sends stderr (where tracing writes) to `log`, replacing an older mount's log there.
    fn redirect_stderr(log: &Path) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(parent) = log.parent() {
            // The default log lives in the control directory: the user's alone or refused.
            if parent == wimfs::mount_proto::unix::runtime_dir() {
                wimfs::mount_proto::unix::checked_runtime_dir(true)?;
            } else {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
        }
        // Never through a link someone put in its place (it would truncate the target).
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(log)
            .with_context(|| format!("{}: cannot open log", log.display()))?;
        rustix::stdio::dup2_stderr(&f).context("cannot redirect logging")?;
        Ok(())
    }

    /// Points stdin and stdout at /dev/null: the parent that may hold their other ends
    /// goes away, and the daemon has nothing to say on stdout.
    fn detach_stdio() {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            let _ = rustix::stdio::dup2_stdin(&null);
            let _ = rustix::stdio::dup2_stdout(&null);
        }
    }
}
