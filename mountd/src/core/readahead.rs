//! Read-ahead workers: a few threads that decode chunks into the WIM's chunk cache ahead of
//! sequential readers, and help with the chunks of a large read that a reader waits for.
//!
//! Work is one chunk per job, taken in order: first the chunks of reads being waited for
//! ("urgent"), then read-ahead, oldest request first, so the chunk a reader will want next
//! is decoded first and both cores decode neighbouring chunks at once. A reader asking for a
//! chunk a worker is decoding waits for that chunk only (the cache loads single-flight). The
//! workers sleep on a condition variable when there is nothing to do: no spinning.
//! Read-ahead jobs of a handle are dropped when it is closed.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use wimfs::read::ChunkSpan;
use wimfs::Wim;

/// The handle number of speculative read-ahead (of files not opened yet): never cancelled.
pub(crate) const SPECULATIVE: u64 = 0;

#[derive(Debug, Clone, Copy)]
struct Job {
    fh: u64,
    resource: u32,
    chunk: u64,
    bytes: u64,
}

#[derive(Default)]
struct State {
    urgent: VecDeque<Job>,
    ahead: VecDeque<Job>,
    /// (resource, chunk) of every read-ahead job queued or being decoded, so a chunk is
    /// queued once.
    queued: HashSet<(u32, u64)>,
    /// Bytes of chunk data the read-ahead queue stands for.
    ahead_bytes: u64,
    stop: bool,
}

struct Shared {
    wim: Arc<Wim>,
    state: Mutex<State>,
    wake: Condvar,
}

/// The worker pool of one mounted image.
pub(crate) struct ReadAhead {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Most chunk bytes queued for read-ahead at once (decoded chunks must still be in the
    /// cache when the reader gets there).
    max_ahead_bytes: u64,
}

impl ReadAhead {
    pub(crate) fn new(wim: Arc<Wim>) -> ReadAhead {
        let max_ahead_bytes = (wim.cache().capacity() as u64 / 4).max(1);
        ReadAhead {
            shared: Arc::new(Shared {
                wim,
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            workers: Mutex::new(Vec::new()),
            max_ahead_bytes,
        }
    }

    /// Starts the workers on first use.
    fn start(&self) {
        let mut w = self.workers.lock();
        if !w.is_empty() {
            return;
        }
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        for k in 0..n {
            let shared = Arc::clone(&self.shared);
            match std::thread::Builder::new()
                .name(format!("readahead-{k}"))
                .spawn(move || shared.work())
            {
                Ok(h) => w.push(h),
                Err(e) => tracing::warn!("cannot start a read-ahead thread: {e}"),
            }
        }
    }

    /// Queues the chunks of `span` that are not cached for the workers, ahead of any
    /// read-ahead: a reader is waiting for them (it decodes them too, in order).
    pub(crate) fn urgent(&self, fh: u64, span: &ChunkSpan) {
        let wim = &self.shared.wim;
        let mut added = 0;
        {
            let mut s = self.shared.state.lock();
            // Front of the queue, keeping the chunks in order. Not checked against `queued`:
            // a chunk also queued for read-ahead must not wait behind the rest of it (the
            // cache decodes it once either way).
            for chunk in (span.first..=span.last).rev() {
                if !wim.chunk_cached(span.resource, chunk) {
                    s.urgent.push_front(Job {
                        fh,
                        resource: span.resource,
                        chunk,
                        bytes: 0,
                    });
                    added += 1;
                }
            }
        }
        if added > 0 {
            self.start();
            self.wake(added);
        }
    }

    /// Queues the chunks of `span` for read-ahead on behalf of handle `fh`. Returns how
    /// many chunks of the span were taken (from its start): fewer when the queue is full.
    pub(crate) fn ahead(&self, fh: u64, span: &ChunkSpan) -> u64 {
        let wim = &self.shared.wim;
        let mut taken = 0;
        let mut added = 0;
        {
            let mut s = self.shared.state.lock();
            for chunk in span.first..=span.last {
                if s.ahead_bytes >= self.max_ahead_bytes && !s.ahead.is_empty() {
                    break;
                }
                taken += 1;
                if wim.chunk_cached(span.resource, chunk)
                    || !s.queued.insert((span.resource, chunk))
                {
                    continue;
                }
                let bytes = span.chunk_size as u64;
                s.ahead_bytes += bytes;
                s.ahead.push_back(Job {
                    fh,
                    resource: span.resource,
                    chunk,
                    bytes,
                });
                added += 1;
            }
        }
        if added > 0 {
            self.start();
            self.wake(added);
        }
        taken
    }

    /// Drops the read-ahead still queued for a closed handle.
    pub(crate) fn cancel(&self, fh: u64) {
        if fh == SPECULATIVE {
            return;
        }
        let mut s = self.shared.state.lock();
        if s.ahead.iter().all(|j| j.fh != fh) {
            return;
        }
        let State {
            ahead,
            queued,
            ahead_bytes,
            ..
        } = &mut *s;
        ahead.retain(|j| {
            if j.fh != fh {
                return true;
            }
            queued.remove(&(j.resource, j.chunk));
            *ahead_bytes -= j.bytes;
            false
        });
    }

    fn wake(&self, jobs: usize) {
        if jobs == 1 {
            self.shared.wake.notify_one();
        } else {
            self.shared.wake.notify_all();
        }
    }
}

impl Shared {
    fn work(&self) {
        loop {
            let job = {
                let mut s = self.state.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    if let Some(j) = s.urgent.pop_front() {
                        break j;
                    }
                    if let Some(j) = s.ahead.pop_front() {
                        s.ahead_bytes -= j.bytes;
                        break j;
                    }
                    self.wake.wait(&mut s);
                }
            };
            if let Err(e) = self.wim.load_chunk(job.resource, job.chunk) {
                tracing::debug!("read-ahead failed: {e}");
            }
            // Read-ahead stays marked queued until decoded, so it is not queued again meanwhile.
            if job.bytes > 0 {
                self.state.lock().queued.remove(&(job.resource, job.chunk));
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_all();
        for h in self.workers.get_mut().drain(..) {
            let _ = h.join();
        }
    }
}
