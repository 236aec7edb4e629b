//! The block cache on disk: fetched blocks of remote objects kept across runs, mounts and
//! reboots, bounded in size, safe to share between processes and to lose at any time.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::Piece;

/// Where fetched blocks are kept across runs and mounts, and how many bytes at most.
static DISK_CACHE: OnceLock<(PathBuf, u64)> = OnceLock::new();

/// Keeps fetched blocks of remote images in `dir` (at most `limit` bytes, least recently
/// used evicted), for every remote image this process opens after the call. The directory
/// may be shared by several processes and mounts, and lost at any time. Returns `false` if
/// a cache was set already.
pub fn set_disk_cache(dir: PathBuf, limit: u64) -> bool {
    DISK_CACHE.set((dir, limit)).is_ok()
}

/// The block cache set for this process, if any.
pub fn disk_cache() -> Option<&'static (PathBuf, u64)> {
    DISK_CACHE.get()
}

/// Default bound of a block cache directory.
pub const DEFAULT_DISK_CACHE: u64 = 10 << 30;

/// The block cache named by the environment: `WIMFS_CACHE_DIR`, bounded by
/// `WIMFS_CACHE_DIR_SIZE` (default 10G). The CLI passes its `--cache-dir` to mount daemons
/// this way.
pub fn disk_cache_from_env() -> std::result::Result<Option<(PathBuf, u64)>, String> {
    let Some(dir) = std::env::var_os("WIMFS_CACHE_DIR").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let limit = match std::env::var("WIMFS_CACHE_DIR_SIZE") {
        Ok(s) => crate::units::parse_size(&s).map_err(|e| format!("WIMFS_CACHE_DIR_SIZE: {e}"))?,
        Err(_) => DEFAULT_DISK_CACHE,
    };
    Ok(Some((PathBuf::from(dir), limit)))
}

/// Blocks of one object version on disk: `DIR/<key>/<block index>`, each file the block's
/// SHA-1 followed by its bytes (a damaged file is dropped and fetched again). The key is a
/// hash of the object's name and version (ETag, or size and modification time), so another
/// version never reads this one's blocks.
pub(super) struct DiskBlocks {
    root: PathBuf,
    dir: PathBuf,
    limit: u64,
    /// Bytes this process believes the cache holds; past the limit it looks and evicts.
    used: std::sync::atomic::AtomicU64,
}

impl DiskBlocks {
    pub(super) fn open(root: &std::path::Path, limit: u64, identity: &str) -> Option<DiskBlocks> {
        use sha1::Digest;
        let key: String = sha1::Sha1::digest(identity.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = root.join(key);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!("{}: cannot keep blocks here: {e}", dir.display());
            return None;
        }
        let d = DiskBlocks {
            root: root.to_path_buf(),
            dir,
            limit,
            used: std::sync::atomic::AtomicU64::new(0),
        };
        d.used
            .store(d.scan().iter().map(|f| f.1).sum(), Ordering::Relaxed);
        Some(d)
    }

    /// Every block file under the root: (path, size, last use).
    fn scan(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let mut out = Vec::new();
        for obj in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(obj.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(m) = f.metadata() {
                    let used = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                    out.push((f.path(), m.len(), used));
                }
            }
        }
        out
    }

    /// Whether all of `block` is on disk.
    pub(super) fn has(&self, block: u64) -> bool {
        self.dir.join(block.to_string()).exists()
    }

    /// What is kept of `block` (`len` bytes long): the whole block (file `K`), else the
    /// piece of it that was fetched for a resource ending or starting inside it (`K.part`,
    /// its offset in the block after the hash). A damaged file is removed.
    pub(super) fn get(&self, block: u64, len: usize) -> Option<Piece> {
        use sha1::Digest;
        for (path, header) in [
            (self.dir.join(block.to_string()), 20),
            (self.dir.join(format!("{block}.part")), 24),
        ] {
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let piece = (data.len() >= header)
                .then(|| {
                    let at = match header {
                        24 => u32::from_le_bytes(data[20..24].try_into().expect("4 bytes")),
                        _ => 0,
                    };
                    Piece {
                        at,
                        data: Arc::from(&data[header..]),
                    }
                })
                .filter(|p| {
                    sha1::Sha1::digest(&data[20..])[..] == data[..20]
                        && p.at as usize + p.data.len() <= len
                        && (header == 24 || p.data.len() == len)
                });
            match piece {
                Some(piece) => {
                    // Last use, for eviction.
                    if let Ok(f) = std::fs::File::options().write(true).open(&path) {
                        let _ = f.set_modified(std::time::SystemTime::now());
                    }
                    return Some(piece);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        None
    }

    /// Keeps `piece` of `block` (`len` bytes long), replacing what was kept of it.
    pub(super) fn put(&self, block: u64, piece: &Piece, len: usize) {
        use sha1::Digest;
        let whole = piece.at == 0 && piece.data.len() == len;
        let path = match whole {
            true => self.dir.join(block.to_string()),
            false => self.dir.join(format!("{block}.part")),
        };
        let tmp = self.dir.join(format!(
            ".{block}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut body = Vec::with_capacity(4 + piece.data.len());
        if !whole {
            body.extend_from_slice(&piece.at.to_le_bytes());
        }
        body.extend_from_slice(&piece.data);
        let mut bytes = sha1::Sha1::digest(&body).to_vec();
        bytes.extend_from_slice(&body);
        if std::fs::write(&tmp, &bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        if whole {
            let _ = std::fs::remove_file(self.dir.join(format!("{block}.part")));
        }
        let used = self.used.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if used > self.limit {
            self.evict();
        }
    }

    /// Removes the least recently used blocks (of any object) until the cache holds at most
    /// nine tenths of its limit.
    fn evict(&self) {
        let mut files = self.scan();
        files.sort_by_key(|f| f.2);
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (path, size, _) in files {
            if total <= self.limit / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
        self.used.store(total, Ordering::Relaxed);
    }
}
