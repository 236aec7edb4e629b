//! Chunk tables of compressed resources, normal and solid ("alternate") format.
//!
//! A normal compressed resource begins with `num_chunks - 1` entries giving the start of
//! chunks 1.. relative to the end of the table (4 bytes each, 8 if the resource is 4 GiB or
//! more). A solid resource begins with a 16-byte header (uncompressed size, chunk size,
//! compression format) and then the compressed size of every chunk, 4 bytes each.

use super::bytes::Bytes;
use super::{FormatError, Result};
use crate::codec::Compression;

/// Size of the header in front of a solid resource's chunk table.
pub const SOLID_HEADER_SIZE: u64 = 16;

/// Where each chunk of a compressed resource lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkTable {
    /// Uncompressed size of every chunk but possibly the last.
    pub chunk_size: u32,
    /// Compression of the chunks.
    pub compression: Compression,
    /// Total uncompressed size of the resource.
    pub uncompressed_size: u64,
    /// `num_chunks + 1` offsets relative to the start of the resource: chunk `i` occupies
    /// `bounds[i]..bounds[i+1]`.
    pub bounds: Vec<u64>,
}

impl ChunkTable {
    /// Number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// Uncompressed size of chunk `i`.
    pub fn chunk_usize(&self, i: usize) -> u32 {
        let start = i as u64 * self.chunk_size as u64;
        (self.uncompressed_size - start).min(self.chunk_size as u64) as u32
    }

    /// The compressed byte range of chunk `i` relative to the resource start.
    pub fn chunk_range(&self, i: usize) -> (u64, u64) {
        (self.bounds[i], self.bounds[i + 1])
    }
}

/// Number of chunks a resource of `usize` bytes has with `chunk_size`-byte chunks.
pub fn num_chunks(usize: u64, chunk_size: u32) -> u64 {
    usize.div_ceil(chunk_size as u64)
}

/// Bytes of the chunk table at the start of a normal compressed resource.
pub fn normal_table_size(usize: u64, chunk_size: u32) -> u64 {
    let entry = if usize > u32::MAX as u64 { 8 } else { 4 };
    num_chunks(usize, chunk_size).saturating_sub(1) * entry
}

fn check_chunk(i: usize, csize: u64, usize: u32) -> Result<()> {
    if csize == 0 || csize > usize as u64 {
        return Err(FormatError::invalid(
            "chunk table",
            format!("chunk {i} has compressed size {csize} for {usize} uncompressed bytes"),
        ));
    }
    Ok(())
}

/// Parses the chunk table of a normal compressed resource. `table` holds exactly
/// [`normal_table_size`] bytes; `size_in_wim` is the resource's total stored size.
pub fn parse_normal(
    table: &[u8],
    usize: u64,
    size_in_wim: u64,
    chunk_size: u32,
    compression: Compression,
) -> Result<ChunkTable> {
    if chunk_size == 0 {
        return Err(FormatError::invalid("chunk table", "chunk size 0"));
    }
    let n = num_chunks(usize, chunk_size);
    let table_size = normal_table_size(usize, chunk_size);
    if table.len() as u64 != table_size || table_size >= size_in_wim.max(1) && n > 0 {
        return Err(FormatError::invalid(
            "chunk table",
            format!("{n} chunks need a {table_size}-byte table but the resource has {size_in_wim} bytes"),
        ));
    }
    let b = Bytes::new(table, "chunk table");
    let wide = usize > u32::MAX as u64;
    let mut bounds = Vec::with_capacity(n as usize + 1);
    bounds.push(table_size);
    for i in 1..n {
        let rel = if wide {
            b.u64((i - 1) * 8)?
        } else {
            b.u32((i - 1) * 4)? as u64
        };
        let abs = rel
            .checked_add(table_size)
            .ok_or_else(|| FormatError::invalid("chunk table", "offset overflow"))?;
        bounds.push(abs);
    }
    if n > 0 {
        bounds.push(size_in_wim);
    }
    let t = ChunkTable {
        chunk_size,
        compression,
        uncompressed_size: usize,
        bounds,
    };
    for i in 0..t.num_chunks() {
        let (s, e) = t.chunk_range(i);
        check_chunk(i, e.saturating_sub(s), t.chunk_usize(i))?;
    }
    Ok(t)
}

/// The 16-byte header of a solid resource: (uncompressed size, chunk size, compression).
pub fn parse_solid_header(data: &[u8]) -> Result<(u64, u32, Compression)> {
    let b = Bytes::new(data, "solid resource header");
    let usize = b.u64(0)?;
    let chunk_size = b.u32(8)?;
    let compression = match b.u32(12)? {
        0 => Compression::None,
        1 => Compression::Xpress,
        2 => Compression::Lzx,
        3 => Compression::Lzms,
        other => {
            return Err(FormatError::invalid(
                "solid resource header",
                format!("compression format {other}"),
            ))
        }
    };
    if chunk_size == 0 || !chunk_size.is_power_of_two() || chunk_size > 1 << 30 {
        return Err(FormatError::invalid(
            "solid resource header",
            format!("chunk size {chunk_size}"),
        ));
    }
    Ok((usize, chunk_size, compression))
}

/// Bytes of a solid resource's chunk table (after its 16-byte header).
pub fn solid_table_size(usize: u64, chunk_size: u32) -> u64 {
    num_chunks(usize, chunk_size) * 4
}

/// Parses a solid resource's chunk table (`table` = the compressed-size entries).
pub fn parse_solid(
    table: &[u8],
    usize: u64,
    size_in_wim: u64,
    chunk_size: u32,
    compression: Compression,
) -> Result<ChunkTable> {
    let n = num_chunks(usize, chunk_size);
    let start = SOLID_HEADER_SIZE + n * 4;
    if table.len() as u64 != n * 4 {
        return Err(FormatError::invalid(
            "solid chunk table",
            "wrong table length",
        ));
    }
    let b = Bytes::new(table, "solid chunk table");
    let mut bounds = Vec::with_capacity(n as usize + 1);
    bounds.push(start);
    let mut cur = start;
    let mut t = ChunkTable {
        chunk_size,
        compression,
        uncompressed_size: usize,
        bounds: Vec::new(),
    };
    for i in 0..n {
        let csize = b.u32(i * 4)? as u64;
        check_chunk(i as usize, csize, t.chunk_usize(i as usize))?;
        cur += csize;
        bounds.push(cur);
    }
    if cur > size_in_wim {
        return Err(FormatError::invalid(
            "solid chunk table",
            format!("chunks need {cur} bytes but the resource has {size_in_wim}"),
        ));
    }
    t.bounds = bounds;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_table() {
        // 3 chunks of 10 bytes (last 5): table of 2 u32 entries.
        let mut table = Vec::new();
        table.extend_from_slice(&7u32.to_le_bytes());
        table.extend_from_slice(&15u32.to_le_bytes());
        let t = parse_normal(&table, 25, 8 + 19, 10, Compression::Xpress).unwrap();
        assert_eq!(t.bounds, vec![8, 15, 23, 27]);
        assert_eq!(t.chunk_usize(2), 5);
        // Offsets going backwards are rejected.
        let mut bad = table.clone();
        bad[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert!(parse_normal(&bad, 25, 27, 10, Compression::Xpress).is_err());
        // Last chunk larger than its uncompressed size.
        assert!(parse_normal(&table, 25, 40, 10, Compression::Xpress).is_err());
    }

    #[test]
    fn solid_table() {
        let mut hdr = Vec::new();
        hdr.extend_from_slice(&20u64.to_le_bytes());
        hdr.extend_from_slice(&16u32.to_le_bytes());
        hdr.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            parse_solid_header(&hdr).unwrap(),
            (20, 16, Compression::Lzms)
        );
        let mut table = Vec::new();
        table.extend_from_slice(&9u32.to_le_bytes());
        table.extend_from_slice(&4u32.to_le_bytes());
        let t = parse_solid(&table, 20, 16 + 8 + 13, 16, Compression::Lzms).unwrap();
        assert_eq!(t.bounds, vec![24, 33, 37]);
        assert!(parse_solid(&table, 20, 30, 16, Compression::Lzms).is_err());
    }
}
