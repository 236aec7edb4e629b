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
    fs.read(i, 0, 1 << 24).unwrap()
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
    assert_eq!(fs.read(tmp.ino, 0, 100).unwrap(), b"still here");
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
    crate::commit::commit(fs, lock, how, &|ino| fs.overlay().path(ino)).unwrap();
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
    let fs = open_rw(&s, false);
    let base = Wim::open(&s.wim)
        .unwrap()
        .metadata_location(1)
        .unwrap()
        .hash;
    fs.start_journal(&s.wim, &base).unwrap();
    operations(&fs, &s.expect);
    // A daemon killed here leaves its staging directory and journal behind.
    let staging = fs.overlay().dir().to_path_buf();
    let rep = crate::journal::read(&staging).unwrap();
    assert_eq!(rep.torn, 0);
    assert!(rep.records.len() > 300, "{} lines", rep.records.len());

    let wim = Arc::new(Wim::open(&s.wim).unwrap());
    let img = Image::load(&wim, 1).unwrap();
    let scratch = Overlay::create(&s.dir.path().join("scratch")).unwrap();
    let again = RwFs::new(wim, img, FsOptions::default(), scratch);
    let files = again.replay(&rep.records, &staging).unwrap();
    let lock = Arc::new(TargetLock::acquire(&s.wim).unwrap());
    let how = crate::commit::CommitOptions::default();
    crate::commit::commit(&again, lock, how, &|ino| {
        staging.join(files[&ino].to_string())
    })
    .unwrap();
    drop(fs);
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
    assert_eq!(fs.read(small, 0, 100).unwrap(), b"");
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
    drop(fs);
    assert!(!staging.exists(), "the staging directory is removed");
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
