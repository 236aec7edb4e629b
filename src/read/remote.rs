//! WIMs read in place from web servers and object stores: a [`ReadAt`] source over the
//! `object_store` crate (HTTP(S) with range requests; S3 and S3-compatible stores).
//!
//! Only the byte ranges the reader asks for are fetched. Every request names the object's
//! version seen when it was opened (`If-Match` with its ETag), so a WIM replaced on the server
//! fails its reads with a clear error instead of mixing two versions. Each request has a
//! timeout (30 s, or `WIMFS_REMOTE_TIMEOUT` seconds), transient failures (connection errors, 5xx, 429) are retried with backoff a few
//! times, and then the read fails with an I/O error: nothing waits forever.
//!
//! Locations: `http://` and `https://` URLs; `s3://BUCKET/KEY`, with credentials, region and
//! endpoint from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` for S3-compatible stores, `AWS_ALLOW_HTTP=true` for plain-HTTP ones).
//! Names in messages never carry credentials or query strings.

use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, RetryConfig};

use super::file::{PartFile, ReadAt};
use crate::error::{Error, Result};

/// How long one request may take, from connecting to the last byte, unless
/// `WIMFS_REMOTE_TIMEOUT` (seconds) says otherwise; connecting, at most a sixth of it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failing request; retrying goes on for at most two request timeouts.
const RETRIES: usize = 3;

/// The request timeout in force.
fn request_timeout() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("WIMFS_REMOTE_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&s| s > 0.0 && s < 86_400.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(REQUEST_TIMEOUT)
    })
}

/// `url` as shown in messages and status: without user information, query or fragment.
pub fn display_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// The runtime that drives requests: one for the process, started on first use.
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    // TLS through rustls with ring; a provider installed by the embedding program wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wimfs-net")
        .enable_all()
        .build()?;
    Ok(RT.get_or_init(|| rt))
}

/// Remote data is fetched in aligned blocks of this size, so that the many small reads of a
/// WIM (chunk tables, small chunks, metadata) become few requests.
const BLOCK: u64 = 64 << 10;
/// Blocks kept in memory per object (the decoded-chunk cache sits above this).
const BLOCKS_KEPT: usize = 1024;
/// Blocks a read may skip and still continue a sequential run.
const GAP: u64 = 2;
/// Background read-aheads at a time, per object.
const PREFETCHES: usize = 2;
/// Most blocks fetched by one request (16 MiB).
const MAX_RUN: u64 = 256;

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
struct DiskBlocks {
    root: PathBuf,
    dir: PathBuf,
    limit: u64,
    /// Bytes this process believes the cache holds; past the limit it looks and evicts.
    used: std::sync::atomic::AtomicU64,
}

impl DiskBlocks {
    fn open(root: &std::path::Path, limit: u64, identity: &str) -> Option<DiskBlocks> {
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

    fn has(&self, block: u64) -> bool {
        self.dir.join(block.to_string()).exists()
    }

    fn get(&self, block: u64, len: usize) -> Option<Arc<[u8]>> {
        use sha1::Digest;
        let path = self.dir.join(block.to_string());
        let data = std::fs::read(&path).ok()?;
        if data.len() != 20 + len || sha1::Sha1::digest(&data[20..])[..] != data[..20] {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Last use, for eviction.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(Arc::from(&data[20..]))
    }

    fn put(&self, block: u64, data: &[u8]) {
        use sha1::Digest;
        let path = self.dir.join(block.to_string());
        let tmp = self.dir.join(format!(
            ".{block}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut bytes = sha1::Sha1::digest(data).to_vec();
        bytes.extend_from_slice(data);
        if std::fs::write(&tmp, &bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            return;
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

/// Reads moving forward through an object, one after the other, and how far ahead of them
/// to fetch.
///
/// From the second sequential read on, as many blocks as the run has covered so far are
/// fetched ahead (up to `MAX_RUN`): at most as much again as was read. A run inside one
/// resource (one file being read) reads ahead no further than that resource's end, so
/// reading a file fetches its bytes and not its neighbours'; a run that has gone from one
/// resource into the next (a `tar` or `cp -r` of files stored in order) reads ahead across
/// them.
#[derive(Default)]
struct Run {
    /// The block after the last range read (0: none yet).
    next: u64,
    /// Reads in a row that were sequential.
    streak: u64,
    /// The block the run started at.
    start: u64,
    /// The resource (byte range) the last read was part of.
    span: Range<u64>,
    /// Whether the run has moved from one resource into another.
    across: bool,
}

impl Run {
    /// Records a read of blocks `first..=last` within the resource at `span`: how many
    /// blocks after `last` to fetch along, and the last block the read-ahead may reach.
    fn next(&mut self, first: u64, last: u64, span: Range<u64>) -> (u64, u64) {
        // Within the run or just past it: several threads serving one reader (the kernel's
        // read-ahead, the decoders) finish out of order, and a file whose data is cached
        // already leaves a small gap.
        let sequential = self.next > 0 && first >= self.start && first <= self.next + GAP;
        if sequential {
            self.streak += 1;
            self.across |= span != self.span;
        } else {
            self.streak = 0;
            self.start = first;
            self.across = false;
            self.next = 0;
        }
        self.next = self.next.max(last + 1);
        let limit = match self.across {
            true => u64::MAX,
            false => span.end.saturating_sub(1) / BLOCK,
        };
        self.span = span;
        let ahead = match self.streak {
            0 | 1 => 0,
            _ => (last + 1 - self.start).min(MAX_RUN),
        };
        (ahead, limit)
    }
}

/// One remote object, read by ranges.
pub struct Remote {
    disk: Option<DiskBlocks>,
    /// Object size.
    len: u64,
    blocks: parking_lot::Mutex<lru::LruCache<u64, Arc<[u8]>>>,
    /// Blocks some reader is fetching now, and the signal that a fetch ended.
    fetching: parking_lot::Mutex<std::collections::HashSet<u64>>,
    fetched: parking_lot::Condvar,
    /// The sequential run of reads so far, which sizes the read-ahead.
    sequence: parking_lot::Mutex<Run>,
    /// Background read-aheads running.
    prefetches: std::sync::atomic::AtomicUsize,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// The object's ETag when it was opened; every read asks for that version.
    etag: Option<String>,
    /// The URL as given (it may hold credentials: never shown) and as shown.
    raw: String,
    name: String,
}

impl Remote {
    /// Opens the object at `url`: its size and version from a HEAD request.
    pub fn open(url: &str) -> Result<(Remote, u64)> {
        let name = display_name(url);
        let fail =
            |what: &str, e: &dyn std::fmt::Display| Error::invalid(&name, format!("{what}: {e}"));
        let parsed = url::Url::parse(url).map_err(|e| fail("not a valid URL", &e))?;
        // Started first: it installs the TLS provider the clients are built with.
        let rt = runtime().map_err(|e| Error::io(&name, "starting the network runtime", e))?;
        let client = ClientOptions::new()
            .with_timeout(request_timeout())
            .with_connect_timeout(request_timeout() / 6)
            .with_allow_http(true);
        let retry = RetryConfig {
            max_retries: RETRIES,
            retry_timeout: 2 * request_timeout(),
            ..RetryConfig::default()
        };
        let (store, path): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "http" | "https" => {
                let store = object_store::http::HttpBuilder::new()
                    .with_url(url)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| fail("cannot use", &e))?;
                (Arc::new(store), ObjectPath::default())
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| fail("an s3:// URL needs a bucket", &"s3://BUCKET/KEY"))?;
                let key = ObjectPath::from_url_path(parsed.path())
                    .map_err(|e| fail("not a valid object key", &e))?;
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| fail("cannot use", &e))?;
                (Arc::new(store), key)
            }
            other => return Err(fail("unsupported scheme", &other)),
        };
        let head = rt
            .block_on(async {
                store
                    .get_opts(&path, GetOptions::new().with_head(true))
                    .await
            })
            .map_err(|e| Error::io(&name, "cannot open", to_io(e, url, &name)))?;
        let meta = &head.meta;
        let disk = DISK_CACHE.get().and_then(|(root, limit)| {
            let version = match &meta.e_tag {
                Some(tag) => format!("etag {tag}"),
                None => format!("size {} modified {}", meta.size, meta.last_modified),
            };
            DiskBlocks::open(root, *limit, &format!("{name}\n{version}"))
        });
        let remote = Remote {
            disk,
            len: head.meta.size,
            blocks: parking_lot::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(BLOCKS_KEPT).expect("nonzero"),
            )),
            fetching: parking_lot::Mutex::new(std::collections::HashSet::new()),
            fetched: parking_lot::Condvar::new(),
            sequence: parking_lot::Mutex::new(Run::default()),
            prefetches: std::sync::atomic::AtomicUsize::new(0),
            store,
            path,
            etag: head.meta.e_tag.clone(),
            raw: url.to_string(),
            name,
        };
        Ok((remote, head.meta.size))
    }

    async fn get(&self, range: Range<u64>) -> object_store::Result<bytes::Bytes> {
        let mut opts = GetOptions::new().with_range(Some(range));
        opts.if_match = self.etag.clone();
        self.store.get_opts(&self.path, opts).await?.bytes().await
    }
}

impl Remote {
    /// Fetches `range` with one request (bounded in time, retries included).
    fn fetch(&self, range: Range<u64>) -> io::Result<bytes::Bytes> {
        let want = range.end - range.start;
        let rt = runtime()?;
        let got = rt
            .block_on(async { tokio::time::timeout(3 * request_timeout(), self.get(range)).await });
        let bytes = match got {
            Ok(Ok(b)) => b,
            Ok(Err(object_store::Error::Precondition { .. })) => {
                return Err(io::Error::other(format!(
                    "{} changed on the server since it was opened (ETag {}); remount to read \
                     the new version",
                    self.name,
                    self.etag.as_deref().unwrap_or("?")
                )))
            }
            Ok(Err(e)) => return Err(to_io(e, &self.raw, &self.name)),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
        if bytes.len() as u64 != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the server sent {} bytes for a {want}-byte range",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Whether a block is in memory or on disk (without reading it).
    fn has(&self, k: u64) -> bool {
        self.blocks.lock().contains(&k) || self.disk.as_ref().is_some_and(|d| d.has(k))
    }

    /// A block from memory or the disk cache.
    fn kept(&self, k: u64) -> Option<Arc<[u8]>> {
        if let Some(b) = self.blocks.lock().get(&k) {
            return Some(Arc::clone(b));
        }
        let disk = self.disk.as_ref()?;
        let len = ((k + 1) * BLOCK).min(self.len) - k * BLOCK;
        let block = disk.get(k, len as usize)?;
        self.blocks.lock().put(k, Arc::clone(&block));
        Some(block)
    }

    /// Blocks `first..=last`: from memory or disk, else fetched. Each block is fetched by one
    /// reader at a time (others wait for it), runs of missing blocks in one request. A
    /// reader moving forward through the object has the blocks after its range fetched in
    /// the background (see [`Run`] for how far), so a sequential read costs few round trips
    /// and rarely waits for one.
    fn blocks(
        self: &Arc<Self>,
        first: u64,
        last: u64,
        span: Range<u64>,
    ) -> io::Result<Vec<Arc<[u8]>>> {
        let (ahead, limit) = self.sequence.lock().next(first, last, span);
        if ahead > 0 {
            let end = (last + ahead).min(limit).min(self.len.div_ceil(BLOCK) - 1);
            self.read_ahead(last + 1, end);
        }
        let deadline = std::time::Instant::now() + 4 * request_timeout();
        loop {
            let mut out: Vec<Option<Arc<[u8]>>> = (first..=last).map(|k| self.kept(k)).collect();
            if out.iter().all(Option::is_some) {
                return Ok(out.into_iter().map(|b| b.expect("checked")).collect());
            }
            // Claim what nobody is fetching.
            let (mut claimed, mut busy) = (Vec::new(), false);
            {
                let mut fetching = self.fetching.lock();
                for (i, slot) in out.iter().enumerate() {
                    let k = first + i as u64;
                    if slot.is_none() {
                        match fetching.insert(k) {
                            true => claimed.push(k),
                            false => busy = true,
                        }
                    }
                }
            }
            let fetched = self.fetch_runs(&claimed);
            self.release(&claimed);
            for (k, block) in fetched? {
                out[(k - first) as usize] = Some(block);
            }
            if out.iter().all(Option::is_some) {
                return Ok(out.into_iter().map(|b| b.expect("checked")).collect());
            }
            if busy {
                // Wait for the other readers' fetches, then look again.
                let mut fetching = self.fetching.lock();
                while (first..=last).any(|k| fetching.contains(&k)) {
                    if self.fetched.wait_until(&mut fetching, deadline).timed_out() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
    }

    /// Ends the claim on fetched (or failed) blocks and wakes the readers waiting for them.
    fn release(&self, claimed: &[u64]) {
        let mut fetching = self.fetching.lock();
        for k in claimed {
            fetching.remove(k);
        }
        drop(fetching);
        self.fetched.notify_all();
    }

    /// Fetches the missing blocks of `from..=to` in the background. The window is refilled
    /// once its middle block is neither here nor on its way (the reader has gone half way
    /// through what was fetched ahead), so that it moves in a few large requests rather than
    /// one per block; at most `PREFETCHES` such fetches run at a time. A failure is left to
    /// the reader, which fetches the block itself and reports what went wrong.
    fn read_ahead(self: &Arc<Self>, from: u64, to: u64) {
        if from > to {
            return;
        }
        let claimed: Vec<u64> = {
            let mut fetching = self.fetching.lock();
            let mid = from + (to - from) / 2;
            if fetching.contains(&mid) || self.has(mid) {
                return;
            }
            if self.prefetches.fetch_add(1, Ordering::AcqRel) >= PREFETCHES {
                self.prefetches.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            let missing: Vec<u64> = (from..=to)
                .filter(|k| !fetching.contains(k) && !self.has(*k))
                .collect();
            fetching.extend(missing.iter().copied());
            missing
        };
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("wimfs-prefetch".into())
            .spawn(move || {
                if let Err(e) = me.fetch_runs(&claimed) {
                    tracing::debug!("{}: read-ahead failed: {e}", me.name);
                }
                me.release(&claimed);
                me.prefetches.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            tracing::debug!("read-ahead thread: {e}");
        }
    }

    /// Fetches the claimed blocks (ascending), contiguous runs one request each, keeping them
    /// in memory and on disk.
    fn fetch_runs(&self, claimed: &[u64]) -> io::Result<Vec<(u64, Arc<[u8]>)>> {
        let mut got = Vec::with_capacity(claimed.len());
        let mut i = 0;
        while i < claimed.len() {
            let b = claimed[i];
            let mut end = b;
            while i + 1 < claimed.len() && claimed[i + 1] == end + 1 && end + 1 - b < MAX_RUN {
                end += 1;
                i += 1;
            }
            i += 1;
            let data = self.fetch(b * BLOCK..((end + 1) * BLOCK).min(self.len))?;
            for k in b..=end {
                let from = ((k - b) * BLOCK) as usize;
                let to = (from + BLOCK as usize).min(data.len());
                let block: Arc<[u8]> = Arc::from(&data[from..to]);
                self.blocks.lock().put(k, Arc::clone(&block));
                if let Some(disk) = &self.disk {
                    disk.put(k, &block);
                }
                got.push((k, block));
            }
        }
        Ok(got)
    }
}

/// A remote object as the reader's source of bytes (the background read-ahead holds it too).
struct Shared(Arc<Remote>);

impl ReadAt for Shared {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_in(buf, offset, 0..self.0.len)
    }

    fn read_exact_in(&self, buf: &mut [u8], offset: u64, span: Range<u64>) -> io::Result<()> {
        self.0.read_exact_in(buf, offset, span)
    }
}

impl Remote {
    /// Fills `buf` from `offset`, a read within the resource at `span` (see [`Run`]).
    fn read_exact_in(
        self: &Arc<Self>,
        buf: &mut [u8],
        offset: u64,
        span: Range<u64>,
    ) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        // Big reads (whole resources being copied) go straight through.
        if buf.len() as u64 > MAX_RUN * BLOCK {
            buf.copy_from_slice(&self.fetch(offset..end)?);
            return Ok(());
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let mut at = 0usize;
        let span = span.start.min(offset)..span.end.clamp(end, self.len);
        for (i, block) in self.blocks(first, last, span)?.iter().enumerate() {
            let base = (first + i as u64) * BLOCK;
            let from = (offset.max(base) - base) as usize;
            let to = (end.min(base + block.len() as u64) - base) as usize;
            buf[at..at + (to - from)].copy_from_slice(&block[from..to]);
            at += to - from;
        }
        debug_assert_eq!(at, buf.len());
        Ok(())
    }
}

/// An object store error as an I/O error, its text naming the object only as `name` (the
/// client's messages may quote the URL with its query, which can hold a token).
fn to_io(e: object_store::Error, raw: &str, name: &str) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, "no such object on the server")
        }
        e => {
            let mut text = e.to_string().replace(raw, name);
            if let Some((_, query)) = raw.split_once('?') {
                text = text.replace(query, "...");
            }
            io::Error::other(text)
        }
    }
}

/// Opens the remote object at `url` as a WIM part.
pub fn open_part(url: &str) -> Result<PartFile> {
    let (remote, len) = Remote::open(url)?;
    let name = remote.name.clone();
    Ok(PartFile::from_source(
        name,
        Box::new(Shared(Arc::new(remote))),
        len,
    ))
}
