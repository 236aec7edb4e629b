//! The control channel through which `wimfs unmount` and `wimfs mounts` reach the daemon: a
//! Unix socket per mount on Unix, a named pipe per mount on Windows.
//!
//! Only the mount's owner can reach it: the socket through file permissions, the pipe through
//! an ACL naming nothing but the owner's SID. One request line per connection, one reply line:
//! `status` → a JSON object; `unmount` / `unmount lazy` / `commit [check] [new-image] [rebuild]` →
//! `ok` or `error <ERRNO>: text`.

use std::path::PathBuf;
use std::sync::Arc;

use wimfs::Wim;

use crate::core::Fs;

#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
pub use unix::{request, Control, Served};
#[cfg(windows)]
pub use wimfs::mount_proto::runtime_dir;
#[cfg(unix)]
pub use wimfs::mount_proto::unix::{runtime_dir, socket_path};
#[cfg(windows)]
pub(crate) use windows::Descriptor;
#[cfg(windows)]
pub use windows::{pipe_name, request, user_sid, Control, Served};

pub use wimfs::mount_proto::Status;

/// Errors setting up the control channel.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}: cannot create the control directory: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("{0} is already mounted by wimfs (pid {1})")]
    AlreadyMounted(PathBuf, u32),
    #[error("{0}: cannot create the control socket: {1}")]
    Bind(PathBuf, std::io::Error),
}

pub use wimfs::mount_proto::mount_hash;

/// What the control channel needs of a mounted filesystem.
pub trait Mounted: Send + Sync {
    /// The WIM being served (for cache statistics).
    fn wim(&self) -> &Arc<Wim>;
    /// Number of open file handles.
    fn open_files(&self) -> usize;
    /// Writes the mount's changes into the WIM; `Err` says why that failed.
    fn commit(&self, how: crate::commit::CommitOptions) -> Result<(), String> {
        let _ = how;
        Err("the mount is read-only: there is nothing to commit".into())
    }
}

impl Mounted for Fs {
    fn wim(&self) -> &Arc<Wim> {
        Fs::wim(self)
    }

    fn open_files(&self) -> usize {
        self.open_handles()
    }
}

/// Answers one request line; `unmount(lazy)` performs the unmount and returns the reply.
pub(crate) fn reply_to(
    line: &str,
    fs: &dyn Mounted,
    status: &Status,
    unmount: &dyn Fn(bool) -> String,
) -> String {
    let reply = match line.trim() {
        "status" => {
            let stats = fs.wim().cache().stats();
            let s = Status {
                open_files: fs.open_files(),
                cache_bytes: stats.bytes,
                cache_hits: stats.hits,
                cache_misses: stats.misses,
                ..status.clone()
            };
            serde_json::to_string(&s).unwrap_or_else(|e| format!("error EIO: {e}"))
        }
        l if l == "commit" || l.starts_with("commit ") => {
            let mut how = crate::commit::CommitOptions::default();
            for word in l.split_whitespace().skip(1) {
                match word {
                    "check" => how.check = true,
                    "new-image" => how.new_image = true,
                    "rebuild" => how.rebuild = true,
                    _ => return format!("error EINVAL: unknown commit option {word:?}"),
                }
            }
            match fs.commit(how) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error EIO: {}", e.replace('\n', " ")),
            }
        }
        "unmount" => unmount(false),
        "unmount lazy" => unmount(true),
        other => format!("error EINVAL: unknown request {other:?}"),
    };
    tracing::debug!("control: {} -> {reply}", line.trim());
    reply
}

/// Whether an unmount may go ahead where the platform cannot tell busy from idle itself
/// (WinFsp unmounts under open handles): refused while files are open, unless `lazy`.
pub fn unmount_refusal(open_files: usize, lazy: bool) -> Option<String> {
    (open_files > 0 && !lazy).then(|| {
        format!(
            "error EBUSY: the mount is busy ({open_files} open file{}); use --lazy to \
             unmount it anyway",
            if open_files == 1 { "" } else { "s" }
        )
    })
}

/// The security descriptor (SDDL) of a control pipe: a protected DACL that grants the one
/// user `sid` full access and nobody else anything, owned by that user.
pub fn pipe_sddl(sid: &str) -> String {
    format!("O:{sid}D:P(A;;GA;;;{sid})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_distinct() {
        assert_eq!(mount_hash(b"/mnt/a"), mount_hash(b"/mnt/a"));
        assert_ne!(mount_hash(b"/mnt/a"), mount_hash(b"/mnt/b"));
        assert_eq!(mount_hash(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn busy_and_pipe_acl() {
        assert_eq!(unmount_refusal(0, false), None);
        assert_eq!(unmount_refusal(2, true), None);
        assert!(unmount_refusal(1, false)
            .unwrap()
            .starts_with("error EBUSY: "));
        assert_eq!(
            pipe_sddl("S-1-5-21-1-2-3-1001"),
            "O:S-1-5-21-1-2-3-1001D:P(A;;GA;;;S-1-5-21-1-2-3-1001)"
        );
        let s = Status::parse(r#"{"wim":"a.wim","image":2,"dir":"M:","pid":7}"#).unwrap();
        assert_eq!(
            (s.wim.as_str(), s.image, s.dir.as_str(), s.pid),
            ("a.wim", 2, "M:", 7)
        );
    }
}
