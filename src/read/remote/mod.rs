//! WIMs read in place from web servers and object stores: a [`ReadAt`] source over the
//! `object_store` crate (HTTP(S) with range requests; S3 and S3-compatible stores).
//!
//! Only the byte ranges the reader asks for are fetched. Every request names the object's
//! version seen when it was opened (`If-Match` with its ETag), so a WIM replaced on the server
//! fails its reads with a clear error instead of mixing two versions. Each request has a
//! timeout (30 s, or `WIMFS_REMOTE_TIMEOUT` seconds), transient failures (connection errors, 5xx, 429) are retried with backoff a few
//! times, and then the read fails with an I/O error: nothing waits forever.
//!
//! Locations: `http://` and `https://` URLs; `s3://BUCKET/KEY`. Credentials, region and
//! endpoints come from where users keep them (see [`auth`]); names in messages never carry
//! credentials or query strings. Fetched blocks can be kept on disk (see [`cache`]).

use std::io;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, RetryConfig};

mod auth;
mod cache;

pub use auth::{conceal, endpoint, reveal, set_endpoint, ENDPOINT_VAR};
use cache::DiskBlocks;
pub use cache::{disk_cache, disk_cache_from_env, set_disk_cache, DEFAULT_DISK_CACHE};

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
const GAP: u64 = 16;
/// Background read-aheads at a time, per object.
const PREFETCHES: usize = 2;
/// Most blocks fetched by one request (16 MiB).
const MAX_RUN: u64 = 256;

/// Bytes of one block: all of it, or, fetched for a resource that starts or ends inside the
/// block, the part from `at` on that was asked for.
#[derive(Clone)]
pub(super) struct Piece {
    /// Offset of the first byte held in the block.
    pub(super) at: u32,
    pub(super) data: Arc<[u8]>,
}

impl Piece {
    /// Whether it holds the bytes at `need` (offsets in the block).
    fn covers(&self, need: &Range<usize>) -> bool {
        let at = self.at as usize;
        at <= need.start && need.end <= at + self.data.len()
    }

    /// The two pieces as one, if they overlap or touch.
    fn join(&self, other: &Piece) -> Option<Piece> {
        let (a, b) = match self.at <= other.at {
            true => (self, other),
            false => (other, self),
        };
        let (a_end, b_end) = (a.at as usize + a.data.len(), b.at as usize + b.data.len());
        if (b.at as usize) > a_end {
            return None;
        }
        if b_end <= a_end {
            return Some(a.clone());
        }
        let mut data = a.data.to_vec();
        data.extend_from_slice(&b.data[a_end - b.at as usize..]);
        Some(Piece {
            at: a.at,
            data: data.into(),
        })
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
    /// Read-ahead carried over from the runs before: half of the last one's, so that a
    /// reader that mostly moves forward (`tar` over files stored in another order) keeps
    /// most of its window across a jump, while a random reader's soon fades.
    credit: u64,
}

impl Run {
    /// Records a read of blocks `first..=last` within the resource at `span`: how many
    /// blocks after `last` to fetch along, and the bytes fetching may cover. Those are the
    /// read's own for a read standing alone (`exact`: a header, a table); anything once the
    /// run has gone from one resource into the next; else the resource's for a resource of a
    /// block or more, so that nothing around it is fetched, and whole blocks for a smaller
    /// one, whose neighbours (small files of the same directory) are likely read soon.
    fn next(&mut self, first: u64, last: u64, span: Range<u64>, exact: bool) -> (u64, Range<u64>) {
        // Within the run or just past it: several threads serving one reader (the kernel's
        // read-ahead, the decoders) finish out of order, and a file whose data is cached
        // already leaves a small gap.
        let sequential = self.next > 0 && first >= self.start && first <= self.next + GAP;
        if sequential {
            self.streak += 1;
            self.across |= span != self.span;
        } else {
            let window = (self.next.saturating_sub(self.start) + self.credit).min(MAX_RUN);
            self.credit = if self.across { window / 2 } else { 0 };
            self.streak = 0;
            self.start = first;
            self.across = false;
            self.next = 0;
        }
        self.next = self.next.max(last + 1);
        let clip = if exact || (!self.across && span.end - span.start >= BLOCK) {
            span.clone()
        } else if self.across {
            0..u64::MAX
        } else {
            span.start / BLOCK * BLOCK..span.end.div_ceil(BLOCK).saturating_mul(BLOCK)
        };
        self.span = span;
        let ahead = match (self.streak, self.credit) {
            (0 | 1, 0) => 0,
            _ => (last + 1 - self.start + self.credit).min(MAX_RUN),
        };
        (ahead, clip)
    }
}

/// One remote object, read by ranges.
pub struct Remote {
    disk: Option<DiskBlocks>,
    /// Object size.
    len: u64,
    blocks: parking_lot::Mutex<lru::LruCache<u64, Piece>>,
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
        let (store, path) =
            auth::store_for(&parsed, client, retry).map_err(|e| Error::invalid(&name, e))?;
        let head = rt
            .block_on(async {
                store
                    .get_opts(&path, GetOptions::new().with_head(true))
                    .await
            })
            .map_err(|e| Error::io(&name, "cannot open", to_io(e, url, &name)))?;
        let meta = &head.meta;
        let disk = disk_cache().and_then(|(root, limit)| {
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

    /// Bytes in block `k` (the last block may be short).
    fn block_len(&self, k: u64) -> usize {
        (((k + 1) * BLOCK).min(self.len) - k * BLOCK) as usize
    }

    /// Whether all of block `k` is in memory.
    fn in_memory(&self, k: u64) -> bool {
        let full = self.block_len(k);
        self.blocks
            .lock()
            .peek(&k)
            .is_some_and(|p| p.at == 0 && p.data.len() == full)
    }

    /// What memory or the disk cache holds of block `k`, if it covers `need` (offsets in
    /// the block).
    fn kept(&self, k: u64, need: &Range<usize>) -> Option<Piece> {
        if let Some(p) = self.blocks.lock().get(&k) {
            if p.covers(need) {
                return Some(p.clone());
            }
        }
        let piece = self.disk.as_ref()?.get(k, self.block_len(k))?;
        let covers = piece.covers(need);
        self.keep_in_memory(k, piece.clone());
        covers.then_some(piece)
    }

    /// Keeps `piece` of block `k` in memory, joined with the piece there if they touch.
    fn keep_in_memory(&self, k: u64, piece: Piece) -> Piece {
        let mut blocks = self.blocks.lock();
        let joined = match blocks.peek(&k) {
            Some(old) => old.join(&piece).unwrap_or(piece),
            None => piece,
        };
        blocks.put(k, joined.clone());
        joined
    }

    /// Bytes `offset..end`, in pieces of the blocks they lie in: from memory or disk, else
    /// fetched. Each block is fetched by one reader at a time (others wait for it), runs of
    /// missing blocks in one request. A reader moving forward through the object has the
    /// blocks after its range fetched in the background (see [`Run`] for how far), so a
    /// sequential read costs few round trips and rarely waits for one. Inside one resource
    /// (`span`), the first and last blocks are fetched only as far as the resource goes.
    fn pieces(
        self: &Arc<Self>,
        offset: u64,
        end: u64,
        span: Range<u64>,
        exact: bool,
    ) -> io::Result<Vec<Piece>> {
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let (ahead, clip) = self.sequence.lock().next(first, last, span, exact);
        if ahead > 0 {
            let to = (last + ahead)
                .min((clip.end.min(self.len) - 1) / BLOCK)
                .min(self.len.div_ceil(BLOCK) - 1);
            self.read_ahead(last + 1, to, clip.clone());
        }
        let need = |k: u64| {
            let base = k * BLOCK;
            (offset.max(base) - base) as usize..(end.min(base + BLOCK) - base) as usize
        };
        let deadline = std::time::Instant::now() + 4 * request_timeout();
        loop {
            let mut out: Vec<Option<Piece>> =
                (first..=last).map(|k| self.kept(k, &need(k))).collect();
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
            let fetched = self.fetch_runs(&claimed, &clip);
            self.release(&claimed);
            for (k, piece) in fetched? {
                if piece.covers(&need(k)) {
                    out[(k - first) as usize] = Some(piece);
                }
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

    /// Brings the blocks of `from..=to` (within `clip`) into memory in the background:
    /// fetched, or read from the disk cache. The window is refilled once its middle block is
    /// neither in memory nor on its way (the reader has gone half way through what was
    /// fetched ahead), so that it moves in a few large requests rather than one per block; at
    /// most `PREFETCHES` such fetches run at a time. A failure is left to the reader, which
    /// fetches the block itself and reports what went wrong.
    fn read_ahead(self: &Arc<Self>, from: u64, to: u64, clip: Range<u64>) {
        if from > to {
            return;
        }
        let mid = from + (to - from) / 2;
        if self.in_memory(mid) || self.fetching.lock().contains(&mid) {
            return;
        }
        if self.prefetches.fetch_add(1, Ordering::AcqRel) >= PREFETCHES {
            self.prefetches.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // Looked up before taking the claim lock: the disk cache answers with a file system
        // call per block.
        let (on_disk, absent): (Vec<u64>, Vec<u64>) = (from..=to)
            .filter(|&k| !self.in_memory(k))
            .partition(|&k| self.disk.as_ref().is_some_and(|d| d.has(k)));
        let claimed: Vec<u64> = {
            let mut fetching = self.fetching.lock();
            absent.into_iter().filter(|&k| fetching.insert(k)).collect()
        };
        let me = Arc::clone(self);
        let work = claimed.clone();
        let spawned = std::thread::Builder::new()
            .name("wimfs-prefetch".into())
            .spawn(move || {
                // Blocks on disk are read into memory ahead of the reader too.
                for k in on_disk {
                    me.kept(k, &(0..0));
                }
                if let Err(e) = me.fetch_runs(&work, &clip) {
                    tracing::debug!("{}: read-ahead failed: {e}", me.name);
                }
                me.release(&work);
                me.prefetches.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            // Nobody will fetch them: readers must not wait for these blocks.
            tracing::debug!("read-ahead thread: {e}");
            self.release(&claimed);
            self.prefetches.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Fetches the claimed blocks (ascending), contiguous runs one request each, no byte
    /// outside `clip`, keeping them in memory and on disk. Returns what is now kept of each.
    fn fetch_runs(&self, claimed: &[u64], clip: &Range<u64>) -> io::Result<Vec<(u64, Piece)>> {
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
            let range =
                (b * BLOCK).max(clip.start)..((end + 1) * BLOCK).min(self.len).min(clip.end);
            let data = self.fetch(range.clone())?;
            for k in b..=end {
                let base = k * BLOCK;
                let from = range.start.max(base);
                let to = range.end.min(base + BLOCK);
                let piece = Piece {
                    at: (from - base) as u32,
                    data: Arc::from(
                        &data[(from - range.start) as usize..(to - range.start) as usize],
                    ),
                };
                let kept = self.keep_in_memory(k, piece);
                if let Some(disk) = &self.disk {
                    disk.put(k, &kept, self.block_len(k));
                }
                got.push((k, kept));
            }
        }
        Ok(got)
    }
}

/// A remote object as the reader's source of bytes (the background read-ahead holds it too).
struct Shared(Arc<Remote>);

impl ReadAt for Shared {
    /// A read on its own (a header, a table): it is its own span.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        self.0.read_exact_in(buf, offset, offset..end, true)
    }

    fn read_exact_in(&self, buf: &mut [u8], offset: u64, span: Range<u64>) -> io::Result<()> {
        self.0.read_exact_in(buf, offset, span, false)
    }
}

impl Remote {
    /// Fills `buf` from `offset`, a read within the resource at `span`, or (`exact`) a read
    /// standing alone (see [`Run`]).
    fn read_exact_in(
        self: &Arc<Self>,
        buf: &mut [u8],
        offset: u64,
        span: Range<u64>,
        exact: bool,
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
        let span = span.start.min(offset)..span.end.clamp(end, self.len);
        let mut at = 0usize;
        for piece in self.pieces(offset, end, span, exact)? {
            let base = (offset + at as u64) / BLOCK * BLOCK + piece.at as u64;
            let from = (offset + at as u64 - base) as usize;
            let to = ((end - base) as usize).min(piece.data.len());
            buf[at..at + (to - from)].copy_from_slice(&piece.data[from..to]);
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
