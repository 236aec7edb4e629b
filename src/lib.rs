//! wimfs: Windows Imaging (WIM/ESD) files in Rust.
//!
//! Open a WIM, list its images, walk an image's entries and read a file's data:
//!
//! ```
//! use std::io::Read;
//! use wimfs::{Image, Wim};
//!
//! # fn main() -> wimfs::Result<()> {
//! let wim = Wim::open("examples/sample.wim")?;
//! for info in &wim.xml().images {
//!     println!("image {}: {}", info.index, info.name.as_deref().unwrap_or(""));
//! }
//! let image = Image::load(&wim, 1)?;
//! for d in image.walk(Image::ROOT) {
//!     println!("{} ({} bytes)", image.path_of(d), image.inode_of(d).size());
//! }
//! let readme = image.lookup("/README.txt").expect("the sample has a README");
//! let mut text = String::new();
//! wim.open_stream(image.inode_of(readme).data_stream())
//!     .read_to_string(&mut text)
//!     .expect("readable");
//! assert_eq!(text, "Hello from the wimfs sample image.\n");
//! # Ok(())
//! # }
//! ```

pub mod apply;
pub mod codec;
pub mod error;
pub mod format;
pub mod image;
pub mod mount_proto;
pub mod read;
pub mod time;
pub mod units;
pub mod write;

pub use error::{Error, Result};
pub use image::{Dentry, Image, Inode, Stream, StreamKind};
pub use read::{BlobReader, CheckedBlobReader, ChunkCache, OpenOptions, Wim};

impl Wim {
    /// A `Read + Seek` over a stream of an inode (`None` reads as empty).
    pub fn open_stream(&self, stream: Option<&Stream>) -> BlobReader<'_> {
        BlobReader::new(self, stream.and_then(|s| s.blob))
    }
}
