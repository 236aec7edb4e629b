//! Lowering an [`Image`] to a metadata resource (the inverse of loading).

use std::collections::HashSet;

use super::model::{Image, StreamKind};
use crate::format::dentry::{
    serialize_metadata, DentryRecord, StreamRecord, FILE_ATTRIBUTE_ENCRYPTED,
    FILE_ATTRIBUTE_REPARSE_POINT,
};
use crate::format::tagged::{serialize_tagged_items, TaggedItem, TAG_WIMLIB_UNIX_DATA};
use crate::format::Sha1Hash;

impl Image {
    /// Serializes the image as a metadata resource. Streams are laid out as DISM does: a
    /// single unnamed stream goes in the dentry itself; with named streams, or both reparse
    /// and file data, every stream gets an extra stream entry. Hard-link group ids are kept
    /// where they are unique, else renumbered.
    pub fn to_metadata(&self) -> Vec<u8> {
        let mut used: HashSet<u64> = HashSet::new();
        // Ids the image's inodes bring; a fresh id must be none of them.
        let taken: HashSet<u64> = self.inodes.iter().map(|o| o.link_group).collect();
        let mut group = vec![0u64; self.inodes.len()];
        let mut fresh = 1u64;
        for (i, ino) in self.inodes.iter().enumerate() {
            if ino.dentries.len() > 1 && !ino.is_reparse_point() {
                let id = if ino.link_group != 0 && used.insert(ino.link_group) {
                    ino.link_group
                } else {
                    while taken.contains(&fresh) || !used.insert(fresh) {
                        fresh += 1;
                    }
                    fresh
                };
                group[i] = id;
            }
        }
        let zero: Sha1Hash = [0; 20];
        let mut records = Vec::with_capacity(self.dentries.len());
        for (d, dentry) in self.dentries.iter().enumerate() {
            let ino = &self.inodes[dentry.inode];
            let hash_of = |kind: StreamKind, named: bool| {
                ino.streams
                    .iter()
                    .find(|s| s.kind == kind && s.name.is_empty() != named)
                    .map_or(zero, |s| s.hash)
            };
            let mut unnamed: Vec<Sha1Hash> = Vec::new();
            if ino.attributes & FILE_ATTRIBUTE_ENCRYPTED == 0 {
                if ino.attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                    unnamed.push(hash_of(StreamKind::Reparse, false));
                }
                // Directory symlinks and junctions carry an (empty) data stream too, as
                // wimlib writes them.
                if !ino.is_directory() {
                    unnamed.push(hash_of(StreamKind::Data, false));
                }
            } else {
                unnamed.push(hash_of(StreamKind::Data, false));
            }
            let named: Vec<StreamRecord> = ino
                .named_streams()
                .map(|s| StreamRecord {
                    name: s.name.clone(),
                    hash: s.hash,
                })
                .collect();
            let (main_hash, streams) = if unnamed.len() <= 1 && named.is_empty() {
                (unnamed.first().copied().unwrap_or(zero), Vec::new())
            } else {
                let mut v: Vec<StreamRecord> = unnamed
                    .iter()
                    .map(|h| StreamRecord {
                        name: String::new(),
                        hash: *h,
                    })
                    .collect();
                v.extend(named);
                (zero, v)
            };
            records.push(DentryRecord {
                parent: (d != Image::ROOT).then_some(dentry.parent),
                offset: 0,
                attributes: ino.attributes,
                security_id: ino.security_id,
                subdir_offset: 0,
                creation_time: ino.creation_time,
                last_access_time: ino.last_access_time,
                last_write_time: ino.last_write_time,
                main_hash,
                unknown_0x54: ino.unknown_0x54,
                reparse_tag: ino.reparse_tag,
                rp_reserved: ino.rp_reserved,
                rp_flags: ino.rp_flags,
                hard_link_group_id: group[dentry.inode],
                name: dentry.name.clone(),
                short_name: dentry.short_name.clone(),
                extra: tagged_items(ino),
                streams,
            });
        }
        let children: Vec<Vec<usize>> = self.dentries.iter().map(|d| d.children.clone()).collect();
        serialize_metadata(&self.security, &records, &children)
    }
}

/// The inode's tagged items with its current UNIX data.
fn tagged_items(ino: &super::model::Inode) -> Vec<u8> {
    let mut items: Vec<TaggedItem> = ino
        .tagged
        .iter()
        .filter(|t| t.tag != TAG_WIMLIB_UNIX_DATA)
        .cloned()
        .collect();
    if let Some(u) = ino.unix {
        let pos = ino
            .tagged
            .iter()
            .position(|t| t.tag == TAG_WIMLIB_UNIX_DATA)
            .unwrap_or(items.len());
        items.insert(
            pos.min(items.len()),
            TaggedItem {
                tag: TAG_WIMLIB_UNIX_DATA,
                data: u.to_bytes(),
            },
        );
    }
    serialize_tagged_items(&items)
}
