//! On-disk WIM structures: parse from bytes, serialize to bytes. No I/O here.
//!
//! Every length, offset and count read from a file is checked; failures are
//! [`FormatError`]s that say what was wrong and where.

pub mod blob_table;
pub mod bytes;
pub mod chunk_table;
pub mod dentry;
pub mod header;
pub mod integrity;
pub mod reparse;
pub mod reshdr;
pub mod security;
pub mod tagged;
pub mod xml;

use thiserror::Error;

/// A structural problem in WIM data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// The structure `what` needs more bytes than are present.
    #[error("{what} is truncated: need {need} bytes at offset {offset}, have {have}")]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl FormatError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias for format parsing.
pub type Result<T> = std::result::Result<T, FormatError>;

/// A SHA-1 message digest, the identity of a blob.
pub type Sha1Hash = [u8; 20];

/// Formats a SHA-1 digest as 40 lowercase hex digits.
pub fn hash_hex(hash: &Sha1Hash) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether a digest is all zeroes (meaning "no blob": an empty stream).
pub fn is_zero_hash(hash: &Sha1Hash) -> bool {
    hash.iter().all(|&b| b == 0)
}
