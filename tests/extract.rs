//! `wimfs extract` against `wimlib-imagex extract`: wildcards, path lists, preserved
//! directory structure, standard output and the exit statuses of paths that match nothing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `extract WIM 1 ARGS --dest-dir` with both tools into `dir`/lib and `dir`/ours;
/// asserts equal exit statuses and, on success, equal trees.
fn extract_both(wim: &Path, dir: &Path, args: &[&str]) -> i32 {
    let (a, b) = (dir.join("lib"), dir.join("ours"));
    let _ = fs::remove_dir_all(&a);
    let _ = fs::remove_dir_all(&b);
    let run_in = |mut c: Command, dest: &Path| {
        c.arg(wim)
            .arg("1")
            .args(args)
            .arg(format!("--dest-dir={}", dest.display()));
        c.current_dir(dir);
        run(&mut c).status.code().unwrap_or(-1)
    };
    let x = run_in(wimlib(["extract"]), &a);
    let y = run_in(wimfs_cmd(["extract", "-q"]), &b);
    assert_eq!(x, y, "exit status of extract {args:?}");
    assert_eq!(
        a.exists(),
        b.exists(),
        "destination made by extract {args:?}"
    );
    if x == 0 {
        assert_same_tree(&a, &b);
    }
    y
}

#[test]
fn extract_options_match_wimlib() {
    let t = tempdir();
    let src = t.path().join("src");
    make_tree(&src);
    let wim = t.path().join("t.wim");
    ok(wimlib(["capture"]).arg(&src).arg(&wim).arg("T"));
    fs::write(
        t.path().join("list"),
        "# paths\n\"/dir/sub/deeper\"\n  /hello.txt  \n; skipped\n/dir/*.txt\n'/dir/日本語'\n",
    )
    .unwrap();
    for (args, status) in [
        (&["/dir/*.txt"][..], 0),
        (&["/dir/*.txt", "--preserve-dir-structure"], 0),
        (&["/*/s?b"], 0),
        (&["/DIR/*.TXT"], 49),
        (&["@list"], 0),
        (&["@list", "/empty.txt"], 0),
        (&[], 0),
        (&["/dir", "/dir/sub", "/dir"], 0),
        (
            &["/dir/sub/deeper/small.dat", "--preserve-dir-structure"],
            0,
        ),
        (&["/nonexistent"], 49),
        (&["/non*"], 49),
        (&["/non*", "--nullglob"], 0),
        (&["/dir/*.txt", "--no-globs"], 49),
        (&["/dir", "--no-globs", "--nullglob"], 255),
        (&["/dir/rel_link"], 0),
        (&["/", "--no-acls", "--no-attributes"], 0),
        (&["/", "--strict-acls"], 0),
        (&["/", "--no-acls", "--strict-acls"], 24),
    ] {
        assert_eq!(extract_both(&wim, t.path(), args), status, "{args:?}");
    }
    // Names are matched ignoring case when asked, as wimlib-imagex does.
    let lower = |c: &mut Command| {
        c.env("WIMLIB_IMAGEX_IGNORE_CASE", "1");
    };
    let (a, b) = (t.path().join("ci-lib"), t.path().join("ci-ours"));
    let mut c = wimlib(["extract"]);
    lower(&mut c);
    ok(c.arg(&wim)
        .args(["1", "/DIR/*.TXT"])
        .arg(format!("--dest-dir={}", a.display())));
    let mut c = wimfs_cmd(["extract"]);
    lower(&mut c);
    ok(c.arg(&wim)
        .args(["1", "/DIR/*.TXT"])
        .arg(format!("--dest-dir={}", b.display())));
    assert_same_tree(&a, &b);
    // Standard output: files' data in order; a directory or a link is refused (42).
    for args in [
        &["/hello.txt", "/dir/big.txt", "/empty.txt"][..],
        &["/dir/*.txt"],
    ] {
        let x = run(wimlib(["extract", "--to-stdout"])
            .arg(&wim)
            .arg("1")
            .args(args));
        let y = run(wimfs_cmd(["extract", "--to-stdout"])
            .arg(&wim)
            .arg("1")
            .args(args));
        assert!(x.status.success() && y.status.success(), "{y:?}");
        assert!(x.stdout == y.stdout, "--to-stdout {args:?}");
    }
    for path in ["/dir", "/dir/rel_link"] {
        let x = run(wimlib(["extract", "--to-stdout"])
            .arg(&wim)
            .args(["1", path]));
        let y = run(wimfs_cmd(["extract", "--to-stdout"])
            .arg(&wim)
            .args(["1", path]));
        assert_eq!(x.status.code(), Some(42), "{path}");
        assert_eq!(y.status.code(), Some(42), "{path}");
    }
    // Windows-only modes are refused, not faked.
    let y = run(wimfs_cmd(["extract", "--wimboot"])
        .arg(&wim)
        .args(["1", "/hello.txt"]));
    assert_eq!(y.status.code(), Some(68));
    assert!(String::from_utf8_lossy(&y.stderr).contains("Windows"));
}
