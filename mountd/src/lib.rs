//! wimfs-mountd: serves one image of a WIM as a read-only filesystem.
//!
//! [`core`] holds every filesystem rule and is tested without a kernel; `fuse` (Unix) and
//! `winfsp` (Windows) translate kernel requests into it; `control` is the channel
//! `wimfs unmount` and `wimfs mounts` talk to.

pub mod control;
pub mod core;
#[cfg(unix)]
pub mod fuse;
pub mod mountpoint;
pub mod options;
#[cfg(windows)]
pub mod winfsp;
