//! The blob (lookup) table: one 50-byte entry per resource or blob.

use super::bytes::Bytes;
use super::reshdr::ResHdr;
use super::{FormatError, Result, Sha1Hash};

/// On-disk size of one blob table entry.
pub const BLOB_ENTRY_SIZE: usize = 50;

/// One raw blob table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub reshdr: ResHdr,
    pub part_number: u16,
    pub refcount: u32,
    pub hash: Sha1Hash,
}

impl BlobEntry {
    /// Serializes to the 50-byte on-disk form.
    pub fn to_bytes(&self) -> [u8; BLOB_ENTRY_SIZE] {
        let mut o = [0u8; BLOB_ENTRY_SIZE];
        o[0..24].copy_from_slice(&self.reshdr.to_bytes());
        o[24..26].copy_from_slice(&self.part_number.to_le_bytes());
        o[26..30].copy_from_slice(&self.refcount.to_le_bytes());
        o[30..50].copy_from_slice(&self.hash);
        o
    }
}

/// Parses a whole (uncompressed) blob table.
pub fn parse_blob_table(data: &[u8]) -> Result<Vec<BlobEntry>> {
    if data.len() % BLOB_ENTRY_SIZE != 0 {
        return Err(FormatError::invalid(
            "blob table",
            format!("size {} is not a multiple of {BLOB_ENTRY_SIZE}", data.len()),
        ));
    }
    let b = Bytes::new(data, "blob table");
    (0..data.len() / BLOB_ENTRY_SIZE)
        .map(|i| {
            let off = (i * BLOB_ENTRY_SIZE) as u64;
            Ok(BlobEntry {
                reshdr: ResHdr::parse(&b, off)?,
                part_number: b.u16(off + 24)?,
                refcount: b.u32(off + 26)?,
                hash: b.array(off + 30)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = BlobEntry {
            reshdr: ResHdr {
                size_in_wim: 5,
                flags: 4,
                offset: 208,
                uncompressed_size: 9,
            },
            part_number: 1,
            refcount: 3,
            hash: [9; 20],
        };
        let mut data = e.to_bytes().to_vec();
        data.extend_from_slice(&e.to_bytes());
        assert_eq!(parse_blob_table(&data).unwrap(), vec![e, e]);
        assert!(parse_blob_table(&data[..51]).is_err());
    }
}
