//! `wimfs mount`, `wimfs mountrw`, `wimfs unmount` and `wimfs mounts`: start, stop and list
//! mount daemons.
//!
//! The filesystem itself is served by `wimfs-mountd` (found beside this executable, then on
//! PATH). `mount` starts it and waits for its one-line readiness report; `unmount` and
//! `mounts` talk to running daemons over their control channels (Unix sockets, or named pipes
//! on Windows; the platform parts are in `unix.rs` and `windows.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use wimfs::mount_proto::Orphan;
use wimfs::mount_proto::Status;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image (1-based index or name) and mountpoint; the image may be left out if the WIM
    /// has exactly one.
    #[arg(num_args = 1..=2, required = true, value_name = "[IMAGE] DIR")]
    rest: Vec<String>,
    /// Check the integrity table before mounting.
    #[arg(long)]
    check: bool,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Show UNIX owners, modes and special files saved with --unix-data.
    #[cfg(unix)]
    #[arg(long)]
    unix_data: bool,
    /// How named data streams are shown: xattr (user.NAME), windows (FILE:NAME) or none.
    #[cfg(unix)]
    #[arg(long, default_value = "xattr", value_parser = ["xattr", "windows", "none"])]
    streams_interface: String,
    /// Let other users access the mount.
    #[cfg(unix)]
    #[arg(long)]
    allow_other: bool,
    /// Look names up case-sensitively (Windows' own default is case-insensitive).
    #[cfg(windows)]
    #[arg(long)]
    case_sensitive: bool,
    /// Bound of the decompressed-chunk cache (e.g. 512M, 1G).
    #[arg(long, value_name = "N")]
    cache_size: Option<String>,
    /// Bound of the scratch file for decoded solid chunks (e.g. 4G; default: half the space
    /// free in $TMPDIR at mount time).
    #[arg(long, value_name = "N")]
    scratch_size: Option<String>,
    /// Extra FUSE mount options, comma-separated.
    #[cfg(unix)]
    #[arg(short = 'o', value_name = "FUSE_OPTS")]
    options: Vec<String>,
}

/// `wimfs mountrw`: the `mount` options plus where to stage changes.
#[derive(Args, Debug)]
pub struct MountRwArgs {
    #[command(flatten)]
    mount: MountArgs,
    /// Directory for new and changed file data until commit (default: beside the WIM).
    #[arg(long, value_name = "DIR")]
    staging_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UnmountArgs {
    /// The mountpoint (a directory, or on Windows also a drive letter).
    dir: PathBuf,
    /// Detach the mount now even if it is busy; the daemon exits when the last user is gone.
    #[arg(long)]
    lazy: bool,
    /// Write a read-write mount's changes into the WIM first (exit status: the commit's).
    #[arg(long)]
    commit: bool,
    /// How to commit (with --commit).
    #[command(flatten)]
    how: CommitHow,
    /// Unmount (and commit) even while files on the mount are open; the mount is
    /// detached and the daemon exits when the last of them is closed.
    #[arg(long)]
    force: bool,
}

/// How a commit writes (`unmount --commit` and `commit`).
#[derive(Args, Debug, Default)]
pub struct CommitHow {
    /// Add an integrity table to the WIM.
    #[arg(long)]
    check: bool,
    /// Add the result as a new image and leave the mounted one as it was (later commits
    /// of a mount that stays up then replace the new one).
    #[arg(long)]
    new_image: bool,
    /// Write a new file and rename it over the WIM instead of appending in place
    /// (reclaims the space of replaced data).
    #[arg(long)]
    rebuild: bool,
}

/// `wimfs commit`: commit without unmounting.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The mountpoint of a read-write mount.
    dir: PathBuf,
    #[command(flatten)]
    how: CommitHow,
}

/// `wimfs recover`: finish what a dead read-write daemon left.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["commit", "discard"])))]
pub struct RecoverArgs {
    /// The WIM the dead mount was of.
    wimfile: PathBuf,
    /// Write the staged changes into the WIM (in place of the image that was mounted).
    #[arg(long)]
    commit: bool,
    /// Throw the staged changes away.
    #[arg(long)]
    discard: bool,
    /// With --commit: add an integrity table to the WIM.
    #[arg(long)]
    check: bool,
    /// The staging directory, when it is not beside the WIM or registered by a daemon
    /// since the last boot.
    #[arg(long, value_name = "DIR")]
    staging_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MountsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn daemon_path() -> Result<PathBuf> {
    let name = format!("wimfs-mountd{}", std::env::consts::EXE_SUFFIX);
    let name = name.as_str();
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("cannot find {name} beside wimfs or on PATH"))
}

pub fn run_mount(a: MountArgs, debug: bool) -> Result<i32> {
    start_daemon(a, debug, None)
}

/// `wimfs mountrw`: a read-write mount (refused for split WIMs by the daemon).
pub fn run_mountrw(a: MountRwArgs, debug: bool) -> Result<i32> {
    if a.mount.wimfile.to_str().is_some_and(wimfs::read::is_url) {
        bail!(
            "{}: remote images are read-only; mount it read-only, or copy it first \
             (wimfs export URL all COPY.wim) and mount the copy read-write",
            a.mount.wimfile.display()
        );
    }
    if !a.mount.refs.is_empty() {
        bail!(
            "{}: a split WIM cannot be mounted read-write; join it first (wimfs join)",
            a.mount.wimfile.display()
        );
    }
    // Changes a dead mount of this WIM left are not lost by mounting again, but a commit of
    // the new mount would make them stale: say so.
    if let Ok(wim) = std::fs::canonicalize(&a.mount.wimfile) {
        for o in list_orphans(Some(&wim)).unwrap_or_default() {
            if o.state == "recoverable" {
                eprintln!(
                    "note: {} holds {} unsaved change(s) to image {} from a mount whose daemon \
                     died; `wimfs recover {} --commit` saves them, a commit of this mount makes \
                     them stale",
                    o.staging,
                    o.changes,
                    o.image,
                    wim.display()
                );
            }
        }
    }
    let staging = a.staging_dir.unwrap_or_default();
    start_daemon(a.mount, debug, Some(staging))
}

/// Starts the daemon; `rw` is `Some(staging dir, empty for the default)` for read-write.
fn start_daemon(a: MountArgs, debug: bool, rw: Option<PathBuf>) -> Result<i32> {
    let (image_spec, dir) = match a.rest.as_slice() {
        [d] => (None, d.clone()),
        [i, d] => (Some(i.as_str()), d.clone()),
        _ => unreachable!("clap enforces 1..=2 values"),
    };
    let refs = super::expand_refs(&a.refs)?;
    // Resolve the image here so that "which image?" errors read like every other command's.
    let wim = super::open_wim(&a.wimfile, &a.refs, false)?;
    let index = super::pick_image(&wim, image_spec)?;
    drop(wim);
    let daemon = daemon_path()?;
    let mut cmd = Command::new(&daemon);
    #[cfg(feature = "remote")]
    if let Some((dir, limit)) = wimfs::read::remote::disk_cache() {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        cmd.env("WIMFS_CACHE_DIR", dir)
            .env("WIMFS_CACHE_DIR_SIZE", limit.to_string());
    }
    // URLs go in the arguments without what may be secret in them (see `conceal`).
    #[cfg(feature = "remote")]
    let (wimfile, refs) = {
        let all: Vec<PathBuf> = std::iter::once(&a.wimfile).chain(&refs).cloned().collect();
        let (mut shown, env) = wimfs::read::remote::conceal(&all);
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        if let Some(url) = wimfs::read::remote::endpoint() {
            cmd.env(wimfs::read::remote::ENDPOINT_VAR, url);
        }
        let wimfile = shown.remove(0);
        (wimfile, shown)
    };
    #[cfg(not(feature = "remote"))]
    let wimfile = a.wimfile.clone();
    cmd.arg(&wimfile)
        .arg(index.to_string())
        .arg(&dir)
        .args(["--ready-fd", "1", "--log", "auto"]);
    #[cfg(unix)]
    cmd.args(["--streams-interface", &a.streams_interface]);
    if let Some(staging) = &rw {
        cmd.arg("--rw");
        if !staging.as_os_str().is_empty() {
            cmd.arg("--staging-dir").arg(staging);
        }
    }
    for r in &refs {
        cmd.arg("--ref").arg(r);
    }
    let flags = [
        ("--check", a.check),
        #[cfg(unix)]
        ("--unix-data", a.unix_data),
        #[cfg(unix)]
        ("--allow-other", a.allow_other),
        #[cfg(windows)]
        ("--case-sensitive", a.case_sensitive),
        ("--debug", debug),
    ];
    for (flag, on) in flags {
        if on {
            cmd.arg(flag);
        }
    }
    if let Some(c) = &a.scratch_size {
        cmd.args(["--scratch-size", c]);
    }
    if let Some(c) = &a.cache_size {
        cmd.args(["--cache-size", c]);
    }
    #[cfg(unix)]
    for o in &a.options {
        cmd.args(["-o", o]);
    }
    platform::detach(&mut cmd);
    tracing::debug!("starting {cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", daemon.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    BufReader::new(stdout).read_line(&mut line).ok();
    match line.trim_end() {
        "ok" => Ok(0),
        msg => {
            let status = child.wait()?;
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).ok();
            }
            if let Some(m) = msg.strip_prefix("error: ") {
                bail!("mounting {} on {dir}: {m}", a.wimfile.display());
            }
            bail!(
                "mounting {} on {dir}: wimfs-mountd exited ({status}) {}",
                a.wimfile.display(),
                err.trim()
            )
        }
    }
}

/// One running daemon, as its `status` reply describes it.
#[derive(Debug, Clone, serde::Serialize)]
struct MountInfo {
    #[serde(flatten)]
    status: Status,
    /// The control socket or pipe it answered on.
    #[serde(skip)]
    socket: PathBuf,
}

impl std::ops::Deref for MountInfo {
    type Target = Status;
    fn deref(&self) -> &Status {
        &self.status
    }
}

/// Orphans of `wim` (of every WIM whose daemon registered, if `None`).
fn list_orphans(wim: Option<&std::path::Path>) -> Result<Vec<Orphan>> {
    let daemon = daemon_path()?;
    let mut cmd = Command::new(&daemon);
    #[cfg(feature = "remote")]
    if let Some((dir, limit)) = wimfs::read::remote::disk_cache() {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        cmd.env("WIMFS_CACHE_DIR", dir)
            .env("WIMFS_CACHE_DIR_SIZE", limit.to_string());
    }
    cmd.arg("orphans");
    if let Some(w) = wim {
        cmd.arg(w);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", daemon.display()))?;
    if !out.status.success() {
        bail!(
            "{} orphans: {}",
            daemon.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every daemon answering on a socket in the runtime directory.
fn list_mounts() -> Result<Vec<MountInfo>> {
    let mut out = Vec::new();
    for p in platform::endpoints()? {
        match platform::request(&p, "status", Duration::from_secs(5)) {
            Ok(line) => match Status::parse(&line) {
                Ok(status) => out.push(MountInfo { status, socket: p }),
                Err(e) => tracing::warn!("{}: bad status reply: {e}", p.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!("{e}")
            }
            Err(e) => tracing::debug!("{}: no daemon: {e}", p.display()),
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

pub fn run_mounts(a: MountsArgs) -> Result<i32> {
    let mounts = list_mounts()?;
    let orphans = list_orphans(None).unwrap_or_else(|e| {
        tracing::warn!("cannot look for orphaned staging directories: {e:#}");
        Vec::new()
    });
    let mut out = std::io::stdout().lock();
    if a.json {
        // One list: live mounts, then orphans (`"mode": "orphan"`, with their staging
        // directory, and `state`: recoverable, committed or stale).
        let mut v: Vec<serde_json::Value> = mounts
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()?;
        for o in &orphans {
            let mut e = serde_json::to_value(o)?;
            e["mode"] = "orphan".into();
            v.push(e);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    for o in &orphans {
        writeln!(
            out,
            "orphan: {} ({} change(s) to image {} of {}, {}): wimfs recover {} --commit|--discard",
            o.staging, o.changes, o.image, o.wim, o.state, o.wim
        )?;
    }
    if mounts.is_empty() {
        return Ok(0);
    }
    writeln!(
        out,
        "{:<30} {:<6} {:<4} {:>8}  WIM",
        "DIR", "IMAGE", "MODE", "PID"
    )?;
    for m in &mounts {
        writeln!(
            out,
            "{:<30} {:<6} {:<4} {:>8}  {}",
            m.dir, m.image, m.mode, m.pid, m.wim
        )?;
    }
    Ok(0)
}

pub fn run_unmount(a: UnmountArgs) -> Result<i32> {
    let dir = platform::mountpoint_key(&a.dir)?;
    let dir_s = dir.to_string_lossy();
    let Some(m) = list_mounts()?.into_iter().find(|m| m.dir == dir_s) else {
        bail!("{}: not mounted by a running wimfs daemon", dir.display());
    };
    if m.mode == "rw" && m.open_files > 0 && !a.force && !a.lazy {
        bail!(
            "{}: the mount is busy ({} open file{}); close them, or use --force to {} anyway",
            dir.display(),
            m.open_files,
            if m.open_files == 1 { "" } else { "s" },
            if a.commit {
                "commit and unmount"
            } else {
                "unmount"
            }
        );
    }
    if a.commit && m.mode != "rw" {
        tracing::info!("--commit: nothing to commit on a read-only mount");
    } else if a.commit {
        send_commit(&m, &dir, &a.how)?;
    }
    let what = if a.lazy || a.force {
        "unmount lazy"
    } else {
        "unmount"
    };
    let reply = platform::request(&m.socket, what, Duration::from_secs(60))
        .with_context(|| format!("{}: cannot reach the daemon (pid {})", dir.display(), m.pid))?;
    if let Some(err) = reply.strip_prefix("error ") {
        bail!("{}: cannot unmount: {err}", dir.display());
    }
    if reply != "ok" {
        bail!(
            "{}: unexpected reply from the daemon: {reply:?}",
            dir.display()
        );
    }
    if !a.lazy && !a.force {
        let start = Instant::now();
        while !platform::is_gone(m.pid, &m.socket) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "{}: unmounted, but the daemon (pid {}) has not exited",
                    dir.display(),
                    m.pid
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(0)
}

/// Asks the daemon of `m` to commit; the error says why it failed (the mount stays up).
fn send_commit(m: &MountInfo, dir: &std::path::Path, how: &CommitHow) -> Result<()> {
    let mut what = String::from("commit");
    for (word, on) in [
        (" rebuild", how.rebuild),
        (" check", how.check),
        (" new-image", how.new_image),
    ] {
        if on {
            what.push_str(word);
        }
    }
    // A commit writes every changed file; it may take long.
    let reply = platform::request(&m.socket, &what, Duration::from_secs(24 * 3600))
        .with_context(|| format!("{}: cannot reach the daemon (pid {})", dir.display(), m.pid))?;
    if let Some(err) = reply.strip_prefix("error ") {
        bail!(
            "{}: commit failed, the mount stays up with its changes: {err}",
            dir.display()
        );
    }
    if reply != "ok" {
        bail!(
            "{}: unexpected reply from the daemon: {reply:?}",
            dir.display()
        );
    }
    Ok(())
}

/// `wimfs commit DIR`: the mount's changes go into the WIM; it stays mounted.
pub fn run_commit(a: CommitArgs) -> Result<i32> {
    let dir = platform::mountpoint_key(&a.dir)?;
    let dir_s = dir.to_string_lossy();
    let Some(m) = list_mounts()?.into_iter().find(|m| m.dir == dir_s) else {
        bail!("{}: not mounted by a running wimfs daemon", dir.display());
    };
    if m.mode != "rw" {
        bail!("{}: a read-only mount has nothing to commit", dir.display());
    }
    send_commit(&m, &dir, &a.how)?;
    Ok(0)
}

/// `wimfs recover WIMFILE --commit|--discard`.
pub fn run_recover(a: RecoverArgs) -> Result<i32> {
    let wim = std::fs::canonicalize(&a.wimfile)
        .with_context(|| format!("{}: cannot open", a.wimfile.display()))?;
    let dirs: Vec<PathBuf> = match &a.staging_dir {
        Some(d) => vec![d.clone()],
        None => list_orphans(Some(&wim))?
            .into_iter()
            .map(|o| PathBuf::from(o.staging))
            .collect(),
    };
    if dirs.is_empty() {
        bail!(
            "{}: no staging directory of a dead read-write mount found (give one with \
             --staging-dir)",
            wim.display()
        );
    }
    if dirs.len() > 1 && a.commit {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "{}: {} dead mounts left changes ({}); pick one with --staging-dir",
            wim.display(),
            dirs.len(),
            list.join(", ")
        );
    }
    let daemon = daemon_path()?;
    for d in &dirs {
        let mut cmd = Command::new(&daemon);
        cmd.arg("recover").arg(d);
        cmd.arg(if a.commit { "--commit" } else { "--discard" });
        if a.check {
            cmd.arg("--check");
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot run {}", daemon.display()))?;
        if !status.success() {
            return Ok(status.code().unwrap_or(1));
        }
    }
    Ok(0)
}
