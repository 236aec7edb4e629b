//! Writing one blob as a (non-solid) resource: chunked, compressed in parallel, hashed.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use crate::codec::{new_compressor, Compression, Compressor};
use crate::format::chunk_table::num_chunks;
use crate::format::reshdr::{ResHdr, RESHDR_FLAG_COMPRESSED, RESHDR_FLAG_METADATA};
use crate::format::Sha1Hash;

/// How resources are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceOptions {
    pub compression: Compression,
    /// Uncompressed bytes per chunk (ignored for `Compression::None`).
    pub chunk_size: u32,
    /// Compressor level, 1..=100.
    pub level: u32,
}

/// What a resource write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenResource {
    pub reshdr: ResHdr,
    /// SHA-1 of the uncompressed data.
    pub hash: Sha1Hash,
}

/// Why a resource could not be written. The caller adds which file it was writing.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// Reading the blob's source failed.
    #[error("reading the data: {0}")]
    Read(std::io::Error),
    /// The source yielded a different number of bytes than announced.
    #[error("the data changed while it was being written (expected {expected} bytes)")]
    Changed { expected: u64 },
    /// Writing the WIM failed.
    #[error("writing the WIM: {0}")]
    Write(std::io::Error),
    /// The compressor could not be made for these parameters.
    #[error("{0}")]
    Codec(#[from] crate::codec::CodecError),
}

/// Something that can yield a blob's bytes, more than once (a compressed resource that
/// turns out no smaller than the data is rewritten uncompressed from a second read).
pub trait BlobSource: Sync {
    /// A fresh reader positioned at the first byte.
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>>;
}

impl BlobSource for Vec<u8> {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.as_slice()))
    }
}

impl BlobSource for std::path::PathBuf {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(std::fs::File::open(self)?))
    }
}

/// Chunks compressed per parallel batch, per worker thread: enough to keep every core busy
/// without holding much of a big file in memory.
const CHUNKS_PER_THREAD: usize = 4;

/// A compressor and the (format, chunk size, level) it was made for.
type CachedCompressor = Option<((Compression, u32, u32), Box<dyn Compressor>)>;

thread_local! {
    /// Compressors are expensive to set up (LZX allocates match-finder tables), so each
    /// worker keeps one for the parameters it last used.
    static COMPRESSOR: RefCell<CachedCompressor> = const { RefCell::new(None) };
}

/// Compresses one chunk with this thread's compressor; `None` means "store it raw".
pub(super) fn compress_chunk(
    opts: &ResourceOptions,
    chunk: &[u8],
) -> Result<Option<Vec<u8>>, ResourceError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let key = (opts.compression, opts.chunk_size, opts.level);
        if slot.as_ref().is_none_or(|(k, _)| *k != key) {
            *slot = Some((
                key,
                new_compressor(opts.compression, opts.chunk_size, opts.level)?,
            ));
        }
        let (_, c) = slot.as_mut().expect("set above");
        let mut out = Vec::with_capacity(chunk.len());
        Ok(c.compress(chunk, &mut out).then_some(out))
    })
}

/// Reads exactly `buf.len()` bytes, failing with `Changed` on a short source.
pub(super) fn fill(src: &mut dyn Read, buf: &mut [u8], expected: u64) -> Result<(), ResourceError> {
    src.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ResourceError::Changed { expected }
        } else {
            ResourceError::Read(e)
        }
    })
}

/// Fails with `Changed` if the source holds more than the announced size.
pub(super) fn expect_eof(src: &mut dyn Read, expected: u64) -> Result<(), ResourceError> {
    let mut probe = [0u8; 1];
    match src.read(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(ResourceError::Changed { expected }),
        Err(e) => Err(ResourceError::Read(e)),
    }
}

/// Writes `size` bytes of `source` as one resource at `offset`, the current position of
/// `out`, leaving `out` positioned at the resource's end. Compressed chunks run on the
/// current rayon pool. `progress` gets the uncompressed bytes done as they are done.
pub fn write_resource<W: Write + Seek>(
    out: &mut W,
    offset: u64,
    source: &dyn BlobSource,
    size: u64,
    opts: &ResourceOptions,
    metadata: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WrittenResource, ResourceError> {
    let meta_flag = if metadata { RESHDR_FLAG_METADATA } else { 0 };
    if opts.compression == Compression::None || size == 0 {
        let hash = write_stored(out, source, size, progress)?;
        return Ok(stored(offset, size, meta_flag, hash));
    }
    let chunk = opts.chunk_size as u64;
    let mut res = Chunked::begin(out, offset, size, opts.chunk_size)?;
    let mut src = source.open().map_err(ResourceError::Read)?;
    let mut hasher = Sha1::new();
    let batch_bytes = chunk * (rayon::current_num_threads().max(1) * CHUNKS_PER_THREAD) as u64;
    let mut done = 0u64;
    // Reads (and hashes) the batch that starts at `from` into `buf`.
    let mut read_batch = |buf: &mut Vec<u8>, from: u64| -> Result<(), ResourceError> {
        buf.resize((size - from).min(batch_bytes) as usize, 0);
        fill(&mut *src, buf, size)?;
        hasher.update(&buf[..]);
        Ok(())
    };
    let (mut data, mut next) = (Vec::new(), Vec::new());
    read_batch(&mut data, 0)?;
    while done < size {
        let take = data.len();
        // The next batch is read and hashed while this one compresses, so the workers do
        // not wait for the disk between batches.
        let (results, read) = rayon::join(
            || {
                data.par_chunks(opts.chunk_size as usize)
                    .map(|c| compress_chunk(opts, c))
                    .collect::<Vec<_>>()
            },
            || match done + take as u64 {
                from if from < size => read_batch(&mut next, from),
                _ => Ok(()),
            },
        );
        for (raw, r) in data.chunks(opts.chunk_size as usize).zip(results) {
            res.push(out, r?.as_deref().unwrap_or(raw))?;
        }
        read?;
        done += take as u64;
        progress(take as u64);
        std::mem::swap(&mut data, &mut next);
    }
    expect_eof(&mut *src, size)?;
    drop(src);
    res.finish(out, source, size, hasher.finalize().into(), meta_flag)
}

/// A chunked, compressed resource being written: a chunk table's worth of zeros first, then
/// the chunks in order, then the table over the zeros.
pub(super) struct Chunked {
    offset: u64,
    table_len: u64,
    /// Bytes per table entry.
    entry: usize,
    /// Offset of each chunk after the table.
    starts: Vec<u64>,
    written: u64,
}

impl Chunked {
    /// Starts a resource of `size` bytes at `offset`, the current position of `out`.
    pub(super) fn begin<W: Write>(
        out: &mut W,
        offset: u64,
        size: u64,
        chunk_size: u32,
    ) -> Result<Self, ResourceError> {
        let count = num_chunks(size, chunk_size);
        // Same threshold as the reader: 8-byte entries only for resources of 4 GiB or more.
        let entry = if size > u32::MAX as u64 { 8 } else { 4 };
        let table_len = (count - 1) * entry as u64;
        out.write_all(&vec![0u8; table_len as usize])
            .map_err(ResourceError::Write)?;
        Ok(Self {
            offset,
            table_len,
            entry,
            starts: Vec::with_capacity(count as usize),
            written: 0,
        })
    }

    /// Appends the next chunk as it is stored (compressed, or raw when that is not smaller).
    pub(super) fn push<W: Write>(
        &mut self,
        out: &mut W,
        bytes: &[u8],
    ) -> Result<(), ResourceError> {
        self.starts.push(self.written);
        out.write_all(bytes).map_err(ResourceError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the chunk table and leaves `out` at the resource's end. If compression did not
    /// pay, the resource is rewritten from `source` uncompressed instead (as wimlib does, so
    /// that readers never see a "compressed" resource larger than its contents); `hash` is
    /// the data's SHA-1 as read the first time.
    pub(super) fn finish<W: Write + Seek>(
        self,
        out: &mut W,
        source: &dyn BlobSource,
        size: u64,
        hash: Sha1Hash,
        meta_flag: u8,
    ) -> Result<WrittenResource, ResourceError> {
        let offset = self.offset;
        let total = self.table_len + self.written;
        if total >= size {
            out.seek(SeekFrom::Start(offset))
                .map_err(ResourceError::Write)?;
            let again = write_stored(out, source, size, &|_| {})?;
            if again != hash {
                return Err(ResourceError::Changed { expected: size });
            }
            return Ok(stored(offset, size, meta_flag, hash));
        }
        let mut table = Vec::with_capacity(self.table_len as usize);
        for &s in &self.starts[1..] {
            table.extend_from_slice(&s.to_le_bytes()[..self.entry]);
        }
        out.seek(SeekFrom::Start(offset))
            .map_err(ResourceError::Write)?;
        out.write_all(&table).map_err(ResourceError::Write)?;
        out.seek(SeekFrom::Start(offset + total))
            .map_err(ResourceError::Write)?;
        Ok(WrittenResource {
            reshdr: ResHdr {
                size_in_wim: total,
                flags: meta_flag | RESHDR_FLAG_COMPRESSED,
                offset,
                uncompressed_size: size,
            },
            hash,
        })
    }
}

/// A small blob read, hashed and compressed in memory: the bytes of its resource (chunk
/// table and chunks, or the data itself when compression does not pay).
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub compressed: bool,
    /// Uncompressed size.
    pub size: u64,
    pub hash: Sha1Hash,
}

impl Encoded {
    /// The resource header of these bytes written at `offset`.
    pub fn reshdr(&self, offset: u64) -> ResHdr {
        ResHdr {
            size_in_wim: self.bytes.len() as u64,
            flags: if self.compressed {
                RESHDR_FLAG_COMPRESSED
            } else {
                0
            },
            offset,
            uncompressed_size: self.size,
        }
    }
}

/// Reads, hashes and compresses a whole blob on the calling thread (for blobs small enough
/// to hold in memory; many of them are encoded side by side, one per worker). Data whose
/// hash `known` accepts (a blob the file already has) is not compressed: the result then
/// holds the hash and no bytes.
pub fn encode_small(
    source: &dyn BlobSource,
    size: u64,
    opts: &ResourceOptions,
    known: &(dyn Fn(&Sha1Hash) -> bool + Sync),
) -> Result<Encoded, ResourceError> {
    let mut src = source.open().map_err(ResourceError::Read)?;
    let mut data = vec![0u8; size as usize];
    fill(&mut *src, &mut data, size)?;
    expect_eof(&mut *src, size)?;
    drop(src);
    let hash: Sha1Hash = Sha1::digest(&data).into();
    if known(&hash) {
        return Ok(Encoded {
            bytes: Vec::new(),
            compressed: false,
            size,
            hash,
        });
    }
    if opts.compression == Compression::None || size == 0 {
        return Ok(Encoded {
            bytes: data,
            compressed: false,
            size,
            hash,
        });
    }
    let entry = if size > u32::MAX as u64 { 8 } else { 4 };
    let count = num_chunks(size, opts.chunk_size) as usize;
    let table_len = (count - 1) * entry;
    let mut bytes = vec![0u8; table_len];
    for (i, c) in data.chunks(opts.chunk_size as usize).enumerate() {
        if i > 0 {
            let at = (i - 1) * entry;
            let start = (bytes.len() - table_len) as u64;
            bytes[at..at + entry].copy_from_slice(&start.to_le_bytes()[..entry]);
        }
        match compress_chunk(opts, c)? {
            Some(z) => bytes.extend_from_slice(&z),
            None => bytes.extend_from_slice(c),
        }
        if bytes.len() as u64 >= size {
            // Compression does not pay: stored plainly, as `write_resource` does.
            return Ok(Encoded {
                bytes: data,
                compressed: false,
                size,
                hash,
            });
        }
    }
    Ok(Encoded {
        bytes,
        compressed: true,
        size,
        hash,
    })
}

fn stored(offset: u64, size: u64, flags: u8, hash: Sha1Hash) -> WrittenResource {
    WrittenResource {
        reshdr: ResHdr {
            size_in_wim: size,
            flags,
            offset,
            uncompressed_size: size,
        },
        hash,
    }
}

/// Copies the source verbatim, returning its SHA-1.
fn write_stored<W: Write>(
    out: &mut W,
    source: &dyn BlobSource,
    size: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Sha1Hash, ResourceError> {
    let mut src = source.open().map_err(ResourceError::Read)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; (size.min(1 << 20)) as usize];
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        fill(&mut *src, &mut buf[..n], size)?;
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ResourceError::Write)?;
        done += n as u64;
        progress(n as u64);
    }
    expect_eof(&mut *src, size)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::codec::new_decompressor;
    use std::io::Cursor;

    fn roundtrip(
        data: &[u8],
        compression: Compression,
        chunk_size: u32,
    ) -> (WrittenResource, Vec<u8>) {
        let mut out = Cursor::new(vec![0xAAu8; 8]);
        out.seek(SeekFrom::End(0)).unwrap();
        let opts = ResourceOptions {
            compression,
            chunk_size,
            level: 50,
        };
        let src = data.to_vec();
        let w =
            write_resource(&mut out, 8, &src, data.len() as u64, &opts, false, &|_| {}).unwrap();
        assert_eq!(out.position(), 8 + w.reshdr.size_in_wim);
        assert_eq!(w.hash, <[u8; 20]>::from(Sha1::digest(data)));
        (
            w,
            read_back(&out.into_inner(), &w.reshdr, compression, chunk_size),
        )
    }

    /// The uncompressed contents of the resource `reshdr` places in `file`.
    pub(in crate::write) fn read_back(
        file: &[u8],
        reshdr: &ResHdr,
        compression: Compression,
        chunk_size: u32,
    ) -> Vec<u8> {
        // Bytes past the resource may be left from a compressed attempt; the writer truncates.
        let res = &file[reshdr.offset as usize..(reshdr.offset + reshdr.size_in_wim) as usize];
        if !reshdr.is_compressed() {
            return res.to_vec();
        }
        let size = reshdr.uncompressed_size as usize;
        let n = num_chunks(size as u64, chunk_size) as usize;
        let mut bounds = vec![0u64];
        for i in 0..n - 1 {
            bounds.push(u32::from_le_bytes(res[i * 4..i * 4 + 4].try_into().unwrap()) as u64);
        }
        let body = &res[(n - 1) * 4..];
        bounds.push(body.len() as u64);
        let mut dec = new_decompressor(compression, chunk_size).unwrap();
        let mut plain = Vec::new();
        for i in 0..n {
            let len = (size - i * chunk_size as usize).min(chunk_size as usize);
            let comp = &body[bounds[i] as usize..bounds[i + 1] as usize];
            let mut buf = vec![0u8; len];
            if comp.len() == len {
                buf.copy_from_slice(comp);
            } else {
                dec.decompress(comp, &mut buf).unwrap();
            }
            plain.extend_from_slice(&buf);
        }
        plain
    }

    #[test]
    fn compressed_resources_decode_back() {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("row {i} of some text\n").as_bytes());
        }
        for c in [Compression::Xpress, Compression::Lzx] {
            let (w, plain) = roundtrip(&data, c, 32768);
            assert!(w.reshdr.is_compressed());
            assert!(w.reshdr.size_in_wim < data.len() as u64);
            assert!(plain == data, "data differs after the round trip");
        }
    }

    #[test]
    fn incompressible_data_is_stored() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (w, plain) = roundtrip(&data, Compression::Xpress, 32768);
        assert!(!w.reshdr.is_compressed());
        assert_eq!(w.reshdr.size_in_wim, data.len() as u64);
        assert!(plain == data, "data differs after the round trip");
        let (w, _) = roundtrip(&data, Compression::None, 32768);
        assert_eq!(w.reshdr.flags, 0);
    }
}
