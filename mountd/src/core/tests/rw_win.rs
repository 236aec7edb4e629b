//! Core tests of the Windows view of a read-write mount: the same answers as a read-only
//! mount until something changes (and for nodes brought into the layer), then changes made
//! by Windows path, committed and replayed from the journal, checked in the WIM written.

use std::path::Path;

use wimfs::format::dentry::{FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_HIDDEN};
use wimfs::write::TargetLock;
use wimfs::Wim;

use super::super::rw::RwFs;
use super::win::{read_opened, system_descriptor, win_fixture, win_opts, WinFixture};
use super::*;
use crate::overlay::Overlay;

fn open_rw(fx: &WinFixture, staging: &Path) -> RwFs {
    let wim = Arc::new(Wim::open(&fx.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    RwFs::new(wim, img, win_opts(true), Overlay::create(staging).unwrap())
}

/// Everything Windows is told about `path`.
#[derive(Debug, PartialEq)]
struct View {
    resolved: Resolved,
    info: WinInfo,
    security: Vec<u8>,
    streams: FsResult<Vec<WinStream>>,
    reparse: FsResult<Vec<u8>>,
    data: Option<Vec<u8>>,
}

fn view(fs: &dyn WinOps, path: &str) -> View {
    let resolved = fs.resolve_win_path(path).unwrap();
    let ino = resolved.ino;
    let mut info = fs.win_info(ino).unwrap();
    // Streams are numbered by each mount in its own way.
    if path.contains(':') {
        info.index_number = 0;
    }
    View {
        resolved: Resolved { ino: 0, ..resolved },
        info,
        security: fs.win_security(ino).unwrap(),
        streams: fs.win_streams(ino),
        reparse: fs.reparse_point(ino),
        data: read_opened(fs, ino),
    }
}

fn listing(
    fs: &dyn WinOps,
    path: &str,
    marker: Option<&str>,
    pattern: Option<&str>,
) -> Vec<String> {
    let ino = fs.resolve_win_path(path).unwrap().ino;
    let mut v = Vec::new();
    fs.win_readdir(ino, marker, pattern, &mut |e| {
        v.push(e.name.to_string());
        false
    })
    .unwrap();
    v
}

const PATHS: &[&str] = &[
    "\\",
    "\\hello.txt",
    "\\HELLO~1.TXT",
    "\\Hello.Txt",
    "\\readme",
    "\\README",
    "\\ReadMe",
    "\\dir",
    "\\DIR\\sub\\SMALL",
    "\\dir\\big.bin",
    "\\dir_link",
    "\\hello.txt:zone.identifier",
    "\\Über.txt",
];

fn same_as_read_only(ro: &Fs, rw: &RwFs) {
    for p in PATHS {
        assert_eq!(view(rw, p), view(ro, p), "{p}");
    }
    for (dir, marker, pattern) in [
        ("\\", None, None),
        ("\\", Some("README"), None),
        ("\\", Some("dir"), Some("*.txt")),
        ("\\dir", None, None),
        ("\\dir", Some("."), Some("*")),
        ("\\dir", Some(".."), None),
        ("\\dir_link", None, None),
    ] {
        assert_eq!(
            listing(rw, dir, marker, pattern),
            listing(ro, dir, marker, pattern),
            "{dir} after {marker:?} matching {pattern:?}"
        );
    }
}

#[test]
fn read_write_view_is_the_read_only_one_in_and_out_of_the_layer() {
    let fx = win_fixture();
    let staging = tempfile::tempdir().unwrap();
    let ro = open_fs(&fx.wim, win_opts(true));
    let rw = open_rw(&fx, &staging.path().join("s"));
    same_as_read_only(&ro, &rw);
    // Bring every node into the layer without changing what it shows.
    for p in [
        "\\",
        "\\hello.txt",
        "\\readme",
        "\\dir",
        "\\dir\\sub\\small",
        "\\dir_link",
    ] {
        let ino = rw.resolve_win_path(p).unwrap().ino;
        rw.win_set_basic(ino, BasicInfo::default()).unwrap();
    }
    same_as_read_only(&ro, &rw);
    assert!(rw.snapshot().image.inodes.len() >= ro.image().inodes.len());
}

/// Changes by path on a journaled mount, replayed into a fresh tree as `wimfs recover` does
/// and committed; the WIM written holds them.
#[test]
fn changes_by_path_are_journaled_and_committed() {
    let fx = win_fixture();
    let staging = tempfile::tempdir().unwrap();
    let dir = staging.path().join("s");
    let fs = open_rw(&fx, &dir);
    let base = Wim::open(&fx.wim)
        .unwrap()
        .metadata_location(1)
        .unwrap()
        .hash;
    fs.start_journal(&fx.wim, &base).unwrap();
    let sd = system_descriptor();
    let new_file = |path: &str, directory: bool, attributes: u32| {
        fs.win_create(
            path,
            NewFile {
                directory,
                attributes,
                security: Some(&sd),
            },
        )
    };

    // Room to copy into, as Explorer checks before it does.
    let volume = fs.win_volume();
    assert!(volume.free_size > 1 << 30 && volume.total_size > volume.free_size);
    // A new file with attributes, a descriptor, data and a named stream.
    let (f, fh) = new_file("\\new.txt", false, FILE_ATTRIBUTE_HIDDEN).unwrap();
    assert_eq!(fs.write(f, 0, b"abc").unwrap(), 3);
    fs.release(fh.unwrap());
    let info = fs.win_info(f).unwrap();
    assert_eq!(info.attributes, FILE_ATTRIBUTE_HIDDEN);
    assert_eq!(info.size, 3);
    assert_eq!(fs.win_security(f).unwrap(), sd);
    fs.win_set_basic(
        f,
        BasicInfo {
            creation_time: Some(132_000_000_000_000_000),
            ..BasicInfo::default()
        },
    )
    .unwrap();
    let (s, sfh) = new_file("\\new.txt:meta", false, 0).unwrap();
    assert_eq!(fs.write(s, 0, b"stream data").unwrap(), 11);
    fs.release(sfh.unwrap());
    // Past the 64 KiB of a stream set as an xattr: replayed and committed all the same.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (b, bfh) = new_file("\\new.txt:big", false, 0).unwrap();
    for (k, piece) in big.chunks(65536).enumerate() {
        fs.write(b, (k * 65536) as u64, piece).unwrap();
    }
    fs.release(bfh.unwrap());
    assert_eq!(
        fs.resolve_win_path("\\NEW.TXT:META")
            .unwrap()
            .normalized
            .as_deref(),
        Some("\\new.txt:meta")
    );
    assert_eq!(
        fs.win_streams(f)
            .unwrap()
            .iter()
            .map(|s| (s.name.as_str(), s.size))
            .collect::<Vec<_>>(),
        [("", 3), ("meta", 11), ("big", 200_000)]
    );
    // Names equal but for case are the same name.
    assert_eq!(
        new_file("\\HELLO.TXT", false, 0).unwrap_err(),
        Errno(libc::EEXIST)
    );
    assert_eq!(
        new_file("\\New.Txt:META", false, 0).unwrap_err(),
        Errno(libc::EEXIST)
    );
    let (d, none) = new_file("\\NewDir", true, 0).unwrap();
    assert!(none.is_none());
    assert_ne!(
        fs.win_info(d).unwrap().attributes & FILE_ATTRIBUTE_DIRECTORY,
        0
    );
    let (_, fh) = new_file("\\newdir\\inner.txt", false, 0).unwrap();
    fs.release(fh.unwrap());
    assert_eq!(
        listing(&fs, "\\NEWDIR", None, None),
        [".", "..", "inner.txt"]
    );

    // An image stream written in place keeps the rest of its contents.
    let zone = fs
        .resolve_win_path("\\hello.txt:Zone.Identifier")
        .unwrap()
        .ino;
    let before = read_opened(&fs, zone).unwrap();
    let zfh = fs.win_open(zone, 0x0002).unwrap().unwrap();
    fs.write(zone, 0, b"XY").unwrap();
    fs.release(zfh);
    let mut zone_now = before.clone();
    zone_now[..2].copy_from_slice(b"XY");
    assert_eq!(read_opened(&fs, zone).unwrap(), zone_now);

    // Renames: of the case only, onto a name taken (refused, then replacing).
    let hello = fs.resolve_win_path("\\hello.txt").unwrap().ino;
    fs.win_rename("\\hello.txt", "\\Hello.TXT", false).unwrap();
    let r = fs.resolve_win_path("\\Hello.TXT").unwrap();
    assert_eq!((r.ino, r.normalized), (hello, None));
    assert_eq!(
        fs.win_rename("\\dir\\sub\\small", "\\readme", false),
        Err(Errno(libc::EEXIST))
    );
    fs.win_rename("\\dir\\sub\\small", "\\readme", true)
        .unwrap();
    assert_eq!(
        fs.win_rename("\\empty", "\\dir", true),
        Err(Errno(libc::EACCES))
    );

    // Deletes: a non-empty directory is refused; a file and a stream go.
    assert_eq!(fs.win_can_delete("\\dir"), Err(Errno(libc::ENOTEMPTY)));
    assert_eq!(fs.win_can_delete("\\"), Err(Errno(libc::EACCES)));
    fs.win_can_delete("\\empty").unwrap();
    fs.win_delete("\\EMPTY").unwrap();
    assert_eq!(fs.resolve_win_path("\\empty"), Err(Errno::ENOENT));
    let (_, fh) = new_file("\\new.txt:gone", false, 0).unwrap();
    fs.release(fh.unwrap());
    fs.win_delete("\\new.txt:gone").unwrap();
    assert_eq!(fs.resolve_win_path("\\new.txt:gone"), Err(Errno::ENOENT));

    // Replayed into a fresh tree (as `wimfs recover` does) and committed.
    let rep = crate::journal::read(&dir).unwrap();
    let wim = Arc::new(Wim::open(&fx.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let again = RwFs::new(
        wim,
        img,
        FsOptions::default(),
        Overlay::create(&staging.path().join("replay")).unwrap(),
    );
    let files = again.replay(&rep.records, &dir).unwrap();
    let lock = Arc::new(TargetLock::acquire(&fx.wim).unwrap());
    crate::commit::commit(
        &again,
        lock,
        crate::commit::CommitOptions::default(),
        &|ino| dir.join(files[&ino].to_string()),
        &Overlay::log_path_in(&dir),
    )
    .unwrap();
    drop(fs);

    let out = Command::new("wimlib-imagex")
        .arg("verify")
        .arg(&fx.wim)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = open_fs(&fx.wim, win_opts(false));
    let at = |p: &str| committed.resolve_win_path(p).unwrap().ino;
    let new = committed.win_info(at("\\new.txt")).unwrap();
    assert_eq!(new.attributes, FILE_ATTRIBUTE_HIDDEN);
    assert_eq!(new.creation_time, 132_000_000_000_000_000);
    assert_eq!(committed.win_security(at("\\new.txt")).unwrap(), sd);
    assert_eq!(read_opened(&committed, at("\\new.txt")).unwrap(), b"abc");
    assert_eq!(
        read_opened(&committed, at("\\new.txt:meta")).unwrap(),
        b"stream data"
    );
    assert_eq!(read_opened(&committed, at("\\new.txt:big")).unwrap(), big);
    assert_eq!(
        read_opened(&committed, at("\\Hello.TXT:Zone.Identifier")).unwrap(),
        zone_now
    );
    assert_eq!(
        read_opened(&committed, at("\\readme")).unwrap(),
        std::fs::read(fx.src.join("dir/sub/small")).unwrap()
    );
    assert_eq!(
        read_opened(&committed, at("\\NewDir\\inner.txt")).unwrap(),
        b""
    );
    for gone in [
        "\\empty",
        "\\hello.txt",
        "\\dir\\sub\\small",
        "\\new.txt:gone",
    ] {
        assert_eq!(
            committed.resolve_win_path(gone),
            Err(Errno::ENOENT),
            "{gone}"
        );
    }
    // wimlib sees the descriptor and the stream too.
    let out = Command::new("wimlib-imagex")
        .args([
            "dir",
            fx.wim.to_str().unwrap(),
            "1",
            "--detailed",
            "--path",
            "/new.txt",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hex: String = sd.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        text.contains(&format!("Security Descriptor = {hex}")),
        "{text}"
    );
    assert!(text.contains("Named data stream \"meta\":"), "{text}");
}
