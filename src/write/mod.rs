//! Writing WIM files: resources (parallel chunk compression), the [`WimWriter`] that
//! lays out a new file crash-safely, XML info, and capture of a directory tree.

#[cfg(unix)]
pub mod capture;
pub mod commit;
pub mod config;
mod lock;
pub mod pipable;
mod pipeline;
mod replace;
pub mod resource;
pub mod solid;
pub mod split;
pub mod writer;
pub mod xml;

pub use commit::{write_edited, CommitOptions, Edited, NewData};
pub use lock::TargetLock;
pub use resource::{BlobSource, ResourceOptions};
pub use solid::DEFAULT_SOLID_CHUNK_SIZE;
pub use writer::{
    image_refs, options_of, resource_options_of, solid_options_of, BlobJob, ImageDescription,
    WimWriter, WriterOptions, SMALL_BLOB,
};
pub use xml::{ImageXml, XmlImage};
