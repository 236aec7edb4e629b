//! Chunk tables of compressed resources, normal and solid ("alternate") format.
//!
//! A normal compressed resource begins with `num_chunks - 1` entries giving the start of
//! chunks 1.. relative to the end of the table (4 bytes each, 8 if the resource is 4 GiB or
//! more). A solid resource begins with a 16-byte header (uncompressed size, chunk size,
//! compression format) and then the compressed size of every chunk, 4 bytes each.
//!
//! A compressed resource of a pipable WIM (wimlib's `WLPWM` format) has a normal table,
//! but at its end, and each chunk is preceded by a 4-byte header (its compressed size) that
//! the table's offsets leave out.

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
    /// `bounds[i]..bounds[i+1] - gap`.
    pub bounds: Vec<u64>,
    /// Bytes in front of each chunk that are not part of the one before (4 in a pipable
    /// WIM: the next chunk's header; else 0).
    pub gap: u64,
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
        (self.bounds[i], self.bounds[i + 1] - self.gap)
    }
}

/// Number of chunks a resource of `usize` bytes has with `chunk_size`-byte chunks.
pub fn num_chunks(usize: u64, chunk_size: u32) -> u64 {
    usize.div_ceil(chunk_size as u64)
}

/// Bytes of the chunk table at the start of a normal compressed resource (`None` when
/// the size is past any file's: a claim no file can back).
pub fn normal_table_size(usize: u64, chunk_size: u32) -> Option<u64> {
    let entry = if usize > u32::MAX as u64 { 8 } else { 4 };
    num_chunks(usize, chunk_size)
        .saturating_sub(1)
        .checked_mul(entry)
}

/// Checks that a compressed resource stored in `size_in_wim` bytes can hold `usize` bytes
/// in `chunk_size`-byte chunks: its chunk table (after the header, for a solid one) and at
/// least one byte per chunk must fit. This bounds what any later step allocates for the
/// resource by the bytes really in the file.
pub fn check_plausible(usize: u64, size_in_wim: u64, chunk_size: u32, solid: bool) -> Result<()> {
    if chunk_size == 0 {
        return Err(FormatError::invalid("resource", "chunk size 0"));
    }
    let n = num_chunks(usize, chunk_size);
    let table = if solid {
        solid_table_size(usize, chunk_size).and_then(|t| t.checked_add(SOLID_HEADER_SIZE))
    } else {
        normal_table_size(usize, chunk_size)
    };
    match table.and_then(|t| t.checked_add(n)) {
        Some(need) if need <= size_in_wim => Ok(()),
        _ => Err(FormatError::invalid(
            "resource",
            format!(
                "{usize} bytes in {n} chunks of {chunk_size} bytes cannot be stored in \
                 {size_in_wim} bytes"
            ),
        )),
    }
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
    let table_size = normal_table_size(usize, chunk_size).unwrap_or(u64::MAX);
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
        gap: 0,
    };
    for i in 0..t.num_chunks() {
        let (s, e) = t.chunk_range(i);
        check_chunk(i, e.saturating_sub(s), t.chunk_usize(i))?;
    }
    Ok(t)
}

/// Bytes in front of each chunk of a pipable WIM's compressed resource.
pub const PIPABLE_CHUNK_HEADER: u64 = 4;

/// Parses the chunk table of a pipable WIM's compressed resource: `table` is the
/// [`normal_table_size`] bytes at the resource's end; chunks (each after its 4-byte
/// header) fill the rest.
pub fn parse_pipable(
    table: &[u8],
    usize: u64,
    size_in_wim: u64,
    chunk_size: u32,
    compression: Compression,
) -> Result<ChunkTable> {
    let n = num_chunks(usize, chunk_size);
    let table_size = table.len() as u64;
    let headers = n.saturating_mul(PIPABLE_CHUNK_HEADER);
    let Some(data_end) = size_in_wim
        .checked_sub(table_size)
        .filter(|&e| e >= headers)
    else {
        return Err(FormatError::invalid(
            "pipable chunk table",
            format!("{n} chunks and their table do not fit in {size_in_wim} bytes"),
        ));
    };
    // The offsets as if there were no chunk headers, then moved past them.
    let mut t = parse_normal(
        table,
        usize,
        data_end - headers + table_size,
        chunk_size,
        compression,
    )?;
    for (i, b) in t.bounds.iter_mut().enumerate() {
        *b = *b - table_size + (i as u64 + 1) * PIPABLE_CHUNK_HEADER;
    }
    t.gap = PIPABLE_CHUNK_HEADER;
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
    if !chunk_size.is_power_of_two()
        || chunk_size > 1 << 30
        || !compression.chunk_size_is_valid(chunk_size)
    {
        return Err(FormatError::invalid(
            "solid resource header",
            format!(
                "chunk size {chunk_size} is not valid for {}",
                compression.name()
            ),
        ));
    }
    Ok((usize, chunk_size, compression))
}

/// Bytes of a solid resource's chunk table (after its 16-byte header; `None` when the
/// size is past any file's).
pub fn solid_table_size(usize: u64, chunk_size: u32) -> Option<u64> {
    num_chunks(usize, chunk_size).checked_mul(4)
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
    let Some(start) = n
        .checked_mul(4)
        .and_then(|t| t.checked_add(SOLID_HEADER_SIZE))
    else {
        return Err(FormatError::invalid("solid chunk table", "too many chunks"));
    };
    if table.len() as u64 != start - SOLID_HEADER_SIZE {
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
        gap: 0,
    };
    for i in 0..n {
        let csize = b.u32(i * 4)? as u64;
        check_chunk(i as usize, csize, t.chunk_usize(i as usize))?;
        cur = cur.saturating_add(csize);
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
    fn pipable_chunks_skip_their_headers() {
        // Three chunks of 10, 7 and 5 stored bytes, each after a 4-byte header, then a
        // table with the offsets of chunks 1 and 2 as if there were no headers.
        let table: Vec<u8> = [10u32, 17].iter().flat_map(|v| v.to_le_bytes()).collect();
        let size = 3 * 4 + 22 + 8;
        let t = parse_pipable(&table, 2 * 32768 + 100, size, 32768, Compression::Lzx).unwrap();
        assert_eq!(t.chunk_range(0), (4, 14));
        assert_eq!(t.chunk_range(1), (18, 25));
        assert_eq!(t.chunk_range(2), (29, 34));
        assert!(parse_pipable(&table, 2 * 32768 + 100, 19, 32768, Compression::Lzx).is_err());
    }

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
    fn sizes_no_file_can_back_are_refused() {
        // Chunk size 1 and 2^61+1 bytes: the table size overflows u64 instead of wrapping.
        assert_eq!(normal_table_size((1 << 61) + 1, 1), None);
        assert_eq!(solid_table_size(u64::MAX, 1), None);
        assert!(check_plausible((1 << 61) + 1, 1 << 20, 1, false).is_err());
        // 1 TiB in 32 KiB chunks needs a 256 MiB table: not in a 4 KiB resource.
        assert!(check_plausible(1 << 40, 4096, 32768, false).is_err());
        assert!(check_plausible(1 << 40, 4096, 1 << 30, true).is_err());
        // What real resources look like passes: 1 MiB in 32 KiB chunks within 40 KiB.
        assert!(check_plausible(1 << 20, 40_000, 32768, false).is_ok());
        assert!(check_plausible(64 << 20, 16 + 4 + 1, 64 << 20, true).is_ok());
        assert!(check_plausible(0, 0, 32768, false).is_ok());
        // Every chunk needs at least one byte.
        assert!(check_plausible(10 * 32768, 9 * 4 + 9, 32768, false).is_err());
        assert!(check_plausible(10 * 32768, 9 * 4 + 10, 32768, false).is_ok());
    }

    #[test]
    fn solid_table() {
        let header = |usize: u64, chunk: u32, format: u32| {
            let mut hdr = Vec::new();
            hdr.extend_from_slice(&usize.to_le_bytes());
            hdr.extend_from_slice(&chunk.to_le_bytes());
            hdr.extend_from_slice(&format.to_le_bytes());
            hdr
        };
        let usize = (1 << 15) + 4;
        assert_eq!(
            parse_solid_header(&header(usize, 1 << 15, 3)).unwrap(),
            (usize, 1 << 15, Compression::Lzms)
        );
        // Chunk sizes as wimlib accepts them per format.
        assert!(parse_solid_header(&header(usize, 16, 3)).is_err());
        assert!(parse_solid_header(&header(usize, 1 << 17, 1)).is_err());
        assert!(parse_solid_header(&header(usize, 1 << 31, 3)).is_err());
        let mut table = Vec::new();
        table.extend_from_slice(&9u32.to_le_bytes());
        table.extend_from_slice(&4u32.to_le_bytes());
        let t = parse_solid(&table, usize, 16 + 8 + 13, 1 << 15, Compression::Lzms).unwrap();
        assert_eq!(t.bounds, vec![24, 33, 37]);
        assert!(parse_solid(&table, usize, 30, 1 << 15, Compression::Lzms).is_err());
    }
}
