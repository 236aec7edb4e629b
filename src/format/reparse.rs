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

/// Symlink reparse data (without the 8-byte header) for a Unix link target, laid out as
/// wimlib does: '/' and '\\' swapped; absolute targets get a dummy "\??\C:" drive (the
/// print name leaves out "\??\"), relative ones the RELATIVE flag. `None` if too long.
pub fn symlink_reparse_data(target: &str) -> Option<Vec<u8>> {
    let swapped: Vec<u16> = target
        .encode_utf16()
        .map(|u| match u {
            0x2f => 0x5c,
            0x5c => 0x2f,
            u => u,
        })
        .collect();
    let absolute = swapped.first().is_none_or(|&u| u == 0x5c);
    let (sub, print, flags): (Vec<u16>, Vec<u16>, u32) = if absolute {
        let mut sub: Vec<u16> = "\\??\\C:".encode_utf16().collect();
        sub.extend_from_slice(&swapped);
        let print = sub[4..].to_vec();
        (sub, print, 0)
    } else {
        (swapped.clone(), swapped, SYMLINK_FLAG_RELATIVE)
    };
    let sub_len = sub.len() * 2;
    let print_len = print.len() * 2;
    // The whole reparse buffer (8-byte header + 12 + names + terminators) caps at 16 KiB.
    if 8 + 12 + sub_len + print_len + 4 > 16 * 1024 {
        return None;
    }
    let mut d = Vec::with_capacity(12 + sub_len + print_len + 4);
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&(sub_len as u16).to_le_bytes());
    d.extend_from_slice(&((sub_len + 2) as u16).to_le_bytes());
    d.extend_from_slice(&(print_len as u16).to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    for u in sub.iter().chain([&0]).chain(print.iter()).chain([&0]) {
        d.extend_from_slice(&u.to_le_bytes());
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_data_round_trips_through_the_parser() {
        let rel = symlink_reparse_data("../a/b\\c").unwrap();
        let p = LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &rel).unwrap();
        assert_eq!(p.substitute_name, "..\\a\\b/c");
        assert!(p.is_relative());
        assert_eq!(p.unix_target(RP_FLAG_NOT_FIXED, None), "../a/b\\c");
        let abs = symlink_reparse_data("/etc/hostname").unwrap();
        let p = LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &abs).unwrap();
        assert_eq!(p.substitute_name, "\\??\\C:\\etc\\hostname");
        assert_eq!(p.print_name, "C:\\etc\\hostname");
        assert_eq!(p.unix_target(RP_FLAG_NOT_FIXED, None), "/etc/hostname");
        assert!(symlink_reparse_data(&"x".repeat(9000)).is_none());
    }

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
