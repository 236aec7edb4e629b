//! Control sockets on Unix. The directory holding them is the user's alone (owned by the
//! user, mode 0700, not a symlink) or wimfs refuses to use it; each socket is 0600; and both
//! ends check who is on the other side (SO_PEERCRED), so another local user can neither
//! reach a daemon nor pose as one.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The effective user id.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Where control sockets, daemon logs and the staging registry live: /run/wimfs for root,
/// else $XDG_RUNTIME_DIR/wimfs, else /tmp/wimfs-$UID. Use [`checked_runtime_dir`] before
/// trusting anything in it.
pub fn runtime_dir() -> PathBuf {
    let uid = euid();
    if uid == 0 {
        return PathBuf::from("/run/wimfs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("wimfs"),
        _ => PathBuf::from(format!("/tmp/wimfs-{uid}")),
    }
}

/// Checks that `dir` is a directory (not a link to one) owned by the user and closed to
/// everyone else; with `create`, makes it (mode 0700) first if it is missing.
pub fn check_private_dir(dir: &Path, create: bool) -> io::Result<()> {
    if create {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A missing parent ($XDG_RUNTIME_DIR itself is made by the login manager).
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            Err(e) => return Err(e),
        }
    }
    let m = fs::symlink_metadata(dir)?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: {why}; wimfs keeps its control sockets only in a directory that is its \
                 user's alone (remove it, or set XDG_RUNTIME_DIR)",
                dir.display()
            ),
        ))
    };
    if !m.file_type().is_dir() {
        return refuse("not a directory".into());
    }
    if m.uid() != euid() {
        return refuse(format!("owned by uid {}, not {}", m.uid(), euid()));
    }
    if m.mode() & 0o077 != 0 {
        return refuse(format!("mode {:04o} lets others in", m.mode() & 0o7777));
    }
    Ok(())
}

/// The runtime directory after [`check_private_dir`].
pub fn checked_runtime_dir(create: bool) -> io::Result<PathBuf> {
    let dir = runtime_dir();
    check_private_dir(&dir, create)?;
    Ok(dir)
}

/// The socket path for a mountpoint: a hash of its absolute path keeps the name short
/// (socket paths are limited to ~108 bytes) and unique per mountpoint.
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    let h = super::mount_hash(mountpoint.as_os_str().as_bytes());
    runtime_dir().join(format!("mnt-{h:016x}.sock"))
}

/// The user id of the process at the other end of `conn`.
pub fn peer_uid(conn: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(conn)?.uid.as_raw())
}

/// Connects to a daemon's socket, refusing a socket that is not the user's own or is served
/// by another user.
pub fn connect(socket: &Path) -> io::Result<UnixStream> {
    let m = fs::symlink_metadata(socket)?;
    if m.uid() != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: owned by uid {}, not {}: not talking to it",
                socket.display(),
                m.uid(),
                euid()
            ),
        ));
    }
    let conn = UnixStream::connect(socket)?;
    let peer = peer_uid(&conn)?;
    if peer != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: served by uid {peer}, not {}: not talking to it",
                socket.display(),
                euid()
            ),
        ));
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_dirs_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ctl");
        check_private_dir(&d, true).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o770)).unwrap();
        let e = check_private_dir(&d, true).unwrap_err();
        assert!(e.to_string().contains("lets others in"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = check_private_dir(&link, false).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn socket_names_are_stable_and_distinct() {
        let a = socket_path(Path::new("/mnt/a"));
        assert_eq!(a, socket_path(Path::new("/mnt/a")));
        assert_ne!(a, socket_path(Path::new("/mnt/b")));
        assert!(a.as_os_str().len() < 100);
        assert!(a.starts_with(runtime_dir()));
    }
}
