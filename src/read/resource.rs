//! Resources: where their bytes are, how they are chunked, and decoding them.

use std::sync::{Arc, OnceLock};

use crate::codec::Compression;
use crate::format::chunk_table::{self, ChunkTable};

/// How a resource's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Stored as-is.
    Raw,
    /// Compressed in chunks with the WIM's default compression.
    Chunked {
        compression: Compression,
        chunk_size: u32,
    },
    /// A solid resource: its own chunk size and compression, from its 16-byte header.
    Solid {
        compression: Compression,
        chunk_size: u32,
    },
}

/// One resource in one part file.
#[derive(Debug)]
pub struct Resource {
    /// Index into the WIM's parts.
    pub part: usize,
    pub offset: u64,
    pub size_in_wim: u64,
    pub uncompressed_size: u64,
    pub storage: Storage,
    /// In a pipable WIM: a compressed resource has its chunk table at its end and a
    /// header before each chunk (see `chunk_table::parse_pipable`), so it is never copied
    /// into another file as it is.
    pub pipable: bool,
    pub(crate) table: OnceLock<Arc<ChunkTable>>,
}

impl Resource {
    pub(crate) fn new(
        part: usize,
        offset: u64,
        size_in_wim: u64,
        uncompressed_size: u64,
        storage: Storage,
    ) -> Self {
        Resource {
            part,
            offset,
            size_in_wim,
            uncompressed_size,
            storage,
            pipable: false,
            table: OnceLock::new(),
        }
    }

    /// The bytes of its part the resource occupies (checked to lie within the part when it
    /// was added).
    pub fn span(&self) -> Option<std::ops::Range<u64>> {
        Some(self.offset..self.offset.saturating_add(self.size_in_wim))
    }

    /// Compression of the resource's chunks.
    pub fn compression(&self) -> Compression {
        match self.storage {
            Storage::Raw => Compression::None,
            Storage::Chunked { compression, .. } | Storage::Solid { compression, .. } => {
                compression
            }
        }
    }

    /// The resource-header flags of a whole non-solid resource stored this way.
    pub fn reshdr_flags(&self) -> u8 {
        match self.storage {
            Storage::Chunked { .. } => crate::format::reshdr::RESHDR_FLAG_COMPRESSED,
            Storage::Raw | Storage::Solid { .. } => 0,
        }
    }

    /// Chunk size, or 0 for raw resources.
    pub fn chunk_size(&self) -> u32 {
        match self.storage {
            Storage::Raw => 0,
            Storage::Chunked { chunk_size, .. } | Storage::Solid { chunk_size, .. } => chunk_size,
        }
    }

    /// Byte range (relative to the resource) of its chunk table, as stored.
    pub(crate) fn table_range(&self) -> (u64, u64) {
        match self.storage {
            Storage::Raw => (0, 0),
            Storage::Chunked { chunk_size, .. } => {
                // Checked when the resource was added (chunk_table::check_plausible).
                let len = chunk_table::normal_table_size(self.uncompressed_size, chunk_size)
                    .unwrap_or(u64::MAX);
                match self.pipable {
                    true => (self.size_in_wim.saturating_sub(len), len),
                    false => (0, len),
                }
            }
            Storage::Solid { chunk_size, .. } => (
                chunk_table::SOLID_HEADER_SIZE,
                chunk_table::solid_table_size(self.uncompressed_size, chunk_size)
                    .unwrap_or(u64::MAX),
            ),
        }
    }
}
