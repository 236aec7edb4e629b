//! The integrity table: SHA-1 of each fixed-size chunk of the file from the end of the header
//! to the end of the blob table.

use super::bytes::Bytes;
use super::{FormatError, Result, Sha1Hash};

/// The parsed integrity table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityTable {
    pub chunk_size: u32,
    pub hashes: Vec<Sha1Hash>,
}

/// Parses an (uncompressed) integrity table.
pub fn parse_integrity_table(data: &[u8]) -> Result<IntegrityTable> {
    let b = Bytes::new(data, "integrity table");
    let size = b.u32(0)? as u64;
    let count = b.u32(4)? as u64;
    let chunk_size = b.u32(8)?;
    if chunk_size == 0 {
        return Err(FormatError::invalid("integrity table", "chunk size 0"));
    }
    if size != data.len() as u64 || 12 + count * 20 != size {
        return Err(FormatError::invalid(
            "integrity table",
            format!(
                "size field {size} disagrees with {count} entries in {} bytes",
                data.len()
            ),
        ));
    }
    let hashes = (0..count)
        .map(|i| b.array(12 + i * 20))
        .collect::<Result<_>>()?;
    Ok(IntegrityTable { chunk_size, hashes })
}

/// Serializes an integrity table.
pub fn serialize_integrity_table(t: &IntegrityTable) -> Vec<u8> {
    let size = 12 + 20 * t.hashes.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&(t.hashes.len() as u32).to_le_bytes());
    out.extend_from_slice(&t.chunk_size.to_le_bytes());
    for h in &t.hashes {
        out.extend_from_slice(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = IntegrityTable {
            chunk_size: 10 << 20,
            hashes: vec![[1; 20], [2; 20]],
        };
        let b = serialize_integrity_table(&t);
        assert_eq!(parse_integrity_table(&b).unwrap(), t);
        assert!(parse_integrity_table(&b[..30]).is_err());
    }
}
