//! Reparse point data: symbolic links and junctions, and their Unix-style targets.
//!
//! A WIM stores reparse data without its 8-byte header (tag, length, reserved); the tag is in
//! the dentry.

use super::bytes::{utf16le_to_string, Bytes};
use super::{FormatError, Result};

pub const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
pub const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
/// Symlink flag: the target is relative to the link's directory.
pub const SYMLINK_FLAG_RELATIVE: u32 = 1;
/// Dentry rp_flags bit: the absolute target was *not* rewritten relative to the image root.
pub const RP_FLAG_NOT_FIXED: u16 = 1;

/// A parsed symlink or junction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReparse {
    pub tag: u32,
    pub substitute_name: String,
    pub print_name: String,
    pub flags: u32,
}

impl LinkReparse {
    /// Parses the reparse data (without the 8-byte header) of a symlink or junction.
    pub fn parse(tag: u32, data: &[u8]) -> Result<Self> {
        let b = Bytes::new(data, "reparse data");
        let (flags, base) = match tag {
            IO_REPARSE_TAG_SYMLINK => (b.u32(8)?, 12u64),
            IO_REPARSE_TAG_MOUNT_POINT => (0, 8u64),
            _ => {
                return Err(FormatError::invalid(
                    "reparse data",
                    format!("tag {tag:#x} is not a link"),
                ))
            }
        };
        let sub_off = b.u16(0)? as u64;
        let sub_len = b.u16(2)? as u64;
        let print_off = b.u16(4)? as u64;
        let print_len = b.u16(6)? as u64;
        if (sub_off | sub_len | print_off | print_len) & 1 != 0 {
            return Err(FormatError::invalid("reparse data", "misaligned name"));
        }
        let substitute_name = utf16le_to_string(b.slice(base + sub_off, sub_len)?);
        let print_name = utf16le_to_string(b.slice(base + print_off, print_len)?);
        Ok(LinkReparse {
            tag,
            substitute_name,
            print_name,
            flags,
        })
    }

    /// Whether the target is relative to the link's directory.
    pub fn is_relative(&self) -> bool {
        self.tag == IO_REPARSE_TAG_SYMLINK && self.flags & SYMLINK_FLAG_RELATIVE != 0
    }

    /// The target as a Unix path: NT prefixes (`\??\C:`) dropped, separators swapped
    /// ('\\' ↔ '/', so Unix names holding a backslash survive the round trip). An absolute
    /// target that was "fixed" at capture time (relative to the image root) is placed under
    /// `root` when one is given.
    pub fn unix_target(&self, rp_flags: u16, root: Option<&str>) -> String {
        let mut target: &str = &self.substitute_name;
        let mut fixed = false;
        if !self.is_relative() {
            for prefix in ["\\??\\", "\\DosDevices\\", "\\Device\\"] {
                if let Some(rest) = target.strip_prefix(prefix) {
                    let rest = rest.trim_start_matches('\\');
                    target = rest.find('\\').map_or("", |i| &rest[i..]);
                    break;
                }
            }
            fixed = rp_flags & RP_FLAG_NOT_FIXED == 0;
        }
        let swapped: String = target
            .chars()
            .map(|c| match c {
                '\\' => '/',
                '/' => '\\',
                c => c,
            })
            .collect();
        match root {
            Some(root) if fixed && !root.is_empty() => {
                format!("{}{}", root.trim_end_matches('/'), swapped)
            }
            _ if swapped.is_empty() => "/".to_string(),
            _ => swapped,
        }
    }
}

/// Whether a reparse tag denotes something shown as a symlink on Unix.
pub fn is_link_tag(tag: u32) -> bool {
    tag == IO_REPARSE_TAG_SYMLINK || tag == IO_REPARSE_TAG_MOUNT_POINT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::bytes::string_to_utf16le;

    fn symlink(target: &str, flags: u32) -> Vec<u8> {
        let t = string_to_utf16le(target);
        let mut d = Vec::new();
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&(t.len() as u16).to_le_bytes());
        d.extend_from_slice(&(t.len() as u16).to_le_bytes());
        d.extend_from_slice(&(t.len() as u16).to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&t);
        d.extend_from_slice(&t);
        d
    }

    #[test]
    fn targets() {
        let rel = LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &symlink("..\\a\\b", 1)).unwrap();
        assert_eq!(rel.unix_target(0, Some("/mnt")), "../a/b");
        let abs = LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &symlink("\\??\\C:\\etc\\hosts", 0))
            .unwrap();
        assert_eq!(
            abs.unix_target(RP_FLAG_NOT_FIXED, Some("/mnt")),
            "/etc/hosts"
        );
        assert_eq!(abs.unix_target(0, Some("/mnt/")), "/mnt/etc/hosts");
        assert_eq!(abs.unix_target(0, None), "/etc/hosts");
        assert!(LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &symlink("x", 1)[..10]).is_err());
        assert!(LinkReparse::parse(0x8000_0017, &symlink("x", 1)).is_err());
    }
}
