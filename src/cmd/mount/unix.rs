//! The Unix side of the mount verbs: control sockets and processes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// The control sockets that may have a daemon behind them (none if the control directory
/// does not exist yet; an error if it is not the user's alone).
pub(super) fn endpoints() -> Result<Vec<PathBuf>> {
    let dir = wimfs::mount_proto::unix::runtime_dir();
    if !dir.exists() {
        return Ok(Vec::new());
    }
    wimfs::mount_proto::unix::check_private_dir(&dir, false)?;
    let entries = std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))?;
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect())
}

/// Sends one request line and returns the reply line.
pub(super) fn request(socket: &Path, what: &str, timeout: Duration) -> std::io::Result<String> {
    let conn = wimfs::mount_proto::unix::connect(socket)?;
    conn.set_read_timeout(Some(timeout))?;
    (&conn).write_all(format!("{what}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// Nothing to do: the daemon detaches itself (setsid).
pub(super) fn detach(_cmd: &mut Command) {}

/// Whether the daemon has exited.
pub(super) fn is_gone(pid: u32, _socket: &Path) -> bool {
    // A zombie (state Z) has exited; only its parent's wait is missing. But its main
    // thread turns zombie while other threads may still be running, holding its files
    // (and the WIM's lock): gone means a zombie with no thread left but that one.
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => {
            let field = |name: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_string()
            };
            field("State:").starts_with('Z') && field("Threads:") == "1"
        }
        Err(_) => true,
    }
}

/// The mountpoint as the daemon recorded it: canonical parent + final name, so that the
/// (possibly unresponsive) mounted directory itself is never resolved.
pub(super) fn mountpoint_key(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a mountpoint", dir.display()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent)
        .with_context(|| format!("{}: cannot resolve", parent.display()))?;
    Ok(parent.join(name))
}
