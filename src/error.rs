//! The library's error type.

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::codec::CodecError;
use crate::format::FormatError;

/// Everything that can go wrong reading or writing a WIM. Every variant names the file.
///
/// Messages already include their cause's text, so causes are not chained as `source()`
/// (which would print them twice).
#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {what}: {cause}")]
    Io {
        path: PathBuf,
        what: String,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}")]
    Format { path: PathBuf, cause: FormatError },
    #[error("{path}: resource at offset {offset}, chunk {chunk}: {cause}")]
    Decompress {
        path: PathBuf,
        offset: u64,
        chunk: u64,
        cause: CodecError,
    },
    #[error("{path}: {what} is corrupt: SHA-1 is {actual}, expected {expected}")]
    HashMismatch {
        path: PathBuf,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("{path}: {cause}")]
    Edit {
        path: PathBuf,
        cause: crate::image::EditError,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Shared(Arc<Error>),
}

/// Result alias for the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure on `path` while doing `what`.
    pub fn io(path: impl Into<PathBuf>, what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            what: what.into(),
            cause: source,
        }
    }

    /// Something wrong with `path`, described by `detail`.
    pub fn invalid(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            detail: detail.into(),
        }
    }
}
