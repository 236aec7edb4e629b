//! Fuzzes the metadata resource parser (security data + dentry tree) and what is derived
//! from dentries: tagged items, xattrs, UNIX data, reparse data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wimfs::format::dentry::parse_metadata;
use wimfs::format::reparse::{LinkReparse, IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK};
use wimfs::format::tagged::{parse_old_xattrs, parse_tagged_items, parse_xattrs, UnixData};

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_metadata(data) {
        for d in &tree.dentries {
            for item in parse_tagged_items(&d.extra) {
                let _ = UnixData::parse(&item.data);
                let _ = parse_xattrs(&item.data);
                let _ = parse_old_xattrs(&item.data);
            }
        }
    }
    for tag in [IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT] {
        if let Ok(l) = LinkReparse::parse(tag, data) {
            let _ = l.unix_target(0, Some("/mnt"));
        }
    }
});
