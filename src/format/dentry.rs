//! The directory entry tree of a metadata resource.
//!
//! Layout: security data, then (8-aligned) the root dentry; each directory's `subdir_offset`
//! points at a list of child dentries ended by an 8-byte zero length. A dentry is 102 fixed
//! bytes, its UTF-16LE name and short name (each NUL-terminated when present), tagged items
//! up to its 8-aligned length, then `num_extra_streams` stream entries.

use std::collections::HashSet;

use super::bytes::{align8, utf16le_to_string, Bytes};
use super::security::{parse_security_data, SecurityData};
use super::{FormatError, Result, Sha1Hash};

/// Fixed part of an on-disk dentry.
pub const DENTRY_FIXED_SIZE: u64 = 102;
/// Fixed part of an on-disk extra stream entry.
pub const STREAM_FIXED_SIZE: u64 = 38;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 16384;

pub const FILE_ATTRIBUTE_READONLY: u32 = 0x1;
pub const FILE_ATTRIBUTE_HIDDEN: u32 = 0x2;
pub const FILE_ATTRIBUTE_SYSTEM: u32 = 0x4;
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
pub const FILE_ATTRIBUTE_SPARSE_FILE: u32 = 0x200;
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
pub const FILE_ATTRIBUTE_COMPRESSED: u32 = 0x800;
pub const FILE_ATTRIBUTE_ENCRYPTED: u32 = 0x4000;

/// An extra stream entry: a named data stream, or an unnamed one (data or reparse data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Empty for an unnamed stream.
    pub name: String,
    pub hash: Sha1Hash,
}

/// One directory entry as stored, with the index of its parent in the flat list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DentryRecord {
    /// Index of the parent in [`MetadataTree::dentries`]; `None` for the root.
    pub parent: Option<usize>,
    /// Offset of this dentry in the metadata resource (for error messages).
    pub offset: u64,
    pub attributes: u32,
    pub security_id: i32,
    pub subdir_offset: u64,
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub main_hash: Sha1Hash,
    pub unknown_0x54: u32,
    /// Reparse tag (reparse points only).
    pub reparse_tag: u32,
    pub rp_reserved: u16,
    pub rp_flags: u16,
    /// Hard link group id (non-reparse points only); 0 = not hard-linked.
    pub hard_link_group_id: u64,
    pub name: String,
    pub short_name: String,
    /// Raw tagged items (8-aligned region after the names).
    pub extra: Vec<u8>,
    pub streams: Vec<StreamRecord>,
}

impl DentryRecord {
    pub fn is_directory(&self) -> bool {
        self.attributes & FILE_ATTRIBUTE_DIRECTORY != 0
    }

    pub fn is_reparse_point(&self) -> bool {
        self.attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0
    }

    /// A directory that can hold entries: a directory symlink or junction cannot.
    pub fn has_children_list(&self) -> bool {
        self.is_directory() && !self.is_reparse_point()
    }
}

/// A parsed metadata resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTree {
    pub security: SecurityData,
    /// All dentries; index 0 is the root; parents precede children.
    pub dentries: Vec<DentryRecord>,
}

fn bad(offset: u64, detail: impl Into<String>) -> FormatError {
    FormatError::invalid(
        "metadata resource",
        format!("dentry at offset {offset}: {}", detail.into()),
    )
}

/// Reads the dentry at `offset`. Returns `None` at an end-of-directory marker, else the
/// dentry and the offset of the next sibling.
fn read_dentry(b: &Bytes<'_>, offset: u64) -> Result<Option<(DentryRecord, u64)>> {
    let raw_len = b.u64(offset)?;
    let len = align8(raw_len).ok_or_else(|| bad(offset, "length overflows"))?;
    if len <= 8 {
        return Ok(None);
    }
    if len < DENTRY_FIXED_SIZE {
        return Err(bad(
            offset,
            format!("length {raw_len} is below the minimum {DENTRY_FIXED_SIZE}"),
        ));
    }
    let d = Bytes::new(
        b.slice(offset, len)
            .map_err(|_| bad(offset, format!("length {len} runs past the end")))?,
        "dentry",
    );
    let attributes = d.u32(8)?;
    let is_reparse = attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0;
    let name_len = d.u16(100)? as u64;
    let short_len = d.u16(98)? as u64;
    let num_streams = d.u16(96)?;
    if (name_len | short_len) & 1 != 0 {
        return Err(bad(offset, "odd name length"));
    }
    let mut p = DENTRY_FIXED_SIZE;
    let mut take_name = |n: u64| -> Result<String> {
        if n == 0 {
            return Ok(String::new());
        }
        let s = d
            .slice(p, n)
            .map_err(|_| bad(offset, "name runs past the dentry"))?;
        d.slice(p + n, 2)
            .map_err(|_| bad(offset, "name terminator runs past the dentry"))?;
        p += n + 2;
        Ok(utf16le_to_string(s))
    };
    let name = take_name(name_len)?;
    let short_name = take_name(short_len)?;
    let extra_start = align8(p).unwrap_or(len).min(len);
    let extra = d.slice(extra_start, len - extra_start)?.to_vec();
    let mut rec = DentryRecord {
        parent: None,
        offset,
        attributes,
        security_id: d.u32(12)? as i32,
        subdir_offset: d.u64(16)?,
        creation_time: d.u64(40)?,
        last_access_time: d.u64(48)?,
        last_write_time: d.u64(56)?,
        main_hash: d.array(64)?,
        unknown_0x54: d.u32(84)?,
        reparse_tag: if is_reparse { d.u32(88)? } else { 0 },
        rp_reserved: if is_reparse { d.u16(92)? } else { 0 },
        rp_flags: if is_reparse { d.u16(94)? } else { 0 },
        hard_link_group_id: if is_reparse { 0 } else { d.u64(88)? },
        name,
        short_name,
        extra,
        streams: Vec::with_capacity(num_streams as usize),
    };
    let mut pos = offset + len;
    for i in 0..num_streams {
        let slen = align8(
            b.u64(pos)
                .map_err(|_| bad(offset, format!("stream entry {i} runs past the end")))?,
        )
        .ok_or_else(|| bad(offset, "stream length overflows"))?;
        if slen < STREAM_FIXED_SIZE {
            return Err(bad(
                offset,
                format!("stream entry {i} is too short ({slen} bytes)"),
            ));
        }
        let s = Bytes::new(
            b.slice(pos, slen)
                .map_err(|_| bad(offset, format!("stream entry {i} runs past the end")))?,
            "stream entry",
        );
        let nlen = s.u16(36)? as u64;
        if nlen & 1 != 0 || STREAM_FIXED_SIZE + nlen > slen {
            return Err(bad(
                offset,
                format!("stream entry {i} has a bad name length"),
            ));
        }
        rec.streams.push(StreamRecord {
            name: utf16le_to_string(s.slice(38, nlen)?),
            hash: s.array(16)?,
        });
        pos += slen;
    }
    Ok(Some((rec, pos)))
}

/// Parses a whole uncompressed metadata resource: security data and the dentry tree.
/// Rejects directory cycles and nesting beyond [`MAX_DEPTH`]; children of non-directories
/// (including directory reparse points) are ignored, as Windows does.
///
/// Every record of a real image occupies its own bytes, so the records read may add up to
/// no more than the resource: lists that overlap (which could make a few compressed
/// kilobytes of metadata read the same bytes as thousands of big records, each copied) are
/// refused as soon as they pass that budget, and memory stays linear in the resource.
pub fn parse_metadata(meta: &[u8]) -> Result<MetadataTree> {
    let security = parse_security_data(meta)?;
    let b = Bytes::new(meta, "metadata resource");
    let root_off = security.total_length;
    let Some((root, root_end)) = read_dentry(&b, root_off)? else {
        return Err(FormatError::invalid(
            "metadata resource",
            "the image has no root directory",
        ));
    };
    if !root.is_directory() {
        return Err(FormatError::invalid(
            "metadata resource",
            "the root of the image is not a directory",
        ));
    }
    let mut dentries = vec![root];
    let mut visited = HashSet::new();
    // (directory index, depth)
    let mut stack = vec![(0usize, 0usize)];
    // Bytes of records read so far (dentries with their stream entries).
    let mut read = root_end - root_off;
    while let Some((dir, depth)) = stack.pop() {
        let sub = dentries[dir].subdir_offset;
        if sub == 0 || !dentries[dir].has_children_list() {
            continue;
        }
        if depth >= MAX_DEPTH {
            return Err(FormatError::invalid(
                "metadata resource",
                "directories are nested too deeply",
            ));
        }
        if !visited.insert(sub) || sub == root_off {
            return Err(FormatError::invalid(
                "metadata resource",
                format!("directory cycle: children list at offset {sub} is reached twice"),
            ));
        }
        let mut pos = sub;
        while let Some((mut child, next)) = read_dentry(&b, pos)? {
            child.parent = Some(dir);
            let idx = dentries.len();
            read = read.saturating_add(next.saturating_sub(pos));
            if read > meta.len() as u64 {
                return Err(FormatError::invalid(
                    "metadata resource",
                    "directory lists overlap (their records add up to more than the resource)",
                ));
            }
            let is_dir = child.has_children_list() && child.subdir_offset != 0;
            dentries.push(child);
            if is_dir {
                stack.push((idx, depth + 1));
            }
            if next <= pos {
                return Err(bad(pos, "sibling list does not advance"));
            }
            pos = next;
        }
    }
    Ok(MetadataTree { security, dentries })
}

/// Bytes a dentry occupies before its stream entries: fixed part, names, tagged items.
fn dentry_base_len(rec: &DentryRecord) -> u64 {
    let mut len = DENTRY_FIXED_SIZE;
    for n in [&rec.name, &rec.short_name] {
        if !n.is_empty() {
            len += n.encode_utf16().count() as u64 * 2 + 2;
        }
    }
    let len = (len + 7) & !7;
    len + ((rec.extra.len() as u64 + 7) & !7)
}

fn stream_entry_len(s: &StreamRecord) -> u64 {
    let name = if s.name.is_empty() {
        0
    } else {
        s.name.encode_utf16().count() as u64 * 2 + 2
    };
    (STREAM_FIXED_SIZE + name + 7) & !7
}

fn dentry_total_len(rec: &DentryRecord) -> u64 {
    dentry_base_len(rec) + rec.streams.iter().map(stream_entry_len).sum::<u64>()
}

fn put_utf16z(out: &mut Vec<u8>, s: &str) {
    if !s.is_empty() {
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
}

fn pad8(out: &mut Vec<u8>) {
    out.resize((out.len() + 7) & !7, 0);
}

fn write_dentry(out: &mut Vec<u8>, rec: &DentryRecord, subdir_offset: u64) {
    let start = out.len();
    let name_bytes = rec.name.encode_utf16().count() * 2;
    let short_bytes = rec.short_name.encode_utf16().count() * 2;
    out.extend_from_slice(&dentry_base_len(rec).to_le_bytes());
    out.extend_from_slice(&rec.attributes.to_le_bytes());
    out.extend_from_slice(&(rec.security_id as u32).to_le_bytes());
    out.extend_from_slice(&subdir_offset.to_le_bytes());
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&rec.creation_time.to_le_bytes());
    out.extend_from_slice(&rec.last_access_time.to_le_bytes());
    out.extend_from_slice(&rec.last_write_time.to_le_bytes());
    out.extend_from_slice(&rec.main_hash);
    out.extend_from_slice(&rec.unknown_0x54.to_le_bytes());
    if rec.is_reparse_point() {
        out.extend_from_slice(&rec.reparse_tag.to_le_bytes());
        out.extend_from_slice(&rec.rp_reserved.to_le_bytes());
        out.extend_from_slice(&rec.rp_flags.to_le_bytes());
    } else {
        out.extend_from_slice(&rec.hard_link_group_id.to_le_bytes());
    }
    out.extend_from_slice(&(rec.streams.len() as u16).to_le_bytes());
    out.extend_from_slice(&(short_bytes as u16).to_le_bytes());
    out.extend_from_slice(&(name_bytes as u16).to_le_bytes());
    put_utf16z(out, &rec.name);
    put_utf16z(out, &rec.short_name);
    pad8(out);
    out.extend_from_slice(&rec.extra);
    pad8(out);
    debug_assert_eq!((out.len() - start) as u64, dentry_base_len(rec));
    for s in &rec.streams {
        let sstart = out.len();
        out.extend_from_slice(&stream_entry_len(s).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&s.hash);
        out.extend_from_slice(&((s.name.encode_utf16().count() * 2) as u16).to_le_bytes());
        put_utf16z(out, &s.name);
        pad8(out);
        debug_assert_eq!((out.len() - sstart) as u64, stream_entry_len(s));
    }
}

/// Serializes a metadata resource: security data, then the root dentry and an end marker,
/// then each directory's children list (pre-order), each ended by an 8-byte zero — the
/// layout Windows and wimlib write. `dentries[0]` is the root; `children[i]` lists the
/// children of dentry `i` in order. Directories get a (possibly empty) list; other dentries
/// get subdir offset 0.
pub fn serialize_metadata(
    security: &[Vec<u8>],
    dentries: &[DentryRecord],
    children: &[Vec<usize>],
) -> Vec<u8> {
    let sd = super::security::serialize_security_data(security);
    // Pre-order traversal of the tree decides where each directory's list goes.
    let mut order = Vec::with_capacity(dentries.len());
    let mut stack = vec![0usize];
    while let Some(d) = stack.pop() {
        order.push(d);
        stack.extend(children[d].iter().rev().copied());
    }
    let mut subdir = vec![0u64; dentries.len()];
    let mut next = sd.len() as u64 + dentry_total_len(&dentries[0]) + 8;
    for &d in &order {
        if dentries[d].has_children_list() {
            subdir[d] = next;
            next += children[d]
                .iter()
                .map(|&c| dentry_total_len(&dentries[c]))
                .sum::<u64>()
                + 8;
        }
    }
    let mut out = sd;
    out.reserve((next as usize).saturating_sub(out.len()));
    write_dentry(&mut out, &dentries[0], subdir[0]);
    out.extend_from_slice(&[0u8; 8]);
    for &d in &order {
        if dentries[d].has_children_list() {
            debug_assert_eq!(out.len() as u64, subdir[d]);
            for &c in &children[d] {
                write_dentry(&mut out, &dentries[c], subdir[c]);
            }
            out.extend_from_slice(&[0u8; 8]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record at `at` that runs to `end`, a directory whose children list is at `sub`.
    fn put_dir(m: &mut [u8], at: usize, end: usize, sub: u64) {
        m[at..at + 8].copy_from_slice(&((end - at) as u64).to_le_bytes());
        m[at + 8..at + 12].copy_from_slice(&FILE_ATTRIBUTE_DIRECTORY.to_le_bytes());
        m[at + 16..at + 24].copy_from_slice(&sub.to_le_bytes());
    }

    /// Nested lists that start inside each other's records: every record runs to the end of
    /// a 1 MiB resource, so reading them all would copy 200 MiB of tagged items. Refused at
    /// the second one, whatever the count.
    #[test]
    fn overlapping_lists_are_refused_within_the_resource_size() {
        let size = 1 << 20;
        let n = 200;
        // Security data: 8 bytes, no descriptors; then the root; the records after it each
        // start 128 bytes into the previous one; then the lists' shared terminator.
        let mut m = vec![0u8; size + 8];
        m[0..4].copy_from_slice(&8u32.to_le_bytes());
        let first = 8 + 128;
        put_dir(&mut m, 8, first, first as u64);
        for k in 0..n {
            let at = first + 128 * k;
            put_dir(&mut m, at, size, (at + 128) as u64);
        }
        let err = parse_metadata(&m).unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
        // The same records one after another, each its own bytes, are accepted: the root,
        // then list k holding directory k and its terminator, directory k's list next.
        let mut ok = vec![0u8; 8 + 128 + 136 * n];
        ok[0..4].copy_from_slice(&8u32.to_le_bytes());
        put_dir(&mut ok, 8, 136, 136);
        for k in 0..n {
            let at = 136 + 136 * k;
            let sub = if k + 1 < n { at + 136 } else { 0 };
            put_dir(&mut ok, at, at + 128, sub as u64);
        }
        let tree = parse_metadata(&ok).unwrap();
        assert_eq!(tree.dentries.len(), n + 1);
    }
}
