//! `wimfs apply` and `wimfs extract`: write an image (or parts of it) to a directory.
//!
//! Names were validated when the image was loaded (no '/', NUL, '.', '..'), nothing is created
//! below a symlink the image itself contains, and files are opened without following links,
//! so nothing is written outside the target.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rayon::prelude::*;
use wimfs::format::header::FLAG_RP_FIX;
use wimfs::format::reparse::LinkReparse;
use wimfs::image::{DentryId, InodeId};
use wimfs::time::filetime_to_system;
use wimfs::{Image, Wim};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image (1-based index or name) and target directory; the image may be left out if the
    /// WIM has exactly one.
    #[arg(num_args = 1..=2, required = true)]
    rest: Vec<String>,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Restore UNIX owners, modes and special files stored with --unix-data.
    #[arg(long)]
    unix_data: bool,
    /// Do not rewrite absolute link targets to point into the target directory.
    #[arg(long)]
    norpfix: bool,
    /// Check the WIM's integrity table first (if it has one).
    #[arg(long)]
    check: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image (1-based index or name).
    image: String,
    /// Paths inside the image to extract.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Directory to extract into (default: the current directory).
    #[arg(long, default_value = ".")]
    dest_dir: PathBuf,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Restore UNIX owners, modes and special files stored with --unix-data.
    #[arg(long)]
    unix_data: bool,
    /// Do not rewrite absolute link targets to point into the target directory.
    #[arg(long)]
    norpfix: bool,
    /// Check the WIM's integrity table first (if it has one).
    #[arg(long)]
    check: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// One entry to create: its dentry and where it goes.
struct Planned {
    d: DentryId,
    at: Place,
}

enum Place {
    /// In the directory of this plan item, under its own name.
    Under(usize),
    /// At this path (the root of an extracted subtree).
    At(PathBuf),
}

struct Extractor<'a> {
    wim: &'a Wim,
    img: &'a Image,
    unix_data: bool,
    /// Root for absolute link targets that were fixed at capture time.
    link_root: Option<String>,
    quiet: bool,
}

pub fn run_apply(a: ApplyArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let (image_spec, target) = match a.rest.as_slice() {
        [t] => (None, t.clone()),
        [i, t] => (Some(i.as_str()), t.clone()),
        _ => unreachable!("clap enforces 1..=2 values"),
    };
    let target = PathBuf::from(target);
    // `all` (or `*`): every image into a directory of its own under TARGET, named after the
    // image (its index if it has no name a directory can take), as wimlib does; hard links
    // stay within an image.
    let all = matches!(image_spec, Some("all" | "*"));
    let indexes = match all {
        true => (1..=wim.image_count()).collect(),
        false => vec![super::pick_image(&wim, image_spec)?],
    };
    for index in indexes {
        let img = Image::load(&wim, index)?;
        let dest = match all {
            true => {
                let name = wim
                    .xml()
                    .images
                    .iter()
                    .find(|i| i.index == index)
                    .and_then(|i| i.name.clone())
                    .filter(|n| {
                        !n.is_empty() && wimfs::image::names::native_name_problem(n).is_none()
                    });
                target.join(name.unwrap_or_else(|| index.to_string()))
            }
            false => target.clone(),
        };
        fs::create_dir_all(&dest)
            .with_context(|| format!("{}: cannot create target directory", dest.display()))?;
        let ex = Extractor::new(&wim, &img, &dest, a.unix_data, a.norpfix, a.quiet)?;
        ex.extract(&[(Image::ROOT, dest.clone())])?;
    }
    Ok(0)
}

pub fn run_extract(a: ExtractArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let index = wim.resolve_image(&a.image)?;
    let img = Image::load(&wim, index)?;
    fs::create_dir_all(&a.dest_dir)
        .with_context(|| format!("{}: cannot create directory", a.dest_dir.display()))?;
    let mut roots = Vec::new();
    for p in &a.paths {
        let d = img.lookup(p).ok_or_else(|| {
            anyhow!(
                "{}: image {index} has no file \"{p}\"",
                wim.path().display()
            )
        })?;
        let dest = if d == Image::ROOT {
            a.dest_dir.clone()
        } else {
            let name = &img.dentries[d].name;
            if let Some(why) = wimfs::image::names::native_name_problem(name) {
                bail!(
                    "{}: \"{}\" cannot be extracted here: it has {why}",
                    wim.path().display(),
                    super::printable(p)
                );
            }
            a.dest_dir.join(name)
        };
        roots.push((d, dest));
    }
    let ex = Extractor::new(&wim, &img, &a.dest_dir, a.unix_data, a.norpfix, a.quiet)?;
    ex.extract(&roots)?;
    Ok(0)
}

impl<'a> Extractor<'a> {
    fn new(
        wim: &'a Wim,
        img: &'a Image,
        target: &Path,
        unix_data: bool,
        norpfix: bool,
        quiet: bool,
    ) -> Result<Self> {
        let abs = fs::canonicalize(target)
            .with_context(|| format!("{}: cannot resolve", target.display()))?;
        let link_root = (!norpfix && wim.header().flags & FLAG_RP_FIX != 0)
            .then(|| abs.to_string_lossy().into_owned());
        Ok(Extractor {
            wim,
            img,
            unix_data,
            link_root,
            quiet,
        })
    }

    /// Extracts each (dentry, destination path) subtree.
    fn extract(&self, roots: &[(DentryId, PathBuf)]) -> Result<()> {
        let img = self.img;
        // Plan: every dentry to create, skipping what lies below image symlinks. Each item
        // knows its parent's place in the plan, not its whole path: paths are built when
        // used, so memory grows with the number of entries, not with depth times names.
        let mut plan: Vec<Planned> = Vec::new();
        for (root, dest) in roots {
            let mut stack = vec![(*root, Place::At(dest.clone()))];
            while let Some((d, at)) = stack.pop() {
                let me = plan.len();
                plan.push(Planned { d, at });
                let ino = img.inode_of(d);
                if ino.is_directory() {
                    for &c in img.dentries[d].children.iter().rev() {
                        // A name this platform cannot hold safely (on Windows `..\x`, `C:`,
                        // `CON`, ...) is skipped with what lies below it, as wimlib does.
                        let name = &img.dentries[c].name;
                        if let Some(why) = wimfs::image::names::native_name_problem(name) {
                            tracing::warn!(
                                "skipping \"{}\": it has {why}",
                                super::printable(&img.path_of(c))
                            );
                            continue;
                        }
                        stack.push((c, Place::Under(me)));
                    }
                } else if !img.dentries[d].children.is_empty() {
                    tracing::warn!(
                        "ignoring entries below non-directory \"{}\"",
                        img.path_of(d)
                    );
                }
            }
        }
        let path = |k: usize| self.path(&plan, k);
        let is_dir = |k: usize| img.inode_of(plan[k].d).is_directory();
        // 1. Directories, parents first.
        for k in (0..plan.len()).filter(|&k| is_dir(k)) {
            make_dir(&path(k))?;
        }
        // 2. File data, one write per inode, in parallel, in blob order for locality.
        let mut first: HashMap<InodeId, usize> = HashMap::new();
        let mut files: Vec<(InodeId, usize)> = Vec::new();
        for (k, item) in plan.iter().enumerate() {
            let ino_id = img.dentries[item.d].inode;
            let ino = &img.inodes[ino_id];
            if ino.is_directory() || ino.is_symlink() || self.special(ino_id).is_some() {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(v) = first.entry(ino_id) {
                v.insert(k);
                files.push((ino_id, k));
            }
        }
        files.sort_by_key(|(i, _)| {
            img.inodes[*i]
                .data_stream()
                .and_then(|s| s.blob)
                .map(|b| (b.resource, b.offset))
        });
        let total: u64 = files.iter().map(|(i, _)| img.inodes[*i].size()).sum();
        let pb = super::progress::bytes_bar(total, "extracting", self.quiet);
        files
            .par_iter()
            .try_for_each(|(ino, k)| self.write_file(*ino, &path(*k), &|n| pb.inc(n)))?;
        pb.finish_and_clear();
        // 3. Hard links, symlinks and special files.
        for (k, item) in plan.iter().enumerate() {
            let ino_id = img.dentries[item.d].inode;
            let ino = &img.inodes[ino_id];
            if ino.is_directory() {
                continue;
            }
            if ino.is_symlink() {
                self.make_symlink(item.d, &path(k))?;
            } else if let Some((mode, rdev)) = self.special(ino_id) {
                make_special(&path(k), mode, rdev)?;
            } else if let Some(&src) = first.get(&ino_id) {
                if src != k {
                    let here = path(k);
                    remove_existing(&here)?;
                    fs::hard_link(path(src), &here)
                        .with_context(|| format!("{}: cannot create hard link", here.display()))?;
                }
            }
        }
        // 4. Ownership, modes and times; directories last and deepest first so that
        //    creating children does not disturb their times.
        for k in (0..plan.len()).filter(|&k| !is_dir(k)) {
            self.set_metadata(plan[k].d, &path(k))?;
        }
        for k in (0..plan.len()).rev().filter(|&k| is_dir(k)) {
            self.set_metadata(plan[k].d, &path(k))?;
        }
        Ok(())
    }

    /// Where plan item `k` goes: its root's destination joined with the names down to it.
    fn path(&self, plan: &[Planned], k: usize) -> PathBuf {
        let mut names = Vec::new();
        let mut at = k;
        let root = loop {
            match &plan[at].at {
                Place::Under(parent) => {
                    names.push(self.img.dentries[plan[at].d].name.as_str());
                    at = *parent;
                }
                Place::At(dest) => break dest,
            }
        };
        let mut p = root.clone();
        p.extend(names.iter().rev());
        p
    }

    /// (mode, rdev) if the inode is a device, fifo or socket to recreate with --unix-data.
    fn special(&self, ino: InodeId) -> Option<(u32, u32)> {
        if !self.unix_data {
            return None;
        }
        let u = self.img.inodes[ino].unix?;
        let fmt = u.mode & 0o170000;
        [0o020000, 0o060000, 0o010000, 0o140000]
            .contains(&fmt)
            .then_some((u.mode, u.rdev))
    }

    fn write_file(&self, ino: InodeId, path: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let inode = &self.img.inodes[ino];
        let mut f = create_file(path)?;
        if let Some(loc) = inode.data_stream().and_then(|s| s.blob) {
            let mut h = <sha1::Sha1 as sha1::Digest>::new();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
            self.wim
                .stream_blob(&loc, &mut |piece| {
                    sha1::Digest::update(&mut h, piece);
                    progress(piece.len() as u64);
                    w.write_all(piece).map_err(|e| wimfs::Error::Io {
                        path: path.to_path_buf(),
                        what: "writing".into(),
                        cause: e,
                    })
                })
                .with_context(|| {
                    format!("extracting \"{}\"", self.img.path_of(inode.dentries[0]))
                })?;
            w.flush()
                .with_context(|| format!("{}: write failed", path.display()))?;
            let digest: [u8; 20] = sha1::Digest::finalize(h).into();
            if digest != loc.hash {
                bail!(
                    "{}: data of \"{}\" is corrupt (SHA-1 mismatch)",
                    self.wim.path().display(),
                    self.img.path_of(inode.dentries[0])
                );
            }
        }
        Ok(())
    }

    fn make_symlink(&self, d: DentryId, path: &Path) -> Result<()> {
        let ino = self.img.inode_of(d);
        let data = match ino.reparse_stream().and_then(|s| s.blob) {
            Some(loc) => self.wim.read_blob(&loc, true)?,
            None => Vec::new(),
        };
        let link = LinkReparse::parse(ino.reparse_tag, &data).map_err(|e| {
            anyhow!(
                "{}: \"{}\": {e}",
                self.wim.path().display(),
                self.img.path_of(d)
            )
        })?;
        let target = link.unix_target(ino.rp_flags, self.link_root.as_deref());
        remove_existing(path)?;
        symlink(&target, path)
    }

    fn set_metadata(&self, d: DentryId, path: &Path) -> Result<()> {
        let ino = self.img.inode_of(d);
        #[cfg(unix)]
        if self.unix_data {
            if let Some(u) = ino.unix {
                use rustix::fs::{chownat, AtFlags, Gid, Uid, CWD};
                let (uid, gid) = (Uid::from_raw(u.uid), Gid::from_raw(u.gid));
                if let Err(e) = chownat(CWD, path, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                {
                    tracing::warn!("{}: cannot set owner: {e}", path.display());
                }
                if !ino.is_symlink() {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(path, fs::Permissions::from_mode(u.mode & 0o7777))
                        .with_context(|| format!("{}: cannot set mode", path.display()))?;
                }
            }
        }
        let atime = filetime::FileTime::from_system_time(filetime_to_system(ino.last_access_time));
        let mtime = filetime::FileTime::from_system_time(filetime_to_system(ino.last_write_time));
        filetime::set_symlink_file_times(path, atime, mtime)
            .with_context(|| format!("{}: cannot set times", path.display()))?;
        Ok(())
    }
}

fn make_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{}: exists and is not a directory", path.display()),
        Err(_) => fs::create_dir(path)
            .with_context(|| format!("{}: cannot create directory", path.display())),
    }
}

fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => bail!("{}: a directory is in the way", path.display()),
        Ok(_) => {
            fs::remove_file(path).with_context(|| format!("{}: cannot replace", path.display()))
        }
        Err(_) => Ok(()),
    }
}

fn create_file(path: &Path) -> Result<fs::File> {
    remove_existing(path)?;
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
        .with_context(|| format!("{}: cannot create file", path.display()))
}

#[cfg(unix)]
fn symlink(target: &str, path: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, path)
        .with_context(|| format!("{}: cannot create symlink", path.display()))
}

#[cfg(windows)]
fn symlink(target: &str, path: &Path) -> Result<()> {
    std::os::windows::fs::symlink_file(target, path)
        .with_context(|| format!("{}: cannot create symlink", path.display()))
}

#[cfg(unix)]
fn make_special(path: &Path, mode: u32, rdev: u32) -> Result<()> {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    remove_existing(path)?;
    let (kind, perm) = (FileType::from_raw_mode(mode), Mode::from_raw_mode(mode));
    mknodat(CWD, path, kind, perm, rdev.into())
        .with_context(|| format!("{}: cannot create special file", path.display()))
}

#[cfg(windows)]
fn make_special(path: &Path, _mode: u32, _rdev: u32) -> Result<()> {
    tracing::warn!(
        "{}: special files cannot be created on Windows",
        path.display()
    );
    Ok(())
}
