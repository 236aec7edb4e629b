//! Positioned reads on a part of a WIM, shared by all threads without a seek lock, from
//! whatever holds its bytes: a local file, or memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a part's bytes come from: anything that can fill a buffer from an offset, from
/// several threads at once.
pub trait ReadAt: Send + Sync {
    /// Fills `buf` with the bytes at `offset` (all of them, or an error).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;

    /// The same, for a read that is part of a scan of `span` (a resource): a source that
    /// reads ahead may read ahead up to the end of `span`, no further.
    fn read_exact_in(
        &self,
        buf: &mut [u8],
        offset: u64,
        span: std::ops::Range<u64>,
    ) -> std::io::Result<()> {
        let _ = span;
        self.read_exact_at(buf, offset)
    }
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        read_at(self, buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= self.len());
        match start.and_then(|s| self.get(s..s.checked_add(buf.len())?)) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// One part of a WIM (a split set has several), read with positioned I/O.
pub struct PartFile {
    /// The part's name in messages (its path, for a file).
    pub path: PathBuf,
    source: Box<dyn ReadAt>,
    pub len: u64,
}

impl std::fmt::Debug for PartFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}

/// Whether `path` is a pipe, socket or character device: something read as a stream.
fn is_stream(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| {
            let t = m.file_type();
            t.is_fifo() || t.is_socket() || t.is_char_device()
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

impl PartFile {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot stat", e))?
            .len();
        Ok(PartFile {
            path: path.to_path_buf(),
            source: Box::new(file),
            len,
        })
    }

    /// Opens a part named by a local path or, with the `remote` feature, an `http://`,
    /// `https://` or `s3://` URL.
    pub fn open_location(location: &Path) -> Result<Self> {
        match location.to_str() {
            #[cfg(feature = "remote")]
            Some(url) if is_url(url) => super::remote::open_part(url),
            #[cfg(not(feature = "remote"))]
            Some(url) if is_url(url) => Err(Error::invalid(
                location,
                "this wimfs was built without the `remote` feature: it cannot read URLs",
            )),
            _ if location == Path::new("-") => {
                Self::spool(location, &mut std::io::stdin().lock(), "standard input")
            }
            _ if is_stream(location) => {
                let mut f =
                    File::open(location).map_err(|e| Error::io(location, "cannot open", e))?;
                Self::spool(location, &mut f, "the pipe")
            }
            _ => Self::open(location),
        }
    }

    /// A WIM that arrives as a stream (`-` for standard input, a pipe): copied whole into an
    /// unlinked temporary file in `$TMPDIR` first, then read like any file (wimlib reads a
    /// pipable WIM from a pipe as it comes; wimfs needs the space of the file once).
    fn spool(name: &Path, input: &mut dyn std::io::Read, what: &str) -> Result<Self> {
        let tmp_dir = std::env::temp_dir();
        let mut tmp = tempfile::tempfile()
            .map_err(|e| Error::io(&tmp_dir, "making a temporary file to hold the WIM", e))?;
        let len = std::io::copy(input, &mut tmp).map_err(|e| {
            Error::io(
                name,
                format!("copying the WIM from {what} into {}", tmp_dir.display()),
                e,
            )
        })?;
        Ok(PartFile {
            path: name.to_path_buf(),
            source: Box::new(tmp),
            len,
        })
    }

    /// A part of `len` bytes read from `source`, called `name` in messages.
    pub fn from_source(name: impl Into<PathBuf>, source: Box<dyn ReadAt>, len: u64) -> Self {
        PartFile {
            path: name.into(),
            source,
            len,
        }
    }

    /// A part held in memory, called `name` in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        Self::from_source(name, Box::new(bytes), len)
    }

    /// Fills `buf` from `offset`; reading past the end of the file is an error naming `what`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        self.read_in(buf, offset, None, what)
    }

    /// Fills `buf` from `offset`, a read inside the resource that occupies `span` of the part
    /// (sources that read ahead stop at its end).
    pub fn read_in(
        &self,
        buf: &mut [u8],
        offset: u64,
        span: Option<std::ops::Range<u64>>,
        what: &str,
    ) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::invalid(
                &self.path,
                format!("{what} ({} bytes at offset {offset}) lies beyond the end of the file ({} bytes)", buf.len(), self.len),
            ));
        }
        match span {
            Some(span) => self.source.read_exact_in(buf, offset, span),
            None => self.source.read_exact_at(buf, offset),
        }
        .map_err(|e| Error::io(&self.path, format!("reading {what} at offset {offset}"), e))
    }

    /// Reads `len` bytes at `offset` into a new vector.
    pub fn read_vec(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        self.read_vec_in(offset, len, None, what)
    }

    /// Reads `len` bytes at `offset` inside the resource at `span` into a new vector.
    pub fn read_vec_in(
        &self,
        offset: u64,
        len: u64,
        span: Option<std::ops::Range<u64>>,
        what: &str,
    ) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(Error::invalid(
                &self.path,
                format!("{what} ({len} bytes at offset {offset}) lies beyond the end of the file ({} bytes)", self.len),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_in(&mut v, offset, span, what)?;
        Ok(v)
    }
}

/// Whether a WIM location names a remote object (`http://`, `https://`, `s3://`) rather
/// than a local file.
pub fn is_url(s: &str) -> bool {
    ["http://", "https://", "s3://"]
        .iter()
        .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_parts_read_only_what_they_hold() {
        let p = PartFile::from_bytes("mem.wim", b"0123456789".to_vec());
        let mut b = [0u8; 4];
        p.read_exact_at(&mut b, 6, "tail").unwrap();
        assert_eq!(&b, b"6789");
        let e = p.read_exact_at(&mut b, 7, "tail").unwrap_err().to_string();
        assert!(e.contains("mem.wim") && e.contains("beyond the end"), "{e}");
        assert!(p.read_exact_at(&mut b, u64::MAX - 1, "far").is_err());
        assert!(Vec::from(*b"ab").read_exact_at(&mut b, 1).is_err());
    }

    #[test]
    fn a_wim_in_memory_reads_as_its_file_does() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample.wim");
        let wim = crate::Wim::from_bytes("sample (memory)", std::fs::read(&path).unwrap()).unwrap();
        let file = crate::Wim::open(&path).unwrap();
        assert_eq!(wim.xml().images.len(), file.xml().images.len());
        let (a, b) = (
            crate::Image::load(&wim, 1).unwrap(),
            crate::Image::load(&file, 1).unwrap(),
        );
        let d = a.lookup("/README.txt").unwrap();
        let read = |w: &crate::Wim, i: &crate::Image| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut w.open_stream(i.inode_of(d).data_stream()), &mut s)
                .unwrap();
            s
        };
        assert_eq!(read(&wim, &a), read(&file, &b));
        assert_eq!(wim.path(), Path::new("sample (memory)"));
    }
}
