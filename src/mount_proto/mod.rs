//! The control protocol between `wimfs` and its mount daemons, defined once for both: where
//! control endpoints live, how they are named, and who may talk to them.
//!
//! One request line per connection, one reply line: `status` → a JSON object; `unmount` /
//! `unmount lazy` / `commit [check] [new-image] [rebuild]` → `ok` or `error <ERRNO>: text`.

#[cfg(unix)]
pub mod unix;
#[cfg(windows)]
pub mod windows;

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

/// A user's control pipe names (Windows) start with this: `wimfs-mnt-` and a tag derived
/// from the user's key, so that `wimfs mounts` finds its own daemons' pipes.
pub fn pipe_prefix_for(key: &[u8; 16]) -> String {
    format!("wimfs-mnt-{}-", &keyed_hex(key, b"prefix")[..12])
}

/// The control pipe name (within `\\.\pipe\`) of a user's mount of `mountpoint`: SHA-1
/// over the user's secret key and the mountpoint, so that nobody without the key can work
/// it out, even from other names of the same user.
pub fn pipe_name_for(key: &[u8; 16], mountpoint: &str) -> String {
    let mut what = b"mount:".to_vec();
    what.extend_from_slice(mountpoint.as_bytes());
    format!("{}{}", pipe_prefix_for(key), &keyed_hex(key, &what)[..32])
}

fn keyed_hex(key: &[u8; 16], what: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(key);
    h.update(what);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pipe_names_need_the_key() {
        let (k1, k2) = ([1u8; 16], [2u8; 16]);
        let a = super::pipe_name_for(&k1, "M:");
        assert_eq!(a, super::pipe_name_for(&k1, "M:"));
        assert!(a.starts_with(&super::pipe_prefix_for(&k1)));
        assert_ne!(a, super::pipe_name_for(&k1, "N:"));
        // Another user's key gives other names and another prefix.
        assert_ne!(a, super::pipe_name_for(&k2, "M:"));
        assert!(!a.starts_with(&super::pipe_prefix_for(&k2)));
        assert_eq!(a.len(), "wimfs-mnt-".len() + 12 + 1 + 32);
    }

    #[test]
    fn mount_hash_is_fnv1a() {
        assert_eq!(super::mount_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::mount_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
