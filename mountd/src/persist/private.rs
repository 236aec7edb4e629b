//! Files only their owner may read, and the few file calls where Unix and Windows differ:
//! everything the staging directory, the journal and the staging registry need of the
//! platform, so that the rest of `persist` is written once.
//!
//! Privacy: on Unix a private directory is mode 0700 and its files 0600, whatever the umask.
//! On Windows a private directory gets a protected DACL granting its owner alone full
//! access, inherited by everything made in it (the same rule as the control pipe's ACL).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates directory `dir` (not its parents), closed to everyone but its owner.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    sys::create_dir(dir)
}

/// Opens `path` with `opts`; a file it creates is the owner's alone.
pub fn open(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    sys::private_mode(opts);
    opts.open(path)
}

/// Reads at `offset` without moving any shared position; 0 at the end of the file.
pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    sys::read_at(f, buf, offset)
}

/// Fills `buf` from `offset`; an early end of file is an error.
pub fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(f, &mut buf[done..], offset + done as u64)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Writes all of `data` at `offset`.
pub fn write_all_at(f: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match sys::write_at(f, &data[done..], offset + done as u64)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Makes the entries of directory `dir` (a file renamed or created in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    sys::sync_dir(dir)
}

/// Takes a lock on `f` without waiting (exclusive, or shared with other shared holders):
/// `Ok(false)` if another open file holds a conflicting one. Released when `f` is closed.
pub fn try_lock(f: &File, exclusive: bool) -> io::Result<bool> {
    let r = match exclusive {
        true => f.try_lock(),
        false => f.try_lock_shared(),
    };
    match r {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Whether `path` is a directory (`dir`) or regular file, not a link, that belongs to this
/// user: what may be adopted from a staging directory. On Windows, where the user's own
/// directories are closed to others by their ACLs, a reparse point is all there is to refuse.
pub fn is_own(path: &Path, dir: bool) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        let kind = if dir { m.is_dir() } else { m.is_file() };
        kind && sys::owned_by_me(&m)
    })
}

/// Who owns what this process makes, as `recover`'s refusals name them.
pub fn me() -> String {
    sys::me()
}

#[cfg(unix)]
mod sys {
    use std::fs::{File, Metadata, OpenOptions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    pub fn create_dir(dir: &Path) -> io::Result<()> {
        std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        // The umask may have taken bits away but never adds any; set exactly 0700.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }

    pub fn private_mode(opts: &mut OpenOptions) {
        opts.mode(0o600);
    }

    pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        f.read_at(buf, offset)
    }

    pub fn write_at(f: &File, data: &[u8], offset: u64) -> io::Result<usize> {
        f.write_at(data, offset)
    }

    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    pub fn owned_by_me(m: &Metadata) -> bool {
        m.uid() == wimfs::mount_proto::unix::euid()
    }

    pub fn me() -> String {
        format!("uid {}", wimfs::mount_proto::unix::euid())
    }
}

#[cfg(windows)]
mod sys {
    use std::fs::{File, Metadata, OpenOptions};
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::FileExt;
    use std::path::Path;

    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
    use windows_sys::Win32::Storage::FileSystem::CreateDirectoryW;

    use crate::control::{user_sid, Descriptor};

    pub fn create_dir(dir: &Path) -> io::Result<()> {
        let sid = user_sid()?;
        // Protected (P): nothing inherited from the parent; OICI: files and directories
        // made inside get the same single entry.
        let sd = Descriptor::from_sddl(&format!("O:{sid}D:P(A;OICI;FA;;;{sid})"))?;
        let sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd.as_ptr(),
            bInheritHandle: 0,
        };
        let wide: Vec<u16> = dir.as_os_str().encode_wide().chain(Some(0)).collect();
        // SAFETY: `wide` is NUL-terminated; `sa` and the descriptor it points to outlive
        // the call.
        if unsafe { CreateDirectoryW(wide.as_ptr(), &sa) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn private_mode(_opts: &mut OpenOptions) {
        // Files inherit the directory's owner-only ACL.
    }

    pub fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        f.seek_read(buf, offset)
    }

    pub fn write_at(f: &File, data: &[u8], offset: u64) -> io::Result<usize> {
        f.seek_write(data, offset)
    }

    pub fn sync_dir(_dir: &Path) -> io::Result<()> {
        // NTFS journals its metadata: a rename or a creation is in the log before the call
        // returns, and Windows offers no flush of a directory's entries by themselves.
        Ok(())
    }

    pub fn owned_by_me(m: &Metadata) -> bool {
        !m.file_type().is_symlink()
    }

    pub fn me() -> String {
        user_sid().unwrap_or_else(|_| "this user".into())
    }
}
