//! Writing a solid resource: many blobs concatenated and compressed as one stream of large
//! chunks (LZMS by default), the layout of ESD files and `--solid` WIMs.
//!
//! The chunk table precedes the chunks but its length is only known at the end, so the
//! stream reserves room for an upper bound and, when done, writes the 16-byte solid header
//! and the table right before the first chunk; the resource starts there and the reserved
//! bytes in front of it are dead space (this is also how wimlib lays it out).

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use super::resource::{compress_chunk, ResourceError, ResourceOptions};
use crate::codec::Compression;
use crate::format::chunk_table::{num_chunks, SOLID_HEADER_SIZE};

/// Default uncompressed chunk size of solid resources (what wimlib and DISM use for LZMS).
pub const DEFAULT_SOLID_CHUNK_SIZE: u32 = 64 << 20;

/// Where a finished solid resource lies and how much data it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolidResource {
    pub offset: u64,
    pub size_in_wim: u64,
    pub uncompressed_size: u64,
}

/// A solid resource being written.
pub(super) struct SolidStream {
    reserve_start: u64,
    chunks_start: u64,
    upper_bound: u64,
    opts: ResourceOptions,
    /// Uncompressed bytes of the chunk being filled.
    pending: Vec<u8>,
    /// Chunks being compressed on the pool, oldest first: each comes back with its data.
    inflight: VecDeque<mpsc::Receiver<std::thread::Result<Compressed>>>,
    /// Compressed size of each chunk written so far.
    sizes: Vec<u32>,
    /// Uncompressed bytes taken in so far.
    taken: u64,
    /// Compressed bytes written after `chunks_start`.
    written: u64,
}

/// A chunk's data and its compressed form (`None`: store it raw).
type Compressed = (Vec<u8>, Result<Option<Vec<u8>>, ResourceError>);

/// The numeric compression format stored in a solid resource header.
fn format_code(c: Compression) -> u32 {
    match c {
        Compression::None => 0,
        Compression::Xpress => 1,
        Compression::Lzx => 2,
        Compression::Lzms => 3,
    }
}

impl SolidStream {
    /// Starts a solid resource at `pos` (the current position of `out`) for at most
    /// `upper_bound` uncompressed bytes.
    pub(super) fn begin<W: Write>(
        out: &mut W,
        pos: u64,
        upper_bound: u64,
        opts: ResourceOptions,
    ) -> Result<SolidStream, ResourceError> {
        let reserve = SOLID_HEADER_SIZE + num_chunks(upper_bound.max(1), opts.chunk_size) * 4;
        out.write_all(&vec![0u8; reserve as usize])
            .map_err(ResourceError::Write)?;
        Ok(SolidStream {
            reserve_start: pos,
            chunks_start: pos + reserve,
            upper_bound,
            opts,
            pending: Vec::new(),
            inflight: VecDeque::new(),
            sizes: Vec::new(),
            taken: 0,
            written: 0,
        })
    }

    /// Uncompressed bytes taken in so far: the offset the next blob will have.
    pub(super) fn offset(&self) -> u64 {
        self.taken
    }

    /// Most uncompressed bytes this resource can take.
    pub(super) fn upper_bound(&self) -> u64 {
        self.upper_bound
    }

    /// Position in the file after everything written so far.
    pub(super) fn end(&self) -> u64 {
        self.chunks_start + self.written
    }

    /// Adds `data` to the stream. Each chunk is compressed on `pool` as soon as it is full,
    /// while the caller goes on reading; chunks are written in order as they come back, and
    /// at most one more than the pool has threads is held at a time. The caller must not
    /// be one of `pool`'s threads (it waits for them).
    pub(super) fn push<W: Write>(
        &mut self,
        out: &mut W,
        pool: &rayon::ThreadPool,
        data: &[u8],
    ) -> Result<(), ResourceError> {
        if self.taken + data.len() as u64 > self.upper_bound {
            return Err(ResourceError::Changed {
                expected: self.upper_bound,
            });
        }
        self.taken += data.len() as u64;
        let chunk = self.opts.chunk_size as usize;
        let mut data = data;
        while !data.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(chunk);
            }
            let take = (chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == chunk {
                self.send(out, pool)?;
            }
        }
        Ok(())
    }

    /// Hands the pending chunk to the pool, first writing the oldest chunks out while too
    /// many are in flight.
    fn send<W: Write>(
        &mut self,
        out: &mut W,
        pool: &rayon::ThreadPool,
    ) -> Result<(), ResourceError> {
        while self.inflight.len() > pool.current_num_threads() {
            self.write_oldest(out)?;
        }
        let data = std::mem::take(&mut self.pending);
        let opts = self.opts;
        let (tx, rx) = mpsc::sync_channel(1);
        pool.spawn(move || {
            // A panic comes back as a result, so that the waiting writer never hangs.
            let r = catch_unwind(AssertUnwindSafe(|| compress_chunk(&opts, &data)));
            let _ = tx.send(r.map(|z| (data, z)));
        });
        self.inflight.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest chunk in flight and writes it.
    fn write_oldest<W: Write>(&mut self, out: &mut W) -> Result<(), ResourceError> {
        let Some(rx) = self.inflight.pop_front() else {
            return Ok(());
        };
        let (raw, z) = match rx.recv().expect("every task sends its result") {
            Ok(done) => done,
            Err(panic) => resume_unwind(panic),
        };
        let z = z?;
        let bytes: &[u8] = z.as_deref().unwrap_or(&raw);
        out.write_all(bytes).map_err(ResourceError::Write)?;
        self.sizes.push(bytes.len() as u32);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the remaining data, then the header and chunk table in front of the chunks.
    /// Leaves `out` positioned at the resource's end.
    pub(super) fn finish<W: Write + Seek>(
        mut self,
        out: &mut W,
        pool: &rayon::ThreadPool,
    ) -> Result<SolidResource, ResourceError> {
        if !self.pending.is_empty() {
            self.send(out, pool)?;
        }
        while !self.inflight.is_empty() {
            self.write_oldest(out)?;
        }
        let end = self.end();
        let mut head = Vec::with_capacity(SOLID_HEADER_SIZE as usize + self.sizes.len() * 4);
        head.extend_from_slice(&self.taken.to_le_bytes());
        head.extend_from_slice(&self.opts.chunk_size.to_le_bytes());
        head.extend_from_slice(&format_code(self.opts.compression).to_le_bytes());
        for s in &self.sizes {
            head.extend_from_slice(&s.to_le_bytes());
        }
        let offset = self.chunks_start - head.len() as u64;
        debug_assert!(offset >= self.reserve_start);
        out.seek(SeekFrom::Start(offset))
            .map_err(ResourceError::Write)?;
        out.write_all(&head).map_err(ResourceError::Write)?;
        out.seek(SeekFrom::Start(end))
            .map_err(ResourceError::Write)?;
        Ok(SolidResource {
            offset,
            size_in_wim: end - offset,
            uncompressed_size: self.taken,
        })
    }
}
