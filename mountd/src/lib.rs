//! wimfs-mountd: serves one image of a WIM as a read-only filesystem.
//!
//! [`core`] holds every filesystem rule and is tested without a kernel; [`fuse`] translates
//! FUSE requests into it; [`control`] is the channel `wimfs unmount` and `wimfs mounts` talk to.

#[cfg(unix)]
pub mod control;
pub mod core;
#[cfg(unix)]
pub mod fuse;
#[cfg(unix)]
pub mod options;
