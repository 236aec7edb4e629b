//! Apply's target on Windows: by path below the target directory. Names were checked against
//! Windows' rules (no `\`, `:`, drive prefixes, reserved device names), so a path built from
//! them stays below the target; files are created new (never opened through an existing
//! entry) and times are set on links, not on what they point to.

use super::Kind;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The directory being applied to.
pub struct Target {
    path: PathBuf,
}

/// A directory below (or at) the target, as its path.
pub struct Dir<'t>(PathBuf, std::marker::PhantomData<&'t ()>);

impl Target {
    pub fn open(path: &Path) -> io::Result<Target> {
        if !fs::metadata(path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Target {
            path: path.to_path_buf(),
        })
    }

    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    pub fn dir(&self, rel: &Path) -> io::Result<Dir<'_>> {
        Ok(Dir(self.path.join(rel), std::marker::PhantomData))
    }

    pub fn child(&self, parent: &Dir, name: &str) -> io::Result<Dir<'_>> {
        Ok(Dir(parent.0.join(name), std::marker::PhantomData))
    }
}

fn at(dir: &Dir, name: Option<&str>) -> PathBuf {
    match name {
        Some(n) => dir.0.join(n),
        None => dir.0.clone(),
    }
}

pub fn mkdir(dir: &Dir, name: &str) -> io::Result<()> {
    let p = at(dir, Some(name));
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )),
        Err(_) => fs::create_dir(&p),
    }
}

pub fn remove_existing(dir: &Dir, name: &str) -> io::Result<()> {
    let p = at(dir, Some(name));
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => fs::remove_file(&p),
        Err(_) => Ok(()),
    }
}

pub fn create_file(dir: &Dir, name: &str) -> io::Result<File> {
    remove_existing(dir, name)?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(at(dir, Some(name)))
}

pub fn hard_link(src_dir: &Dir, src_name: &str, dir: &Dir, name: &str) -> io::Result<()> {
    remove_existing(dir, name)?;
    fs::hard_link(at(src_dir, Some(src_name)), at(dir, Some(name)))
}

pub fn symlink(target: &str, dir: &Dir, name: &str) -> io::Result<()> {
    remove_existing(dir, name)?;
    std::os::windows::fs::symlink_file(target, at(dir, Some(name)))
}

pub fn mknod(dir: &Dir, name: &str, _mode: u32, _rdev: u32) -> io::Result<()> {
    tracing::warn!(
        "{}: special files cannot be created on Windows",
        at(dir, Some(name)).display()
    );
    Ok(())
}

/// UNIX owners and modes have no meaning on Windows: nothing to do.
pub fn set_owner_mode(
    _dir: &Dir,
    _name: Option<&str>,
    _kind: Kind,
    _uid: u32,
    _gid: u32,
    _mode: u32,
) -> io::Result<Option<io::Error>> {
    Ok(None)
}

pub fn set_times(dir: &Dir, name: Option<&str>, atime: u64, mtime: u64) -> io::Result<()> {
    let ft = |t| filetime::FileTime::from_system_time(crate::time::filetime_to_system(t));
    filetime::set_symlink_file_times(at(dir, name), ft(atime), ft(mtime))
}
