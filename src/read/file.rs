//! Positioned reads on a part file, shared by all threads without a seek lock.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One file of a WIM (a split set has several), read with positioned I/O.
#[derive(Debug)]
pub struct PartFile {
    pub path: PathBuf,
    file: File,
    pub len: u64,
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
            file,
            len,
        })
    }

    /// Fills `buf` from `offset`; reading past the end of the file is an error naming `what`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::invalid(
                &self.path,
                format!("{what} ({} bytes at offset {offset}) lies beyond the end of the file ({} bytes)", buf.len(), self.len),
            ));
        }
        read_at(&self.file, buf, offset)
            .map_err(|e| Error::io(&self.path, format!("reading {what} at offset {offset}"), e))
    }

    /// Reads `len` bytes at `offset` into a new vector.
    pub fn read_vec(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(Error::invalid(
                &self.path,
                format!("{what} ({len} bytes at offset {offset}) lies beyond the end of the file ({} bytes)", self.len),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact_at(&mut v, offset, what)?;
        Ok(v)
    }
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
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
