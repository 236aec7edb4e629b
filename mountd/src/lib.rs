//! wimfs-mountd: serves one image of a WIM as a filesystem, read-only or read-write.
//!
//! [`core`] holds every filesystem rule and is tested without a kernel; `fuse` (Unix) and
//! `winfsp` (Windows) translate kernel requests into it; [`persist`] keeps a read-write
//! mount's work (staging, journal, commit, recovery); `control` is the channel
//! `wimfs unmount` and `wimfs mounts` talk to.

pub mod control;
pub mod core;
#[cfg(unix)]
pub mod fuse;
pub mod helper_verbs;
pub mod mountpoint;
pub mod options;
pub mod persist;
#[cfg(windows)]
pub mod winfsp;

pub use persist::{commit, journal, overlay, recover};
