//! Read-write core tests: operations on the tree, then a commit checked with wimlib.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use wimfs::write::TargetLock;
use wimfs::Wim;

use super::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_source(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir_all(root.join("gone")).unwrap();
    fs::write(root.join("hello.txt"), "hello\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("dir/big.bin"), big).unwrap();
    fs::write(root.join("dir/sub/small"), "small\n").unwrap();
    fs::write(root.join("cut"), "0123456789abcdef").unwrap();
    std::os::unix::fs::symlink("dir/sub/small", root.join("old_link")).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    wim: std::path::PathBuf,
    expect: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_source(&src);
    let wim = dir.path().join("t.wim");
    run(Command::new("wimlib-imagex")
        .arg("capture")
        .arg(&src)
        .arg(&wim)
        .arg("--compress=lzx"));
    let expect = dir.path().join("expect");
    run(Command::new("cp").arg("-a").arg(&src).arg(&expect));
    Setup { dir, wim, expect }
}

fn open_rw(s: &Setup, unix_data: bool) -> RwFs {
    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let opts = FsOptions {
        unix_data,
        ..FsOptions::default()
    };
    let overlay = Overlay::create(&s.dir.path().join("staging")).unwrap();
    RwFs::new(wim, img, opts, overlay)
}

/// [`open_rw`] with a journal, as a daemon's mount has.
fn open_rw_journaled(s: &Setup) -> RwFs {
    let fs = open_rw(s, false);
    let base = Wim::open(&s.wim)
        .unwrap()
        .metadata_location(1)
        .unwrap()
        .hash;
    fs.start_journal(&s.wim, &base).unwrap();
    fs
}

/// The inode number of `path` (relative to the root).
fn ino(fs: &RwFs, path: &str) -> u64 {
    let mut cur = ROOT_INO;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur = fs.lookup(cur, c.as_bytes()).unwrap().ino;
    }
    cur
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn write_file(fs: &RwFs, path: &str, data: &[u8]) {
    let (dir, name) = split(path);
    let (attr, fh) = fs
        .create(ino(fs, dir), name.as_bytes(), 0o644, 0, 0)
        .unwrap();
    assert_eq!(fs.write(attr.ino, 0, data).unwrap(), data.len() as u32);
    fs.release(fh);
}

fn read_all(fs: &RwFs, path: &str) -> Vec<u8> {
    let i = ino(fs, path);
    let fh = fs.open(i, false, false).unwrap();
    let data = fs.read(fh, 0, 1 << 24).unwrap();
    fs.release(fh);
    data
}

/// The scenario of the acceptance test, on the core and on a plain copy `e` of the source.
fn operations(fs: &RwFs, e: &Path) {
    // A tree of a few hundred new files.
    fs.mkdir(ROOT_INO, b"many", 0o755, 0, 0).unwrap();
    fs::create_dir(e.join("many")).unwrap();
    for i in 0..300 {
        let data = format!("file {i}\n").repeat(i % 7 + 1);
        write_file(fs, &format!("many/f{i:03}"), data.as_bytes());
        fs::write(e.join(format!("many/f{i:03}")), data).unwrap();
    }
    // Append to an existing file (copy-up from the WIM).
    let big = ino(fs, "dir/big.bin");
    let old_len = fs.getattr(big).unwrap().size;
    fs.write(big, old_len, b"appended").unwrap();
    let mut expect_big = fs::read(e.join("dir/big.bin")).unwrap();
    expect_big.extend_from_slice(b"appended");
    fs::write(e.join("dir/big.bin"), &expect_big).unwrap();
    assert_eq!(read_all(fs, "dir/big.bin"), expect_big);
    // Delete, rename, mkdir -p, symlink, hard link, truncate, rmdir.
    fs.unlink(ROOT_INO, b"hello.txt").unwrap();
    fs::remove_file(e.join("hello.txt")).unwrap();
    assert_eq!(fs.lookup(ROOT_INO, b"hello.txt"), Err(Errno::ENOENT));
    fs.rename(ino(fs, "dir/sub"), b"small", ROOT_INO, b"moved", 0)
        .unwrap();
    fs::rename(e.join("dir/sub/small"), e.join("moved")).unwrap();
    fs.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    fs.mkdir(ino(fs, "a"), b"b", 0o755, 0, 0).unwrap();
    fs.mkdir(ino(fs, "a/b"), b"c", 0o755, 0, 0).unwrap();
    fs::create_dir_all(e.join("a/b/c")).unwrap();
    fs.symlink(ino(fs, "a"), b"link", b"../moved", 0, 0)
        .unwrap();
    std::os::unix::fs::symlink("../moved", e.join("a/link")).unwrap();
    assert_eq!(fs.readlink(ino(fs, "a/link")).unwrap(), b"../moved");
    assert_eq!(fs.readlink(ino(fs, "old_link")).unwrap(), b"dir/sub/small");
    let hard = fs.link(ino(fs, "moved"), ino(fs, "a/b"), b"hard").unwrap();
    assert_eq!(hard.nlink, 2);
    fs::hard_link(e.join("moved"), e.join("a/b/hard")).unwrap();
    let cut = ino(fs, "cut");
    let attr = fs
        .setattr(
            cut,
            &SetAttr {
                size: Some(5),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(attr.size, 5);
    fs::write(e.join("cut"), "01234").unwrap();
    assert_eq!(fs.rmdir(ROOT_INO, b"dir"), Err(Errno(libc::ENOTEMPTY)));
    fs.rmdir(ROOT_INO, b"gone").unwrap();
    fs::remove_dir(e.join("gone")).unwrap();
    // Replacing rename, and one that must not replace.
    write_file(fs, "newer", b"newer contents\n");
    fs.rename(ROOT_INO, b"newer", ROOT_INO, b"cut", RENAME_NOREPLACE)
        .unwrap_err();
    fs.rename(ROOT_INO, b"newer", ino(fs, "dir"), b"big.bin", 0)
        .unwrap();
    fs::write(e.join("dir/big.bin"), "newer contents\n").unwrap();
    // Moving a directory into itself fails.
    assert_eq!(
        fs.rename(ROOT_INO, b"a", ino(fs, "a/b"), b"x", 0),
        Err(Errno::EINVAL)
    );
    // Exchange two names.
    write_file(fs, "x1", b"one");
    write_file(fs, "x2", b"two");
    fs.rename(ROOT_INO, b"x1", ROOT_INO, b"x2", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(read_all(fs, "x1"), b"two");
    fs::write(e.join("x1"), "two").unwrap();
    fs::write(e.join("x2"), "one").unwrap();
    // An open file keeps working after its last name is gone.
    let (tmp, fh) = fs.create(ROOT_INO, b"tmp", 0o600, 0, 0).unwrap();
    fs.write(tmp.ino, 0, b"still here").unwrap();
    fs.unlink(ROOT_INO, b"tmp").unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"still here");
    fs.release(fh);
    assert_eq!(fs.getattr(tmp.ino), Err(Errno::ENOENT));
    // Names that cannot be stored.
    assert_eq!(
        fs.mkdir(ROOT_INO, b"a", 0o755, 0, 0),
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(
        fs.create(ROOT_INO, &[0xff, 0xfe], 0o644, 0, 0).map(|_| ()),
        Err(Errno::EINVAL)
    );
}

fn check_committed(s: &Setup) {
    run(Command::new("wimlib-imagex").arg("verify").arg(&s.wim));
    let out = s.dir.path().join("out");
    run(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(&s.wim)
        .arg("1")
        .arg(&out));
    run(Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&out)
        .arg(&s.expect));
    let wim = Wim::open(&s.wim).unwrap();
    assert_eq!(wim.image_count(), 1);
}

fn live_commit(fs: &RwFs, lock: Arc<TargetLock>) {
    let how = crate::commit::CommitOptions::default();
    let log = Overlay::log_path_in(fs.overlay().dir());
    crate::commit::commit(fs, lock, how, &|ino| fs.overlay().path(ino), &log).unwrap();
}

#[test]
fn operations_then_commit_match_a_plain_copy() {
    let s = setup();
    let fs = open_rw(&s, false);
    operations(&fs, &s.expect);
    let lock = Arc::new(TargetLock::acquire(&s.wim).unwrap());
    // The mount's lock keeps out every other writer.
    assert!(TargetLock::acquire(&s.wim).is_err());
    live_commit(&fs, Arc::clone(&lock));
    drop(fs);
    drop(lock);
    check_committed(&s);
}

/// A journal replayed against the base image gives the tree the live mount had: the
/// replayed tree, committed with the live mount's staging files, matches the plain copy.
#[test]
fn journal_replay_rebuilds_the_tree() {
    let s = setup();
    let fs = open_rw_journaled(&s);
    operations(&fs, &s.expect);
    let rep = crate::journal::read(fs.overlay().dir()).unwrap();
    assert_eq!(rep.torn, 0);
    assert!(rep.records.len() > 300, "{} lines", rep.records.len());
    replay_and_commit(&s, fs);
    check_committed(&s);
}

/// What a dead daemon's work becomes: the journal of `fs` replayed onto the base image,
/// committed with `fs`'s staging files and data log.
fn replay_and_commit(s: &Setup, fs: RwFs) {
    let staging = fs.overlay().dir().to_path_buf();
    let rep = crate::journal::read(&staging).unwrap();
    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let scratch = Overlay::create(&s.dir.path().join("scratch")).unwrap();
    let again = RwFs::new(wim, img, FsOptions::default(), scratch);
    let files = again.replay(&rep.records, &staging).unwrap();
    let lock = Arc::new(TargetLock::acquire(&s.wim).unwrap());
    let how = crate::commit::CommitOptions::default();
    let log = Overlay::log_path_in(&staging);
    crate::commit::commit(
        &again,
        lock,
        how,
        &|ino| staging.join(files[&ino].to_string()),
        &log,
    )
    .unwrap();
    drop(fs);
}

/// Small files made on the mount live in memory and the data log, not in staging files of
/// their own; they grow out of it, are cut, and replay from the journal (an open one
/// included, once synced).
#[test]
fn small_files_use_the_data_log() {
    let s = setup();
    let fs = open_rw_journaled(&s);
    let e = &s.expect;
    let staging_files = |fs: &RwFs| -> usize {
        fs::read_dir(fs.overlay().dir())
            .unwrap()
            .filter(|d| {
                let n = d.as_ref().unwrap().file_name();
                n.to_string_lossy().parse::<u64>().is_ok()
            })
            .count()
    };
    for i in 0..50 {
        let data = format!("small {i}\n").repeat(i + 1);
        write_file(&fs, &format!("s{i}"), data.as_bytes());
        fs::write(e.join(format!("s{i}")), data).unwrap();
    }
    assert_eq!(staging_files(&fs), 0);
    assert_eq!(read_all(&fs, "s7"), "small 7\n".repeat(8).as_bytes());
    // Rewriting a closed small file reads it back from the log.
    let s7 = ino(&fs, "s7");
    let fh = fs.open(s7, true, false).unwrap();
    fs.write(s7, 0, b"SMALL").unwrap();
    fs.release(fh);
    let mut want = "small 7\n".repeat(8).into_bytes();
    want[..5].copy_from_slice(b"SMALL");
    assert_eq!(read_all(&fs, "s7"), want);
    fs::write(e.join("s7"), &want).unwrap();
    // Growing past the limit moves it to a staging file.
    let s8 = ino(&fs, "s8");
    let fh = fs.open(s8, true, false).unwrap();
    let big = vec![b'z'; (SMALL_FILE + 100) as usize];
    fs.write(s8, 10, &big).unwrap();
    fs.release(fh);
    assert_eq!(staging_files(&fs), 1);
    let mut want = "small 8\n".repeat(9).into_bytes()[..10].to_vec();
    want.extend_from_slice(&big);
    assert_eq!(read_all(&fs, "s8"), want);
    fs::write(e.join("s8"), &want).unwrap();
    // Cutting: a small file, and a file of the image cut to nothing then rewritten (a copy
    // over it) without copying its old data up.
    let cut = SetAttr {
        size: Some(3),
        ..SetAttr::default()
    };
    fs.setattr(ino(&fs, "s9"), &cut).unwrap();
    fs::write(e.join("s9"), "sma").unwrap();
    let hello = ino(&fs, "hello.txt");
    let fh = fs.open(hello, true, true).unwrap();
    fs.write(hello, 0, b"replaced\n").unwrap();
    fs.release(fh);
    fs::write(e.join("hello.txt"), "replaced\n").unwrap();
    assert_eq!(staging_files(&fs), 1);
    assert_eq!(read_all(&fs, "s9"), b"sma");
    // An open, written, unclosed small file is committed from memory by a live commit.
    let (open, fh) = fs.create(ROOT_INO, b"open", 0o644, 0, 0).unwrap();
    fs.write(open.ino, 0, b"still open").unwrap();
    fs::write(e.join("open"), "still open").unwrap();
    // fsync logs it: a daemon killed now loses nothing.
    fs.fsync(open.ino).unwrap();
    // A logged small file grown by a cut while open (never closed before the "crash").
    let s10 = ino(&fs, "s10");
    let fh10 = fs.open(s10, true, false).unwrap();
    let grow = SetAttr {
        size: Some(120),
        ..SetAttr::default()
    };
    fs.setattr(s10, &grow).unwrap();
    let mut want = "small 10\n".repeat(11).into_bytes();
    want.resize(120, 0);
    assert_eq!(read_all(&fs, "s10"), want);
    fs::write(e.join("s10"), &want).unwrap();
    let _still_open = (fh, fh10);
    replay_and_commit(&s, fs);
    check_committed(&s);
}

#[test]
fn without_commit_the_wim_is_unchanged() {
    let s = setup();
    let before = fs::read(&s.wim).unwrap();
    let fs = open_rw(&s, true);
    write_file(&fs, "new", b"data");
    fs.unlink(ROOT_INO, b"hello.txt").unwrap();
    let big = ino(&fs, "dir/big.bin");
    fs.write(big, 0, b"changed").unwrap();
    fs.setattr(
        big,
        &SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert_eq!(fs.getattr(big).unwrap().perm, 0o600);
    // Opening with O_TRUNC empties a file without copying its old data up.
    let small = ino(&fs, "dir/sub/small");
    let fh = fs.open(small, true, true).unwrap();
    assert_eq!(fs.getattr(small).unwrap().size, 0);
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"");
    fs.release(fh);
    assert_eq!(
        fs.setattr(
            ROOT_INO,
            &SetAttr {
                size: Some(0),
                ..SetAttr::default()
            }
        )
        .map(|_| ()),
        Err(Errno::EISDIR)
    );
    let staging = fs.overlay().dir().to_path_buf();
    assert!(staging.join(big.to_string()).exists());
    fs.overlay().discard();
    assert!(
        !staging.exists(),
        "an explicit discard removes the staging directory"
    );
    drop(fs);
    assert_eq!(fs::read(&s.wim).unwrap(), before);
}

#[test]
fn readdir_survives_removals_during_a_listing() {
    let s = setup();
    let fs = open_rw(&s, false);
    for i in 0..10 {
        write_file(&fs, &format!("f{i}"), b"x");
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut batch = Vec::new();
        fs.readdir(ROOT_INO, offset, &mut |e| {
            batch.push((e.name.to_string(), e.next));
            batch.len() == 3
        })
        .unwrap();
        if batch.is_empty() {
            break;
        }
        for (name, _) in &batch {
            if name.starts_with('f') {
                fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
            }
        }
        offset = batch.last().unwrap().1;
        seen.extend(batch.into_iter().map(|b| b.0));
    }
    let files = seen.iter().filter(|n| n.starts_with('f')).count();
    assert_eq!(files, 10, "{seen:?}");
}

/// Commits `fs` into its WIM and checks the result with `wimlib-imagex verify`.
fn commit_and_verify(s: &Setup, fs: RwFs) {
    let lock = Arc::new(TargetLock::acquire(&s.wim).unwrap());
    live_commit(&fs, Arc::clone(&lock));
    drop(fs);
    drop(lock);
    run(Command::new("wimlib-imagex").arg("verify").arg(&s.wim));
}

/// The named streams of `path` in the committed image: (name, contents, hash).
fn committed_streams(s: &Setup, path: &str) -> Vec<(String, Vec<u8>, [u8; 20])> {
    let wim = Wim::open(&s.wim).unwrap();
    let img = Image::load(&wim, 1).unwrap();
    let d = img.lookup(path).unwrap();
    let mut v: Vec<_> = img
        .inode_of(d)
        .named_streams()
        .map(|st| {
            let data = st
                .blob
                .map_or(Vec::new(), |loc| wim.read_blob(&loc, true).unwrap());
            (st.name.clone(), data, st.hash)
        })
        .collect();
    v.sort();
    v
}

fn xattr_names(fs: &RwFs, ino: u64) -> Vec<String> {
    let list = fs.listxattr(ino).unwrap();
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8(n.to_vec()).unwrap())
        .collect()
}

#[test]
fn named_streams_as_xattrs_are_set_removed_and_committed() {
    let s = setup();
    let fs = open_rw(&s, false);
    let hello = ino(&fs, "hello.txt");
    assert_eq!(xattr_names(&fs, hello), ["system.wim.attributes"]);
    assert_eq!(fs.getxattr(hello, b"user.a"), Err(Errno::ENODATA));

    // Create, create again, replace what is not there, replace.
    fs.setxattr(hello, b"user.a", b"one", 0).unwrap();
    assert_eq!(
        fs.setxattr(hello, b"user.a", b"x", XATTR_CREATE),
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(
        fs.setxattr(hello, b"user.b", b"x", XATTR_REPLACE),
        Err(Errno::ENODATA)
    );
    fs.setxattr(hello, b"user.a", b"two", XATTR_REPLACE)
        .unwrap();
    assert_eq!(fs.getxattr(hello, b"user.a").unwrap(), b"two");
    // Values up to 64 KiB; an empty one is a stream without a blob.
    let big: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
    fs.setxattr(hello, b"user.big", &big, XATTR_CREATE).unwrap();
    assert_eq!(
        fs.setxattr(hello, b"user.huge", &[0; 65537], 0),
        Err(Errno::E2BIG)
    );
    fs.setxattr(hello, b"user.empty", b"", 0).unwrap();
    assert_eq!(fs.getxattr(hello, b"user.empty").unwrap(), b"");
    fs.setxattr(hello, b"user.gone", b"soon", 0).unwrap();
    fs.removexattr(hello, b"user.gone").unwrap();
    assert_eq!(fs.getxattr(hello, b"user.gone"), Err(Errno::ENODATA));
    assert_eq!(
        xattr_names(&fs, hello),
        ["user.a", "user.big", "user.empty", "system.wim.attributes"]
    );
    // What cannot be changed, or stored.
    assert_eq!(fs.removexattr(hello, b"user.nope"), Err(Errno::ENODATA));
    assert_eq!(
        fs.setxattr(hello, b"system.wim.attributes", b"0x00000001", 0),
        Err(Errno(libc::EPERM))
    );
    assert_eq!(
        fs.removexattr(hello, b"system.wim.attributes"),
        Err(Errno(libc::EPERM))
    );
    assert_eq!(
        fs.setxattr(hello, b"trusted.x", b"1", 0),
        Err(Errno(libc::EOPNOTSUPP))
    );
    assert_eq!(fs.setxattr(hello, b"user.a:b", b"1", 0), Err(Errno::EINVAL));
    assert_eq!(fs.setxattr(hello, b"user.", b"1", 0), Err(Errno::EINVAL));
    assert_eq!(fs.setxattr(hello, b"user.c", b"1", 4), Err(Errno::EINVAL));
    assert_eq!(fs.getxattr(999_999, b"user.a"), Err(Errno::ENOENT));
    // Streams belong to the inode: a hard link shows them too.
    let hard = fs.link(hello, ROOT_INO, b"hard").unwrap();
    assert_eq!(fs.getxattr(hard.ino, b"user.a").unwrap(), b"two");
    // A new file and a directory.
    write_file(&fs, "new", b"new data");
    let new = ino(&fs, "new");
    fs.setxattr(new, b"user.s", b"on a new file", 0).unwrap();
    fs.setxattr(ino(&fs, "dir"), b"user.d", b"on a directory", 0)
        .unwrap();
    // The read-only attributes are there as on a read-only mount.
    assert_eq!(
        fs.getxattr(ino(&fs, "dir"), b"system.wim.attributes")
            .unwrap(),
        b"0x00000010"
    );
    let link = ino(&fs, "old_link");
    assert!(xattr_names(&fs, link).contains(&"system.wim.reparse".to_string()));
    let rp = fs.getxattr(link, b"system.wim.reparse").unwrap();
    assert_eq!(rp[..4], 0xA000_000Cu32.to_le_bytes());
    let made = fs.symlink(ROOT_INO, b"made", b"hello.txt", 0, 0).unwrap();
    let rp = fs.getxattr(made.ino, b"system.wim.reparse").unwrap();
    assert_eq!(rp[..4], 0xA000_000Cu32.to_le_bytes());
    assert_eq!(rp.len(), 8 + u16::from_le_bytes([rp[4], rp[5]]) as usize);
    commit_and_verify(&s, fs);

    let hello_streams = committed_streams(&s, "hello.txt");
    let names: Vec<&str> = hello_streams.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(names, ["a", "big", "empty"]);
    assert_eq!(hello_streams[0].1, b"two");
    assert_eq!(hello_streams[1].1, big);
    assert_eq!(hello_streams[2].1, b"");
    assert_eq!(hello_streams[2].2, [0; 20], "an empty stream has no blob");
    assert_eq!(committed_streams(&s, "hard"), hello_streams);
    let new_streams = committed_streams(&s, "new");
    assert_eq!(new_streams.len(), 1);
    assert_eq!(
        (new_streams[0].0.as_str(), &new_streams[0].1[..]),
        ("s", &b"on a new file"[..])
    );
    assert_eq!(committed_streams(&s, "dir")[0].1, b"on a directory");

    // A second mount reads the committed streams from the WIM; one removed, one changed,
    // the rest untouched (same blob).
    fs::remove_dir_all(s.dir.path().join("staging")).ok();
    let fs = open_rw(&s, false);
    let hello = ino(&fs, "hello.txt");
    assert_eq!(fs.getxattr(hello, b"user.a").unwrap(), b"two");
    assert_eq!(fs.getxattr(hello, b"user.big").unwrap(), big);
    assert_eq!(
        fs.setxattr(hello, b"user.a", b"x", XATTR_CREATE),
        Err(Errno(libc::EEXIST))
    );
    fs.removexattr(hello, b"user.a").unwrap();
    assert_eq!(fs.getxattr(hello, b"user.a"), Err(Errno::ENODATA));
    assert_eq!(fs.removexattr(hello, b"user.a"), Err(Errno::ENODATA));
    let new = ino(&fs, "new");
    fs.setxattr(new, b"user.s", b"changed", XATTR_REPLACE)
        .unwrap();
    commit_and_verify(&s, fs);
    let after = committed_streams(&s, "hello.txt");
    assert_eq!(after, hello_streams[1..].to_vec());
    assert_eq!(committed_streams(&s, "new")[0].1, b"changed");
    assert_eq!(committed_streams(&s, "dir")[0].1, b"on a directory");
}

#[test]
fn other_streams_interfaces_refuse_stream_xattrs() {
    let s = setup();
    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let opts = FsOptions {
        streams: crate::core::StreamsInterface::Windows,
        ..FsOptions::default()
    };
    let overlay = Overlay::create(&s.dir.path().join("staging")).unwrap();
    let fs = RwFs::new(wim, img, opts, overlay);
    let hello = ino(&fs, "hello.txt");
    assert_eq!(
        fs.setxattr(hello, b"user.a", b"1", 0),
        Err(Errno(libc::EOPNOTSUPP))
    );
    assert_eq!(
        fs.removexattr(hello, b"user.a"),
        Err(Errno(libc::EOPNOTSUPP))
    );
    assert_eq!(fs.getxattr(hello, b"user.a"), Err(Errno::ENODATA));
    assert_eq!(
        fs.getxattr(hello, b"system.wim.attributes").unwrap(),
        b"0x00000080"
    );
}

#[test]
fn mknod_makes_special_files_with_unix_data_only() {
    let s = setup();
    let plain = open_rw(&s, false);
    assert_eq!(
        plain.mknod(ROOT_INO, b"fifo", 0o010644, 0, 0, 0),
        Err(Errno(libc::EPERM))
    );
    assert_eq!(
        plain.mknod(ROOT_INO, b"chr", 0o020644, 0x103, 0, 0),
        Err(Errno(libc::EPERM))
    );
    let reg = plain.mknod(ROOT_INO, b"reg", 0o100600, 0, 0, 0).unwrap();
    assert_eq!(reg.kind, Kind::File);
    assert_eq!(plain.open_handles(), 0, "mknod opens nothing");
    drop(plain);

    fs::remove_dir_all(s.dir.path().join("staging")).ok();
    let fs = open_rw(&s, true);
    let fifo = fs.mknod(ROOT_INO, b"fifo", 0o010640, 0, 1, 2).unwrap();
    assert_eq!((fifo.kind, fifo.perm, fifo.rdev), (Kind::Fifo, 0o640, 0));
    assert_eq!((fifo.uid, fifo.gid), (1, 2));
    let chr = fs.mknod(ROOT_INO, b"null", 0o020666, 0x103, 0, 0).unwrap();
    assert_eq!(
        (chr.kind, chr.perm, chr.rdev),
        (Kind::CharDevice, 0o666, 0x103)
    );
    let blk = fs.mknod(ROOT_INO, b"blk", 0o060600, 0x801, 0, 0).unwrap();
    assert_eq!((blk.kind, blk.rdev), (Kind::BlockDevice, 0x801));
    let sock = fs.mknod(ROOT_INO, b"sock", 0o140755, 77, 0, 0).unwrap();
    assert_eq!((sock.kind, sock.rdev), (Kind::Socket, 0));
    let reg = fs.mknod(ROOT_INO, b"reg", 0o100600, 0, 0, 0).unwrap();
    assert_eq!((reg.kind, reg.perm, reg.size), (Kind::File, 0o600, 0));
    let fh = fs.open(reg.ino, false, false).unwrap();
    assert_eq!(fs.read(fh, 0, 10).unwrap(), b"");
    fs.release(fh);
    let reg0 = fs.mknod(ROOT_INO, b"reg0", 0o644, 0, 0, 0).unwrap();
    assert_eq!(reg0.kind, Kind::File);
    assert_eq!(
        fs.mknod(ROOT_INO, b"d", 0o040755, 0, 0, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fs.mknod(ROOT_INO, b"fifo", 0o010644, 0, 0, 0),
        Err(Errno(libc::EEXIST))
    );
    assert_eq!(
        fs.mknod(ROOT_INO, b"a/b", 0o010644, 0, 0, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        fs.setattr(
            chr.ino,
            &SetAttr {
                size: Some(1),
                ..SetAttr::default()
            }
        )
        .map(|_| ()),
        Err(Errno::EINVAL)
    );
    assert_eq!(fs.open_handles(), 0);
    commit_and_verify(&s, fs);

    let wim = Wim::open(&s.wim).unwrap();
    let img = Image::load(&wim, 1).unwrap();
    let unix = |p: &str| {
        let i = img.inode_of(img.lookup(p).unwrap());
        (i.attributes, i.unix.unwrap(), i.streams.len())
    };
    let (attrs, u, streams) = unix("null");
    assert_eq!((attrs, u.mode, u.rdev, streams), (0, 0o020666, 0x103, 0));
    assert_eq!(unix("fifo").1.mode, 0o010640);
    assert_eq!((unix("fifo").1.uid, unix("fifo").1.gid), (1, 2));
    assert_eq!(unix("blk").1.rdev, 0x801);
    assert_eq!(unix("sock").1.mode, 0o140755);
    assert_eq!(unix("reg").0, FILE_ATTRIBUTE_NORMAL);
    assert_eq!(unix("reg").1.mode, 0o100600);
    // wimlib restores them as such (device nodes need root).
    // SAFETY: geteuid cannot fail.
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let out = s.dir.path().join("out");
    run(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(&s.wim)
        .arg("1")
        .arg(&out)
        .arg("--unix-data"));
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = fs::symlink_metadata(out.join("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o640);
    let m = fs::symlink_metadata(out.join("null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    let m = fs::symlink_metadata(out.join("blk")).unwrap();
    assert!(m.file_type().is_block_device());
    assert!(fs::symlink_metadata(out.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
}

#[test]
fn fallocate_extends_or_keeps_the_visible_size() {
    let s = setup();
    let fs = open_rw(&s, false);
    let e = &s.expect;
    // Mode 0 past the end grows the file with zeros.
    write_file(&fs, "grown", b"abc");
    let grown = ino(&fs, "grown");
    fs.fallocate(grown, 0, 10_000, 0).unwrap();
    assert_eq!(fs.getattr(grown).unwrap().size, 10_000);
    let mut expect = b"abc".to_vec();
    expect.resize(10_000, 0);
    assert_eq!(read_all(&fs, "grown"), expect);
    fs::write(e.join("grown"), &expect).unwrap();
    // Inside the file nothing visible changes (an untouched file is copied up).
    let hello = ino(&fs, "hello.txt");
    fs.fallocate(hello, 1, 3, 0).unwrap();
    assert_eq!(read_all(&fs, "hello.txt"), b"hello\n");
    // KEEP_SIZE reserves past the end; the size and the staging file's length stay.
    let cut = ino(&fs, "cut");
    fs.fallocate(cut, 0, 1 << 20, FALLOC_FL_KEEP_SIZE).unwrap();
    assert_eq!(fs.getattr(cut).unwrap().size, 16);
    assert_eq!(read_all(&fs, "cut"), b"0123456789abcdef");
    let staged = fs.overlay().path(cut);
    assert_eq!(fs::metadata(&staged).unwrap().len(), 16);
    // A write after it lands where it should.
    fs.write(cut, 16, b"+more").unwrap();
    assert_eq!(fs.getattr(cut).unwrap().size, 21);
    fs::write(e.join("cut"), "0123456789abcdef+more").unwrap();
    // KEEP_SIZE on a new, empty file.
    let (a, fh) = fs.create(ROOT_INO, b"reserved", 0o644, 0, 0).unwrap();
    fs.fallocate(a.ino, 0, 4096, FALLOC_FL_KEEP_SIZE).unwrap();
    fs.release(fh);
    assert_eq!(fs.getattr(a.ino).unwrap().size, 0);
    fs::write(e.join("reserved"), "").unwrap();
    // Mode 0 at an offset past the end.
    write_file(&fs, "far", b"x");
    fs.fallocate(ino(&fs, "far"), 100, 50, 0).unwrap();
    let mut far = b"x".to_vec();
    far.resize(150, 0);
    assert_eq!(read_all(&fs, "far"), far);
    fs::write(e.join("far"), &far).unwrap();
    // Errors.
    assert_eq!(
        fs.fallocate(hello, 0, 10, 2),
        Err(Errno(libc::EOPNOTSUPP)),
        "punching holes is not supported"
    );
    assert_eq!(
        fs.fallocate(hello, 0, 10, 0x10),
        Err(Errno(libc::EOPNOTSUPP))
    );
    assert_eq!(fs.fallocate(hello, 0, 0, 0), Err(Errno::EINVAL));
    assert_eq!(fs.fallocate(ROOT_INO, 0, 10, 0), Err(Errno::EISDIR));
    assert_eq!(
        fs.fallocate(hello, u64::MAX - 1, 10, 0),
        Err(Errno(libc::EFBIG))
    );
    assert_eq!(fs.fallocate(999_999, 0, 10, 0), Err(Errno::ENOENT));
    assert_eq!(read_all(&fs, "hello.txt"), b"hello\n");
    commit_and_verify(&s, fs);
    check_committed(&s);
}

#[test]
fn linux_xattrs_from_unix_data_are_read_only() {
    let s = setup();
    let src = s.dir.path().join("src");
    let file = std::ffi::CString::new(src.join("hello.txt").to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings and a readable value.
    let r = unsafe {
        libc::setxattr(
            file.as_ptr(),
            c"user.linux".as_ptr(),
            b"kept".as_ptr().cast(),
            4,
            0,
        )
    };
    if r != 0 {
        eprintln!("skipping: no user xattrs on {}", src.display());
        return;
    }
    fs::remove_file(&s.wim).unwrap();
    run(Command::new("wimlib-imagex")
        .arg("capture")
        .arg(&src)
        .arg(&s.wim)
        .arg("--unix-data"));
    let fs = open_rw(&s, true);
    let hello = ino(&fs, "hello.txt");
    assert!(xattr_names(&fs, hello).contains(&"user.linux".to_string()));
    assert_eq!(fs.getxattr(hello, b"user.linux").unwrap(), b"kept");
    assert_eq!(
        fs.setxattr(hello, b"user.linux", b"x", 0),
        Err(Errno(libc::EPERM))
    );
    assert_eq!(
        fs.removexattr(hello, b"user.linux"),
        Err(Errno(libc::EPERM))
    );
    // Streams of other names still work beside it, and the xattr survives a commit.
    fs.setxattr(hello, b"user.stream", b"s", 0).unwrap();
    commit_and_verify(&s, fs);
    let wim = Wim::open(&s.wim).unwrap();
    let img = Image::load(&wim, 1).unwrap();
    let inode = img.inode_of(img.lookup("hello.txt").unwrap());
    assert_eq!(inode.xattrs.len(), 1);
    assert_eq!(inode.xattrs[0].value, b"kept");
    assert_eq!(committed_streams(&s, "hello.txt")[0].1, b"s");
}

/// Recovery refuses staged data that is missing or shorter than the journal says, naming
/// the staging file, rather than committing a damaged or empty file.
#[test]
fn replay_refuses_lost_staged_data() {
    for (how, want) in [("remove", "missing"), ("shorten", "holds 1000 bytes")] {
        let s = setup();
        let fs = open_rw_journaled(&s);
        // Copied up (300,000 bytes), then grown by a write: at least 300,000 must be there.
        let big = ino(&fs, "dir/big.bin");
        let fh = fs.open(big, true, false).unwrap();
        fs.write(big, 300_000, b"tail").unwrap();
        fs.release(fh);
        let staging = fs.overlay().dir().to_path_buf();
        let file = staging.join(big.to_string());
        match how {
            "remove" => fs::remove_file(&file).unwrap(),
            _ => fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(1000)
                .unwrap(),
        }
        let rep = crate::journal::read(&staging).unwrap();
        let wim = Arc::new(Wim::open(&s.wim).unwrap());
        let img = Image::load(&wim, 1).unwrap();
        let scratch = Overlay::create(&s.dir.path().join("scratch")).unwrap();
        let again = RwFs::new(wim, img, FsOptions::default(), scratch);
        let err = again.replay(&rep.records, &staging).unwrap_err();
        assert!(err.contains(want), "{how}: {err}");
        assert!(err.contains(&file.display().to_string()), "{how}: {err}");
        assert!(err.contains("/dir/big.bin"), "{how}: {err}");
    }
}

/// Inodes of the image enter the layer only when they change: reads, lookups and listings
/// bring nothing in; hard links of the image, moved directories and listings in progress
/// keep working across the change; the journal names everything by its current path, so
/// the replayed journal commits the same tree as a plain copy given the same changes.
#[test]
fn image_inodes_enter_the_layer_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for d in ["d1", "d2", "d3"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::create_dir_all(src.join("deep/sub")).unwrap();
    fs::create_dir_all(src.join("many")).unwrap();
    fs::write(src.join("d1/f"), "linked\n").unwrap();
    fs::hard_link(src.join("d1/f"), src.join("d2/f")).unwrap();
    fs::hard_link(src.join("d1/f"), src.join("d3/f")).unwrap();
    fs::write(src.join("deep/sub/file"), "deep\n").unwrap();
    fs::write(src.join("deep/sub/other"), "other\n").unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("many/e{i}")), format!("{i}\n")).unwrap();
    }
    let wim = dir.path().join("t.wim");
    run(Command::new("wimlib-imagex")
        .arg("capture")
        .arg(&src)
        .arg(&wim)
        .arg("--compress=lzx"));
    let expect = dir.path().join("expect");
    run(Command::new("cp").arg("-a").arg(&src).arg(&expect));
    let s = Setup { dir, wim, expect };
    let fs = open_rw_journaled(&s);
    let layer = |fs: &RwFs| fs.tree.lock().nodes.len();

    assert_eq!(read_all(&fs, "d2/f"), b"linked\n");
    assert_eq!(fs.getattr(ino(&fs, "d1/f")).unwrap().nlink, 3);
    fs.readdir(ino(&fs, "many"), 0, &mut |_| false).unwrap();
    assert_eq!(
        fs.statfs().files,
        20,
        "root, 6 directories, 13 files (one with 3 names)"
    );
    assert_eq!(layer(&fs), 0, "reading brings nothing into the layer");

    // The name the journal knows a file of the image by goes while it is open: the file
    // stays readable, and its other names, in directories the change does not touch, keep
    // it (and the journal then names it by one of them).
    let f = ino(&fs, "d1/f");
    let primary = {
        let mut tree = fs.tree.lock();
        let parent = tree.get(f).unwrap().parent;
        let dir = tree.path_in(parent, "");
        tree.nodes.remove(&f);
        dir.trim_end_matches('/').to_string()
    };
    let fh = fs.open(f, false, false).unwrap();
    fs.unlink(ino(&fs, &primary), b"f").unwrap();
    assert_eq!(fs.read(fh, 0, 100).unwrap(), b"linked\n");
    fs.release(fh);
    fs::remove_file(s.expect.join(&primary).join("f")).unwrap();
    let left = ["d1", "d2", "d3"]
        .into_iter()
        .find(|&d| d != primary)
        .unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    let fh = fs.open(f, true, false).unwrap();
    fs.write(f, 0, b"LINKED").unwrap();
    fs.release(fh);
    fs::write(s.expect.join(left).join("f"), "LINKED\n").unwrap();

    // A directory of the image moved: what lies below it, unchanged, moves with it.
    fs.rename(ROOT_INO, b"deep", ROOT_INO, b"moved", 0).unwrap();
    assert_eq!(read_all(&fs, "moved/sub/file"), b"deep\n");
    let other = ino(&fs, "moved/sub/other");
    let fh = fs.open(other, true, true).unwrap();
    fs.write(other, 0, b"changed below a move\n").unwrap();
    fs.release(fh);
    fs::rename(s.expect.join("deep"), s.expect.join("moved")).unwrap();
    fs::write(s.expect.join("moved/sub/other"), "changed below a move\n").unwrap();

    // A listing of an image directory goes on across a change made during it.
    let many = ino(&fs, "many");
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut batch = Vec::new();
        fs.readdir(many, offset, &mut |e| {
            batch.push((e.name.to_string(), e.next));
            batch.len() == 4
        })
        .unwrap();
        let Some(last) = batch.last() else { break };
        offset = last.1;
        if seen.is_empty() {
            write_file(&fs, "many/new", b"new\n");
        }
        seen.extend(batch.into_iter().map(|b| b.0));
    }
    let mut old: Vec<_> = seen.iter().filter(|n| n.starts_with('e')).collect();
    old.sort();
    old.dedup();
    assert_eq!(old.len(), 10, "{seen:?}");
    assert_eq!(seen.iter().filter(|n| n.starts_with('e')).count(), 10);
    fs::write(s.expect.join("many/new"), "new\n").unwrap();

    replay_and_commit(&s, fs);
    check_committed(&s);
}

/// Extended attributes come from one rule in both modes: for every file, a read-write mount
/// lists and gives the same attributes as a read-only mount of the same image (inode numbers
/// are the same too), whether the file is still the image's or has entered the layer.
#[test]
fn xattrs_are_the_read_only_mounts_before_and_after_entering_the_layer() {
    let s = setup();
    let fs = open_rw(&s, false);
    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let ro = crate::core::Fs::new(wim, img, FsOptions::default());
    let paths = [
        "",
        "hello.txt",
        "dir",
        "dir/big.bin",
        "dir/sub",
        "dir/sub/small",
        "cut",
        "old_link",
    ];
    for path in paths {
        let i = ino(&fs, path);
        let list = ro.listxattr(i).unwrap();
        let mut names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
        names.extend([
            &b"system.wim.reparse"[..],
            b"system.wim.short_name",
            b"user.none",
        ]);
        for layer in [false, true] {
            if layer {
                fs.tree.lock().get(i).unwrap();
            }
            assert_eq!(
                fs.listxattr(i).unwrap(),
                list,
                "/{path}, in the layer: {layer}"
            );
            for name in &names {
                assert_eq!(
                    fs.getxattr(i, name),
                    ro.getxattr(i, name),
                    "/{path} {}, in the layer: {layer}",
                    String::from_utf8_lossy(name)
                );
            }
        }
    }
    assert!(!fs.tree.lock().nodes.is_empty());
}

/// With the `windows` streams interface, `file:stream` names reach named streams as on a
/// read-only mount: looked up, created, written, read, cut, removed and committed.
#[test]
fn file_colon_stream_names_with_the_windows_interface() {
    let s = setup();
    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let opts = FsOptions {
        streams: StreamsInterface::Windows,
        ..FsOptions::default()
    };
    let overlay = Overlay::create(&s.dir.path().join("staging")).unwrap();
    let fs = RwFs::new(wim, img, opts, overlay);
    assert_eq!(
        fs.lookup(ROOT_INO, b"hello.txt:s").unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(
        fs.create(ROOT_INO, b"nope:s", 0o644, 0, 0).unwrap_err(),
        Errno::ENOENT
    );
    let (a, fh) = fs.create(ROOT_INO, b"hello.txt:s", 0o644, 0, 0).unwrap();
    assert_eq!((a.kind, a.size, a.nlink), (Kind::File, 0, 1));
    assert_eq!(fs.write(a.ino, 0, b"stream!").unwrap(), 7);
    fs.release(fh);
    assert_eq!(
        fs.create(ROOT_INO, b"hello.txt:s", 0o644, 0, 0)
            .unwrap_err(),
        Errno(libc::EEXIST)
    );
    assert_eq!(fs.lookup(ROOT_INO, b"hello.txt:s").unwrap().size, 7);
    assert_eq!(read_all(&fs, "hello.txt:s"), b"stream!");
    // The file itself is untouched.
    assert_eq!(read_all(&fs, "hello.txt"), b"hello\n");
    let s2 = ino(&fs, "hello.txt:s");
    fs.setattr(
        s2,
        &SetAttr {
            size: Some(6),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert_eq!(read_all(&fs, "hello.txt:s"), b"stream");
    let (b, fh) = fs.create(ROOT_INO, b"hello.txt:gone", 0o644, 0, 0).unwrap();
    fs.release(fh);
    fs.unlink(ROOT_INO, b"hello.txt:gone").unwrap();
    assert_eq!(fs.getattr(b.ino).unwrap_err(), Errno::ENOENT);
    assert_eq!(
        fs.lookup(ROOT_INO, b"hello.txt:gone").unwrap_err(),
        Errno::ENOENT
    );
    let lock = Arc::new(TargetLock::acquire(&s.wim).unwrap());
    live_commit(&fs, lock);
    drop(fs);
    let out = Command::new("wimlib-imagex")
        .args([
            "dir",
            s.wim.to_str().unwrap(),
            "1",
            "--detailed",
            "--path",
            "/hello.txt",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Named data stream \"s\":"), "{text}");
    assert!(text.contains("Uncompressed size = 6 bytes"), "{text}");
    assert!(!text.contains("\"gone\""), "{text}");
}

/// Reads of image data through a handle skip the tree until the data changes; after any
/// change (a write, a cut, a copy-up of a big file) the same handle reads the new data.
#[test]
fn handles_reading_image_data_see_later_changes() {
    let s = setup();
    let fs = open_rw(&s, false);
    let hello = ino(&fs, "hello.txt");
    let r = fs.open(hello, false, false).unwrap();
    assert_eq!(fs.read(r, 0, 100).unwrap(), b"hello\n");
    assert_eq!(
        fs.fast.read().len(),
        1,
        "the second read takes the fast path"
    );
    assert_eq!(fs.read(r, 1, 100).unwrap(), b"ello\n");
    fs.write(hello, 0, b"J").unwrap();
    assert_eq!(fs.read(r, 0, 100).unwrap(), b"Jello\n");
    fs.setattr(
        hello,
        &SetAttr {
            size: Some(2),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert_eq!(fs.read(r, 0, 100).unwrap(), b"Je");
    fs.release(r);

    let big = ino(&fs, "dir/big.bin");
    let want: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = fs.open(big, false, false).unwrap();
    let r2 = fs.open(big, false, false).unwrap();
    assert_eq!(fs.read(r, 0, 10).unwrap(), &want[..10]);
    assert_eq!(fs.read(r2, 100, 10).unwrap(), &want[100..110]);
    // Only attributes change: the data is still the image's.
    fs.setattr(
        big,
        &SetAttr {
            mtime: Some(std::time::UNIX_EPOCH),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert_eq!(fs.read(r, 0, 10).unwrap(), &want[..10]);
    fs.write(big, 5, b"XYZ").unwrap();
    let mut changed = want[..10].to_vec();
    changed[5..8].copy_from_slice(b"XYZ");
    assert_eq!(fs.read(r, 0, 10).unwrap(), changed);
    assert_eq!(fs.read(r2, 0, 10).unwrap(), changed);
    fs.release(r);
    fs.release(r2);
    assert!(fs.fast.read().is_empty());
}
