//! The library's error type.

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::codec::CodecError;
use crate::format::FormatError;

/// Everything that can go wrong reading or writing a WIM. Every variant names the file.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error("{path}: resource at offset {offset}, chunk {chunk}: {source}")]
    Decompress {
        path: PathBuf,
        offset: u64,
        chunk: u64,
        source: CodecError,
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
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: path.into(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            detail: detail.into(),
        }
    }
}
