//! Core tests of what the WinFsp adapter serves: case-insensitive paths, streams, attributes,
//! security descriptors, reparse points, times. WIMs come from wimlib-imagex, and get their
//! Windows-only metadata (descriptors, named streams, DOS names) added through wimfs's writer.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use wimfs::codec::Compression;
use wimfs::format::dentry::{
    FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT,
};
use wimfs::format::reparse::{LinkReparse, IO_REPARSE_TAG_SYMLINK};
use wimfs::format::security::parse_security_data;
use wimfs::write::{ImageDescription, ResourceOptions, WimWriter, WriterOptions};
use wimfs::{Stream, Wim};

use super::super::wininfo::{
    copy_into, is_valid_security_descriptor, nt, truncate_utf16, win_attributes, DEFAULT_SECURITY,
};
use super::*;

/// Owner and group SYSTEM; DACL: SYSTEM and Administrators full control, Users read and
/// execute, all inheritable (SDDL `O:SYG:SYD:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)`).
pub(super) fn system_descriptor() -> Vec<u8> {
    let sid = |auth: u8, subs: &[u32]| {
        let mut v = vec![1, subs.len() as u8, 0, 0, 0, 0, 0, auth];
        for s in subs {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    };
    let system = sid(5, &[18]);
    let admins = sid(5, &[32, 544]);
    let users = sid(5, &[32, 545]);
    let mut aces = Vec::new();
    for (mask, who) in [
        (0x001F_01FFu32, &system),
        (0x001F_01FF, &admins),
        (0x0012_00A9, &users),
    ] {
        aces.extend_from_slice(&[0, 0x03]);
        aces.extend_from_slice(&((8 + who.len()) as u16).to_le_bytes());
        aces.extend_from_slice(&mask.to_le_bytes());
        aces.extend_from_slice(who);
    }
    let mut acl = vec![2, 0];
    acl.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
    acl.extend_from_slice(&[3, 0, 0, 0]);
    acl.extend_from_slice(&aces);
    let owner_at = 20u32;
    let group_at = owner_at + system.len() as u32;
    let dacl_at = group_at + system.len() as u32;
    let mut sd = vec![1, 0, 0x04, 0x80];
    for off in [owner_at, group_at, 0, dacl_at] {
        sd.extend_from_slice(&off.to_le_bytes());
    }
    sd.extend_from_slice(&system);
    sd.extend_from_slice(&system);
    sd.extend_from_slice(&acl);
    sd
}

pub(super) struct WinFixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) src: PathBuf,
    pub(super) wim: PathBuf,
    pub(super) descriptor: Vec<u8>,
}

/// The core test tree plus names that differ only in case and a directory symlink, captured
/// by wimlib and rewritten with a descriptor, a named stream, a DOS name and attributes.
pub(super) fn win_fixture() -> WinFixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_source(&src);
    fs::write(src.join("README"), "upper\n").unwrap();
    fs::write(src.join("readme"), "lower\n").unwrap();
    fs::write(src.join("Über.txt"), "umlaut\n").unwrap();
    fs::write(src.join("!first"), "bang\n").unwrap();
    symlink("dir/sub", src.join("dir_link")).unwrap();
    let plain = dir.path().join("plain.wim");
    capture(&src, &plain, &[]);

    let wim = Wim::open(&plain).unwrap();
    let mut img = Image::load(&wim, 1).unwrap();
    let descriptor = system_descriptor();
    img.security = vec![descriptor.clone(), vec![1, 0, 0, 0]];
    let hello = img.lookup("/hello.txt").unwrap();
    let h = img.dentries[hello].inode;
    let small = img
        .inode_of(img.lookup("/dir/sub/small").unwrap())
        .data_stream()
        .unwrap()
        .clone();
    img.inodes[h].security_id = 0;
    img.inodes[h].attributes =
        FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE;
    img.inodes[h].streams.push(Stream {
        name: "Zone.Identifier".into(),
        ..small
    });
    img.dentries[hello].short_name = "HELLO~1.TXT".into();
    let d = img.dentries[img.lookup("/dir").unwrap()].inode;
    img.inodes[d].security_id = 1;

    let out = dir.path().join("win.wim");
    let mut w = WimWriter::create(
        &out,
        WriterOptions {
            resources: ResourceOptions {
                compression: Compression::Xpress,
                chunk_size: 32768,
                level: 50,
            },
            solid: None,
            threads: 2,
            check_integrity: false,
            rp_fix: wim.header().flags & wimfs::format::header::FLAG_RP_FIX != 0,
        },
    )
    .unwrap();
    for inode in &img.inodes {
        for s in &inode.streams {
            if let Some(loc) = s.blob {
                if !w.has_blob(&s.hash) {
                    let data = wim.read_blob(&loc, true).unwrap();
                    w.write_blob(&data, loc.size, Some(s.hash), Path::new("test"), &|_| {})
                        .unwrap();
                }
            }
        }
    }
    let desc = ImageDescription {
        name: Some("Windows Test".into()),
        ..Default::default()
    };
    w.add_image(&img, &desc).unwrap();
    w.finish().unwrap();
    WinFixture {
        _dir: dir,
        src,
        wim: out,
        descriptor,
    }
}

pub(super) fn win_opts(case_insensitive: bool) -> FsOptions {
    FsOptions {
        streams: StreamsInterface::Windows,
        case_insensitive,
        ..Default::default()
    }
}

fn ino(fs: &Fs, path: &str) -> u64 {
    fs.resolve_win_path(path).unwrap().ino
}

fn read_win(fs: &Fs, ino: u64) -> Vec<u8> {
    read_opened(fs, ino).expect("a file")
}

/// The data of `ino` read through a Windows handle; `None` for a directory.
pub(super) fn read_opened(fs: &dyn WinOps, ino: u64) -> Option<Vec<u8>> {
    let fh = fs.win_open(ino, 0x0012_0089).unwrap()?;
    let mut out = Vec::new();
    loop {
        let b = fs.read(fh, out.len() as u64, 4096).unwrap();
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    fs.release(fh);
    Some(out)
}

fn listing(fs: &Fs, ino: u64, marker: Option<&str>, pattern: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    fs.readdir_after(ino, marker, pattern, &mut |e| {
        v.push(e.name.to_string());
        false
    })
    .unwrap();
    v
}

#[test]
fn case_insensitive_lookups_and_collisions() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    let upper = fs.lookup(ROOT_INO, b"README").unwrap().ino;
    let lower = fs.lookup(ROOT_INO, b"readme").unwrap().ino;
    assert_ne!(upper, lower);
    // Exact matches win; otherwise the first in collation order (upper case sorts first).
    assert_eq!(fs.lookup(ROOT_INO, b"ReadMe").unwrap().ino, upper);
    assert_eq!(fs.lookup(ROOT_INO, b"rEADME").unwrap().ino, upper);
    assert_eq!(read_win(&fs, ino(&fs, "\\readme")), b"lower\n");
    assert_eq!(read_win(&fs, ino(&fs, "\\README")), b"upper\n");
    assert_eq!(read_win(&fs, ino(&fs, "\\Readme")), b"upper\n");
    assert_eq!(
        fs.resolve_win_path("\\HELLO.TXT").unwrap(),
        Resolved {
            ino: fs.lookup(ROOT_INO, b"hello.txt").unwrap().ino,
            normalized: Some("\\hello.txt".into()),
        }
    );
    assert_eq!(fs.resolve_win_path("\\readme").unwrap().normalized, None);
    assert_eq!(
        fs.resolve_win_path("\\DIR\\SUB\\SMALL")
            .unwrap()
            .normalized
            .as_deref(),
        Some("\\dir\\sub\\small")
    );
    assert_eq!(
        fs.resolve_win_path("\\üBER.TXT").unwrap().ino,
        ino(&fs, "\\Über.txt")
    );
    // Both colliding names are listed, next to each other.
    let top = listing(&fs, ROOT_INO, None, None);
    let r = top.iter().position(|n| n == "README").unwrap();
    assert_eq!(top[r + 1], "readme");

    let cs = open_fs(&fx.wim, win_opts(false));
    assert_eq!(cs.lookup(ROOT_INO, b"ReadMe"), Err(Errno::ENOENT));
    assert_eq!(cs.resolve_win_path("\\HELLO.TXT"), Err(Errno::ENOENT));
    assert_eq!(cs.resolve_win_path("\\hello~1.txt"), Err(Errno::ENOENT));
    assert_eq!(cs.resolve_win_path("\\README").unwrap().normalized, None);
    // Linux default: case-sensitive.
    assert!(!FsOptions::default().case_insensitive);
}

#[test]
fn paths_streams_and_short_names() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    let hello = ino(&fs, "\\hello.txt");
    assert_eq!(fs.resolve_win_path("\\").unwrap().ino, ROOT_INO);
    assert_eq!(
        fs.resolve_win_path("\\hello~1.TXT").unwrap(),
        Resolved {
            ino: hello,
            normalized: None,
        }
    );
    assert_eq!(ino(&fs, "\\hello.txt::$DATA"), hello);
    let zone = fs
        .resolve_win_path("\\HELLO.txt:zone.identifier:$DATA")
        .unwrap();
    assert_ne!(zone.ino, hello);
    assert_eq!(
        zone.normalized.as_deref(),
        Some("\\hello.txt:Zone.Identifier")
    );
    assert_eq!(
        read_win(&fs, zone.ino),
        fs::read(fx.src.join("dir/sub/small")).unwrap()
    );
    assert_eq!(
        fs.win_streams(hello).unwrap(),
        [
            WinStream {
                name: String::new(),
                size: 6,
                allocation_size: 4096,
            },
            WinStream {
                name: "Zone.Identifier".into(),
                size: 3000,
                allocation_size: 4096,
            }
        ]
    );
    assert_eq!(fs.win_streams(ino(&fs, "\\dir")).unwrap(), []);
    for (path, err) in [
        ("\\hello.txt:nope", Errno::ENOENT),
        ("\\nope", Errno::ENOENT),
        ("\\nope\\x", Errno::ENOTDIR),
        ("\\hello.txt\\x", Errno::ENOTDIR),
        ("\\dir:x\\y", Errno::EINVAL),
        ("\\hello.txt:s:$BAD", Errno::EINVAL),
    ] {
        assert_eq!(fs.resolve_win_path(path), Err(err), "{path}");
    }
    assert_eq!(Errno::ENOENT.nt_status(), nt::STATUS_OBJECT_NAME_NOT_FOUND);
    assert_eq!(Errno::ENOTDIR.nt_status(), nt::STATUS_OBJECT_PATH_NOT_FOUND);
    assert_eq!(Errno::EINVAL.nt_status(), nt::STATUS_OBJECT_NAME_INVALID);
    assert_eq!(Errno::EROFS.nt_status(), nt::STATUS_MEDIA_WRITE_PROTECTED);
    assert_eq!(Errno::EIO.nt_status(), nt::STATUS_FILE_CORRUPT_ERROR);
    assert_eq!(nt::STATUS_OBJECT_NAME_NOT_FOUND as u32, 0xC000_0034);
    // Writes are refused up front; directories need no read handle.
    assert_eq!(fs.win_open(hello, 0x0002), Err(Errno::EROFS));
    assert_eq!(fs.win_open(hello, 0x4000_0000), Err(Errno::EROFS));
    assert_eq!(fs.win_open(ROOT_INO, 0x0012_0089), Ok(None));
    // wimlib reads the DOS name back from the rewritten WIM.
    let out = Command::new("wimlib-imagex")
        .args([
            "dir",
            fx.wim.to_str().unwrap(),
            "1",
            "--detailed",
            "--path",
            "/hello.txt",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Short Name          = \"HELLO~1.TXT\""),
        "{text}"
    );
}

#[test]
fn attributes_times_and_volume() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    let hello = fs.win_info(ino(&fs, "\\hello.txt")).unwrap();
    assert_eq!(
        hello.attributes,
        FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE
    );
    assert_eq!(
        (hello.size, hello.allocation_size, hello.reparse_tag),
        (6, 4096, 0)
    );
    let dir = fs.win_info(ino(&fs, "\\dir")).unwrap();
    assert_eq!(dir.attributes, FILE_ATTRIBUTE_DIRECTORY);
    assert_eq!(dir.size, 0);
    let small = fs.win_info(ino(&fs, "\\dir\\sub\\small")).unwrap();
    assert_eq!(small.attributes, FILE_ATTRIBUTE_NORMAL);
    let zone = fs
        .win_info(ino(&fs, "\\hello.txt:Zone.Identifier"))
        .unwrap();
    assert_eq!(zone.attributes, hello.attributes);
    assert_eq!(zone.size, 3000);
    // Hard links share the file number.
    assert_eq!(
        fs.win_info(ino(&fs, "\\big_link")).unwrap().index_number,
        fs.win_info(ino(&fs, "\\dir\\big.bin"))
            .unwrap()
            .index_number
    );
    assert_eq!(win_attributes(0, false), FILE_ATTRIBUTE_NORMAL);
    assert_eq!(
        win_attributes(FILE_ATTRIBUTE_NORMAL | FILE_ATTRIBUTE_HIDDEN, false),
        FILE_ATTRIBUTE_HIDDEN
    );
    assert_eq!(
        win_attributes(
            FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT,
            true
        ),
        FILE_ATTRIBUTE_NORMAL
    );

    // Times are FILETIMEs: 100 ns ticks since 1601, from the captured file's mtime.
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(fx.src.join("dir/sub/small")).unwrap();
    assert_eq!(
        small.last_write_time,
        wimfs::time::unix_to_filetime(m.mtime(), m.mtime_nsec() as u32)
    );
    assert_eq!(small.change_time, small.last_write_time);
    let out = Command::new("wimlib-imagex")
        .args([
            "dir",
            fx.wim.to_str().unwrap(),
            "1",
            "--detailed",
            "--path",
            "/dir/sub/small",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "Last Write Time     = {}",
        wimfs::time::format_filetime(small.last_write_time)
    );
    assert!(text.contains(&line), "{line} not in {text}");

    let v = fs.win_volume();
    assert_eq!(v.label, "Windows Test");
    assert_eq!(v.free_size, 0);
    assert!(v.total_size >= 700_000);
    assert_eq!(truncate_utf16(&"x".repeat(40), 32).len(), 32);
    assert_eq!(
        truncate_utf16(&format!("{}😀", "x".repeat(31)), 32),
        "x".repeat(31)
    );
}

#[test]
fn security_descriptors_pass_through_byte_identical() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    // The descriptor as wimfs's format layer parses it from the metadata resource.
    let wim = Wim::open(&fx.wim).unwrap();
    let meta = wim
        .read_blob(wim.metadata_location(1).unwrap(), true)
        .unwrap();
    let table = parse_security_data(&meta).unwrap();
    assert_eq!(table.descriptors[0], fx.descriptor);
    let hello = ino(&fs, "\\hello.txt");
    assert_eq!(&*fs.win_security(hello).unwrap(), &table.descriptors[0][..]);
    // A stream shares its file's descriptor.
    let zone = ino(&fs, "\\hello.txt:Zone.Identifier");
    assert_eq!(&*fs.win_security(zone).unwrap(), &fx.descriptor[..]);
    // Malformed (dir) or missing (everything else): the default.
    assert_eq!(
        &*fs.win_security(ino(&fs, "\\dir")).unwrap(),
        &DEFAULT_SECURITY[..]
    );
    assert_eq!(&*fs.win_security(ROOT_INO).unwrap(), &DEFAULT_SECURITY[..]);
    // The same bytes as the FUSE xattr.
    assert_eq!(
        fs.getxattr(hello, b"system.wim.security").unwrap(),
        fx.descriptor
    );

    assert!(is_valid_security_descriptor(&fx.descriptor));
    assert!(is_valid_security_descriptor(&DEFAULT_SECURITY));
    for cut in [4, 19, 30, fx.descriptor.len() - 1] {
        assert!(
            !is_valid_security_descriptor(&fx.descriptor[..cut]),
            "cut at {cut}"
        );
    }
    let mut absolute = fx.descriptor.clone();
    absolute[3] = 0; // no SE_SELF_RELATIVE
    assert!(!is_valid_security_descriptor(&absolute));

    let mut small = [0u8; 10];
    assert_eq!(
        copy_into(&fx.descriptor, &mut small),
        Err(fx.descriptor.len())
    );
    let mut big = vec![0u8; 200];
    assert_eq!(copy_into(&fx.descriptor, &mut big), Ok(fx.descriptor.len()));
    assert_eq!(&big[..fx.descriptor.len()], &fx.descriptor[..]);
}

#[test]
fn reparse_points_as_stored() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    let rel = ino(&fs, "\\dir\\rel");
    let info = fs.win_info(rel).unwrap();
    assert_ne!(info.attributes & FILE_ATTRIBUTE_REPARSE_POINT, 0);
    assert_eq!(info.attributes & FILE_ATTRIBUTE_DIRECTORY, 0);
    assert_eq!(info.reparse_tag, IO_REPARSE_TAG_SYMLINK);
    let buf = fs.reparse_point(rel).unwrap();
    assert_eq!(&buf[..4], &IO_REPARSE_TAG_SYMLINK.to_le_bytes());
    assert_eq!(u16::from_le_bytes([buf[4], buf[5]]) as usize, buf.len() - 8);
    // The data is the image's reparse stream, byte for byte.
    let Node::Inode(i) = fs.node(rel).unwrap() else {
        panic!()
    };
    let stored = fs.image().inodes[i].reparse_stream().unwrap().blob.unwrap();
    assert_eq!(buf[8..], fs.wim().read_blob(&stored, true).unwrap()[..]);
    let link = LinkReparse::parse(IO_REPARSE_TAG_SYMLINK, &buf[8..]).unwrap();
    assert_eq!(link.substitute_name, "..\\hello.txt");
    assert!(link.is_relative());

    // A symlink to a directory is a directory reparse point to Windows, listing only dots.
    let dl = ino(&fs, "\\dir_link");
    let info = fs.win_info(dl).unwrap();
    assert_eq!(
        info.attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT),
        FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT
    );
    assert!(fs.win_is_directory(dl).unwrap());
    assert_eq!(fs.win_open(dl, 0x0012_0089), Ok(None));
    assert_eq!(listing(&fs, dl, None, None), [".", ".."]);
    // Through a link, a path does not resolve here: WinFsp reparses at the link first.
    assert_eq!(
        fs.resolve_win_path("\\dir_link\\small"),
        Err(Errno::ENOTDIR)
    );

    assert_eq!(fs.reparse_point(ROOT_INO), Err(Errno::ENODATA));
    assert_eq!(Errno::ENODATA.nt_status(), nt::STATUS_NOT_A_REPARSE_POINT);
}

#[test]
fn listings_resume_after_markers_and_filter_by_pattern() {
    let fx = win_fixture();
    let fs = open_fs(&fx.wim, win_opts(true));
    let huge = ino(&fs, "\\huge");
    let all = listing(&fs, huge, None, None);
    assert_eq!(all.len(), 3002);
    assert_eq!(&all[..4], [".", "..", "f00000", "f00001"]);
    assert_eq!(listing(&fs, huge, Some("."), None)[0], "..");
    assert_eq!(listing(&fs, huge, Some(".."), None)[0], "f00000");
    assert_eq!(listing(&fs, huge, Some("f00099"), None)[0], "f00100");
    // A marker that is not (or no longer) a name resumes at the next one.
    assert_eq!(listing(&fs, huge, Some("F00099x"), None)[0], "f00100");
    assert!(listing(&fs, huge, Some("f02999"), None).is_empty());
    // Resuming page by page yields every entry once.
    let mut paged = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut page = Vec::new();
        fs.readdir_after(huge, marker.as_deref(), None, &mut |e| {
            page.push(e.name.to_string());
            page.len() == 128
        })
        .unwrap();
        if page.is_empty() {
            break;
        }
        marker = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let ten = listing(&fs, huge, None, Some("F0001?"));
    assert_eq!(
        ten,
        (10..20).map(|i| format!("f{i:05}")).collect::<Vec<_>>()
    );
    assert_eq!(listing(&fs, huge, None, Some("*")).len(), 3002);
    assert_eq!(listing(&fs, huge, Some("f00015"), Some("f0001?")).len(), 4);
    // The root has no dots; a name sorting before "." still comes after the "." marker.
    let top = listing(&fs, ROOT_INO, None, None);
    assert_eq!(top[0], "!first");
    assert!(!top.contains(&".".to_string()));
    assert_eq!(listing(&fs, ROOT_INO, Some("."), None)[0], "!first");
    assert_eq!(
        fs.readdir_after(ino(&fs, "\\hello.txt"), None, None, &mut |_| false),
        Err(Errno::ENOTDIR)
    );
}
