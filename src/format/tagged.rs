//! Tagged metadata items stored after a dentry's names: wimlib's UNIX data, xattrs, object ids.

use super::bytes::Bytes;

/// Tag of an NTFS object id.
pub const TAG_OBJECT_ID: u32 = 0x0000_0001;
/// Tag of extended attributes (Windows EAs / Linux xattrs).
pub const TAG_XATTRS: u32 = 0x0000_0002;
/// Tag of wimlib's UNIX owner/mode data.
pub const TAG_WIMLIB_UNIX_DATA: u32 = 0x337D_D873;
/// Tag of wimlib's older Linux xattr format.
pub const TAG_WIMLIB_LINUX_XATTRS: u32 = 0x337D_D874;

/// UNIX ownership and mode saved by `--unix-data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UnixData {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: u32,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    /// 0x80 = FILE_NEED_EA on Windows.
    pub flags: u8,
}

/// One tagged item: its tag and raw data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedItem {
    pub tag: u32,
    pub data: Vec<u8>,
}

/// Splits the 8-aligned "extra data" of a dentry into tagged items. Malformed trailing bytes
/// are ignored (they are opaque to readers, as in other implementations).
pub fn parse_tagged_items(extra: &[u8]) -> Vec<TaggedItem> {
    let b = Bytes::new(extra, "tagged items");
    let mut items = Vec::new();
    let mut pos = 0u64;
    while let (Ok(tag), Ok(len)) = (b.u32(pos), b.u32(pos + 4)) {
        let Ok(data) = b.slice(pos + 8, len as u64) else {
            break;
        };
        items.push(TaggedItem {
            tag,
            data: data.to_vec(),
        });
        pos = (pos + 8 + len as u64 + 7) & !7;
    }
    items
}

/// Serializes tagged items, each padded to 8 bytes.
pub fn serialize_tagged_items(items: &[TaggedItem]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        out.extend_from_slice(&it.tag.to_le_bytes());
        out.extend_from_slice(&(it.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&it.data);
        out.resize((out.len() + 7) & !7, 0);
    }
    out
}

impl UnixData {
    /// Decodes the 16-byte UNIX data item.
    pub fn parse(data: &[u8]) -> Option<UnixData> {
        let b = Bytes::new(data, "UNIX data");
        Some(UnixData {
            uid: b.u32(0).ok()?,
            gid: b.u32(4).ok()?,
            mode: b.u32(8).ok()?,
            rdev: b.u32(12).ok()?,
        })
    }

    /// Encodes as the 16-byte item payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.uid, self.gid, self.mode, self.rdev]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }
}

/// Decodes the xattr list of a `TAG_XATTRS` item (value length u16, name length u8, flags u8,
/// name with NUL, value). Returns `None` if malformed.
pub fn parse_xattrs(data: &[u8]) -> Option<Vec<Xattr>> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < data.len() {
        let hdr = data.get(p..p + 4)?;
        let value_len = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
        let name_len = hdr[2] as usize;
        let flags = hdr[3];
        if name_len == 0 {
            return None;
        }
        let name = data.get(p + 4..p + 4 + name_len)?;
        if *data.get(p + 4 + name_len)? != 0 || name.contains(&0) {
            return None;
        }
        let vstart = p + 4 + name_len + 1;
        let value = data.get(vstart..vstart + value_len)?;
        out.push(Xattr {
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
        });
        p = vstart + value_len;
    }
    Some(out)
}

/// Decodes wimlib's older Linux xattr item (name length u16, reserved u16, value length u32,
/// name without NUL, value, padded to 4). Returns `None` if malformed.
pub fn parse_old_xattrs(data: &[u8]) -> Option<Vec<Xattr>> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < data.len() {
        let hdr = data.get(p..p + 8)?;
        let name_len = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
        let value_len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        let name = data.get(p + 8..p + 8 + name_len)?;
        let value = data.get(p + 8 + name_len..p + 8 + name_len + value_len)?;
        out.push(Xattr {
            name: name.to_vec(),
            value: value.to_vec(),
            flags: 0,
        });
        p = (p + 8 + name_len + value_len + 3) & !3;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_payloads() {
        let unix = UnixData {
            uid: 1000,
            gid: 100,
            mode: 0o100644,
            rdev: 0,
        };
        let mut x = Vec::new();
        x.extend_from_slice(&3u16.to_le_bytes());
        x.push(6);
        x.push(0);
        x.extend_from_slice(b"user.a\0abc");
        let items = vec![
            TaggedItem {
                tag: TAG_WIMLIB_UNIX_DATA,
                data: unix.to_bytes(),
            },
            TaggedItem {
                tag: TAG_XATTRS,
                data: x.clone(),
            },
        ];
        let bytes = serialize_tagged_items(&items);
        assert_eq!(bytes.len() % 8, 0);
        let back = parse_tagged_items(&bytes);
        assert_eq!(back, items);
        assert_eq!(UnixData::parse(&back[0].data), Some(unix));
        let xs = parse_xattrs(&back[1].data).unwrap();
        assert_eq!(xs[0].name, b"user.a");
        assert_eq!(xs[0].value, b"abc");
        assert!(parse_xattrs(&x[..7]).is_none());
        // Truncated item lists stop cleanly.
        assert_eq!(parse_tagged_items(&bytes[..30]).len(), 1);
    }
}
