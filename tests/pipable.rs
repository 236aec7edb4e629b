//! Pipable WIMs both ways with wimlib-imagex, through real pipes between processes: wimfs
//! writes them (capture, export, optimize, append; to files and to standard output) and
//! wimlib verifies and applies them from a pipe; wimlib writes them to standard output and
//! wimfs applies them from its standard input.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Runs `producer | consumer`, both real processes joined by a pipe; asserts the consumer
/// succeeds. A consumer may stop reading once it has what it needs (wimlib's apply leaves
/// the tables at the end of a pipable WIM unread), so the producer may see a broken pipe,
/// as wimlib's own capture does in `wimlib-imagex capture DIR - | wimlib-imagex apply - 1 X`.
fn pipe(producer: &mut Command, consumer: &mut Command) {
    let mut p = producer.stdout(Stdio::piped()).spawn().unwrap();
    let out = p.stdout.take().unwrap();
    let c = consumer
        .stdin(Stdio::from(out))
        .stdout(Stdio::null())
        .status();
    // The command keeps the pipe's read end until its stdin is replaced: close it, so a
    // producer still writing gets a broken pipe instead of waiting forever.
    consumer.stdin(Stdio::null());
    let c = c.unwrap();
    let _ = p.wait().unwrap();
    assert!(c.success(), "{producer:?} | {consumer:?}: {c}");
}

fn is_pipable(wim: &Path) -> bool {
    &fs::read(wim).unwrap()[..5] == b"WLPWM"
}

/// wimlib verifies `wim`, says it is pipable, and applies image `index` of it from a pipe
/// as `tree`.
fn wimlib_takes(wim: &Path, index: &str, tree: &Path) {
    ok(wimlib(["verify"]).arg(wim));
    assert!(ok(wimlib(["info"]).arg(wim)).contains("Pipable"));
    let out = wim.with_extension(format!("from-pipe-{index}"));
    pipe(
        Command::new("cat").arg(wim),
        wimlib(["apply", "-", index]).arg(&out),
    );
    assert_same_tree(tree, &out);
    fs::remove_dir_all(&out).unwrap();
}

#[test]
fn pipable_wims_go_both_ways_through_pipes() {
    let t = tempdir();
    let src = t.path().join("src");
    make_tree(&src);
    let other = t.path().join("other");
    fs::create_dir_all(other.join("sub")).unwrap();
    fs::write(other.join("sub/file"), mixed_data(300_000, 8)).unwrap();
    // Captures in each compression, one with an integrity table.
    for (name, args) in [
        ("lzx.wim", &[][..]),
        ("xpress.wim", &["--compress=xpress", "--check"]),
        ("none.wim", &["--compress=none"]),
    ] {
        let wim = t.path().join(name);
        ok(wimfs_cmd(["capture", "-q", "--pipable"])
            .arg(&src)
            .arg(&wim)
            .args(args));
        assert!(is_pipable(&wim), "{name}");
        wimlib_takes(&wim, "1", &src);
    }
    assert!(ok(wimlib(["info"]).arg(t.path().join("xpress.wim"))).contains("Integrity info"));
    // capture to standard output, straight into wimlib's apply.
    let out = t.path().join("stdout-capture");
    pipe(
        wimfs_cmd(["capture", "-q"]).arg(&src).arg("-"),
        wimlib(["apply", "-", "1"]).arg(&out),
    );
    assert_same_tree(&src, &out);
    // wimlib's capture to standard output, straight into wimfs's apply.
    let out = t.path().join("wimlib-stdout");
    pipe(
        wimlib(["capture"]).arg(&src).arg("-"),
        wimfs_cmd(["apply", "-q", "-", "1"]).arg(&out),
    );
    assert_same_tree(&src, &out);
    // Appending keeps a pipable file pipable (rewritten whole), as wimlib does.
    let wim = t.path().join("lzx.wim");
    ok(wimfs_cmd(["append", "-q"])
        .arg(&other)
        .arg(&wim)
        .arg("Other"));
    assert!(is_pipable(&wim));
    wimlib_takes(&wim, "2", &other);
    wimlib_takes(&wim, "1", &src);
    // export to standard output, by name, into wimlib.
    let out = t.path().join("exported");
    pipe(
        wimfs_cmd(["export"]).arg(&wim).arg("Other").arg("-"),
        wimlib(["apply", "-", "1"]).arg(&out),
    );
    assert_same_tree(&other, &out);
    // A normal WIM made pipable by export and by optimize, and back.
    let normal = t.path().join("normal.wim");
    ok(wimlib(["capture"]).arg(&src).arg(&normal));
    let exported = t.path().join("exported.wim");
    ok(wimfs_cmd(["export", "-q", "--pipable"])
        .arg(&normal)
        .arg("1")
        .arg(&exported));
    wimlib_takes(&exported, "1", &src);
    ok(wimfs_cmd(["optimize", "-q", "--not-pipable"]).arg(&exported));
    assert!(!is_pipable(&exported));
    ok(wimlib(["verify"]).arg(&exported));
    ok(wimfs_cmd(["optimize", "-q", "--pipable"]).arg(&exported));
    wimlib_takes(&exported, "1", &src);
    // Refusals: solid data cannot go into a pipable WIM.
    let o = run(wimfs_cmd(["capture", "--solid"]).arg(&src).arg("-"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pipable"));
}
