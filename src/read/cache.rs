//! The chunk cache: decompressed chunks kept in LRU order, bounded in bytes, shared by every
//! reader of every open WIM (the mount daemon serves all its reads through one).
//!
//! Loading is single-flight: the first thread to miss a chunk decodes it; others asking for
//! the same chunk meanwhile wait for that result instead of decoding it again. The lock is
//! never held while decoding.

use std::collections::HashMap;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Identifies a chunk: (owner id, resource index, chunk index).
pub type ChunkKey = (u64, u32, u64);

type Loaded = std::result::Result<Arc<[u8]>, Arc<Error>>;

#[derive(Default)]
struct Flight {
    result: Mutex<Option<Loaded>>,
    done: Condvar,
}

struct Inner {
    lru: LruCache<ChunkKey, Arc<[u8]>>,
    bytes: usize,
    inflight: HashMap<ChunkKey, Arc<Flight>>,
    hits: u64,
    misses: u64,
}

/// A byte-bounded LRU cache of decompressed chunks.
pub struct ChunkCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// Counters for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: usize,
    pub entries: usize,
}

/// Default cache bound: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

impl ChunkCache {
    /// A cache holding at most `capacity` bytes of chunk data (one oversized chunk may
    /// still be held so that it can be served).
    pub fn new(capacity: usize) -> Self {
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                inflight: HashMap::new(),
                hits: 0,
                misses: 0,
            }),
            capacity,
        }
    }

    /// The configured bound in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let g = self.inner.lock();
        CacheStats {
            hits: g.hits,
            misses: g.misses,
            bytes: g.bytes,
            entries: g.lru.len(),
        }
    }

    /// Whether `key` is cached (without touching its LRU position).
    pub fn contains(&self, key: &ChunkKey) -> bool {
        self.inner.lock().lru.contains(key)
    }

    /// Returns the chunk for `key`, calling `load` at most once across concurrent callers.
    pub fn get_or_load(
        &self,
        key: ChunkKey,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<[u8]>> {
        let flight = {
            let mut g = self.inner.lock();
            if let Some(v) = g.lru.get(&key) {
                let v = Arc::clone(v);
                g.hits += 1;
                return Ok(v);
            }
            g.misses += 1;
            match g.inflight.get(&key) {
                Some(f) => {
                    let f = Arc::clone(f);
                    drop(g);
                    return Self::wait(&f);
                }
                None => {
                    let f = Arc::new(Flight::default());
                    g.inflight.insert(key, Arc::clone(&f));
                    f
                }
            }
        };
        let result: Loaded = load().map(Arc::from).map_err(Arc::new);
        {
            let mut g = self.inner.lock();
            g.inflight.remove(&key);
            if let Ok(v) = &result {
                g.bytes += v.len();
                if let Some(old) = g.lru.put(key, Arc::clone(v)) {
                    g.bytes -= old.len();
                }
                while g.bytes > self.capacity && g.lru.len() > 1 {
                    match g.lru.pop_lru() {
                        Some((_, old)) => g.bytes -= old.len(),
                        None => break,
                    }
                }
            }
        }
        *flight.result.lock() = Some(result.clone());
        flight.done.notify_all();
        result.map_err(Error::Shared)
    }

    fn wait(f: &Flight) -> Result<Arc<[u8]>> {
        let mut r = f.result.lock();
        while r.is_none() {
            f.done.wait(&mut r);
        }
        r.clone().expect("checked above").map_err(Error::Shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bounded_and_single_flight() {
        let cache = Arc::new(ChunkCache::new(100));
        let loads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
                std::thread::spawn(move || {
                    cache
                        .get_or_load((1, 0, 0), || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![7u8; 40])
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(&*t.join().unwrap(), &[7u8; 40][..]);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        for i in 1..10 {
            cache.get_or_load((1, 0, i), || Ok(vec![0u8; 40])).unwrap();
        }
        let s = cache.stats();
        assert!(s.bytes <= 100, "{s:?}");
        assert!(!cache.contains(&(1, 0, 0)));
        let e = cache.get_or_load((2, 0, 0), || Err(Error::NotFound("boom".into())));
        assert!(e.unwrap_err().to_string().contains("boom"));
    }
}
