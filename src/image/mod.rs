//! The in-memory image: dentries (names in a tree) over inodes (files with streams).

mod load;
mod lower;
mod model;

#[cfg_attr(not(unix), allow(unused_imports))] // only Linux capture sorts new trees
pub(crate) use load::name_order;
pub use model::{Dentry, DentryId, Image, Inode, InodeId, Stream, StreamKind};
