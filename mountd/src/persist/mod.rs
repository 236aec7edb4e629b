//! What makes a read-write mount's work survive: the staging overlay, the journal, the
//! commit into the WIM and the recovery of a dead daemon's work. Written once for Unix and
//! Windows; the calls where the platforms differ are in [`private`].

pub mod commit;
pub mod journal;
pub mod overlay;
pub mod private;
pub mod recover;
