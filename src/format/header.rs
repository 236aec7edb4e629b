//! The 208-byte WIM header.

use super::bytes::Bytes;
use super::reshdr::{ResHdr, RESHDR_SIZE};
use super::{FormatError, Result};
use crate::codec::Compression;

/// On-disk size of the header.
pub const HEADER_SIZE: usize = 208;
/// Magic of a normal WIM file.
pub const WIM_MAGIC: [u8; 8] = *b"MSWIM\0\0\0";
/// Magic of a wimlib "pipable" WIM.
pub const PWM_MAGIC: [u8; 8] = *b"WLPWM\0\0\0";
/// Version of ordinary WIM files.
pub const VERSION_DEFAULT: u32 = 0x10d00;
/// Version of WIM files that may contain solid resources (ESD files).
pub const VERSION_SOLID: u32 = 0xe00;

pub const FLAG_RESERVED: u32 = 0x0000_0001;
pub const FLAG_COMPRESSION: u32 = 0x0000_0002;
pub const FLAG_READONLY: u32 = 0x0000_0004;
pub const FLAG_SPANNED: u32 = 0x0000_0008;
pub const FLAG_RESOURCE_ONLY: u32 = 0x0000_0010;
pub const FLAG_METADATA_ONLY: u32 = 0x0000_0020;
pub const FLAG_WRITE_IN_PROGRESS: u32 = 0x0000_0040;
pub const FLAG_RP_FIX: u32 = 0x0000_0080;
pub const FLAG_COMPRESS_RESERVED: u32 = 0x0001_0000;
pub const FLAG_COMPRESS_XPRESS: u32 = 0x0002_0000;
pub const FLAG_COMPRESS_LZX: u32 = 0x0004_0000;
pub const FLAG_COMPRESS_LZMS: u32 = 0x0008_0000;
pub const FLAG_COMPRESS_XPRESS2: u32 = 0x0020_0000;

/// Names of the header flags, for `info` output.
pub const FLAG_NAMES: &[(u32, &str)] = &[
    (FLAG_RESERVED, "RESERVED"),
    (FLAG_COMPRESSION, "COMPRESSION"),
    (FLAG_READONLY, "READONLY"),
    (FLAG_SPANNED, "SPANNED"),
    (FLAG_RESOURCE_ONLY, "RESOURCE_ONLY"),
    (FLAG_METADATA_ONLY, "METADATA_ONLY"),
    (FLAG_WRITE_IN_PROGRESS, "WRITE_IN_PROGRESS"),
    (FLAG_RP_FIX, "RP_FIX"),
    (FLAG_COMPRESS_RESERVED, "COMPRESS_RESERVED"),
    (FLAG_COMPRESS_XPRESS, "COMPRESS_XPRESS"),
    (FLAG_COMPRESS_LZX, "COMPRESS_LZX"),
    (FLAG_COMPRESS_LZMS, "COMPRESS_LZMS"),
    (FLAG_COMPRESS_XPRESS2, "COMPRESS_XPRESS2"),
];

/// The parsed WIM header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub flags: u32,
    pub chunk_size: u32,
    pub guid: [u8; 16],
    pub part_number: u16,
    pub total_parts: u16,
    pub image_count: u32,
    pub blob_table: ResHdr,
    pub xml: ResHdr,
    pub boot_metadata: ResHdr,
    pub boot_index: u32,
    pub integrity: ResHdr,
}

impl Header {
    /// Parses and validates the header at the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let b = Bytes::new(data, "WIM header");
        b.slice(0, HEADER_SIZE as u64)?;
        let magic: [u8; 8] = b.array(0)?;
        if magic != WIM_MAGIC && magic != PWM_MAGIC {
            return Err(FormatError::invalid(
                "WIM header",
                "not a WIM file (bad magic)",
            ));
        }
        let header_size = b.u32(8)?;
        if header_size != HEADER_SIZE as u32 {
            return Err(FormatError::invalid(
                "WIM header",
                format!("header size {header_size}, expected 208"),
            ));
        }
        let h = Header {
            magic,
            version: b.u32(12)?,
            flags: b.u32(16)?,
            chunk_size: b.u32(20)?,
            guid: b.array(24)?,
            part_number: b.u16(40)?,
            total_parts: b.u16(42)?,
            image_count: b.u32(44)?,
            blob_table: ResHdr::parse(&b, 48)?,
            xml: ResHdr::parse(&b, 48 + RESHDR_SIZE as u64)?,
            boot_metadata: ResHdr::parse(&b, 48 + 2 * RESHDR_SIZE as u64)?,
            boot_index: b.u32(120)?,
            integrity: ResHdr::parse(&b, 124)?,
        };
        if h.version != VERSION_DEFAULT && h.version != VERSION_SOLID {
            return Err(FormatError::invalid(
                "WIM header",
                format!("unknown version {:#x}", h.version),
            ));
        }
        if h.total_parts == 0 || h.part_number == 0 || h.part_number > h.total_parts {
            return Err(FormatError::invalid(
                "WIM header",
                format!("part {} of {} is impossible", h.part_number, h.total_parts),
            ));
        }
        let compression = h.compression()?;
        if !compression.chunk_size_is_valid(h.chunk_size) {
            return Err(FormatError::invalid(
                "WIM header",
                format!(
                    "chunk size {} is not valid for {}",
                    h.chunk_size,
                    compression.name()
                ),
            ));
        }
        Ok(h)
    }

    /// The default compression of the WIM's non-solid resources.
    /// A header with no images, resources or flags (fields to be filled in by a writer).
    pub fn default_empty() -> Self {
        Header {
            magic: WIM_MAGIC,
            version: VERSION_DEFAULT,
            flags: 0,
            chunk_size: 0,
            guid: [0; 16],
            part_number: 1,
            total_parts: 1,
            image_count: 0,
            blob_table: ResHdr::default(),
            xml: ResHdr::default(),
            boot_metadata: ResHdr::default(),
            boot_index: 0,
            integrity: ResHdr::default(),
        }
    }

    pub fn compression(&self) -> Result<Compression> {
        if self.flags & FLAG_COMPRESSION == 0 {
            return Ok(Compression::None);
        }
        let kinds = [
            (FLAG_COMPRESS_XPRESS, Compression::Xpress),
            (FLAG_COMPRESS_LZX, Compression::Lzx),
            (FLAG_COMPRESS_LZMS, Compression::Lzms),
            (FLAG_COMPRESS_XPRESS2, Compression::Xpress),
        ];
        let found: Vec<Compression> = kinds
            .iter()
            .filter(|(f, _)| self.flags & f != 0)
            .map(|&(_, c)| c)
            .collect();
        match found.as_slice() {
            [c] => Ok(*c),
            [] => Err(FormatError::invalid(
                "WIM header",
                "compression flag set but no compression type",
            )),
            _ => Err(FormatError::invalid(
                "WIM header",
                "more than one compression type flag set",
            )),
        }
    }

    /// The GUID as the hex string wimlib prints.
    pub fn guid_hex(&self) -> String {
        self.guid.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Serializes to the 208-byte on-disk form.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut o = [0u8; HEADER_SIZE];
        o[0..8].copy_from_slice(&self.magic);
        o[8..12].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        o[12..16].copy_from_slice(&self.version.to_le_bytes());
        o[16..20].copy_from_slice(&self.flags.to_le_bytes());
        o[20..24].copy_from_slice(&self.chunk_size.to_le_bytes());
        o[24..40].copy_from_slice(&self.guid);
        o[40..42].copy_from_slice(&self.part_number.to_le_bytes());
        o[42..44].copy_from_slice(&self.total_parts.to_le_bytes());
        o[44..48].copy_from_slice(&self.image_count.to_le_bytes());
        o[48..72].copy_from_slice(&self.blob_table.to_bytes());
        o[72..96].copy_from_slice(&self.xml.to_bytes());
        o[96..120].copy_from_slice(&self.boot_metadata.to_bytes());
        o[120..124].copy_from_slice(&self.boot_index.to_le_bytes());
        o[124..148].copy_from_slice(&self.integrity.to_bytes());
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            magic: WIM_MAGIC,
            version: VERSION_DEFAULT,
            flags: FLAG_COMPRESSION | FLAG_COMPRESS_LZX,
            chunk_size: 32768,
            guid: [7; 16],
            part_number: 1,
            total_parts: 1,
            image_count: 2,
            blob_table: ResHdr {
                size_in_wim: 50,
                flags: 2,
                offset: 1000,
                uncompressed_size: 50,
            },
            xml: ResHdr::default(),
            boot_metadata: ResHdr::default(),
            boot_index: 0,
            integrity: ResHdr::default(),
        }
    }

    #[test]
    fn round_trip_and_rejects() {
        let h = sample();
        let bytes = h.to_bytes();
        assert_eq!(Header::parse(&bytes).unwrap(), h);
        assert_eq!(h.compression().unwrap(), Compression::Lzx);
        assert!(Header::parse(&bytes[..100]).is_err());
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(Header::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
        let mut bad = bytes;
        bad[20..24].copy_from_slice(&3000u32.to_le_bytes());
        assert!(Header::parse(&bad).is_err());
        let mut bad = bytes;
        bad[40] = 3;
        assert!(Header::parse(&bad).is_err());
    }
}
