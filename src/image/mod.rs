//! The in-memory image: dentries (names in a tree) over inodes (files with streams).

pub mod edit;
mod load;
mod lower;
mod model;
pub mod names;
pub mod pattern;

pub use edit::{Case, EditError, EditKind};
pub use load::name_order;
pub use model::{Dentry, DentryId, Image, Inode, InodeId, Stream, StreamKind};
