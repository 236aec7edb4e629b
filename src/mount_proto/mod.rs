//! The control protocol between `wimfs` and its mount daemons, defined once for both: where
//! control endpoints live, how they are named, and who may talk to them.
//!
//! One request line per connection, one reply line: `status` → a JSON object; `unmount` /
//! `unmount lazy` / `commit [check] [new-image] [rebuild]` → `ok` or `error <ERRNO>: text`.

#[cfg(unix)]
pub mod unix;

use serde::{Deserialize, Serialize};

/// Where daemon logs and the staging registry live on Windows: the user's local application
/// data (closed to other users by the profile's ACL), else the temporary directory.
#[cfg(windows)]
pub fn runtime_dir() -> std::path::PathBuf {
    std::env::var_os("LOCALAPPDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("wimfs")
}

/// What a daemon's `status` reply says about its mount. Fields a reply lacks (an older
/// daemon's) read as empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub wim: String,
    pub image: u32,
    pub image_name: Option<String>,
    pub dir: String,
    /// `ro` or `rw`.
    pub mode: String,
    pub pid: u32,
    pub log: Option<String>,
    pub open_files: usize,
    pub cache_bytes: usize,
    pub cache_capacity: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl Status {
    /// Reads a `status` reply.
    pub fn parse(line: &str) -> std::io::Result<Status> {
        serde_json::from_str(line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// What a dead read-write daemon left, as `wimfs-mountd orphans` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Orphan {
    /// The staging directory.
    pub staging: String,
    pub wim: String,
    pub image: u32,
    /// Journal lines after the base.
    pub changes: usize,
    /// `recoverable`; `committed` (the WIM already holds the changes: only cleanup is
    /// left); or `stale` (the WIM changed since: the changes no longer apply).
    pub state: String,
}

/// FNV-1a of a mountpoint's name: short, stable names for sockets and pipes.
pub fn mount_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_hash_is_fnv1a() {
        assert_eq!(super::mount_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::mount_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
