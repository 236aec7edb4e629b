//! Opening a WIM (or a split set) and reading blobs: chunk tables, parallel chunk decoding,
//! the shared chunk cache and SHA-1 checks.

pub mod blob;
pub mod cache;
pub mod file;
#[cfg(feature = "remote")]
pub mod remote;
pub mod resource;
mod spill;
pub mod verify;
pub mod wim;

pub use blob::{BlobReader, CheckedBlobReader};
pub use cache::ChunkCache;
pub use file::is_url;
pub use resource::{Resource, Storage};
pub use wim::{BlobLocation, ChunkSpan, OpenOptions, Wim};
