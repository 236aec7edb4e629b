//! The security data block at the start of a metadata resource.

use super::bytes::{align8, Bytes};
use super::{FormatError, Result};

/// The table of security descriptors an image's files refer to by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityData {
    /// Raw self-relative security descriptors, indexed by a dentry's security id.
    pub descriptors: Vec<Vec<u8>>,
    /// Bytes the block occupies (8-aligned); the root dentry follows it.
    pub total_length: u64,
}

/// Parses the security data at the start of `meta` (an uncompressed metadata resource).
pub fn parse_security_data(meta: &[u8]) -> Result<SecurityData> {
    let b = Bytes::new(meta, "security data");
    let raw_total = b.u32(0)? as u64;
    let count = b.u32(4)? as u64;
    let total = if raw_total == 0 {
        8
    } else {
        align8(raw_total).unwrap_or(u64::MAX)
    };
    if total > meta.len() as u64 {
        return Err(FormatError::invalid(
            "security data",
            format!(
                "length {total} exceeds the metadata resource ({} bytes)",
                meta.len()
            ),
        ));
    }
    let fixed = 8 + count.saturating_mul(8);
    if fixed > total {
        return Err(FormatError::invalid(
            "security data",
            format!("{count} descriptors do not fit in {total} bytes"),
        ));
    }
    let mut descriptors = Vec::with_capacity(count as usize);
    let mut pos = fixed;
    for i in 0..count {
        let size = b.u64(8 + i * 8)?;
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= total)
            .ok_or_else(|| {
                FormatError::invalid(
                    "security data",
                    format!("descriptor {i} ({size} bytes) overruns the table"),
                )
            })?;
        descriptors.push(b.slice(pos, size)?.to_vec());
        pos = end;
    }
    Ok(SecurityData {
        descriptors,
        total_length: total,
    })
}

/// Serializes security data (8-aligned, as the root dentry must follow on an 8-byte boundary).
pub fn serialize_security_data(descriptors: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let total: u64 =
        8 + 8 * descriptors.len() as u64 + descriptors.iter().map(|d| d.len() as u64).sum::<u64>();
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(descriptors.len() as u32).to_le_bytes());
    for d in descriptors {
        out.extend_from_slice(&(d.len() as u64).to_le_bytes());
    }
    for d in descriptors {
        out.extend_from_slice(d);
    }
    out.resize(align8(total).unwrap_or(total) as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_overrun() {
        let descs = vec![vec![1, 2, 3], vec![4; 10]];
        let bytes = serialize_security_data(&descs);
        let sd = parse_security_data(&bytes).unwrap();
        assert_eq!(sd.descriptors, descs);
        assert_eq!(sd.total_length, bytes.len() as u64);
        let mut bad = bytes.clone();
        bad[16..24].copy_from_slice(&1000u64.to_le_bytes());
        assert!(parse_security_data(&bad).is_err());
        assert!(parse_security_data(&bytes[..4]).is_err());
        let empty = parse_security_data(&[0u8; 8]).unwrap();
        assert_eq!(empty.total_length, 8);
    }
}
