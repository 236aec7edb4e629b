//! Apply's target on Unix, reached only through a handle on the target directory.
//!
//! Every entry is created and changed relative to a handle on its parent directory, and every
//! parent is opened from the target's handle with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` (or, on kernels without it, one `O_NOFOLLOW` component at a time).
//! No call follows a symlink below the target: if someone who can write into the target swaps
//! a directory wimfs made for a link between two steps, the next step fails instead of
//! writing, changing modes or owners somewhere else.

use super::Kind;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;

/// The directory being applied to.
pub struct Target {
    root: OwnedFd,
    path: PathBuf,
}

/// A directory below (or at) the target, as a handle.
pub enum Dir<'t> {
    Root(BorrowedFd<'t>),
    Below(OwnedFd),
}

impl AsFd for Dir<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Below(fd) => fd.as_fd(),
        }
    }
}

impl Target {
    /// Opens `path`, which must be a directory (a link to one is followed: the user named it).
    pub fn open(path: &Path) -> io::Result<Target> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rfs::open(path, flags, Mode::empty())?;
        Ok(Target {
            root,
            path: path.to_path_buf(),
        })
    }

    /// `rel` (relative to the target) as a path to show in messages.
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// The directory `rel`, relative to the target, reached without following a symlink and
    /// without leaving the target.
    pub fn dir(&self, rel: &Path) -> io::Result<Dir<'_>> {
        if rel.as_os_str().is_empty() {
            return Ok(Dir::Root(self.root.as_fd()));
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rfs::openat2(&self.root, rel, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Dir::Below(fd)),
            // Kernels before 5.6, or a seccomp filter that refuses the call.
            Err(Errno::NOSYS | Errno::PERM) => self.walk(rel),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory `name` in `parent`, not following a link.
    pub fn child(&self, parent: &Dir, name: &str) -> io::Result<Dir<'_>> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(Dir::Below(rfs::openat(parent, name, flags, Mode::empty())?))
    }

    /// `dir` without openat2: one component at a time, none of them a link.
    fn walk(&self, rel: &Path) -> io::Result<Dir<'_>> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut at: Option<OwnedFd> = None;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a plain relative path",
                ));
            };
            let next = match &at {
                Some(fd) => rfs::openat(fd, name, flags, Mode::empty())?,
                None => rfs::openat(&self.root, name, flags, Mode::empty())?,
            };
            at = Some(next);
        }
        Ok(at.map_or(Dir::Root(self.root.as_fd()), Dir::Below))
    }
}

/// Makes directory `name` in `dir`; one that is already there is kept.
pub fn mkdir(dir: &Dir, name: &str) -> io::Result<()> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o777)) {
        Err(Errno::EXIST) => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            )),
            Err(e) => Err(e.into()),
        },
        r => r.map_err(Into::into),
    }
}

/// Removes a non-directory `name` from `dir` if there is one (apply replaces files).
pub fn remove_existing(dir: &Dir, name: &str) -> io::Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Err(
            io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
        ),
        Ok(_) => match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Err(Errno::NOENT) => Ok(()),
            r => r.map_err(Into::into),
        },
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the new regular file `name` in `dir` for writing.
pub fn create_file(dir: &Dir, name: &str) -> io::Result<File> {
    remove_existing(dir, name)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::from_raw_mode(0o666))?;
    Ok(File::from(fd))
}

/// Makes `name` in `dir` a hard link to `src_name` in `src_dir` (never through a link).
pub fn hard_link(src_dir: &Dir, src_name: &str, dir: &Dir, name: &str) -> io::Result<()> {
    remove_existing(dir, name)?;
    rfs::linkat(src_dir, src_name, dir, name, AtFlags::empty())?;
    Ok(())
}

/// Makes `name` in `dir` a symlink to `target`.
pub fn symlink(target: &str, dir: &Dir, name: &str) -> io::Result<()> {
    remove_existing(dir, name)?;
    rfs::symlinkat(target, dir, name)?;
    Ok(())
}

/// Makes `name` in `dir` a device, FIFO or socket node.
pub fn mknod(dir: &Dir, name: &str, mode: u32, rdev: u32) -> io::Result<()> {
    remove_existing(dir, name)?;
    let (kind, perm) = (FileType::from_raw_mode(mode), Mode::from_raw_mode(mode));
    rfs::mknodat(dir, name, kind, perm, rdev.into())?;
    Ok(())
}

/// Sets the owner and (except for a symlink) the permission bits of `name` in `dir` (of
/// `dir` itself for `None`). The owner is set first, since a change of owner clears set-id
/// bits. The entry is pinned by an `O_PATH` handle and checked to be the kind expected, so a
/// swapped-in link is refused, not followed. A failure to set the owner (not root) is
/// returned as `Ok(Some(error))` for the caller to warn about.
pub fn set_owner_mode(
    dir: &Dir,
    name: Option<&str>,
    kind: Kind,
    uid: u32,
    gid: u32,
    mode: u32,
) -> io::Result<Option<io::Error>> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let name = match name {
        None => {
            let owner = rfs::chownat(dir, "", uid, gid, AtFlags::EMPTY_PATH).err();
            chmod_pinned(dir.as_fd(), mode)?;
            return Ok(owner.map(Into::into));
        }
        Some(n) => n,
    };
    if kind == Kind::Symlink {
        let owner = rfs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).err();
        return Ok(owner.map(Into::into));
    }
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::empty())?;
    let found = FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode);
    let expected = match found {
        FileType::Directory => Kind::Directory,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Special,
    };
    if expected != kind {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("changed under apply: expected a {kind:?}, found a {found:?}"),
        ));
    }
    let owner = rfs::chownat(&fd, "", uid, gid, AtFlags::EMPTY_PATH).err();
    chmod_pinned(fd.as_fd(), mode)?;
    Ok(owner.map(Into::into))
}

/// chmod of the file a (possibly `O_PATH`) handle pins: through its /proc/self/fd entry,
/// which names that file itself and is not followed any further.
fn chmod_pinned(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode & 0o7777);
    match rfs::fchmod(fd, mode) {
        // O_PATH handles cannot be changed directly.
        Err(Errno::BADF) => {}
        r => return r.map_err(Into::into),
    }
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    rfs::chmodat(rfs::CWD, proc.as_str(), mode, AtFlags::empty())?;
    Ok(())
}

/// Sets the access and write times (100 ns units since 1601) of `name` in `dir` (of `dir`
/// itself for `None`), not following a link.
pub fn set_times(dir: &Dir, name: Option<&str>, atime: u64, mtime: u64) -> io::Result<()> {
    let times = Timestamps {
        last_access: timespec(atime),
        last_modification: timespec(mtime),
    };
    match name {
        None => rfs::futimens(dir, &times)?,
        Some(n) => rfs::utimensat(dir, n, &times, AtFlags::SYMLINK_NOFOLLOW)?,
    }
    Ok(())
}

fn timespec(filetime: u64) -> Timespec {
    let (secs, nanos) = crate::time::filetime_to_unix(filetime);
    Timespec {
        tv_sec: secs,
        tv_nsec: nanos.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory swapped for a symlink to somewhere outside between two steps of an apply
    /// is never written through: reaching it fails and the outside stays untouched.
    #[test]
    fn a_swapped_in_link_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (target, outside) = (t.path().join("target"), t.path().join("outside"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let tg = Target::open(&target).unwrap();
        mkdir(&tg.dir(Path::new("")).unwrap(), "a").unwrap();
        // Someone swaps target/a for a link to the outside.
        std::fs::remove_dir(target.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();
        assert!(tg.dir(Path::new("a")).is_err());
        assert!(tg.walk(Path::new("a")).is_err());
        mkdir(&tg.dir(Path::new("")).unwrap(), "b").unwrap();
        mkdir(&tg.walk(Path::new("b")).unwrap(), "c").unwrap();
        assert!(target.join("b/c").is_dir());
        // Steps that name the link itself act on the link, not on what it points to.
        let root = tg.dir(Path::new("")).unwrap();
        assert!(set_owner_mode(&root, Some("a"), Kind::Directory, 0, 0, 0o777).is_err());
        // 2000-01-01 00:00:00 UTC.
        const Y2K: u64 = 125_911_584_000_000_000;
        set_times(&root, Some("a"), Y2K, Y2K).unwrap();
        assert_ne!(
            std::fs::metadata(&outside).unwrap().modified().unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800)
        );
        assert_eq!(
            std::fs::symlink_metadata(target.join("a"))
                .unwrap()
                .modified()
                .unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800)
        );
        // A file in place of a directory is refused, not replaced.
        std::fs::write(target.join("f"), b"x").unwrap();
        assert!(mkdir(&root, "f").is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A link to a file is replaced, not written through.
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), target.join("g")).unwrap();
        use std::io::Write;
        create_file(&root, "g").unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(target.join("g")).unwrap(), b"new");
    }

    #[test]
    fn mode_and_owner_follow_no_link() {
        let t = tempfile::tempdir().unwrap();
        let tg = Target::open(t.path()).unwrap();
        let root = tg.dir(Path::new("")).unwrap();
        create_file(&root, "f").unwrap();
        std::fs::write(t.path().join("victim"), b"").unwrap();
        symlink("victim", &root, "l").unwrap();
        let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
        let (uid, gid) = (uid.as_raw(), gid.as_raw());
        set_owner_mode(&root, Some("f"), Kind::File, uid, gid, 0o4640).unwrap();
        set_owner_mode(&root, Some("l"), Kind::Symlink, uid, gid, 0o777).unwrap();
        // A file where a directory was planned is refused.
        assert!(set_owner_mode(&root, Some("f"), Kind::Directory, uid, gid, 0o755).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::symlink_metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("f"), 0o4640);
        assert_ne!(mode("victim"), 0o777);
    }
}
