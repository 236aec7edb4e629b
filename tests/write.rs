//! `wimfs capture` conformance: what wimfs writes must satisfy wimlib-imagex and 7-Zip, and
//! read back through both tools and wimfs itself as the tree it came from.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Captures the fixture tree with `args`, then checks it with every reader we have.
fn capture_and_check(args: &[&str]) {
    let tmp = tempdir();
    let src = tmp.path().join("fixture");
    make_tree(&src);
    let wim = tmp.path().join("out.wim");
    let mut cmd = wimfs_cmd(["capture"]);
    cmd.arg(&src)
        .arg(&wim)
        .arg("My Image")
        .arg("a description")
        .args(args);
    ok(&mut cmd);
    assert!(fs::read_dir(tmp.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp-")));

    ok(wimlib(["verify"]).arg(&wim));
    let t = ok(Command::new("7zz").arg("t").arg(&wim));
    assert!(t.contains("Everything is Ok"), "7zz t: {t}");

    // Counts must agree with what wimlib itself records for the same tree.
    let reference = tmp.path().join("ref.wim");
    ok(wimlib(["capture"])
        .arg(&src)
        .arg(&reference)
        .arg("--compress=none"));
    let ours = ok(wimlib(["info"]).arg(&wim));
    let theirs = ok(wimlib(["info"]).arg(&reference));
    let field = |text: &str, key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    };
    for key in [
        "Directory Count:",
        "File Count:",
        "Total Bytes:",
        "Hard Link Bytes:",
    ] {
        assert_eq!(field(&ours, key), field(&theirs, key));
    }
    // Identical files are stored once, as wimlib stores them.
    let blobs = |wim: &Path| {
        ok(wimlib(["info", "--blobs"]).arg(wim))
            .lines()
            .filter(|l| l.starts_with("Hash"))
            .count()
    };
    assert_eq!(blobs(&wim), blobs(&reference));
    assert!(field(&ours, "Name:").ends_with("My Image"));
    assert!(field(&ours, "Description:").ends_with("a description"));
    if args.contains(&"--check") {
        assert!(
            field(&ours, "Attributes:").contains("Integrity info"),
            "{ours}"
        );
        ok(wimlib(["info"]).arg(&wim).arg("--check"));
        let v = ok(wimfs_cmd(["verify", "--quiet"]).arg(&wim));
        assert!(v.contains("integrity table OK"), "{v}");
    }

    let by_wimlib = tmp.path().join("by_wimlib");
    ok(wimlib(["apply"]).arg(&wim).arg(&by_wimlib));
    assert_same_tree(&src, &by_wimlib);

    let v = ok(wimfs_cmd(["verify", "--quiet"]).arg(&wim));
    assert!(v.contains("OK"), "{v}");
    let by_wimfs = tmp.path().join("by_wimfs");
    ok(wimfs_cmd(["apply", "--quiet"]).arg(&wim).arg(&by_wimfs));
    assert_same_tree(&src, &by_wimfs);
}

#[test]
fn capture_uncompressed() {
    capture_and_check(&["--compress=none"]);
}

#[test]
fn capture_xpress() {
    capture_and_check(&["--compress=xpress"]);
}

#[test]
fn capture_lzx_default_chunks() {
    capture_and_check(&[]);
}

#[test]
fn capture_lzx_2m_chunks_with_integrity() {
    capture_and_check(&["--compress=maximum", "--chunk-size", "2097152", "--check"]);
}

#[test]
fn capture_lzx_with_a_level() {
    capture_and_check(&["--compress=Maximum:80"]);
}

#[test]
fn a_bad_compression_level_is_refused_clearly() {
    let tmp = tempdir();
    let out = run(wimfs_cmd(["capture", "--compress=lzx:0"])
        .arg(tmp.path())
        .arg(tmp.path().join("x.wim")));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("compression level \"0\" is not a number from 1 to 100"),
        "{err}"
    );
    assert!(!tmp.path().join("x.wim").exists());
}

#[test]
fn capture_lzms_default_chunks() {
    capture_and_check(&["--compress=lzms"]);
}

#[test]
fn capture_solid_lzms() {
    capture_and_check(&["--solid"]);
}

#[test]
fn capture_solid_lzms_small_chunks_with_integrity() {
    capture_and_check(&["--solid", "--solid-chunk-size", "1048576", "--check"]);
}

#[test]
fn capture_lzms_small_chunks_one_thread() {
    capture_and_check(&["--compress=lzms", "--chunk-size", "32768", "--threads", "1"]);
}

#[test]
fn capture_lzms_big_chunks_with_integrity() {
    capture_and_check(&["--compress=lzms", "--chunk-size", "4194304", "--check"]);
}

#[test]
fn capture_xpress_with_integrity() {
    capture_and_check(&["--compress=fast", "--check", "--threads", "1"]);
}

#[test]
fn unix_data_round_trip() {
    let tmp = tempdir();
    let src = tmp.path().join("tree");
    fs::create_dir_all(src.join("private")).unwrap();
    fs::write(src.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::write(src.join("secret"), "s").unwrap();
    fs::set_permissions(src.join("script.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    ok(Command::new("mkfifo").arg(src.join("pipe")));
    let wim = tmp.path().join("u.wim");

    // Without --unix-data the FIFO is skipped with a warning, as wimlib does.
    ok(wimfs_cmd(["capture", "--quiet"]).arg(&src).arg(&wim));
    let listing = ok(wimlib(["dir"]).arg(&wim));
    assert!(!listing.contains("pipe"), "{listing}");

    ok(wimfs_cmd(["capture", "--unix-data"]).arg(&src).arg(&wim));
    ok(wimlib(["verify"]).arg(&wim));
    let out = tmp.path().join("out");
    ok(wimlib(["apply", "--unix-data"]).arg(&wim).arg(&out));
    for (rel, mode) in [
        ("script.sh", 0o100751),
        ("secret", 0o100600),
        ("private", 0o40700),
    ] {
        let m = fs::symlink_metadata(out.join(rel)).unwrap();
        assert_eq!(m.permissions().mode(), mode, "{rel}");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(out.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_same_tree_modes(&src, &out);
}

fn assert_same_tree_modes(a: &Path, b: &Path) {
    for rel in walk(a) {
        let ma = fs::symlink_metadata(a.join(&rel)).unwrap();
        let mb = fs::symlink_metadata(b.join(&rel)).unwrap();
        assert_eq!(ma.permissions().mode(), mb.permissions().mode(), "{rel:?}");
    }
}

#[test]
fn absolute_links_inside_the_tree_are_fixed() {
    let tmp = tempdir();
    let src = tmp.path().join("tree");
    fs::create_dir_all(src.join("d")).unwrap();
    std::os::unix::fs::symlink(src.join("d"), src.join("inside")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("outside")).unwrap();
    let wim = tmp.path().join("f.wim");
    ok(wimfs_cmd(["capture"]).arg(&src).arg(&wim));
    let info = ok(wimlib(["info"]).arg(&wim));
    assert!(info.contains("Relative path junction"), "{info}");
    let out = tmp.path().join("out");
    ok(wimlib(["apply"]).arg(&wim).arg(&out));
    let out = fs::canonicalize(&out).unwrap();
    assert_eq!(fs::read_link(out.join("inside")).unwrap(), out.join("d"));
    assert_eq!(
        fs::read_link(out.join("outside")).unwrap(),
        Path::new("/etc/hostname")
    );
}

#[test]
fn errors_name_the_problem_and_leave_no_file() {
    let tmp = tempdir();
    let wim = tmp.path().join("x.wim");
    let out = run(wimfs_cmd(["capture"])
        .arg(tmp.path().join("missing"))
        .arg(&wim));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    assert!(!wim.exists());

    let out = run(wimfs_cmd(["capture", "--chunk-size=1000"])
        .arg(tmp.path())
        .arg(&wim));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chunk size 1000 is not valid"));
    assert!(!wim.exists());

    let src = tmp.path().join("bad");
    fs::create_dir(&src).unwrap();
    use std::os::unix::ffi::OsStrExt;
    fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    let out = run(wimfs_cmd(["capture"]).arg(&src).arg(&wim));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UTF-8") && err.contains("bad"), "{err}");
    assert!(!wim.exists());
}

/// A file or directory the capturing user cannot read stops the capture with an error naming
/// it, or with `--skip-unreadable` is left out with a warning naming it. As root everything
/// is readable, so then the capture runs as `nobody` (through `setpriv`).
#[test]
fn unreadable_files_are_named_or_skipped() {
    let tmp = tempdir();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("open")).unwrap();
    fs::write(src.join("open/readable.txt"), "anyone may read this").unwrap();
    fs::write(src.join("secret.txt"), "nobody may read this").unwrap();
    fs::create_dir(src.join("locked")).unwrap();
    fs::write(src.join("locked/inside.txt"), "behind a locked door").unwrap();
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    // The binary, copied where the other user can run it whatever the checkout's modes.
    let exe = tmp.path().join("wimfs");
    fs::copy(wimfs(), &exe).unwrap();
    let as_user = |args: &[&str], wim: &Path| {
        let mut c = if running_as_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.arg("capture").arg(&src).arg(wim).args(args);
        run(&mut c)
    };

    let wim = tmp.path().join("strict.wim");
    let out = as_user(&[], &wim);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "capture of unreadable files succeeded"
    );
    assert!(
        err.contains("secret.txt") || err.contains("locked"),
        "the error names neither unreadable entry: {err}"
    );
    assert!(err.contains("--skip-unreadable"), "{err}");
    assert!(!wim.exists());

    let wim = tmp.path().join("skipping.wim");
    let out = as_user(&["--skip-unreadable"], &wim);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("secret.txt") && err.contains("locked"),
        "{err}"
    );
    ok(wimlib(["verify"]).arg(&wim));
    let listing = ok(wimlib(["dir"]).arg(&wim).arg("1"));
    assert!(listing.contains("/open/readable.txt"), "{listing}");
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert!(!listing.contains("inside.txt"), "{listing}");
}

#[test]
fn a_concurrent_writer_is_refused() {
    let tmp = tempdir();
    let src = tmp.path().join("tree");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    let wim = tmp.path().join("l.wim");
    fs::write(&wim, "").unwrap();
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&wim)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = run(wimfs_cmd(["capture"]).arg(&src).arg(&wim));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process"), "{err}");
}

#[test]
fn config_exclusions_match_wimlib() {
    let tmp = tempdir();
    let src = tmp.path().join("fixture");
    make_tree(&src);
    fs::create_dir_all(src.join("cache/keep")).unwrap();
    fs::write(src.join("cache/junk.bin"), "junk").unwrap();
    fs::write(src.join("cache/keep/me.txt"), "kept").unwrap();
    fs::write(src.join("dir/scratch.tmp"), "tmp").unwrap();
    let cfg = tmp.path().join("cfg.ini");
    fs::write(
        &cfg,
        "# test\n[ExclusionList]\n*.tmp\n\\dir\\sub\\deeper\n/cache\n\n[ExclusionException]\n/cache/keep\n",
    )
    .unwrap();
    let ours = tmp.path().join("ours.wim");
    let theirs = tmp.path().join("theirs.wim");
    ok(wimfs_cmd(["capture", "-q", "--config"])
        .arg(&cfg)
        .arg(&src)
        .arg(&ours));
    ok(wimlib(["capture"])
        .arg(&src)
        .arg(&theirs)
        .arg(format!("--config={}", cfg.display())));
    let list = |w: &Path| {
        let mut l: Vec<String> = ok(wimlib(["dir"]).arg(w))
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    let mine = list(&ours);
    assert!(!mine
        .iter()
        .any(|l| l.ends_with(".tmp") || l.contains("deeper") || l.contains("junk")));
    assert!(mine.iter().any(|l| l == "/cache/keep/me.txt"), "{mine:?}");
    assert_eq!(mine, list(&theirs));
    ok(wimlib(["verify"]).arg(&ours));
}

#[test]
fn default_exclusions_and_an_empty_config_match_wimlib() {
    let tmp = tempdir();
    let src = tmp.path().join("volume");
    for d in [
        "System Volume Information/sub",
        "Windows/CSC/v2",
        "Windows/System32",
        "$Recycle.Bin/S-1-5",
        "RECYCLER",
        "sub/System Volume Information",
    ] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in [
        "pagefile.sys",
        "hiberfil.sys",
        "swapfile.sys",
        "$ntfs.log",
        "PAGEFILE.SYS",
        "sub/pagefile.sys",
        "System Volume Information/sub/x",
        "Windows/CSC/v2/y",
        "Windows/System32/kernel32.dll",
        "$Recycle.Bin/S-1-5/z",
        "RECYCLER/w",
        "sub/System Volume Information/kept",
    ] {
        fs::write(src.join(f), f).unwrap();
    }
    let empty = tmp.path().join("empty.ini");
    fs::write(&empty, "").unwrap();
    let list = |w: &Path| ok(wimlib(["dir"]).arg(w));
    for config in [None, Some(&empty)] {
        let (ours, theirs) = (tmp.path().join("ours.wim"), tmp.path().join("theirs.wim"));
        let _ = (fs::remove_file(&ours), fs::remove_file(&theirs));
        let mut a = wimfs_cmd(["capture", "-q"]);
        let mut b = wimlib(["capture"]);
        if let Some(c) = config {
            a.arg("--config").arg(c);
            b.arg(format!("--config={}", c.display()));
        }
        ok(a.arg(&src).arg(&ours));
        ok(b.arg(&src).arg(&theirs));
        let mine = list(&ours);
        assert_eq!(mine, list(&theirs), "config {config:?}");
        let has = |p: &str| mine.lines().any(|l| l == p);
        assert_eq!(has("/pagefile.sys"), config.is_some(), "{mine}");
        assert!(has("/sub/pagefile.sys") && has("/PAGEFILE.SYS"), "{mine}");
    }
}

/// A file swapped for a symlink or a FIFO between the scan and the read is refused with an
/// error naming it: never read through the link, never a hang on the FIFO.
#[test]
fn files_swapped_after_the_scan_are_refused() {
    use wimfs::write::capture::{scan, CaptureOptions};
    for swap in ["symlink", "fifo"] {
        let t = tempdir();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("victim"), "ordinary data").unwrap();
        fs::write(t.path().join("secret"), "not for the image").unwrap();
        let opts = CaptureOptions {
            unix_data: false,
            dereference: false,
            skip_unreadable: false,
            rp_fix: true,
            config: None,
        };
        let mut tree = scan(&src, &opts).unwrap();
        fs::remove_file(src.join("victim")).unwrap();
        match swap {
            "symlink" => {
                std::os::unix::fs::symlink(t.path().join("secret"), src.join("victim")).unwrap()
            }
            _ => {
                ok(Command::new("mkfifo").arg(src.join("victim")));
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = tree.hash(true, &|_| {}).map_err(|e| e.to_string());
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{swap}: reading the swapped file hangs"));
        let err = r.expect_err("a swapped file is refused");
        assert!(
            err.contains("victim") && err.contains("replaced"),
            "{swap}: {err}"
        );
    }
}
