//! Writing many blobs as one stream of work. Small blobs (read, hashed and compressed whole
//! by a worker) and the chunks of big blobs (read and hashed on the calling thread,
//! compressed by the workers) go to the pool in file order, up to a bounded amount of data
//! ahead of the writing, and their results are written in that same order as they come
//! back. Nothing waits for a whole batch: the workers always have the next task while the
//! calling thread reads big files and writes, so every core stays busy from the first blob
//! to the last (as with wimlib's compressor threads).

use std::collections::VecDeque;
use std::io::{Seek, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};
use sha1::{Digest, Sha1};

use super::resource::{
    compress_chunk, encode_small, expect_eof, fill, write_resource, Chunked, Encoded,
    ResourceError, ResourceOptions,
};
use super::writer::{changed, resource_error, BlobJob, SMALL_BLOB};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::format::reshdr::ResHdr;
use crate::format::Sha1Hash;

/// Most uncompressed bytes handed to the workers and not yet written.
const AHEAD_BYTES: u64 = 32 << 20;
/// Most tasks in flight (bounds the bookkeeping for trees of tiny files).
const AHEAD_TASKS: usize = 4096;
/// Uncompressed bytes per task: a few chunks of a big blob when chunks are small, or a run
/// of small blobs, so that handing out a task (and waking threads for it and its result)
/// costs little next to doing it.
const TASK_BYTES: usize = 256 << 10;
/// Most small blobs per task.
const TASK_BLOBS: usize = 64;

/// Where the stream writes, and what it wrote.
pub(super) struct Sink<'a, W> {
    pub out: &'a mut W,
    /// File position of `out`.
    pub pos: u64,
    /// Blobs written, in file order.
    pub added: Vec<(Sha1Hash, ResHdr)>,
    added_set: FxHashSet<Sha1Hash>,
    /// The big blob being written.
    big: Option<Chunked>,
}

impl<'a, W: Write + Seek> Sink<'a, W> {
    pub fn new(out: &'a mut W, pos: u64) -> Self {
        Self {
            out,
            pos,
            added: Vec::new(),
            added_set: FxHashSet::default(),
            big: None,
        }
    }

    fn add(&mut self, hash: Sha1Hash, reshdr: ResHdr) {
        self.pos = reshdr.offset + reshdr.size_in_wim;
        self.added.push((hash, reshdr));
        self.added_set.insert(hash);
    }
}

/// One entry of the stream, in file order.
enum Step {
    /// A run of small blobs, encoded by a worker.
    Small(Vec<usize>),
    /// The start of big blob `job`: its chunk table's place.
    BigStart(usize),
    /// Some chunks of big blob `job` (the current one), compressed by a worker.
    Chunks(usize),
    /// The end of big blob `job`, whose data (as read) has this hash.
    BigEnd(usize, Sha1Hash),
    /// A big blob stored uncompressed, copied when its turn comes.
    Stored(usize),
}

/// What a worker returns.
enum Done {
    Small(Vec<std::result::Result<Encoded, ResourceError>>),
    /// The raw chunks and, per chunk, its compressed form (`None`: store it raw).
    Chunks(
        Vec<u8>,
        Vec<std::result::Result<Option<Vec<u8>>, ResourceError>>,
    ),
}

type Outcome = std::thread::Result<Done>;

struct Slot {
    step: Step,
    /// Uncompressed bytes the step holds in memory while in flight.
    bytes: u64,
    /// The worker's result; steps without a task are ready as they are.
    done: Option<Outcome>,
    waits: bool,
}

/// In-order state of the stream on the calling thread.
struct Flow<'s, 'a, W> {
    sink: &'s mut Sink<'a, W>,
    jobs: &'s [BlobJob<'s>],
    opts: &'s ResourceOptions,
    present: &'s (dyn Fn(&Sha1Hash) -> bool + Sync),
    hashes: &'s mut [Sha1Hash],
    progress: &'s (dyn Fn(u64) + Sync),
    slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]`.
    base: u64,
    ahead: u64,
    rx: mpsc::Receiver<(u64, Outcome)>,
}

/// Writes every blob of `jobs` that the file does not hold yet (`present`), in order,
/// through `pool`; `hashes[i]` gets the hash of job `i`. Non-solid resources only.
pub(super) fn write_stream<W: Write + Seek>(
    pool: &rayon::ThreadPool,
    jobs: &[BlobJob<'_>],
    opts: &ResourceOptions,
    present: &(dyn Fn(&Sha1Hash) -> bool + Sync),
    sink: &mut Sink<'_, W>,
    hashes: &mut [Sha1Hash],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    // Data some small blob's task has taken on to write, by the earliest such job: a later
    // job that reads the same data only hashes it. The earliest job always compresses
    // (should a later one have claimed the data first, both do), so the file's layout does
    // not depend on which worker ran first.
    let claimed: Mutex<FxHashMap<Sha1Hash, usize>> = Mutex::new(FxHashMap::default());
    let known = |h: &Sha1Hash, job: usize| {
        if present(h) {
            return true;
        }
        let mut claimed = claimed.lock();
        let first = claimed.entry(*h).or_insert(job);
        if *first < job {
            return true;
        }
        *first = job;
        false
    };
    let (tx, rx) = mpsc::channel::<(u64, Outcome)>();
    pool.in_place_scope_fifo(|scope| -> Result<()> {
        let mut flow = Flow {
            sink,
            jobs,
            opts,
            present,
            hashes,
            progress,
            slots: VecDeque::new(),
            base: 0,
            ahead: 0,
            rx,
        };
        let known = &known;
        // Small blobs gathered for the next task, and their bytes.
        let mut batch: Vec<usize> = Vec::new();
        let mut batch_bytes = 0u64;
        let send_batch = |flow: &mut Flow<'_, '_, W>, batch: Vec<usize>, bytes| {
            let seq = flow.push(Step::Small(batch.clone()), bytes, true)?;
            let tx = tx.clone();
            scope.spawn_fifo(move |_| {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let encoded = batch.iter().map(|&i| {
                        let j = &jobs[i];
                        encode_small(j.source, j.size, opts, &|h| known(h, i))
                    });
                    Done::Small(encoded.collect())
                }));
                let _ = tx.send((seq, r));
            });
            Ok::<(), Error>(())
        };
        // Blobs known by hash that an earlier job of the stream writes.
        let mut expected_ahead: FxHashSet<Sha1Hash> = FxHashSet::default();
        for (i, j) in jobs.iter().enumerate() {
            if let Some(h) = j.expected {
                if present(&h) || !expected_ahead.insert(h) {
                    flow.hashes[i] = h;
                    progress(j.size);
                    continue;
                }
            }
            if j.size <= SMALL_BLOB {
                batch.push(i);
                batch_bytes += j.size;
                if batch_bytes >= TASK_BYTES as u64 || batch.len() >= TASK_BLOBS {
                    send_batch(&mut flow, std::mem::take(&mut batch), batch_bytes)?;
                    batch_bytes = 0;
                }
                continue;
            }
            if !batch.is_empty() {
                send_batch(&mut flow, std::mem::take(&mut batch), batch_bytes)?;
                batch_bytes = 0;
            }
            if opts.compression == Compression::None {
                flow.push(Step::Stored(i), 0, false)?;
                continue;
            }
            // A big blob: read and hashed here, a few chunks per task.
            flow.push(Step::BigStart(i), 0, false)?;
            let mut src = j
                .source
                .open()
                .map_err(|e| resource_error(j.what, ResourceError::Read(e)))?;
            let mut hasher = Sha1::new();
            let chunk = opts.chunk_size as usize;
            let per_task = (TASK_BYTES / chunk).max(1) * chunk;
            let mut done = 0u64;
            while done < j.size {
                let n = (j.size - done).min(per_task as u64) as usize;
                let mut data = vec![0u8; n];
                fill(&mut *src, &mut data, j.size).map_err(|e| resource_error(j.what, e))?;
                hasher.update(&data);
                done += n as u64;
                let seq = flow.push(Step::Chunks(i), n as u64, true)?;
                let tx = tx.clone();
                scope.spawn_fifo(move |_| {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let z = data
                            .chunks(chunk)
                            .map(|c| compress_chunk(opts, c))
                            .collect();
                        Done::Chunks(data, z)
                    }));
                    let _ = tx.send((seq, r));
                });
            }
            expect_eof(&mut *src, j.size).map_err(|e| resource_error(j.what, e))?;
            flow.push(Step::BigEnd(i, hasher.finalize().into()), 0, false)?;
        }
        if !batch.is_empty() {
            send_batch(&mut flow, batch, batch_bytes)?;
        }
        while !flow.slots.is_empty() {
            flow.wait_one()?;
        }
        Ok(())
    })
}

impl<W: Write + Seek> Flow<'_, '_, W> {
    /// Appends a step (holding `bytes` in memory, with a worker task if `waits`) and
    /// returns its sequence number, first writing what has come back until the stream is
    /// within its bounds again.
    fn push(&mut self, step: Step, bytes: u64, waits: bool) -> Result<u64> {
        while !self.slots.is_empty()
            && (self.ahead + bytes > AHEAD_BYTES || self.slots.len() >= AHEAD_TASKS)
        {
            self.wait_one()?;
        }
        self.slots.push_back(Slot {
            step,
            bytes,
            done: None,
            waits,
        });
        let seq = self.base + self.slots.len() as u64 - 1;
        self.ahead += bytes;
        self.drain()?;
        Ok(seq)
    }

    /// Waits for one result from the workers, then writes whatever is ready in order.
    fn wait_one(&mut self) -> Result<()> {
        if self
            .slots
            .front()
            .is_some_and(|s| !s.waits || s.done.is_some())
        {
            return self.drain();
        }
        let (seq, r) = self.rx.recv().expect("a sender lives while tasks are out");
        self.slots[(seq - self.base) as usize].done = Some(r);
        self.drain()
    }

    /// Writes the steps at the front that are ready.
    fn drain(&mut self) -> Result<()> {
        while let Ok((seq, r)) = self.rx.try_recv() {
            self.slots[(seq - self.base) as usize].done = Some(r);
        }
        while self
            .slots
            .front()
            .is_some_and(|s| !s.waits || s.done.is_some())
        {
            let slot = self.slots.pop_front().expect("checked");
            self.base += 1;
            self.ahead -= slot.bytes;
            let done = match slot.done {
                Some(Ok(d)) => Some(d),
                Some(Err(panic)) => resume_unwind(panic),
                None => None,
            };
            self.write(slot.step, done)?;
        }
        Ok(())
    }

    fn write(&mut self, step: Step, done: Option<Done>) -> Result<()> {
        match (step, done) {
            (Step::Small(batch), Some(Done::Small(results))) => {
                for (i, r) in batch.into_iter().zip(results) {
                    self.write_small(i, r)?;
                }
            }
            (Step::BigStart(i), None) => {
                let j = &self.jobs[i];
                let res =
                    Chunked::begin(self.sink.out, self.sink.pos, j.size, self.opts.chunk_size)
                        .map_err(|e| resource_error(j.what, e))?;
                self.sink.big = Some(res);
            }
            (Step::Chunks(i), Some(Done::Chunks(data, z))) => {
                let what = self.jobs[i].what;
                let res = self.sink.big.as_mut().expect("a big blob is open");
                let chunk = self.opts.chunk_size as usize;
                for (raw, r) in data.chunks(chunk).zip(z) {
                    let r = r.map_err(|e| resource_error(what, e))?;
                    res.push(self.sink.out, r.as_deref().unwrap_or(raw))
                        .map_err(|e| resource_error(what, e))?;
                }
                (self.progress)(data.len() as u64);
            }
            (Step::BigEnd(i, hash), None) => {
                let j = &self.jobs[i];
                let res = self.sink.big.take().expect("a big blob is open");
                if self.settle(i, hash)? {
                    let w = res
                        .finish(self.sink.out, j.source, j.size, hash, 0)
                        .map_err(|e| resource_error(j.what, e))?;
                    self.sink.add(hash, w.reshdr);
                }
            }
            (Step::Stored(i), None) => {
                let j = &self.jobs[i];
                let w = write_resource(
                    self.sink.out,
                    self.sink.pos,
                    j.source,
                    j.size,
                    self.opts,
                    false,
                    self.progress,
                )
                .map_err(|e| resource_error(j.what, e))?;
                if self.settle(i, w.hash)? {
                    self.sink.add(w.hash, w.reshdr);
                }
            }
            _ => unreachable!("a step gets the result of its own kind"),
        }
        Ok(())
    }

    fn write_small(
        &mut self,
        i: usize,
        r: std::result::Result<Encoded, ResourceError>,
    ) -> Result<()> {
        let j = &self.jobs[i];
        let e = r.map_err(|e| resource_error(j.what, e))?;
        if j.expected.is_some_and(|h| h != e.hash) {
            return Err(changed(j.what));
        }
        self.hashes[i] = e.hash;
        (self.progress)(e.size);
        if (self.present)(&e.hash) || self.sink.added_set.contains(&e.hash) {
            return Ok(());
        }
        if e.bytes.is_empty() && e.size > 0 {
            // Read as a copy of an earlier job's data, which must have been written.
            return Err(Error::invalid(
                j.what,
                "its data was read as a copy of another file's, which was not written",
            ));
        }
        let reshdr = e.reshdr(self.sink.pos);
        self.sink
            .out
            .write_all(&e.bytes)
            .map_err(|err| resource_error(j.what, ResourceError::Write(err)))?;
        self.sink.add(e.hash, reshdr);
        Ok(())
    }

    /// Checks the hash of big blob `i`, written (or being written) at the sink's position,
    /// and records it. Returns false if the blob is a copy of one the file already holds:
    /// then the position goes back to where it started, for the next blob to overwrite it.
    fn settle(&mut self, i: usize, hash: Sha1Hash) -> Result<bool> {
        let j = &self.jobs[i];
        if j.expected.is_some_and(|h| h != hash) {
            return Err(changed(j.what));
        }
        self.hashes[i] = hash;
        if (self.present)(&hash) || self.sink.added_set.contains(&hash) {
            self.sink
                .out
                .seek(std::io::SeekFrom::Start(self.sink.pos))
                .map_err(|e| resource_error(j.what, ResourceError::Write(e)))?;
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::resource::tests::read_back;
    use std::io::Cursor;
    use std::path::PathBuf;

    fn sha1(d: &[u8]) -> Sha1Hash {
        Sha1::digest(d).into()
    }

    fn text(len: usize, seed: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut i = seed;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of file {seed}, some words\n").as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn noise(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The file, the hash of each job and the blobs written.
    type Run = (Vec<u8>, Vec<Sha1Hash>, Vec<(Sha1Hash, ResHdr)>);

    /// Runs the stream over `datas` (with the `expected` hashes given).
    fn run(
        datas: &[Vec<u8>],
        expected: &[Option<Sha1Hash>],
        present: &[Sha1Hash],
        opts: ResourceOptions,
        threads: usize,
    ) -> Result<Run> {
        let names: Vec<PathBuf> = (0..datas.len())
            .map(|i| PathBuf::from(format!("file{i}")))
            .collect();
        let jobs: Vec<BlobJob<'_>> = datas
            .iter()
            .zip(expected)
            .zip(&names)
            .map(|((d, &e), n)| BlobJob {
                source: d,
                size: d.len() as u64,
                expected: e,
                what: n,
            })
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut file = Cursor::new(vec![0x55u8; 8]);
        file.seek(std::io::SeekFrom::End(0)).unwrap();
        let mut hashes = vec![[0u8; 20]; jobs.len()];
        let is_present = |h: &Sha1Hash| present.contains(h);
        let mut sink = Sink::new(&mut file, 8);
        write_stream(
            &pool,
            &jobs,
            &opts,
            &is_present,
            &mut sink,
            &mut hashes,
            &|_| {},
        )?;
        let (pos, added) = (sink.pos, std::mem::take(&mut sink.added));
        assert_eq!(file.position(), pos);
        Ok((file.into_inner(), hashes, added))
    }

    #[test]
    fn blobs_are_written_once_in_order_and_read_back() {
        let small = text(50_000, 1);
        let big = text(3 << 20, 2);
        let random_big = noise(1_500_000, 3);
        let old = text(10_000, 4);
        let datas = vec![
            small.clone(),      // 0
            small.clone(),      // 1: copy of 0
            big.clone(),        // 2: big
            big.clone(),        // 3: copy of a big one
            random_big.clone(), // 4: does not compress
            small.clone(),      // 5: copy of 0, hash known
            Vec::new(),         // 6: empty
            text(2 << 20, 5),   // 7: big, hash known, in the file already
            old.clone(),        // 8: small, in the file already
            text(3000, 6),      // 9
        ];
        let fake = [7u8; 20];
        let mut expected = vec![None; datas.len()];
        expected[5] = Some(sha1(&small));
        expected[7] = Some(fake);
        for compression in [Compression::Xpress, Compression::Lzx, Compression::None] {
            for threads in [1, 2, 3] {
                let opts = ResourceOptions {
                    compression,
                    chunk_size: 32768,
                    level: 50,
                };
                let (file, hashes, added) =
                    run(&datas, &expected, &[sha1(&old), fake], opts, threads).unwrap();
                for (i, d) in datas.iter().enumerate() {
                    let want = if i == 7 { fake } else { sha1(d) };
                    assert_eq!(hashes[i], want, "hash of blob {i}");
                }
                // Distinct new data, in job order, back to back after the 8 bytes before.
                let want: Vec<Sha1Hash> =
                    [0, 2, 4, 6, 9].iter().map(|&i| sha1(&datas[i])).collect();
                let got: Vec<Sha1Hash> = added.iter().map(|a| a.0).collect();
                assert_eq!(got, want, "{compression:?} with {threads} threads");
                let mut at = 8;
                for (hash, reshdr) in &added {
                    assert_eq!(reshdr.offset, at);
                    at += reshdr.size_in_wim;
                    let i = datas.iter().position(|d| sha1(d) == *hash).unwrap();
                    let plain = read_back(&file, reshdr, compression, 32768);
                    assert!(plain == datas[i], "blob {i} reads back different");
                    if compression != Compression::None && (i == 0 || i == 2) {
                        assert!(reshdr.is_compressed(), "blob {i}");
                    }
                    if i == 4 {
                        assert!(!reshdr.is_compressed(), "noise is stored as it is");
                    }
                }
            }
        }
    }

    #[test]
    fn data_that_differs_from_its_known_hash_is_an_error_naming_the_file() {
        for (size, threads) in [(40_000, 1), (40_000, 2), (2 << 20, 2)] {
            let datas = vec![text(5000, 1), text(size, 2), text(7000, 3)];
            let expected = vec![None, Some([1u8; 20]), None];
            let opts = ResourceOptions {
                compression: Compression::Xpress,
                chunk_size: 32768,
                level: 50,
            };
            let e = run(&datas, &expected, &[], opts, threads).unwrap_err();
            assert!(e.to_string().contains("file1"), "{e}");
        }
    }
}
