//! Core tests over WIMs captured by wimlib-imagex, without a kernel.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use wimfs::{ChunkCache, OpenOptions, Wim};

use super::*;

mod rw_win;
mod win;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            if i % 3 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            (x >> (i % 3 * 8)) as u8 % 23 + b'a'
        })
        .collect()
}

fn make_source(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir_all(root.join("huge")).unwrap();
    fs::write(root.join("hello.txt"), "hello\n").unwrap();
    fs::write(root.join("dir/big.bin"), pattern(700_000, 5)).unwrap();
    fs::write(root.join("dir/sub/small"), pattern(3000, 9)).unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::hard_link(root.join("dir/big.bin"), root.join("big_link")).unwrap();
    symlink("../hello.txt", root.join("dir/rel")).unwrap();
    symlink(root.join("dir/sub/small"), root.join("abs_inside")).unwrap();
    for i in 0..3000 {
        fs::write(root.join(format!("huge/f{i:05}")), format!("{i}\n")).unwrap();
    }
    let mut p = fs::Permissions::from_mode(0o600);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root.join("hello.txt"), p.clone()).unwrap();
    p.set_mode(0o750);
    fs::set_permissions(root.join("dir/sub"), p).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let f = std::ffi::CString::new(root.join("empty").to_str().unwrap()).unwrap();
    let (n, v) = (c"user.color", b"blue");
    // SAFETY: valid NUL-terminated path and name; `v` outlives the call.
    unsafe { libc::setxattr(f.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
}

fn capture(src: &Path, wim: &Path, extra: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .arg("capture")
        .arg(src)
        .arg(wim)
        .args(extra)
        .output()
        .expect("wimlib-imagex runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Fixture {
    _dir: tempfile::TempDir,
    src: std::path::PathBuf,
    wim: std::path::PathBuf,
}

fn fixture(extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_source(&src);
    let wim = dir.path().join("t.wim");
    capture(&src, &wim, extra);
    Fixture {
        _dir: dir,
        src,
        wim,
    }
}

fn open_fs(wim: &Path, opts: FsOptions) -> Fs {
    let wim = Arc::new(
        Wim::open_with(
            wim,
            OpenOptions {
                cache: Some(Arc::new(ChunkCache::new(8 << 20))),
                allow_missing_parts: false,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let img = Image::load(&wim, 1).unwrap();
    Fs::new(wim, img, opts)
}

fn resolve(fs: &Fs, path: &str) -> Attr {
    let mut a = fs.getattr(ROOT_INO).unwrap();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        a = fs.lookup(a.ino, c.as_bytes()).unwrap();
    }
    a
}

fn read_all(fs: &Fs, ino: u64, piece: u32) -> FsResult<Vec<u8>> {
    let fh = fs.open(ino, false)?;
    let mut out = Vec::new();
    let r = loop {
        match fs.read(fh, out.len() as u64, piece) {
            Ok(b) if b.is_empty() => break Ok(out),
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => break Err(e),
        }
    };
    fs.release(fh);
    r
}

fn names(fs: &Fs, ino: u64) -> Vec<String> {
    let mut v = Vec::new();
    fs.readdir(ino, 0, &mut |e| {
        v.push(e.name.to_string());
        false
    })
    .unwrap();
    v
}

#[test]
fn tree_contents_and_links_every_compression() {
    for comp in ["none", "xpress", "lzx", "lzms"] {
        let fx = fixture(&[&format!("--compress={comp}")]);
        let fs = open_fs(&fx.wim, FsOptions::default());
        let root = fs.getattr(ROOT_INO).unwrap();
        assert_eq!(root.kind, Kind::Directory);
        assert_eq!(root.perm, 0o755);
        let mut top = names(&fs, ROOT_INO);
        top.sort();
        assert_eq!(
            top,
            [
                ".",
                "..",
                "abs_inside",
                "big_link",
                "dir",
                "empty",
                "hello.txt",
                "huge"
            ]
        );
        for (p, piece) in [
            ("dir/big.bin", 131072),
            ("hello.txt", 4096),
            ("dir/sub/small", 1000),
        ] {
            let a = resolve(&fs, p);
            let want = fs::read(fx.src.join(p)).unwrap();
            assert_eq!(a.size, want.len() as u64, "{comp} {p}");
            assert_eq!(a.perm, 0o644);
            assert_eq!(read_all(&fs, a.ino, piece).unwrap(), want, "{comp} {p}");
        }
        let big = resolve(&fs, "dir/big.bin");
        let link = resolve(&fs, "big_link");
        assert_eq!(big.ino, link.ino);
        assert_eq!(big.nlink, 2);
        let rel = resolve(&fs, "dir/rel");
        assert_eq!(rel.kind, Kind::Symlink);
        assert_eq!(rel.perm, 0o777);
        // Before the target is resolved, the size is the reparse data's (an upper bound);
        // once readlink has resolved it, the exact length.
        assert!(rel.size >= 12, "{}", rel.size);
        assert_eq!(fs.readlink(rel.ino).unwrap(), b"../hello.txt");
        assert_eq!(fs.getattr(rel.ino).unwrap().size, 12);
        // Without --unix-data wimlib leaves special files out.
        assert_eq!(fs.lookup(ROOT_INO, b"fifo"), Err(Errno::ENOENT));
        assert_eq!(resolve(&fs, "dir").nlink, 3);
        assert_eq!(fs.lookup(ROOT_INO, b"nope"), Err(Errno::ENOENT));
        assert_eq!(
            fs.lookup(resolve(&fs, "hello.txt").ino, b"x"),
            Err(Errno::ENOTDIR)
        );
        let dir = resolve(&fs, "dir");
        assert_eq!(fs.lookup(dir.ino, b"..").unwrap().ino, ROOT_INO);
    }
}

#[test]
fn solid_wim_reads() {
    let fx = fixture(&["--solid"]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    for p in ["dir/big.bin", "dir/sub/small", "huge/f02999"] {
        let a = resolve(&fs, p);
        assert_eq!(
            read_all(&fs, a.ino, 65536).unwrap(),
            fs::read(fx.src.join(p)).unwrap()
        );
    }
}

#[test]
fn solid_chunks_are_decoded_once_and_kept() {
    // Small solid chunks and a cache of one chunk: reading files out of order keeps
    // returning to chunks the cache dropped, which then come from the disk copy.
    let fx = fixture(&["--solid", "--solid-chunk-size=65536"]);
    let scratch = tempfile::tempdir().unwrap();
    let mut wim = Wim::open_with(
        &fx.wim,
        OpenOptions {
            cache: Some(Arc::new(ChunkCache::new(65536))),
            allow_missing_parts: false,
            ..Default::default()
        },
    )
    .unwrap();
    wim.keep_solid_chunks_in(scratch.path(), None).unwrap();
    let wim = Arc::new(wim);
    let img = Image::load(&wim, 1).unwrap();
    let fs = Fs::new(Arc::clone(&wim), img, FsOptions::default());
    let mut paths = vec!["dir/big.bin", "huge/f00000", "dir/sub/small", "huge/f02999"];
    for round in 0..2 {
        for p in &paths {
            let a = resolve(&fs, p);
            assert_eq!(
                read_all(&fs, a.ino, 4096).unwrap(),
                fs::read(fx.src.join(p)).unwrap(),
                "{p}, round {round}"
            );
        }
        paths.reverse();
    }
    // Every chunk holding big.bin was decoded; each is kept although the cache holds one.
    use sha1::Digest;
    let hash: [u8; 20] = sha1::Sha1::digest(fs::read(fx.src.join("dir/big.bin")).unwrap()).into();
    let loc = *wim.blob(&hash).unwrap();
    let span = wim.chunk_span(&loc, 0, loc.size).unwrap().unwrap();
    assert!(span.last > span.first);
    for i in span.first..=span.last {
        assert!(wim.chunk_cached(span.resource, i), "chunk {i} not kept");
    }
}

#[test]
fn absolute_links_point_into_the_mountpoint() {
    let fx = fixture(&[]);
    let wim = Wim::open(&fx.wim).unwrap();
    assert_ne!(wim.header().flags & wimfs::format::header::FLAG_RP_FIX, 0);
    let opts = FsOptions {
        link_root: Some("/mnt/point".into()),
        ..Default::default()
    };
    let fs = open_fs(&fx.wim, opts);
    let a = resolve(&fs, "abs_inside");
    assert_eq!(fs.readlink(a.ino).unwrap(), b"/mnt/point/dir/sub/small");
    assert_eq!(fs.readlink(ROOT_INO), Err(Errno::EINVAL));
}

#[test]
fn unix_data_owners_modes_specials_and_xattrs() {
    let fx = fixture(&["--unix-data"]);
    let plain = open_fs(
        &fx.wim,
        FsOptions {
            uid: 1234,
            gid: 99,
            ..Default::default()
        },
    );
    let a = resolve(&plain, "hello.txt");
    assert_eq!((a.uid, a.gid, a.perm), (1234, 99, 0o644));
    let fs = open_fs(
        &fx.wim,
        FsOptions {
            unix_data: true,
            uid: 1234,
            ..Default::default()
        },
    );
    let a = resolve(&fs, "hello.txt");
    assert_eq!((a.uid, a.perm), (0, 0o600));
    assert_eq!(resolve(&fs, "dir/sub").perm, 0o750);
    assert_eq!(resolve(&fs, "fifo").kind, Kind::Fifo);
    assert_eq!(resolve(&fs, "fifo").perm, 0o640);
    let e = resolve(&fs, "empty");
    let list = fs.listxattr(e.ino).unwrap();
    // wimlib 1.13 stores Linux xattrs with --unix-data; older ones do not.
    if list.windows(10).any(|w| w == b"user.color") {
        assert_eq!(fs.getxattr(e.ino, b"user.color").unwrap(), b"blue");
    } else {
        eprintln!("note: this wimlib did not capture xattrs");
    }
    assert!(!plain
        .listxattr(e.ino)
        .unwrap()
        .windows(10)
        .any(|w| w == b"user.color"));
}

#[test]
fn windows_metadata_xattrs() {
    let fx = fixture(&[]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let d = resolve(&fs, "dir");
    let list = fs.listxattr(d.ino).unwrap();
    assert!(list.starts_with(b"system.wim.attributes\0"), "{list:?}");
    assert_eq!(
        fs.getxattr(d.ino, b"system.wim.attributes").unwrap(),
        b"0x00000010"
    );
    let l = resolve(&fs, "dir/rel");
    let rp = fs.getxattr(l.ino, b"system.wim.reparse").unwrap();
    assert_eq!(&rp[..4], &0xA000_000Cu32.to_le_bytes());
    assert_eq!(u16::from_le_bytes([rp[4], rp[5]]) as usize, rp.len() - 8);
    assert_eq!(
        fs.getxattr(d.ino, b"system.wim.reparse"),
        Err(Errno::ENODATA)
    );
    assert_eq!(fs.getxattr(d.ino, b"user.nothing"), Err(Errno::ENODATA));
}

#[test]
fn readdir_resumes_at_offsets_and_huge_dirs_look_up() {
    let fx = fixture(&["--compress=none"]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let huge = resolve(&fs, "huge");
    assert_eq!(fs.dir_len(huge.ino).unwrap(), 3002);
    let mut all = Vec::new();
    let mut off = 0;
    loop {
        let mut got = 0;
        fs.readdir(huge.ino, off, &mut |e| {
            all.push(e.name.to_string());
            off = e.next;
            got += 1;
            got == 100
        })
        .unwrap();
        if got < 100 {
            break;
        }
    }
    assert_eq!(all.len(), 3002);
    assert_eq!(&all[..2], [".", ".."]);
    for i in (0..3000).step_by(7) {
        let a = fs.lookup(huge.ino, format!("f{i:05}").as_bytes()).unwrap();
        assert_eq!(
            read_all(&fs, a.ino, 4096).unwrap(),
            format!("{i}\n").as_bytes()
        );
    }
    assert_eq!(fs.statfs().files, fs.image().inodes.len() as u64);
}

#[test]
fn writes_are_refused() {
    let fx = fixture(&[]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let a = resolve(&fs, "hello.txt");
    assert_eq!(fs.open(a.ino, true), Err(Errno::EROFS));
    assert_eq!(fs.open(ROOT_INO, false), Err(Errno::EISDIR));
    assert_eq!(fs.read(999, 0, 10), Err(Errno::EBADF));
    // Every change, as the adapters ask for it, is refused.
    let ops: &dyn crate::core::FsOps = &fs;
    assert!(!ops.writable());
    assert_eq!(ops.write(a.ino, 0, b"x"), Err(Errno::EROFS));
    assert_eq!(ops.unlink(ROOT_INO, b"hello.txt"), Err(Errno::EROFS));
    assert_eq!(ops.access(a.ino, true), Err(Errno::EROFS));
    assert_eq!(ops.access(a.ino, false), Ok(()));
}

#[test]
fn corrupt_data_gives_eio_and_the_rest_reads() {
    let fx = fixture(&["--compress=none"]);
    let want = fs::read(fx.src.join("dir/sub/small")).unwrap();
    let mut bytes = fs::read(&fx.wim).unwrap();
    let at = bytes
        .windows(want.len())
        .position(|w| w == want)
        .expect("uncompressed data is in the file");
    bytes[at + 100] ^= 0xff;
    fs::write(&fx.wim, &bytes).unwrap();
    let fs = open_fs(&fx.wim, FsOptions::default());
    let bad = resolve(&fs, "dir/sub/small");
    assert_eq!(read_all(&fs, bad.ino, 1024), Err(Errno::EIO));
    // Once known bad, even a read of an untouched range fails.
    let fh = fs.open(bad.ino, false).unwrap();
    assert_eq!(fs.read(fh, 0, 10), Err(Errno::EIO));
    let good = resolve(&fs, "dir/big.bin");
    assert_eq!(
        read_all(&fs, good.ino, 131072).unwrap(),
        fs::read(fx.src.join("dir/big.bin")).unwrap()
    );
}

#[test]
fn out_of_order_reads_are_still_checked() {
    let fx = fixture(&["--compress=lzx"]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let a = resolve(&fs, "dir/big.bin");
    let fh = fs.open(a.ino, false).unwrap();
    let want = fs::read(fx.src.join("dir/big.bin")).unwrap();
    let mut offs: Vec<u64> = (0..a.size.div_ceil(65536)).map(|i| i * 65536).collect();
    offs.swap(1, 2);
    offs.swap(4, 7);
    for off in offs {
        let b = fs.read(fh, off, 65536).unwrap();
        assert_eq!(b, want[off as usize..off as usize + b.len()]);
    }
}

#[test]
fn prefetch_warms_the_cache() {
    let fx = fixture(&["--compress=lzx"]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let a = resolve(&fs, "dir/big.bin");
    let Node::Inode(i) = fs.node(a.ino).unwrap() else {
        panic!()
    };
    let loc = fs.image().inodes[i].data_stream().unwrap().blob.unwrap();
    let wim = fs.wim();
    wim.prefetch(&loc, 100_000, 200_000).unwrap();
    let before = wim.cache().stats();
    assert!(before.entries >= 200_000 / 32768, "{before:?}");
    let mut buf = vec![0u8; 150_000];
    wim.read_blob_at(&loc, 120_000, &mut buf).unwrap();
    let after = wim.cache().stats();
    assert_eq!(after.misses, before.misses, "all hits after prefetch");
    wim.prefetch(&loc, loc.size, 10).unwrap();
}

/// The blob of the file at `path` and whether all its chunks are cached.
fn all_cached(fs: &Fs, path: &str) -> bool {
    let a = resolve(fs, path);
    let Node::Inode(i) = fs.node(a.ino).unwrap() else {
        panic!()
    };
    let loc = fs.image().inodes[i].data_stream().unwrap().blob.unwrap();
    let span = fs.wim().chunk_span(&loc, 0, loc.size).unwrap().unwrap();
    (span.first..=span.last).all(|c| fs.wim().chunk_cached(span.resource, c))
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed().as_secs() < 20, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn sequential_reader_gets_read_ahead() {
    let fx = fixture(&["--compress=lzx"]);
    let fs = open_fs(&fx.wim, FsOptions::default());
    let a = resolve(&fs, "dir/big.bin");
    let fh = fs.open(a.ino, false).unwrap();
    let want = fs::read(fx.src.join("dir/big.bin")).unwrap();
    assert_eq!(fs.read(fh, 0, 4096).unwrap(), want[..4096]);
    // The workers decode the rest of the (700 kB < 4 MiB window) file.
    eventually("read-ahead", || all_cached(&fs, "dir/big.bin"));
    let misses = fs.wim().cache().stats().misses;
    let mut off = 4096u64;
    while off < a.size {
        let b = fs.read(fh, off, 100_000).unwrap();
        assert_eq!(b, want[off as usize..off as usize + b.len()]);
        off += b.len() as u64;
    }
    assert_eq!(fs.wim().cache().stats().misses, misses, "all hits");
    fs.release(fh);

    // A first read that is not at the start does not trigger read-ahead.
    let fs = open_fs(&fx.wim, FsOptions::default());
    let fh = fs.open(a.ino, false).unwrap();
    assert_eq!(fs.read(fh, 300_000, 10).unwrap(), want[300_000..300_010]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(fs.wim().cache().stats().entries, 1);
    fs.release(fh);
}

#[test]
fn files_opened_in_listing_order_read_ahead_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for k in 0..6u64 {
        fs::write(src.join(format!("f{k}")), pattern(50_000, k + 1)).unwrap();
    }
    let wim = dir.path().join("t.wim");
    capture(&src, &wim, &["--compress=lzx"]);
    let fs = open_fs(&wim, FsOptions::default());
    let listed = names(&fs, ROOT_INO);
    let files: Vec<&String> = listed.iter().filter(|n| n.starts_with('f')).collect();
    assert_eq!(files.len(), 6);
    // Files opened without being read through: nothing speculative.
    for f in &files[1..4] {
        let a = resolve(&fs, f);
        let fh = fs.open(a.ino, false).unwrap();
        fs.read(fh, 1000, 10).unwrap();
        fs.release(fh);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!all_cached(&fs, files[4]));
    // Read through in listing order: the ones after them are decoded before they are opened.
    for f in &files[..3] {
        let a = resolve(&fs, f);
        let data = read_all(&fs, a.ino, 131072).unwrap();
        assert_eq!(data, fs::read(src.join(f)).unwrap());
    }
    for f in &files[3..] {
        eventually("sibling read-ahead", || all_cached(&fs, f));
    }
    for f in &files[2..] {
        let a = resolve(&fs, f);
        assert_eq!(
            read_all(&fs, a.ino, 131072).unwrap(),
            fs::read(src.join(f)).unwrap()
        );
    }
}

#[test]
fn windows_streams_interface_and_none() {
    let fx = fixture(&[]);
    let fs = open_fs(
        &fx.wim,
        FsOptions {
            streams: StreamsInterface::Windows,
            ..Default::default()
        },
    );
    // Linux captures have no named streams: "name:stream" finds nothing, plain names work.
    assert_eq!(fs.lookup(ROOT_INO, b"hello.txt:x"), Err(Errno::ENOENT));
    assert!(fs.lookup(ROOT_INO, b"hello.txt").is_ok());
    assert_eq!(
        "none".parse::<StreamsInterface>(),
        Ok(StreamsInterface::None)
    );
    assert!("bogus".parse::<StreamsInterface>().is_err());
}
