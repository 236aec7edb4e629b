//! The Windows side of the mount verbs: control pipes and detached daemons.

use std::os::windows::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

pub(super) use wimfs::mount_proto::windows::request;

/// The control pipes of this user's daemons.
pub(super) fn endpoints() -> anyhow::Result<Vec<PathBuf>> {
    wimfs::mount_proto::windows::endpoints().context("listing this user's control pipes")
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
