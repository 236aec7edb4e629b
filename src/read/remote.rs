//! WIMs read in place from web servers and object stores: a [`ReadAt`] source over the
//! `object_store` crate (HTTP(S) with range requests; S3 and S3-compatible stores).
//!
//! Only the byte ranges the reader asks for are fetched. Every request names the object's
//! version seen when it was opened (`If-Match` with its ETag), so a WIM replaced on the server
//! fails its reads with a clear error instead of mixing two versions. Each request has a
//! timeout, transient failures (connection errors, 5xx, 429) are retried with backoff a few
//! times, and then the read fails with an I/O error: nothing waits forever.
//!
//! Locations: `http://` and `https://` URLs; `s3://BUCKET/KEY`, with credentials, region and
//! endpoint from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` for S3-compatible stores, `AWS_ALLOW_HTTP=true` for plain-HTTP ones).
//! Names in messages never carry credentials or query strings.

use std::io;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, RetryConfig};

use super::file::{PartFile, ReadAt};
use crate::error::{Error, Result};

/// How long one request may take, from connecting to the last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a failing request, and how long retrying may go on in all.
const RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(60);

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
const BLOCK: u64 = 1 << 20;
/// Blocks kept in memory per object (the decoded-chunk cache sits above this).
const BLOCKS_KEPT: usize = 64;
/// Most blocks fetched by one request.
const MAX_RUN: u64 = 16;

/// One remote object, read by ranges.
pub struct Remote {
    /// Object size.
    len: u64,
    blocks: parking_lot::Mutex<lru::LruCache<u64, Arc<[u8]>>>,
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
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_allow_http(true);
        let retry = RetryConfig {
            max_retries: RETRIES,
            retry_timeout: RETRY_TIMEOUT,
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
        let remote = Remote {
            len: head.meta.size,
            blocks: parking_lot::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(BLOCKS_KEPT).expect("nonzero"),
            )),
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
        let got = rt.block_on(async {
            tokio::time::timeout(RETRY_TIMEOUT + REQUEST_TIMEOUT, self.get(range)).await
        });
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

    /// Blocks `first..=last`, from memory or fetched, runs of missing blocks one request each.
    fn blocks(&self, first: u64, last: u64) -> io::Result<Vec<Arc<[u8]>>> {
        let mut out: Vec<Option<Arc<[u8]>>> = {
            let mut kept = self.blocks.lock();
            (first..=last).map(|b| kept.get(&b).cloned()).collect()
        };
        let mut b = first;
        while b <= last {
            if out[(b - first) as usize].is_some() {
                b += 1;
                continue;
            }
            let mut end = b;
            while end < last && end - b + 1 < MAX_RUN && out[(end + 1 - first) as usize].is_none() {
                end += 1;
            }
            let start = b * BLOCK;
            let stop = ((end + 1) * BLOCK).min(self.len);
            let data = self.fetch(start..stop)?;
            let mut kept = self.blocks.lock();
            for k in b..=end {
                let from = ((k - b) * BLOCK) as usize;
                let to = (from + BLOCK as usize).min(data.len());
                let block: Arc<[u8]> = Arc::from(&data[from..to]);
                kept.put(k, Arc::clone(&block));
                out[(k - first) as usize] = Some(block);
            }
            b = end + 1;
        }
        Ok(out
            .into_iter()
            .map(|b| b.expect("every block filled"))
            .collect())
    }
}

impl ReadAt for Remote {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
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
        for (i, block) in self.blocks(first, last)?.iter().enumerate() {
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
    Ok(PartFile::from_source(name, Box::new(remote), len))
}
