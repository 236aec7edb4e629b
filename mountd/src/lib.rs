//! wimfs-mountd: serves one image of a WIM as a filesystem, read-only or (Unix) read-write.
//!
//! [`core`] holds every filesystem rule and is tested without a kernel; `fuse` (Unix) and
//! `winfsp` (Windows) translate kernel requests into it; `control` is the channel
//! `wimfs unmount` and `wimfs mounts` talk to.

#[cfg(unix)]
pub mod commit;
pub mod control;
pub mod core;
#[cfg(unix)]
pub mod fuse;
#[cfg(unix)]
pub mod journal;
pub mod mountpoint;
pub mod options;
#[cfg(unix)]
pub mod overlay;
#[cfg(unix)]
pub mod recover;
#[cfg(windows)]
pub mod winfsp;
