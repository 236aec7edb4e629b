//! The control channel on Unix: a socket per mount.
//!
//! The socket lives in a directory only its owner can enter (mode 0700) and is itself 0600,
//! so file permissions are the authentication.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use wimfs::mount_proto::unix::{checked_runtime_dir, connect, euid, peer_uid, socket_path};

use super::{reply_to, ControlError, Mounted, Status};

/// The listening side, owned by the daemon.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
}

impl Control {
    /// Creates the socket for `mountpoint`, refusing if a live daemon already serves it.
    pub fn bind(mountpoint: &Path) -> Result<Control, ControlError> {
        let path = socket_path(mountpoint);
        let dir = path.parent().expect("socket path has a directory");
        checked_runtime_dir(true).map_err(|e| ControlError::Dir(dir.to_path_buf(), e))?;
        if path.exists() {
            if let Ok(s) = query_status(&path) {
                return Err(ControlError::AlreadyMounted(
                    mountpoint.to_path_buf(),
                    s.pid,
                ));
            }
            // A daemon that died without cleaning up left it behind.
            let _ = fs::remove_file(&path);
        }
        let listener =
            UnixListener::bind(&path).map_err(|e| ControlError::Bind(path.clone(), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| ControlError::Bind(path.clone(), e))?;
        Ok(Control { listener, path })
    }

    /// Path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests on a background thread until the process exits.
    pub fn serve(self, fs: Arc<dyn Mounted>, status: Status) -> Served {
        let served = Served {
            path: self.path.clone(),
            busy: Arc::new(Mutex::new(())),
            asked: Arc::new(AtomicBool::new(false)),
        };
        let busy = Arc::clone(&served.busy);
        let asked = Arc::clone(&served.asked);
        let listener = self.listener;
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(c) => {
                            let _busy = busy.lock();
                            if let Err(e) = handle(c, &*fs, &status, &asked) {
                                tracing::warn!("control request failed: {e}");
                            }
                        }
                        Err(e) => tracing::warn!("control socket: {e}"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the control thread: {e}");
        }
        served
    }
}

/// A running control thread.
pub struct Served {
    path: PathBuf,
    /// Held while a request is handled, so that the daemon does not exit between
    /// unmounting and sending the reply.
    busy: Arc<Mutex<()>>,
    /// Set once an unmount asked for over the channel (`wimfs unmount`) went through.
    asked: Arc<AtomicBool>,
}

impl Served {
    /// Waits for a request in progress, then removes the socket. Returns whether the mount
    /// ended because `wimfs unmount` asked for it (not `fusermount3 -u`, `umount`, a
    /// shutdown or a FUSE error).
    pub fn finish(self) -> bool {
        let _done = self.busy.lock();
        let _ = fs::remove_file(&self.path);
        self.asked.load(Ordering::SeqCst)
    }
}

fn handle(
    conn: UnixStream,
    fs: &dyn Mounted,
    status: &Status,
    asked: &AtomicBool,
) -> std::io::Result<()> {
    // The directory is the user's alone, but the check is made where it counts: a
    // connection from anyone but the user (or root) gets no answer.
    let peer = peer_uid(&conn)?;
    if peer != euid() && peer != 0 {
        tracing::warn!("control: refused a connection from uid {peer}");
        return Ok(());
    }
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let reply = reply_to(&line, fs, status, &|lazy| {
        let r = unmount(Path::new(&status.dir), lazy);
        if r == "ok" {
            asked.store(true, Ordering::SeqCst);
        }
        r
    });
    (&conn).write_all(format!("{reply}\n").as_bytes())
}

/// Unmounts `dir`; the FUSE session then ends and the daemon exits.
fn unmount(dir: &Path, lazy: bool) -> String {
    use rustix::mount::{unmount, UnmountFlags};
    let flags = match lazy {
        true => UnmountFlags::DETACH,
        false => UnmountFlags::empty(),
    };
    let err = match unmount(dir, flags) {
        Ok(()) => return "ok".into(),
        Err(e) => std::io::Error::from(e),
    };
    match err.raw_os_error() {
        Some(libc::EBUSY) => "error EBUSY: the mount is busy (files are open or a process \
                              has its working directory inside); use --lazy to detach it anyway"
            .into(),
        // Not root: the setuid helper may unmount what this user mounted.
        Some(libc::EPERM) => {
            let mut cmd = std::process::Command::new("fusermount3");
            cmd.arg("-u");
            if lazy {
                cmd.arg("-z");
            }
            match cmd.arg(dir).output() {
                Ok(o) if o.status.success() => "ok".into(),
                Ok(o) => {
                    let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    if msg.contains("busy") {
                        format!("error EBUSY: {msg}")
                    } else {
                        format!("error EPERM: {msg}")
                    }
                }
                Err(e) => format!("error EPERM: cannot run fusermount3: {e}"),
            }
        }
        _ => format!("error EIO: {err}"),
    }
}

/// Sends one request to a daemon and returns its reply line.
pub fn request(socket: &Path, what: &str) -> std::io::Result<String> {
    let conn = connect(socket)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    (&conn).write_all(format!("{what}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

fn query_status(socket: &Path) -> std::io::Result<Status> {
    Status::parse(&request(socket, "status")?)
}
