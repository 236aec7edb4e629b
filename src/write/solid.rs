//! Writing a solid resource: many blobs concatenated and compressed as one stream of large
//! chunks (LZMS by default), the layout of ESD files and `--solid` WIMs.
//!
//! The chunk table precedes the chunks but its length is only known at the end, so the
//! stream reserves room for an upper bound and, when done, writes the 16-byte solid header
//! and the table right before the first chunk; the resource starts there and the reserved
//! bytes in front of it are dead space (this is also how wimlib lays it out).

use std::io::{Seek, SeekFrom, Write};

use rayon::prelude::*;

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
    /// Uncompressed bytes not yet compressed (less than one parallel batch).
    pending: Vec<u8>,
    /// Compressed size of each chunk written so far.
    sizes: Vec<u32>,
    /// Uncompressed bytes taken in so far.
    taken: u64,
    /// Compressed bytes written after `chunks_start`.
    written: u64,
}

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

    fn batch_bytes(&self) -> usize {
        self.opts.chunk_size as usize * rayon::current_num_threads().max(1)
    }

    /// Adds `data` to the stream; full chunks are compressed in parallel on the current pool.
    pub(super) fn push<W: Write>(&mut self, out: &mut W, data: &[u8]) -> Result<(), ResourceError> {
        if self.taken + data.len() as u64 > self.upper_bound {
            return Err(ResourceError::Changed {
                expected: self.upper_bound,
            });
        }
        self.taken += data.len() as u64;
        let mut data = data;
        let batch = self.batch_bytes();
        while !data.is_empty() {
            let take = (batch - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == batch {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    /// Compresses and writes every pending byte (the last chunk may be short only at the end).
    fn flush<W: Write>(&mut self, out: &mut W) -> Result<(), ResourceError> {
        let opts = self.opts;
        let results: Vec<Result<Option<Vec<u8>>, ResourceError>> = self
            .pending
            .par_chunks(opts.chunk_size as usize)
            .map(|c| compress_chunk(&opts, c))
            .collect();
        for (raw, res) in self.pending.chunks(opts.chunk_size as usize).zip(results) {
            let bytes = res?;
            let bytes: &[u8] = bytes.as_deref().unwrap_or(raw);
            out.write_all(bytes).map_err(ResourceError::Write)?;
            self.sizes.push(bytes.len() as u32);
            self.written += bytes.len() as u64;
        }
        self.pending.clear();
        Ok(())
    }

    /// Writes the remaining data, then the header and chunk table in front of the chunks.
    /// Leaves `out` positioned at the resource's end.
    pub(super) fn finish<W: Write + Seek>(
        mut self,
        out: &mut W,
    ) -> Result<SolidResource, ResourceError> {
        if !self.pending.is_empty() {
            self.flush(out)?;
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
