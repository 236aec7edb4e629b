//! Bounds-checked little-endian field access over a byte slice.

use super::{FormatError, Result};

/// A view of a structure's bytes that reports truncation instead of panicking.
#[derive(Clone, Copy)]
pub struct Bytes<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Bytes<'a> {
    /// Wraps `data`, naming the structure `what` in errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Bytes { data, what }
    }

    /// The underlying slice.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// `len` bytes at `offset`.
    pub fn slice(&self, offset: u64, len: u64) -> Result<&'a [u8]> {
        let have = self.data.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= have => Ok(&self.data[offset as usize..end as usize]),
            _ => Err(FormatError::Truncated {
                what: self.what,
                offset,
                need: len,
                have,
            }),
        }
    }

    /// A fixed-size array at `offset`.
    pub fn array<const N: usize>(&self, offset: u64) -> Result<[u8; N]> {
        let s = self.slice(offset, N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&self, offset: u64) -> Result<u8> {
        Ok(self.array::<1>(offset)?[0])
    }

    pub fn u16(&self, offset: u64) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(offset)?))
    }

    pub fn u32(&self, offset: u64) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(offset)?))
    }

    pub fn u64(&self, offset: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(offset)?))
    }
}

/// Decodes UTF-16LE bytes (even length) to a String, replacing unpaired surrogates.
pub fn utf16le_to_string(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Encodes a string as UTF-16LE bytes (no terminator).
pub fn string_to_utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Rounds `n` up to a multiple of 8, or `None` on overflow.
pub fn align8(n: u64) -> Option<u64> {
    n.checked_add(7).map(|v| v & !7)
}
