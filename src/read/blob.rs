//! `std::io::Read + Seek` over one blob.

use std::io::{self, Read, Seek, SeekFrom};

use super::wim::{BlobLocation, Wim};

/// Reads a blob (a file's data stream) sequentially or at random, decoding only the chunks
/// it touches through the WIM's chunk cache.
pub struct BlobReader<'a> {
    wim: &'a Wim,
    loc: Option<BlobLocation>,
    pos: u64,
}

impl<'a> BlobReader<'a> {
    /// A reader over `loc`, or over an empty stream when `None`.
    pub fn new(wim: &'a Wim, loc: Option<BlobLocation>) -> Self {
        BlobReader { wim, loc, pos: 0 }
    }

    /// Size of the stream in bytes.
    pub fn len(&self) -> u64 {
        self.loc.map_or(0, |l| l.size)
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(loc) = self.loc else { return Ok(0) };
        if self.pos >= loc.size {
            return Ok(0);
        }
        let n = ((loc.size - self.pos).min(buf.len() as u64)) as usize;
        self.wim
            .read_blob_at(&loc, self.pos, &mut buf[..n])
            .map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the stream",
            )),
        }
    }
}

/// Reads a whole blob from its start, hashing as it goes: the read that reaches the end
/// fails with `InvalidData` if the data's SHA-1 is not the one the blob table gives, so a
/// copy made through it never silently keeps corrupt data.
pub struct CheckedBlobReader<'a> {
    inner: BlobReader<'a>,
    hasher: Option<sha1::Sha1>,
}

impl<'a> CheckedBlobReader<'a> {
    /// A checking reader over `loc` (an empty stream when `None`).
    pub fn new(wim: &'a Wim, loc: Option<BlobLocation>) -> Self {
        use sha1::Digest;
        CheckedBlobReader {
            inner: BlobReader::new(wim, loc),
            hasher: Some(sha1::Sha1::new()),
        }
    }
}

impl Read for CheckedBlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha1::Digest;
        let n = self.inner.read(buf)?;
        let Some(h) = self.hasher.as_mut() else {
            return Ok(n);
        };
        h.update(&buf[..n]);
        if n == 0 || self.inner.pos >= self.inner.len() {
            let h = self.hasher.take().expect("checked above");
            if let Some(loc) = self.inner.loc.filter(|l| l.size > 0) {
                // The same check and message as whole-blob reads (naming the WIM file).
                self.inner
                    .wim
                    .check_hash(&loc, &h.finalize().into())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
        Ok(n)
    }
}
