//! Applying an image (or subtrees of one) to a directory: the library side of `wimfs apply`
//! and `wimfs extract`, beside capture (crate::write::capture).
//!
//! Names were validated when the image was loaded; names this platform cannot hold safely are
//! skipped with a warning, nothing is created below a symlink the image itself contains, and
//! on Unix every entry is reached through directory handles that never follow a link (see
//! `unix.rs`), so nothing is written outside the target.
//!
//! ```no_run
//! # fn main() -> wimfs::Result<()> {
//! use wimfs::apply::{Extraction, Options};
//! use wimfs::{Image, Wim};
//! let wim = Wim::open("install.wim")?;
//! let image = Image::load(&wim, 1)?;
//! let roots = [(Image::ROOT, std::path::PathBuf::new())];
//! let job = Extraction::plan(&wim, &image, "/mnt/target".as_ref(), &roots, Options::default())?;
//! job.run(&|_bytes| {})?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rayon::prelude::*;

use crate::format::header::FLAG_RP_FIX;
use crate::format::reparse::LinkReparse;
use crate::image::names::{native_name_problem, printable};
use crate::image::{DentryId, InodeId};
use crate::{Error, Image, Result, Wim};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as target;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as target;

use target::{Dir, Target};

/// Makes the directories of `rel` (relative) below `target` that are missing, one name at a
/// time from the target down, never through a link; existing directories are kept.
pub fn make_dirs(target_dir: &Path, rel: &Path) -> Result<()> {
    let io = |what: &str, at: &Path, e| Error::io(target_dir.join(at), what.to_string(), e);
    let t = Target::open(target_dir).map_err(|e| io("cannot open directory", Path::new(""), e))?;
    let mut done = PathBuf::new();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Err(Error::invalid(
                target_dir.join(rel),
                "not a plain relative path",
            ));
        };
        let name = name
            .to_str()
            .ok_or_else(|| Error::invalid(target_dir.join(rel), "the name is not valid UTF-8"))?;
        let parent = t
            .dir(&done)
            .map_err(|e| io("cannot open directory", &done, e))?;
        done.push(name);
        target::mkdir(&parent, name).map_err(|e| io("cannot create directory", &done, e))?;
    }
    Ok(())
}

/// What an entry is expected to be when its owner and mode are set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Directory,
    File,
    Symlink,
    Special,
}

/// How to apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Restore UNIX owners, modes and special files stored with `--unix-data`.
    pub unix_data: bool,
    /// Keep absolute link targets as stored instead of pointing them into the target.
    pub norpfix: bool,
}

/// One entry to create: its dentry and where it goes.
struct Planned {
    d: DentryId,
    at: Place,
}

enum Place {
    /// In the directory of this plan item, under its own name.
    Under(usize),
    /// At this path relative to the target (empty: the target itself).
    At(PathBuf),
}

/// Where a plan item is: a directory (relative to the target) and a name in it, or the
/// target itself (no name).
struct Location<'p> {
    parent: PathBuf,
    name: Option<&'p str>,
}

/// Open handles on recently used directories of the plan (by plan index), so that reaching
/// an entry's parent costs nothing when its neighbours were in the same directory, and one
/// `openat` below a cached ancestor otherwise. One per thread.
struct Dirs<'t> {
    open: lru::LruCache<usize, Rc<Dir<'t>>>,
}

impl Dirs<'_> {
    fn new() -> Self {
        Dirs {
            open: lru::LruCache::new(std::num::NonZeroUsize::new(16).expect("nonzero")),
        }
    }
}

/// A planned extraction: every entry to create, in order.
pub struct Extraction<'a> {
    wim: &'a Wim,
    img: &'a Image,
    target: Target,
    unix_data: bool,
    /// Root for absolute link targets that were fixed at capture time.
    link_root: Option<String>,
    plan: Vec<Planned>,
}

impl<'a> Extraction<'a> {
    /// Plans writing each `(dentry, destination)` subtree of `img` into the directory
    /// `target`, which must exist; destinations are relative to it (empty for the target
    /// itself). Memory grows with the number of entries, not with their depth.
    pub fn plan(
        wim: &'a Wim,
        img: &'a Image,
        target: &Path,
        roots: &[(DentryId, PathBuf)],
        opts: Options,
    ) -> Result<Self> {
        let io = |what: &str, e| Error::io(target, what.to_string(), e);
        let abs = std::fs::canonicalize(target).map_err(|e| io("cannot resolve", e))?;
        let link_root = (!opts.norpfix && wim.header().flags & FLAG_RP_FIX != 0)
            .then(|| abs.to_string_lossy().into_owned());
        let handle = Target::open(target).map_err(|e| io("cannot open target directory", e))?;
        let mut plan: Vec<Planned> = Vec::new();
        for (root, dest) in roots {
            let mut stack = vec![(*root, Place::At(dest.clone()))];
            while let Some((d, at)) = stack.pop() {
                let me = plan.len();
                plan.push(Planned { d, at });
                if img.inode_of(d).is_directory() {
                    for &c in img.dentries[d].children.iter().rev() {
                        // A name this platform cannot hold safely (on Windows `..\x`, `C:`,
                        // `CON`, ...) is skipped with what lies below it, as wimlib does.
                        let name = &img.dentries[c].name;
                        if let Some(why) = native_name_problem(name) {
                            tracing::warn!(
                                "skipping \"{}\": it has {why}",
                                printable(&img.path_of(c))
                            );
                            continue;
                        }
                        stack.push((c, Place::Under(me)));
                    }
                } else if !img.dentries[d].children.is_empty() {
                    tracing::warn!(
                        "ignoring entries below non-directory \"{}\"",
                        printable(&img.path_of(d))
                    );
                }
            }
        }
        Ok(Extraction {
            wim,
            img,
            target: handle,
            unix_data: opts.unix_data,
            link_root,
            plan,
        })
    }

    /// Bytes of file data the extraction writes (each hard-linked file once).
    pub fn data_bytes(&self) -> u64 {
        self.files()
            .0
            .iter()
            .map(|(i, _)| self.img.inodes[*i].size())
            .sum()
    }

    /// Regular files to write, one plan item per inode in blob order, and each inode's
    /// first plan item.
    fn files(&self) -> (Vec<(InodeId, usize)>, HashMap<InodeId, usize>) {
        let img = self.img;
        let mut first: HashMap<InodeId, usize> = HashMap::new();
        let mut files: Vec<(InodeId, usize)> = Vec::new();
        for (k, item) in self.plan.iter().enumerate() {
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
        (files, first)
    }

    /// Creates everything planned; `progress` is told of file data as it is written.
    pub fn run(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let img = self.img;
        let is_dir = |k: usize| img.inode_of(self.plan[k].d).is_directory();
        let mut dirs = Dirs::new();
        // 1. Directories, parents first.
        for k in (0..self.plan.len()).filter(|&k| is_dir(k)) {
            if let (dir, Some(name)) = self.parent(&mut dirs, k)? {
                target::mkdir(&dir, name)
                    .map_err(|e| self.fail(k, "cannot create directory", e))?;
            }
        }
        // 2. File data, one write per inode, in parallel, in blob order for locality.
        let (files, first) = self.files();
        files
            .par_iter()
            .try_for_each_init(Dirs::new, |dirs, (ino, k)| {
                self.write_file(dirs, *ino, *k, progress)
            })?;
        // 3. Hard links, symlinks and special files.
        for (k, item) in self.plan.iter().enumerate() {
            let ino_id = img.dentries[item.d].inode;
            let ino = &img.inodes[ino_id];
            if ino.is_directory() {
                continue;
            }
            if ino.is_symlink() {
                self.make_symlink(&mut dirs, k)?;
            } else if let Some((mode, rdev)) = self.special(ino_id) {
                let (dir, name) = self.parent_named(&mut dirs, k)?;
                target::mknod(&dir, name, mode, rdev)
                    .map_err(|e| self.fail(k, "cannot create special file", e))?;
            } else if let Some(&src) = first.get(&ino_id) {
                if src != k {
                    let (from, from_name) = self.parent_named(&mut dirs, src)?;
                    let (to, name) = self.parent_named(&mut dirs, k)?;
                    target::hard_link(&from, from_name, &to, name)
                        .map_err(|e| self.fail(k, "cannot create hard link", e))?;
                }
            }
        }
        // 4. Ownership, modes and times; directories last and deepest first so that
        //    creating children does not disturb their times.
        for k in (0..self.plan.len()).filter(|&k| !is_dir(k)) {
            self.set_metadata(&mut dirs, k)?;
        }
        for k in (0..self.plan.len()).rev().filter(|&k| is_dir(k)) {
            self.set_metadata(&mut dirs, k)?;
        }
        Ok(())
    }

    /// Where plan item `k` goes.
    fn location(&self, k: usize) -> Location<'_> {
        let mut names = Vec::new();
        let mut at = k;
        let root = loop {
            match &self.plan[at].at {
                Place::Under(parent) => {
                    names.push(self.img.dentries[self.plan[at].d].name.as_str());
                    at = *parent;
                }
                Place::At(dest) => break dest,
            }
        };
        let mut full = root.clone();
        full.extend(names.iter().rev());
        match names.first() {
            Some(&name) => {
                full.pop();
                Location {
                    parent: full,
                    name: Some(name),
                }
            }
            None => Location {
                parent: full.parent().map(Path::to_path_buf).unwrap_or_default(),
                name: root.file_name().and_then(|n| n.to_str()),
            },
        }
    }

    /// The name of a plan item that is not the target itself.
    fn name<'l>(&self, k: usize, name: Option<&'l str>) -> Result<&'l str> {
        name.ok_or_else(|| {
            let path = printable(&self.img.path_of(self.plan[k].d)).into_owned();
            Error::invalid(
                self.target.display(Path::new("")),
                format!("\"{path}\" would be the target directory itself"),
            )
        })
    }

    /// A handle on directory plan item `k`: from the cache, else opened below the nearest
    /// cached ancestor one name at a time (never following a link).
    fn dir_handle<'t>(&'t self, dirs: &mut Dirs<'t>, k: usize) -> Result<Rc<Dir<'t>>> {
        let mut chain = Vec::new();
        let mut at = k;
        let mut have = loop {
            if let Some(d) = dirs.open.get(&at) {
                break Rc::clone(d);
            }
            match &self.plan[at].at {
                Place::Under(p) => {
                    chain.push(at);
                    at = *p;
                }
                Place::At(rel) => {
                    let d = Rc::new(self.target.dir(rel).map_err(|e| {
                        Error::io(self.target.display(rel), "cannot open directory", e)
                    })?);
                    dirs.open.put(at, Rc::clone(&d));
                    break d;
                }
            }
        };
        for &c in chain.iter().rev() {
            let name = &self.img.dentries[self.plan[c].d].name;
            let d = Rc::new(
                self.target
                    .child(&have, name)
                    .map_err(|e| self.fail(c, "cannot open directory", e))?,
            );
            dirs.open.put(c, Rc::clone(&d));
            have = d;
        }
        Ok(have)
    }

    /// The directory that plan item `k` goes in, and its name there (`None`: `k` is the
    /// target itself).
    fn parent<'t>(
        &'t self,
        dirs: &mut Dirs<'t>,
        k: usize,
    ) -> Result<(Rc<Dir<'t>>, Option<&'t str>)> {
        match &self.plan[k].at {
            Place::Under(p) => Ok((
                self.dir_handle(dirs, *p)?,
                Some(self.img.dentries[self.plan[k].d].name.as_str()),
            )),
            Place::At(rel) => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                let d = self.target.dir(parent).map_err(|e| {
                    Error::io(self.target.display(parent), "cannot open directory", e)
                })?;
                Ok((Rc::new(d), rel.file_name().and_then(|n| n.to_str())))
            }
        }
    }

    /// The parent of plan item `k` and its (required) name there.
    fn parent_named<'t>(&'t self, dirs: &mut Dirs<'t>, k: usize) -> Result<(Rc<Dir<'t>>, &'t str)> {
        let (dir, name) = self.parent(dirs, k)?;
        Ok((dir, self.name(k, name)?))
    }

    /// An error about plan item `k`, naming where it goes.
    fn fail(&self, k: usize, what: &str, e: std::io::Error) -> Error {
        let loc = self.location(k);
        let mut p = self.target.display(&loc.parent);
        p.extend(loc.name);
        Error::io(p, what.to_string(), e)
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

    fn write_file<'t>(
        &'t self,
        dirs: &mut Dirs<'t>,
        ino: InodeId,
        k: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let inode = &self.img.inodes[ino];
        let (dir, name) = self.parent_named(dirs, k)?;
        let mut f =
            target::create_file(&dir, name).map_err(|e| self.fail(k, "cannot create file", e))?;
        let Some(blob) = inode.data_stream().and_then(|s| s.blob) else {
            return Ok(());
        };
        let mut h = <sha1::Sha1 as sha1::Digest>::new();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
        self.wim.stream_blob(&blob, &mut |piece| {
            sha1::Digest::update(&mut h, piece);
            progress(piece.len() as u64);
            w.write_all(piece).map_err(|e| self.fail(k, "writing", e))
        })?;
        w.flush().map_err(|e| self.fail(k, "writing", e))?;
        let digest: [u8; 20] = sha1::Digest::finalize(h).into();
        if digest != blob.hash {
            return Err(Error::invalid(
                self.wim.path(),
                format!(
                    "data of \"{}\" is corrupt (SHA-1 mismatch)",
                    printable(&self.img.path_of(inode.dentries[0]))
                ),
            ));
        }
        Ok(())
    }

    fn make_symlink<'t>(&'t self, dirs: &mut Dirs<'t>, k: usize) -> Result<()> {
        let d = self.plan[k].d;
        let ino = self.img.inode_of(d);
        let data = match ino.reparse_stream().and_then(|s| s.blob) {
            Some(loc) => self.wim.read_blob(&loc, true)?,
            None => Vec::new(),
        };
        let link = LinkReparse::parse(ino.reparse_tag, &data).map_err(|e| {
            Error::invalid(
                self.wim.path(),
                format!("\"{}\": {e}", printable(&self.img.path_of(d))),
            )
        })?;
        let to = link.unix_target(ino.rp_flags, self.link_root.as_deref());
        let (dir, name) = self.parent_named(dirs, k)?;
        target::symlink(&to, &dir, name).map_err(|e| self.fail(k, "cannot create symlink", e))
    }

    fn set_metadata<'t>(&'t self, dirs: &mut Dirs<'t>, k: usize) -> Result<()> {
        let ino = self.img.inode_of(self.plan[k].d);
        let (dir, name) = self.parent(dirs, k)?;
        if self.unix_data {
            if let Some(u) = ino.unix {
                let kind = match () {
                    _ if ino.is_directory() => Kind::Directory,
                    _ if ino.is_symlink() => Kind::Symlink,
                    _ if self
                        .special(self.img.dentries[self.plan[k].d].inode)
                        .is_some() =>
                    {
                        Kind::Special
                    }
                    _ => Kind::File,
                };
                match target::set_owner_mode(&dir, name, kind, u.uid, u.gid, u.mode) {
                    Ok(None) => {}
                    Ok(Some(e)) => {
                        let p = self.fail(k, "cannot set owner", e);
                        tracing::warn!("{p}");
                    }
                    Err(e) => return Err(self.fail(k, "cannot set owner and mode", e)),
                }
            }
        }
        target::set_times(&dir, name, ino.last_access_time, ino.last_write_time)
            .map_err(|e| self.fail(k, "cannot set times", e))
    }
}
