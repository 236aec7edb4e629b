//! The 24-byte resource header that locates a resource in a WIM file.

use super::bytes::Bytes;
use super::Result;

/// Resource flag: unused space (ignored).
pub const RESHDR_FLAG_FREE: u8 = 0x01;
/// Resource flag: metadata resource, blob table or XML data.
pub const RESHDR_FLAG_METADATA: u8 = 0x02;
/// Resource flag: compressed with the WIM's default compression, in chunks.
pub const RESHDR_FLAG_COMPRESSED: u8 = 0x04;
/// Resource flag: spanned (ignored).
pub const RESHDR_FLAG_SPANNED: u8 = 0x08;
/// Resource flag: part of a solid resource (WIM version 0xe00 only).
pub const RESHDR_FLAG_SOLID: u8 = 0x10;
/// `uncompressed_size` of a blob-table entry that describes a solid resource itself.
pub const SOLID_RESOURCE_MAGIC: u64 = 0x1_0000_0000;

/// On-disk size of a resource header.
pub const RESHDR_SIZE: usize = 24;

/// Where a resource lives and how large it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResHdr {
    /// Bytes the resource occupies in the file (compressed size incl. chunk table).
    pub size_in_wim: u64,
    /// `RESHDR_FLAG_*` bits.
    pub flags: u8,
    /// Absolute file offset of the resource.
    pub offset: u64,
    /// Size once decompressed.
    pub uncompressed_size: u64,
}

impl ResHdr {
    /// Parses a resource header from exactly 24 bytes at `offset` of `b`.
    pub fn parse(b: &Bytes<'_>, offset: u64) -> Result<Self> {
        let raw = b.u64(offset)?;
        Ok(ResHdr {
            size_in_wim: raw & 0x00ff_ffff_ffff_ffff,
            flags: (raw >> 56) as u8,
            offset: b.u64(offset + 8)?,
            uncompressed_size: b.u64(offset + 16)?,
        })
    }

    /// Serializes to the 24-byte on-disk form.
    pub fn to_bytes(&self) -> [u8; RESHDR_SIZE] {
        let mut out = [0u8; RESHDR_SIZE];
        let raw = (self.size_in_wim & 0x00ff_ffff_ffff_ffff) | ((self.flags as u64) << 56);
        out[0..8].copy_from_slice(&raw.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.uncompressed_size.to_le_bytes());
        out
    }

    pub fn is_compressed(&self) -> bool {
        self.flags & RESHDR_FLAG_COMPRESSED != 0
    }

    pub fn is_metadata(&self) -> bool {
        self.flags & RESHDR_FLAG_METADATA != 0
    }

    pub fn is_solid(&self) -> bool {
        self.flags & RESHDR_FLAG_SOLID != 0
    }

    /// Whether this header describes nothing (all zero), as for a missing integrity table.
    pub fn is_empty(&self) -> bool {
        self.size_in_wim == 0 && self.offset == 0 && self.uncompressed_size == 0
    }

    /// First byte past the resource in the file, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size_in_wim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = ResHdr {
            size_in_wim: 0x12_3456_789a,
            flags: 0x16,
            offset: 99,
            uncompressed_size: 7,
        };
        let b = h.to_bytes();
        assert_eq!(ResHdr::parse(&Bytes::new(&b, "t"), 0).unwrap(), h);
        assert!(ResHdr::parse(&Bytes::new(&b[..23], "t"), 0).is_err());
    }
}
