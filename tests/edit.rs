//! append / export / delete / optimize: the files wimfs changes must stay valid for
//! wimlib-imagex and 7-Zip, hold the right images, and survive a crash at any moment.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Two source trees sharing some files (so deduplication across images matters).
fn two_trees(root: &Path) -> (PathBuf, PathBuf) {
    let a = root.join("a");
    make_tree(&a);
    let b = root.join("b");
    fs::create_dir_all(b.join("sub")).unwrap();
    fs::write(b.join("hello.txt"), "Hello, WIM!\n").unwrap();
    fs::write(b.join("sub/other.bin"), mixed_data(700_000, 11)).unwrap();
    fs::write(b.join("sub/random"), pseudo_random(200_000, 5)).unwrap();
    fs::copy(a.join("dir/big.txt"), b.join("copy_of_big.txt")).unwrap();
    (a, b)
}

/// Image names as `wimlib-imagex info` reports them, in order.
fn names(wim: &Path) -> Vec<String> {
    ok(wimlib(["info"]).arg(wim))
        .lines()
        .filter_map(|l| l.strip_prefix("Name:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// wimlib verifies the file, 7-Zip tests it, and image `index` applies as `tree`.
fn check_image(wim: &Path, index: u32, tree: &Path) {
    ok(wimlib(["verify"]).arg(wim));
    let t = ok(Command::new("7zz").arg("t").arg(wim));
    assert!(t.contains("Everything is Ok"), "7zz t: {t}");
    let out = wim.with_extension(format!("apply{index}"));
    let _ = fs::remove_dir_all(&out);
    ok(wimlib(["apply"]).arg(wim).arg(index.to_string()).arg(&out));
    assert_same_tree(tree, &out);
    fs::remove_dir_all(&out).unwrap();
}

#[test]
fn append_export_delete_optimize() {
    let tmp = tempdir();
    let (a, b) = two_trees(tmp.path());
    let wim = tmp.path().join("x.wim");
    ok(wimfs_cmd(["capture", "-q"]).arg(&a).arg(&wim).arg("A"));
    let size_one = fs::metadata(&wim).unwrap().len();
    ok(wimfs_cmd(["append", "-q"])
        .arg(&b)
        .arg(&wim)
        .arg("B")
        .arg("second"));
    assert_eq!(names(&wim), ["A", "B"]);
    check_image(&wim, 1, &a);
    check_image(&wim, 2, &b);
    // In place: the first image's data was not written again.
    let grown = fs::metadata(&wim).unwrap().len() - size_one;
    assert!(grown < 1_500_000, "append grew the file by {grown} bytes");

    // A duplicate name is refused and leaves the file as it was.
    let before = fs::read(&wim).unwrap();
    let out = run(wimfs_cmd(["append", "-q"]).arg(&b).arg(&wim).arg("B"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has an image named"));
    assert!(
        fs::read(&wim).unwrap() == before,
        "a refused append changed the file"
    );

    // Export one image to a new file (renamed), then another into it in place.
    let y = tmp.path().join("y.wim");
    ok(wimfs_cmd(["export", "-q"])
        .arg(&wim)
        .arg("B")
        .arg(&y)
        .arg("B2"));
    assert_eq!(names(&y), ["B2"]);
    check_image(&y, 1, &b);
    ok(wimfs_cmd(["export", "-q"]).arg(&wim).arg("1").arg(&y));
    assert_eq!(names(&y), ["B2", "A"]);
    check_image(&y, 2, &a);
    // Export everything with recompression to another format.
    let z = tmp.path().join("z.wim");
    ok(wimfs_cmd(["export", "-q", "--compress=xpress"])
        .arg(&wim)
        .arg("all")
        .arg(&z));
    assert_eq!(names(&z), ["A", "B"]);
    assert!(ok(wimlib(["info", "--header"]).arg(&z)).contains("COMPRESS_XPRESS"));
    check_image(&z, 1, &a);
    check_image(&z, 2, &b);

    // Soft delete: in place; then optimize reclaims the space.
    ok(wimfs_cmd(["delete", "--soft"]).arg(&y).arg("B2"));
    assert_eq!(names(&y), ["A"]);
    check_image(&y, 1, &a);
    let soft = fs::metadata(&y).unwrap().len();
    ok(wimfs_cmd(["optimize", "-q"]).arg(&y));
    let optimized = fs::metadata(&y).unwrap().len();
    assert!(
        optimized < soft,
        "optimize did not shrink {soft} -> {optimized}"
    );
    check_image(&y, 1, &a);

    // Default delete rebuilds the file.
    ok(wimfs_cmd(["delete"]).arg(&wim).arg("1"));
    assert_eq!(names(&wim), ["B"]);
    check_image(&wim, 1, &b);
    assert!(fs::metadata(&wim).unwrap().len() < size_one);

    // optimize with another compression and an integrity table.
    ok(wimfs_cmd([
        "optimize",
        "-q",
        "--compress=lzx",
        "--chunk-size=2097152",
        "--check",
    ])
    .arg(&z));
    ok(wimlib(["verify"]).arg(&z));
    let info = ok(wimlib(["info", "--header"]).arg(&z));
    assert!(
        info.contains("COMPRESS_LZX") && info.contains("2097152"),
        "{info}"
    );
    check_image(&z, 2, &b);

    // The other way round: wimlib writes, wimfs exports and optimizes, wimlib reads.
    let w = tmp.path().join("w.wim");
    ok(wimlib(["capture", "--compress=lzx"])
        .arg(&a)
        .arg(&w)
        .arg("WA"));
    ok(wimlib(["append"]).arg(&b).arg(&w).arg("WB"));
    let v = tmp.path().join("v.wim");
    ok(wimfs_cmd(["export", "-q"]).arg(&w).arg("all").arg(&v));
    assert_eq!(names(&v), ["WA", "WB"]);
    check_image(&v, 1, &a);
    check_image(&v, 2, &b);
    ok(wimfs_cmd(["optimize", "-q", "--recompress"]).arg(&w));
    check_image(&w, 2, &b);
}

#[test]
fn solid_capture_append_and_optimize() {
    let tmp = tempdir();
    let (a, b) = two_trees(tmp.path());
    let wim = tmp.path().join("s.wim");
    // LZX solid resources keep this test independent of the LZMS compressor.
    let solid = ["--compress=lzx", "--solid", "--solid-compress=lzx"];
    ok(wimfs_cmd(["capture", "-q"])
        .args(solid)
        .arg(&a)
        .arg(&wim)
        .arg("A"));
    let header = ok(wimlib(["info", "--header"]).arg(&wim));
    assert!(header.contains("0xe00"), "{header}");
    check_image(&wim, 1, &a);
    // Appending to a solid file stays solid.
    ok(wimfs_cmd(["append", "-q"]).arg(&b).arg(&wim).arg("B"));
    check_image(&wim, 2, &b);
    let before = names(&wim);
    ok(wimfs_cmd(["optimize", "-q"]).arg(&wim));
    assert_eq!(names(&wim), before);
    check_image(&wim, 1, &a);
    // ... and out of it into a plain WIM.
    let plain = tmp.path().join("p.wim");
    ok(wimfs_cmd(["export", "-q", "--compress=xpress"])
        .arg(&wim)
        .arg("2")
        .arg(&plain));
    assert!(ok(wimlib(["info", "--header"]).arg(&plain)).contains("0x10d00"));
    check_image(&plain, 1, &b);
}

/// Runs `wimfs append` with a crash point set; it must die by SIGKILL.
fn crash_append(src: &Path, wim: &Path, name: &str, point: &str) {
    let out = run(wimfs_cmd(["append", "-q"])
        .arg(src)
        .arg(wim)
        .arg(name)
        .env("WIMFS_CRASH_AT", point));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "append did not crash at {point}"
    );
}

#[test]
fn a_crashed_append_leaves_the_old_images() {
    let tmp = tempdir();
    let (a, b) = two_trees(tmp.path());
    let wim = tmp.path().join("c.wim");
    ok(wimfs_cmd(["capture", "-q", "--check"])
        .arg(&a)
        .arg(&wim)
        .arg("A"));
    let header = fs::read(&wim).unwrap()[..208].to_vec();
    for point in ["data", "tables"] {
        crash_append(&b, &wim, "B", point);
        assert_eq!(names(&wim), ["A"], "after a crash at {point}");
        assert!(
            fs::read(&wim).unwrap()[..208] == header[..],
            "header changed by a crash at {point}"
        );
        ok(wimlib(["verify"]).arg(&wim));
        check_image(&wim, 1, &a);
    }
    // A crash after the header write (before its sync) still leaves a consistent file:
    // here the page cache keeps the write, so the new image is there.
    crash_append(&b, &wim, "B", "header");
    assert_eq!(names(&wim), ["A", "B"]);
    check_image(&wim, 2, &b);
    // The next append cuts off any torn tail and works as usual.
    ok(wimfs_cmd(["delete", "--soft"]).arg(&wim).arg("B"));
    let len = fs::metadata(&wim).unwrap().len();
    crash_append(&b, &wim, "C", "data");
    assert!(fs::metadata(&wim).unwrap().len() > len);
    ok(wimfs_cmd(["append", "-q"]).arg(&b).arg(&wim).arg("C"));
    assert_eq!(names(&wim), ["A", "C"]);
    ok(wimlib(["verify"]).arg(&wim));
    ok(wimlib(["info", "--check"]).arg(&wim));
    check_image(&wim, 2, &b);
}

#[test]
fn kill_9_at_random_moments() {
    let tmp = tempdir();
    let (a, _) = two_trees(tmp.path());
    // A tree big enough that an append takes a while.
    let big = tmp.path().join("big");
    fs::create_dir(&big).unwrap();
    for i in 0..24u64 {
        fs::write(big.join(format!("f{i}")), mixed_data(1 << 20, 100 + i)).unwrap();
    }
    let wim = tmp.path().join("k.wim");
    ok(wimfs_cmd(["capture", "-q"]).arg(&a).arg(&wim).arg("A"));
    let start = std::time::Instant::now();
    ok(wimfs_cmd(["append", "-q"]).arg(&big).arg(&wim).arg("probe"));
    let full = start.elapsed();
    ok(wimfs_cmd(["delete", "--soft"]).arg(&wim).arg("probe"));
    let mut outcomes = Vec::new();
    for step in 1..=6u32 {
        let delay = full * step / 7;
        let mut child = wimfs_cmd(["append", "-q"])
            .arg(&big)
            .arg(&wim)
            .arg(format!("K{step}"))
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let n = names(&wim);
        ok(wimlib(["verify"]).arg(&wim));
        assert_eq!(n[0], "A");
        outcomes.push(n.len());
        // Keep the file at one image for the next round.
        while names(&wim).len() > 1 {
            ok(wimfs_cmd(["delete", "--soft"]).arg(&wim).arg("2"));
        }
    }
    check_image(&wim, 1, &a);
    // At least some kills must have landed mid-write (else the test proves nothing).
    assert!(
        outcomes.contains(&1),
        "no kill interrupted an append: {outcomes:?} (append took {full:?})"
    );
}

#[test]
fn split_and_join() {
    let tmp = tempdir();
    let (a, b) = two_trees(tmp.path());
    let wim = tmp.path().join("x.wim");
    ok(wimfs_cmd(["capture", "-q", "--compress=xpress"])
        .arg(&a)
        .arg(&wim)
        .arg("A"));
    ok(wimfs_cmd(["append", "-q"]).arg(&b).arg(&wim).arg("B"));
    let swm = tmp.path().join("p.swm");
    ok(wimfs_cmd(["split", "-q", "--check"])
        .arg(&wim)
        .arg(&swm)
        .arg("1"));
    let parts: Vec<PathBuf> = (1..=9)
        .map(|n| {
            if n == 1 {
                swm.clone()
            } else {
                tmp.path().join(format!("p{n}.swm"))
            }
        })
        .filter(|p| p.exists())
        .collect();
    assert!(parts.len() >= 3, "expected several parts: {parts:?}");
    for p in &parts[..parts.len() - 1] {
        // Only a single resource bigger than the limit may push a part past 1 MiB.
        assert!(fs::metadata(p).unwrap().len() < 2 << 20, "{p:?} is too big");
    }
    let glob = tmp.path().join("p*.swm");
    ok(wimlib(["verify"])
        .arg(&swm)
        .arg(format!("--ref={}", glob.display())));
    let out = tmp.path().join("by_wimlib");
    ok(wimlib(["apply"])
        .arg(&swm)
        .arg("2")
        .arg(&out)
        .arg(format!("--ref={}", glob.display())));
    assert_same_tree(&b, &out);
    let v = ok(wimfs_cmd(["verify", "-q"])
        .arg(&swm)
        .arg("--ref")
        .arg(&glob));
    assert!(v.contains("integrity table OK"), "{v}");

    // Join ours (parts in any order) and wimlib's split of the same file.
    let joined = tmp.path().join("j.wim");
    let mut rev = parts.clone();
    rev.reverse();
    ok(wimfs_cmd(["join", "-q"]).arg(&joined).args(&rev));
    assert_eq!(names(&joined), ["A", "B"]);
    check_image(&joined, 1, &a);
    check_image(&joined, 2, &b);
    let theirs = tmp.path().join("w.swm");
    ok(wimlib(["split"]).arg(&wim).arg(&theirs).arg("1"));
    let their_parts: Vec<PathBuf> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with('w')
                && p.extension().is_some_and(|e| e == "swm")
        })
        .collect();
    let joined2 = tmp.path().join("j2.wim");
    ok(wimfs_cmd(["join", "-q"]).arg(&joined2).args(&their_parts));
    check_image(&joined2, 2, &b);
    // A missing part is named.
    let out = run(wimfs_cmd(["join", "-q"])
        .arg(tmp.path().join("j3.wim"))
        .args(&parts[..parts.len() - 1]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing part"), "{err}");
}

/// A rebuild (optimize, delete, append --rebuild) replaces the file with one of the same
/// mode and owner, and a WIM reached through a symlink is rebuilt where the link points: the
/// link stays a link.
#[test]
fn rebuilds_keep_mode_owner_and_symlinks() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tempdir();
    let (a, b) = two_trees(t.path());
    let real = t.path().join("real.wim");
    ok(wimfs_cmd(["capture"]).arg(&a).arg(&real).arg("A"));
    ok(wimfs_cmd(["append"]).arg(&b).arg(&real).arg("B"));
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let root = running_as_root();
    if root {
        std::os::unix::fs::chown(&real, Some(65534), Some(65534)).unwrap();
    }
    let link = t.path().join("link.wim");
    std::os::unix::fs::symlink("real.wim", &link).unwrap();
    let steps: [&[&str]; 3] = [
        &["optimize"],
        &["delete", "--", "2"],
        &["append", "--rebuild", "--"],
    ];
    for step in steps {
        let mut c = wimfs_cmd([step[0]]);
        match step[0] {
            "append" => c.arg(&b).arg(&link).arg("B again").arg("--rebuild"),
            "delete" => c.arg(&link).arg("2"),
            _ => c.arg(&link),
        };
        ok(&mut c);
        let lm = fs::symlink_metadata(&link).unwrap();
        assert!(
            lm.file_type().is_symlink(),
            "{step:?}: the link was replaced"
        );
        let m = fs::metadata(&real).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "{step:?}: mode");
        if root {
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{step:?}: owner");
        }
        ok(wimlib(["verify"]).arg(&link));
    }
    assert_eq!(names(&real), ["A", "B again"]);
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An append that runs out of space fails with an error and leaves the file exactly as it
/// was: its partial tail is cut off again at once, not left for the next write.
#[test]
fn a_failed_append_cuts_its_tail_off() {
    if !running_as_root() {
        eprintln!("skipping: a small tmpfs needs root");
        return;
    }
    let t = tempdir();
    let small = t.path().join("tmpfs");
    fs::create_dir(&small).unwrap();
    ok(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small));
    let _guard = Tmpfs(small.clone());
    let a = t.path().join("a");
    fs::create_dir(&a).unwrap();
    fs::write(a.join("small.txt"), "small\n").unwrap();
    let big = t.path().join("big");
    fs::create_dir(&big).unwrap();
    fs::write(big.join("noise"), pseudo_random(6 << 20, 9)).unwrap();
    let wim = small.join("t.wim");
    ok(wimfs_cmd(["capture"]).arg(&a).arg(&wim).arg("A"));
    let before = fs::read(&wim).unwrap();
    let out = run(wimfs_cmd(["append"]).arg(&big).arg(&wim).arg("B"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the append fit: {err}");
    assert!(err.contains(&wim.display().to_string()), "{err}");
    assert!(fs::read(&wim).unwrap() == before, "the file changed: {err}");
    ok(wimlib(["verify"]).arg(&wim));
}

/// `split` takes a decimal size in MiB as wimlib-imagex does, and packs the same parts.
#[test]
fn split_takes_decimal_sizes_and_packs_like_wimlib() {
    let tmp = tempdir();
    let (a, _) = two_trees(tmp.path());
    let wim = tmp.path().join("x.wim");
    ok(wimlib(["capture", "--compress=lzx"]).arg(&a).arg(&wim));
    let count = |dir: &Path| fs::read_dir(dir).unwrap().count();
    for size in ["0.25", "0.5", "1.5"] {
        let ours = tmp.path().join(format!("ours-{size}"));
        let theirs = tmp.path().join(format!("theirs-{size}"));
        fs::create_dir(&ours).unwrap();
        fs::create_dir(&theirs).unwrap();
        ok(wimfs_cmd(["split", "-q"])
            .arg(&wim)
            .arg(ours.join("p.swm"))
            .arg(size));
        ok(wimlib(["split"])
            .arg(&wim)
            .arg(theirs.join("p.swm"))
            .arg(size));
        assert_eq!(
            count(&ours),
            count(&theirs),
            "{size} MiB: part counts differ"
        );
        ok(wimlib(["verify"])
            .arg(ours.join("p.swm"))
            .arg(format!("--ref={}/p*.swm", ours.display())));
    }
    for bad in ["0", "-1", "x", "nan"] {
        let out = run(wimfs_cmd(["split"])
            .arg(&wim)
            .arg(tmp.path().join("b.swm"))
            .arg(bad));
        assert!(!out.status.success(), "{bad} accepted");
    }
}

/// `append --create` makes a missing WIM as wimlib's does (and without it both refuse);
/// `apply --check` and `extract --check` verify the integrity table first, failing on a
/// corrupt file as wimlib's `apply --check` does.
#[test]
fn append_create_and_apply_check_as_wimlib() {
    let tmp = tempdir();
    let (a, _) = two_trees(tmp.path());
    let tool = |name: &str| match name {
        "wimfs" => wimfs_cmd(["append", "-q"]),
        _ => wimlib(["append"]),
    };
    for name in ["wimfs", "wimlib"] {
        let wim = tmp.path().join(format!("{name}.wim"));
        let refused = run(tool(name).arg(&a).arg(&wim).arg("A"));
        assert!(!refused.status.success(), "{name} append without --create");
        assert!(!wim.exists());
        ok(tool(name).arg(&a).arg(&wim).arg("A").arg("--create"));
        assert_eq!(names(&wim), ["A"], "{name}");
        check_image(&wim, 1, &a);
    }

    let wim = tmp.path().join("checked.wim");
    ok(wimfs_cmd(["capture", "-q", "--check"])
        .arg(&a)
        .arg(&wim)
        .arg("A"));
    let out = tmp.path().join("out");
    ok(wimfs_cmd(["apply", "-q", "--check"])
        .arg(&wim)
        .arg("1")
        .arg(&out));
    assert_same_tree(&a, &out);
    ok(wimfs_cmd(["extract", "-q", "--check"])
        .arg(&wim)
        .arg("1")
        .arg("/hello.txt")
        .arg(format!("--dest-dir={}", tmp.path().join("one").display())));
    // A byte flipped in the first resource: the integrity check fails before anything is
    // written, for wimfs and for wimlib.
    let mut bytes = fs::read(&wim).unwrap();
    bytes[300] ^= 0xff;
    fs::write(&wim, &bytes).unwrap();
    for (name, mut cmd) in [
        ("wimfs", wimfs_cmd(["apply", "-q", "--check"])),
        ("wimlib", wimlib(["apply", "--check"])),
    ] {
        let dest = tmp.path().join(format!("bad-{name}"));
        let r = run(cmd.arg(&wim).arg("1").arg(&dest));
        assert!(!r.status.success(), "{name} apply --check of a corrupt WIM");
        let err = String::from_utf8_lossy(&r.stderr).to_lowercase();
        assert!(err.contains("integrity"), "{name}: {err}");
    }
}

/// `apply WIM all DIR` puts each image in DIR/NAME (DIR/INDEX when it has no name), with
/// hard links inside an image, exactly as wimlib's does.
#[test]
fn apply_all_images_as_wimlib() {
    let tmp = tempdir();
    let (a, b) = two_trees(tmp.path());
    fs::hard_link(a.join("hello.txt"), a.join("hello_link.txt")).unwrap();
    let wim = tmp.path().join("x.wim");
    ok(wimlib(["capture"]).arg(&a).arg(&wim).arg("First"));
    ok(wimlib(["append"]).arg(&b).arg(&wim).arg("Second"));
    ok(wimlib(["append"]).arg(&b).arg(&wim).arg(""));
    let theirs = tmp.path().join("wimlib");
    let mine = tmp.path().join("wimfs");
    ok(wimlib(["apply"]).arg(&wim).arg("all").arg(&theirs));
    ok(wimfs_cmd(["apply", "-q"]).arg(&wim).arg("all").arg(&mine));
    let listing = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing(&theirs), ["3", "First", "Second"]);
    assert_eq!(listing(&mine), listing(&theirs));
    assert_same_tree(&theirs, &mine);
    assert_same_tree(&a, &mine.join("First"));
}

/// `wimlib-imagex info` and `wimfs info` on copies of one file, with the same arguments:
/// the same output and success, and (when the WIM changes) the same images and XML.
fn info_both(a: &Path, b: &Path, args: &[&str]) {
    let (x, y) = (
        run(wimlib(["info"]).arg(a).args(args)),
        run(wimfs_cmd(["info"]).arg(b).args(args)),
    );
    let text = |o: &std::process::Output, w: &Path| {
        String::from_utf8_lossy(&o.stdout).replace(&w.display().to_string(), "WIM")
    };
    assert_eq!(
        x.status.success(),
        y.status.success(),
        "info {args:?}: {y:?}"
    );
    assert_eq!(text(&x, a), text(&y, b), "info {args:?}");
    // The images as wimlib reads them (the file's size and XML TOTALBYTES aside: wimlib
    // rewrites the tables in place, wimfs appends new ones, which is crash-safe).
    let summary = |w: &Path| -> String {
        ok(wimlib(["info"]).arg(w))
            .lines()
            .filter(|l| !l.starts_with("Path:") && !l.starts_with("Size:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(summary(a), summary(b), "after info {args:?}");
    ok(wimlib(["verify"]).arg(b));
}

/// Blob records (blank-line separated) in a stable order: wimlib prints its hash table's.
fn records(text: &str) -> Vec<String> {
    let mut r: Vec<String> = text
        .split("\n\n")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    r.sort();
    r
}

#[test]
fn info_prints_and_edits_as_wimlib() {
    let t = tempdir();
    let (a, b) = two_trees(t.path());
    for (name, solid) in [("x.wim", false), ("x.esd", true)] {
        let one = t.path().join(name);
        let mut cap = wimlib(["capture"]);
        cap.arg(&a).arg(&one).arg("first");
        let mut app = wimlib(["append"]);
        app.arg(&b).arg(&one).arg("second");
        if solid {
            cap.arg("--solid");
            app.arg("--solid");
        }
        ok(&mut cap);
        ok(&mut app);
        let two = t.path().join(format!("copy-{name}"));
        fs::copy(&one, &two).unwrap();
        // What it prints.
        for args in [&["--header"][..], &["1", "--header"], &["--xml"]] {
            assert_eq!(
                ok(wimlib(["info"]).arg(&one).args(args)),
                ok(wimfs_cmd(["info"]).arg(&one).args(args)),
                "info {args:?}"
            );
        }
        assert_eq!(
            records(&ok(wimlib(["info"]).arg(&one).arg("--blobs"))),
            records(&ok(wimfs_cmd(["info"]).arg(&one).arg("--blobs"))),
            "info --blobs"
        );
        let (xa, xb) = (t.path().join("a.xml"), t.path().join("b.xml"));
        ok(wimlib(["info"]).arg(&one).arg("--extract-xml").arg(&xa));
        ok(wimfs_cmd(["info"]).arg(&one).arg("--extract-xml").arg(&xb));
        assert_eq!(fs::read(&xa).unwrap(), fs::read(&xb).unwrap());
        // What it changes, one step after the other on both copies.
        for args in [
            &["2", "renamed", "a new description"][..],
            &["2", "--boot"],
            &["2", "--boot"],
            &["0", "--boot"],
            &[
                "1",
                "--image-property",
                "WINDOWS/LANGUAGES/LANGUAGE[1]=en-US",
            ],
            &[
                "1",
                "--image-property",
                "WINDOWS/LANGUAGES/LANGUAGE[2]=de-DE",
            ],
            &["1", "--image-property", "WINDOWS/LANGUAGES/LANGUAGE[1]="],
            &["1", "--image-property", "WINDOWS/LANGUAGES/LANGUAGE[5]=xx"],
            &[
                "1",
                "--image-property",
                "DESCRIPTION=",
                "--image-property",
                "FLAGS=Custom",
            ],
            &["second", "renamed"],
            &["2", "first"],
            &["9", "nine"],
            &["renamed", "first"],
            &["--boot"],
            &["1", "first"],
            &["2", "--check"],
        ] {
            info_both(&one, &two, args);
        }
        // The same XML, but for the file size wimlib records at the end.
        let xml = |w: &Path| {
            let f = w.with_extension("xml");
            ok(wimlib(["info"]).arg(w).arg("--extract-xml").arg(&f));
            let units: Vec<u16> = fs::read(&f)
                .unwrap()
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let text = String::from_utf16(&units).unwrap();
            text[..text.rfind("<TOTALBYTES>").unwrap()].to_string()
        };
        assert_eq!(xml(&one), xml(&two));
        check_image(&two, 1, &a);
        check_image(&two, 2, &b);
    }
}
