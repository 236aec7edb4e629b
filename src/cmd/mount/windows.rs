//! The Windows side of the mount verbs: control pipes and detached daemons.

use std::io::{BufRead, BufReader, Write};
use std::os::windows::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

/// Where named pipes live; daemons name theirs `wimfs-mnt-<hash>`.
const PIPES: &str = r"\\.\pipe\";

/// The control pipes that may have a daemon behind them.
pub(super) fn endpoints() -> anyhow::Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(PIPES) else {
        return Ok(Vec::new());
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wimfs-mnt-"))
        .map(|e| Path::new(PIPES).join(e.file_name()))
        .collect())
}

/// Sends one request line and returns the reply line. The daemon serves one client at a
/// time; a busy pipe is retried until `timeout`.
pub(super) fn request(pipe: &Path, what: &str, timeout: Duration) -> std::io::Result<String> {
    const ERROR_PIPE_BUSY: i32 = 231;
    let start = std::time::Instant::now();
    let conn = loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pipe)
        {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    };
    (&conn).write_all(format!("{what}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// Starts the daemon without a console and outside this console's Ctrl+C group, so that it
/// outlives the terminal `wimfs mount` ran in.
pub(super) fn detach(cmd: &mut Command) {
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
}

/// Whether the daemon has exited: its control pipe is gone with it.
pub(super) fn is_gone(_pid: u32, pipe: &Path) -> bool {
    !endpoints().unwrap_or_default().iter().any(|p| p == pipe)
}

/// The mountpoint as the daemon records it: `M:` for a drive letter (any case, trailing
/// backslash or not), else the absolute path.
pub(super) fn mountpoint_key(dir: &Path) -> Result<PathBuf> {
    let s = dir.to_string_lossy();
    let b = s.as_bytes();
    if b.len() >= 2
        && b[1] == b':'
        && b[0].is_ascii_alphabetic()
        && matches!(&s[2..], "" | "\\" | "/")
    {
        return Ok(PathBuf::from(format!(
            "{}:",
            b[0].to_ascii_uppercase() as char
        )));
    }
    std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))
}
