//! Building an [`Image`] from a metadata resource, with validation.

use std::collections::HashMap;
use std::path::Path;

use super::model::{Dentry, Image, Inode, Stream, StreamKind};
use crate::error::{Error, Result};
use crate::format::dentry::{parse_metadata, DentryRecord, FILE_ATTRIBUTE_ENCRYPTED};
use crate::format::tagged::{
    parse_old_xattrs, parse_tagged_items, parse_xattrs, UnixData, TAG_WIMLIB_LINUX_XATTRS,
    TAG_WIMLIB_UNIX_DATA, TAG_XATTRS,
};
use crate::format::{hash_hex, is_zero_hash};
use crate::read::Wim;

impl Image {
    /// Loads image `index` (1-based) of `wim`: reads and checks its metadata resource and
    /// builds the tree. Rejects cycles, bad names and duplicate names.
    pub fn load(wim: &Wim, index: u32) -> Result<Image> {
        let loc = *wim.metadata_location(index).ok_or_else(|| {
            Error::NotFound(format!(
                "{}: there is no image {index}",
                wim.path().display()
            ))
        })?;
        let meta = wim.read_blob(&loc, true).map_err(|e| match e {
            Error::HashMismatch {
                path,
                expected,
                actual,
                ..
            } => Error::HashMismatch {
                path,
                what: format!("metadata resource of image {index}"),
                expected,
                actual,
            },
            e => e,
        })?;
        Self::from_metadata(wim, index, &meta)
    }

    /// Builds the image from an uncompressed metadata resource.
    pub fn from_metadata(wim: &Wim, index: u32, meta: &[u8]) -> Result<Image> {
        let path = wim.path();
        let tree = parse_metadata(meta)
            .map_err(|e| Error::invalid(path, format!("image {index}: metadata resource: {e}")))?;
        let mut img = Image {
            index,
            security: tree.security.descriptors,
            dentries: Vec::new(),
            inodes: Vec::new(),
        };
        let mut groups: HashMap<u64, usize> = HashMap::new();
        for (i, rec) in tree.dentries.iter().enumerate() {
            let parent = rec.parent.unwrap_or(0);
            let shared = (rec.hard_link_group_id != 0 && !rec.is_directory())
                .then(|| groups.get(&rec.hard_link_group_id).copied())
                .flatten();
            let inode = match shared {
                Some(ino) => ino,
                None => {
                    img.inodes.push(make_inode(wim, index, rec, &img, i)?);
                    let ino = img.inodes.len() - 1;
                    if rec.hard_link_group_id != 0 && !rec.is_directory() {
                        groups.insert(rec.hard_link_group_id, ino);
                    }
                    ino
                }
            };
            img.inodes[inode].dentries.push(i);
            img.dentries.push(Dentry {
                name: if i == 0 {
                    String::new()
                } else {
                    rec.name.clone()
                },
                short_name: rec.short_name.clone(),
                parent,
                children: Vec::new(),
                inode,
            });
            if i != 0 {
                img.dentries[parent].children.push(i);
            }
        }
        validate(&mut img, path)?;
        Ok(img)
    }
}

fn make_inode(wim: &Wim, index: u32, rec: &DentryRecord, img: &Image, id: usize) -> Result<Inode> {
    let tagged = parse_tagged_items(&rec.extra);
    let unix = tagged
        .iter()
        .find(|t| t.tag == TAG_WIMLIB_UNIX_DATA)
        .and_then(|t| UnixData::parse(&t.data));
    let xattrs = tagged
        .iter()
        .find(|t| t.tag == TAG_XATTRS)
        .and_then(|t| parse_xattrs(&t.data))
        .or_else(|| {
            tagged
                .iter()
                .find(|t| t.tag == TAG_WIMLIB_LINUX_XATTRS)
                .and_then(|t| parse_old_xattrs(&t.data))
        })
        .unwrap_or_default();
    let mut inode = Inode {
        attributes: rec.attributes,
        security_id: rec.security_id,
        creation_time: rec.creation_time,
        last_access_time: rec.last_access_time,
        last_write_time: rec.last_write_time,
        reparse_tag: rec.reparse_tag,
        rp_reserved: rec.rp_reserved,
        rp_flags: rec.rp_flags,
        unknown_0x54: rec.unknown_0x54,
        link_group: rec.hard_link_group_id,
        streams: Vec::new(),
        unix,
        xattrs,
        tagged,
        dentries: Vec::new(),
    };
    if inode.security_id >= 0 && inode.security_id as usize >= img.security.len() {
        // Windows tolerates this; treat as "no descriptor" rather than failing the image.
        inode.security_id = -1;
    }
    // Stream types are implicit on disk: the first unnamed stream of a reparse point holds
    // the reparse data, the (next) unnamed one the file data; named ones are data streams.
    let reparse = rec.is_reparse_point() && rec.attributes & FILE_ATTRIBUTE_ENCRYPTED == 0;
    let mut have_reparse = false;
    let mut have_data = false;
    let mut candidates: Vec<(String, [u8; 20], bool)> = vec![(String::new(), rec.main_hash, true)];
    candidates.extend(rec.streams.iter().map(|s| (s.name.clone(), s.hash, false)));
    for (name, hash, is_main) in candidates {
        let kind = if !name.is_empty() {
            StreamKind::Data
        } else if is_main && is_zero_hash(&hash) {
            continue;
        } else if reparse && !have_reparse {
            have_reparse = true;
            StreamKind::Reparse
        } else if !have_data {
            have_data = true;
            StreamKind::Data
        } else {
            continue;
        };
        let blob = if is_zero_hash(&hash) {
            None
        } else if wim.blob(&hash).is_none() && !wim.missing_parts().is_empty() {
            // In a part that was left out on purpose (`info` or `dir` of part 1 alone): the
            // stream keeps its hash but has no location, and nothing reads it.
            None
        } else {
            Some(*wim.blob(&hash).ok_or_else(|| {
                Error::invalid(
                    wim.path(),
                    format!(
                        "image {index}: file \"{}\" needs blob {} which is not in the WIM{}",
                        img.path_of(rec.parent.unwrap_or(0))
                            .trim_end_matches('/')
                            .to_string()
                            + "/"
                            + &rec.name,
                        hash_hex(&hash),
                        if wim.header().total_parts > 1 {
                            " (is a split part missing?)"
                        } else {
                            ""
                        }
                    ),
                )
            })?)
        };
        inode.streams.push(Stream {
            name,
            kind,
            hash,
            blob,
        });
    }
    let _ = id;
    Ok(inode)
}

/// Sort key matching how Windows orders names: case-insensitive first (UTF-16 code units,
/// ASCII letters folded to upper case), then exact. Allocation-free: it sorts every directory
/// of an image.
pub fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        // ASCII bytes order as their UTF-16 code units do.
        let (x, y) = (a.as_bytes(), b.as_bytes());
        return x
            .iter()
            .map(u8::to_ascii_uppercase)
            .cmp(y.iter().map(u8::to_ascii_uppercase))
            .then_with(|| x.cmp(y));
    }
    let fold = |u: u16| {
        if (u16::from(b'a')..=u16::from(b'z')).contains(&u) {
            u - 32
        } else {
            u
        }
    };
    a.encode_utf16()
        .map(fold)
        .cmp(b.encode_utf16().map(fold))
        .then_with(|| a.encode_utf16().cmp(b.encode_utf16()))
}

fn validate(img: &mut Image, path: &Path) -> Result<()> {
    for d in 1..img.dentries.len() {
        let name = &img.dentries[d].name;
        if let Some(why) = super::names::unix_name_problem(name) {
            let parent = img.path_of(img.dentries[d].parent);
            return Err(Error::invalid(
                path,
                format!(
                    "image {}: an entry in \"{parent}\" has {why} ({name:?})",
                    img.index
                ),
            ));
        }
    }
    for d in 0..img.dentries.len() {
        let mut kids = std::mem::take(&mut img.dentries[d].children);
        kids.sort_by(|&a, &b| name_order(&img.dentries[a].name, &img.dentries[b].name));
        if let Some(w) = kids
            .windows(2)
            .find(|w| img.dentries[w[0]].name == img.dentries[w[1]].name)
        {
            return Err(Error::invalid(
                path,
                format!(
                    "image {}: duplicate name \"{}\"",
                    img.index,
                    img.path_of(w[0])
                ),
            ));
        }
        img.dentries[d].children = kids;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::name_order;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    /// The order spelled out: UTF-16 code units with ASCII letters upper-cased, then exact.
    fn reference(a: &str, b: &str) -> Ordering {
        let fold = |s: &str| {
            s.encode_utf16()
                .map(|u| if (97..=122).contains(&u) { u - 32 } else { u })
                .collect::<Vec<u16>>()
        };
        let exact = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
        fold(a).cmp(&fold(b)).then_with(|| exact(a).cmp(&exact(b)))
    }

    #[test]
    fn windows_order() {
        assert_eq!(name_order("a", "B"), Ordering::Less);
        // Equal but for case: upper case first (exact code units).
        assert_eq!(name_order("B", "b"), Ordering::Less);
        // '_' (0x5F) sorts after every letter folded to upper case.
        assert_eq!(name_order("_", "a"), Ordering::Greater);
        // Code units, not code points: a surrogate pair sorts before U+FFFF.
        assert_eq!(name_order("\u{10000}", "\u{FFFF}"), Ordering::Less);
        assert_eq!(name_order("é", "É"), Ordering::Greater);
        assert_eq!(name_order("ab", "ab"), Ordering::Equal);
    }

    proptest! {
        #[test]
        fn matches_reference(a in "[a-cA-C_é\u{10000}\u{FFFF}]{0,5}", b in "[a-cA-C_é\u{10000}\u{FFFF}]{0,5}") {
            prop_assert_eq!(name_order(&a, &b), reference(&a, &b));
        }
    }
}
