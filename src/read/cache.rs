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

    /// Drops `key` from the cache (a reader is done with it); whether it was there.
    pub fn remove(&self, key: &ChunkKey) -> bool {
        let mut g = self.inner.lock();
        match g.lru.pop(key) {
            Some(v) => {
                g.bytes -= v.len();
                true
            }
            None => false,
        }
    }

    /// Returns the chunk for `key`, calling `load` at most once across concurrent callers.
    pub fn get_or_load<T>(
        &self,
        key: ChunkKey,
        load: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<[u8]>>
    where
        T: Into<Arc<[u8]>>,
    {
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
        // Should `load` panic, the guard still ends the flight, so that its waiters get an
        // error instead of waiting forever.
        let mut guard = FlightGuard {
            cache: self,
            key,
            flight: Some(Arc::clone(&flight)),
        };
        let result: Loaded = load().map(Into::into).map_err(Arc::new);
        guard.flight = None;
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

    /// Loads `key` with `load` unless it is cached or another thread is loading it; does
    /// not wait for that other thread (for workers that have other chunks to decode).
    pub fn load_unless_present<T>(
        &self,
        key: ChunkKey,
        load: impl FnOnce() -> Result<T>,
    ) -> Result<()>
    where
        T: Into<Arc<[u8]>>,
    {
        {
            let g = self.inner.lock();
            if g.lru.contains(&key) || g.inflight.contains_key(&key) {
                return Ok(());
            }
        }
        // Another thread may start the same load between the check and get_or_load; then
        // this one waits for it, as any reader would.
        self.get_or_load(key, load).map(|_| ())
    }

    fn wait(f: &Flight) -> Result<Arc<[u8]>> {
        let mut r = f.result.lock();
        while r.is_none() {
            f.done.wait(&mut r);
        }
        r.clone().expect("checked above").map_err(Error::Shared)
    }
}

/// Ends a flight whose loader unwound: removes it and hands its waiters an error.
struct FlightGuard<'a> {
    cache: &'a ChunkCache,
    key: ChunkKey,
    flight: Option<Arc<Flight>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        self.cache.inner.lock().inflight.remove(&self.key);
        let e = Error::Io {
            path: std::path::PathBuf::new(),
            what: format!("loading chunk {} of resource {}", self.key.2, self.key.1),
            cause: std::io::Error::other("the decoder failed unexpectedly"),
        };
        *flight.result.lock() = Some(Err(Arc::new(e)));
        flight.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_panicking_loader_wakes_its_waiters_with_an_error() {
        let cache = Arc::new(ChunkCache::new(100));
        let started = Arc::new(std::sync::Barrier::new(2));
        let loader = {
            let (cache, started) = (Arc::clone(&cache), Arc::clone(&started));
            std::thread::spawn(move || {
                cache.get_or_load((1, 0, 7), || -> Result<Vec<u8>> {
                    started.wait();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    panic!("decoder bug");
                })
            })
        };
        started.wait();
        // Waits on the loader's flight, which ends in an error instead of never.
        let waited = cache.get_or_load((1, 0, 7), || Ok(vec![1u8; 4]));
        assert!(loader.join().is_err(), "the loader panicked");
        match waited {
            Err(_) => {}
            // Or it came after the flight ended and loaded the chunk itself.
            Ok(v) => assert_eq!(&v[..], &[1, 1, 1, 1]),
        }
        // The key is not stuck in flight: a later call returns at once, loading it anew
        // unless the waiter already did.
        let v = cache.get_or_load((1, 0, 7), || Ok(vec![2u8; 4])).unwrap();
        assert!(v[..] == [1u8; 4] || v[..] == [2u8; 4], "{v:?}");
    }

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
        let e = cache.get_or_load((2, 0, 0), || {
            Err::<Vec<u8>, _>(Error::NotFound("boom".into()))
        });
        assert!(e.unwrap_err().to_string().contains("boom"));
    }

    #[test]
    fn load_unless_present_does_not_wait() {
        let cache = Arc::new(ChunkCache::new(1000));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                cache
                    .get_or_load((1, 0, 0), || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(vec![1u8; 10])
                    })
                    .unwrap()
            })
        };
        started_rx.recv().unwrap();
        // In flight elsewhere: returns at once without loading.
        cache
            .load_unless_present((1, 0, 0), || -> Result<Vec<u8>> { panic!("loaded twice") })
            .unwrap();
        release_tx.send(()).unwrap();
        assert_eq!(&*slow.join().unwrap(), &[1u8; 10][..]);
        // Cached: nothing to do.
        cache
            .load_unless_present((1, 0, 0), || -> Result<Vec<u8>> { panic!("loaded twice") })
            .unwrap();
        // Absent: loaded.
        cache
            .load_unless_present((1, 0, 1), || Ok(vec![2u8; 10]))
            .unwrap();
        assert!(cache.contains(&(1, 0, 1)));
        assert!(cache.remove(&(1, 0, 1)));
        assert!(!cache.remove(&(1, 0, 1)));
        assert_eq!(cache.stats().bytes, 10);
    }
}
