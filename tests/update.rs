//! `wimfs update` against `wimlib-imagex update`: the same command files, fed through real
//! pipes, on copies of the same WIM; exit statuses, `dir --detailed` records, `info` and
//! the applied trees must agree, and a failed or crashed update must leave the file as it
//! was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// Runs `cmd` with `input` written to its standard input through a pipe; its exit status.
fn with_stdin(cmd: &mut Command, input: &[u8]) -> i32 {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    out.status.code().unwrap_or(-1)
}

/// Source trees for adds: the standard fixture plus a small tree to overlay.
fn sources(root: &Path) -> (PathBuf, PathBuf) {
    let base = root.join("base");
    make_tree(&base);
    let add = root.join("add");
    fs::create_dir_all(add.join("dir/sub")).unwrap();
    fs::create_dir_all(add.join("new dir/inner")).unwrap();
    fs::write(add.join("dir/sub/blob.bin"), mixed_data(400_000, 21)).unwrap();
    fs::write(add.join("dir/added.txt"), "added\n").unwrap();
    fs::write(add.join("new dir/inner/x.dat"), pseudo_random(70_000, 4)).unwrap();
    fs::write(add.join("new dir/same as hello"), "Hello, WIM!\n").unwrap();
    fs::write(add.join("excluded.tmp"), "left out\n").unwrap();
    fs::hard_link(add.join("dir/added.txt"), add.join("new dir/added link")).unwrap();
    std::os::unix::fs::symlink("inner/x.dat", add.join("new dir/link")).unwrap();
    fs::write(root.join("startnet.cmd"), "wpeinit\r\nstart.exe\r\n").unwrap();
    fs::write(root.join("WimBootCompress.ini"), "[PrepopulateList]\n\\a\n").unwrap();
    fs::write(root.join("cfg.ini"), "[ExclusionList]\n*.tmp\n").unwrap();
    (base, add)
}

/// `dir --detailed` of `image` as records by path, without what legitimately differs
/// between two writers: where blobs sit (solid or not), their compressed sizes, link group numbers and
/// access times (reading a source file can change its own). `fresh` paths are directories
/// an update made up (stamped with the time they were made): their times are left out too.
fn records(wim: &Path, image: &str, fresh: &[&str]) -> BTreeMap<String, String> {
    let text = ok(wimlib(["dir", "--detailed"]).arg(wim).arg(image));
    let mut out = BTreeMap::new();
    for rec in
        text.split("----------------------------------------------------------------------------")
    {
        let Some(path) = rec
            .lines()
            .find_map(|l| l.strip_prefix("Full Path           = "))
        else {
            continue;
        };
        let path = path.trim_matches('"').to_string();
        let made_up = fresh.contains(&path.as_str());
        let kept: Vec<&str> = rec
            .lines()
            .filter(|l| {
                let differs = [
                    "Offset in WIM",
                    "Compressed size",
                    "Solid ",
                    "Link Group ID",
                    "Last Access Time",
                ]
                .iter()
                .any(|p| l.starts_with(p));
                let fresh_time = made_up && l.contains(" Time ");
                !(differs || fresh_time)
            })
            .collect();
        out.insert(path, kept.join("\n"));
    }
    out
}

/// `info` of image 1 as wimlib prints it, without the fields two writers fill differently
/// (times, and the directory count wimlib leaves without the directories an update made).
fn image_info(wim: &Path, skip_dir_count: bool) -> String {
    ok(wimlib(["info"]).arg(wim).arg("1"))
        .lines()
        .filter(|l| {
            let differs = ["Path:", "Size:", "GUID:"].iter().any(|p| l.starts_with(p));
            let skipped = skip_dir_count && l.starts_with("Directory Count:");
            !(differs || skipped || l.contains("Time:"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies of `base` for each tool, in `dir`.
fn copies(base: &Path, dir: &Path, ext: &str) -> (PathBuf, PathBuf) {
    let (a, b) = (
        dir.join(format!("lib.{ext}")),
        dir.join(format!("ours.{ext}")),
    );
    fs::copy(base, &a).unwrap();
    fs::copy(base, &b).unwrap();
    (a, b)
}

/// Runs the same update with both tools (commands on standard input) from `cwd`; asserts
/// equal exit statuses and returns wimfs's.
fn update_both(lib: &Path, ours: &Path, cwd: &Path, args: &[&str], input: &[u8]) -> i32 {
    let a = with_stdin(
        wimlib(["update"]).arg(lib).args(args).current_dir(cwd),
        input,
    );
    let b = with_stdin(
        wimfs_cmd(["update", "-q"])
            .arg(ours)
            .args(args)
            .current_dir(cwd),
        input,
    );
    assert_eq!(
        a,
        b,
        "exit status of update {args:?} with {:?}",
        String::from_utf8_lossy(input)
    );
    b
}

fn assert_same_image(lib: &Path, ours: &Path, fresh: &[&str]) {
    ok(wimlib(["verify"]).arg(ours));
    let (x, y) = (records(lib, "1", fresh), records(ours, "1", fresh));
    assert_eq!(
        x.keys().collect::<Vec<_>>(),
        y.keys().collect::<Vec<_>>(),
        "paths after update"
    );
    for (path, rec) in &x {
        assert_eq!(rec, &y[path], "dir --detailed record of {path}");
    }
    assert_eq!(
        image_info(lib, !fresh.is_empty()),
        image_info(ours, !fresh.is_empty())
    );
    let t = tempdir();
    let (ta, tb) = (t.path().join("lib"), t.path().join("ours"));
    ok(wimlib(["apply"]).arg(lib).arg("1").arg(&ta));
    ok(wimlib(["apply"]).arg(ours).arg("1").arg(&tb));
    assert_same_tree(&ta, &tb);
}

#[test]
fn update_commands_match_wimlib() {
    let t = tempdir();
    let (base, _) = sources(t.path());
    for (ext, extra) in [("wim", &[][..]), ("esd", &["--solid"][..])] {
        let wim = t.path().join(format!("base.{ext}"));
        ok(wimlib(["capture"])
            .arg(&base)
            .arg(&wim)
            .arg("Base")
            .args(extra));
        // A command file as people write them: comments, quotes, CRLF line ends, options
        // before and after paths, case-insensitive command names.
        let script = "# patch the image\r\n\
            ; also a comment\r\n\
            \r\n\
            add add/dir /dir\r\n\
            ADD 'add/new dir' \"/new dir\"\r\n\
            add startnet.cmd /Windows/System32/startnet.cmd\r\n\
            add startnet.cmd /hello.txt\r\n\
            add add/dir/added.txt /again.txt\r\n\
            rename /dir/dup1.txt '/dir/renamed one.txt'\r\n\
            rename /empty_dir /dir/sub/moved_dir\r\n\
            delete --recursive /dir/日本語\r\n\
            delete /nonexistent --force\r\n\
            delete /abs_link\r\n";
        let (lib, ours) = copies(&wim, t.path(), ext);
        assert_eq!(
            update_both(&lib, &ours, t.path(), &[], script.as_bytes()),
            0
        );
        assert_same_image(&lib, &ours, &["/Windows", "/Windows/System32"]);
        // --command, an image named, global options, exclusions from --config.
        let (lib, ours) = copies(&wim, t.path(), ext);
        let args = [
            "Base",
            "--command=add add /",
            "--config=cfg.ini",
            "--no-replace",
        ];
        assert_ne!(update_both(&lib, &ours, t.path(), &args, b""), 0);
        let args = ["Base", "--command=add add /extra", "--config=cfg.ini"];
        assert_eq!(update_both(&lib, &ours, t.path(), &args, b""), 0);
        assert_same_image(&lib, &ours, &[]);
        let args = ["1", "--recursive", "--force", "--check", "--rebuild"];
        let input = b"delete /dir\ndelete /missing\n";
        assert_eq!(update_both(&lib, &ours, t.path(), &args, input), 0);
        assert_same_image(&lib, &ours, &[]);
        assert!(ok(wimfs_cmd(["info"]).arg(&ours)).contains("Integrity"));
        ok(wimlib(["verify"]).arg(&ours));
        // WIMBoot configuration.
        let args = ["--wimboot-config=WimBootCompress.ini", "--unix-data"];
        assert_eq!(update_both(&lib, &ours, t.path(), &args, b""), 0);
        // UTF-16LE commands with a byte-order mark, as wimlib's manual allows (the wimtools
        // build at hand reads standard input as UTF-8 only: it gets the same in UTF-8).
        let cmd = "add --unix-data add/excluded.tmp /Ünïcödé/x.tmp\n";
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(cmd.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let a = with_stdin(
            wimlib(["update"]).arg(&lib).current_dir(t.path()),
            cmd.as_bytes(),
        );
        let b = with_stdin(
            wimfs_cmd(["update", "-q"]).arg(&ours).current_dir(t.path()),
            &utf16,
        );
        assert_eq!((a, b), (0, 0));
        assert_same_image(&lib, &ours, &["/Windows", "/Windows/System32", "/Ünïcödé"]);
    }
}

#[test]
fn failed_updates_change_nothing_and_exit_as_wimlib() {
    let t = tempdir();
    let (base, _) = sources(t.path());
    let wim = t.path().join("base.wim");
    ok(wimlib(["capture"]).arg(&base).arg(&wim).arg("Base"));
    let before = fs::read(&wim).unwrap();
    // Each failing command comes after one that succeeds: nothing may be written.
    for (bad, status) in [
        ("add nonexistent /x", 63),
        ("add --no-replace startnet.cmd /hello.txt", 23),
        ("add add /hello.txt", 40),
        ("add startnet.cmd /dir", 32),
        ("add startnet.cmd /hello.txt/x", 40),
        ("add startnet.cmd /", 40),
        ("delete /dir", 32),
        ("delete /missing", 49),
        ("rename /missing /x", 49),
        ("rename /hello.txt /missing/x", 49),
        ("rename /dir /dir/sub/x", 41),
        ("rename /dir /empty.txt", 40),
        ("rename /hello.txt /dir", 32),
        ("rename /empty_dir /dir", 41),
        ("bogus /x", 255),
        ("add onlyone", 255),
        ("delete /a /b", 255),
        ("delete --bogus /a", 255),
        ("delete \"/unclosed", 255),
    ] {
        let (lib, ours) = copies(&wim, t.path(), "wim");
        let input = format!("add add/dir /first\n{bad}\n");
        let got = update_both(&lib, &ours, t.path(), &[], input.as_bytes());
        assert_eq!(got, status, "{bad}");
        assert!(fs::read(&ours).unwrap() == before, "{bad} changed the file");
    }
    // No image named, in a file of two: wimlib refuses before reading commands.
    let (lib, ours) = copies(&wim, t.path(), "wim");
    for w in [&lib, &ours] {
        ok(wimlib(["append"]).arg(&base).arg(w).arg("Second"));
    }
    assert_eq!(
        update_both(&lib, &ours, t.path(), &[], b"delete /hello.txt\n"),
        255
    );
    assert_eq!(
        update_both(&lib, &ours, t.path(), &["3"], b"delete /hello.txt\n"),
        18
    );
    // Standard input cannot be changed: refused, and no file named "-" appears.
    let out = run(wimfs_cmd(["update", "-", "--command=delete /x"]).current_dir(t.path()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    assert!(!t.path().join("-").exists());
    // The short name runs the verb.
    let link = t.path().join("wimupdate");
    std::os::unix::fs::symlink(wimfs(), &link).unwrap();
    let status = with_stdin(
        Command::new(&link)
            .arg(&ours)
            .arg("2")
            .current_dir(t.path()),
        b"delete /hello.txt\n",
    );
    assert_eq!(status, 0);
    let listing = ok(wimlib(["dir"]).arg(&ours).arg("2"));
    assert!(!listing.contains("/hello.txt\n") && listing.contains("/empty.txt\n"));
}

#[test]
fn a_crashed_update_leaves_the_old_image() {
    let t = tempdir();
    let (base, add) = sources(t.path());
    let wim = t.path().join("c.wim");
    ok(wimlib(["capture"]).arg(&base).arg(&wim).arg("Base"));
    let header = fs::read(&wim).unwrap()[..208].to_vec();
    let listing = ok(wimlib(["dir"]).arg(&wim));
    for point in ["data", "tables"] {
        let out = run(wimfs_cmd(["update", "-q"])
            .arg(&wim)
            .arg(format!("--command=add {} /added", add.display()))
            .env("WIMFS_CRASH_AT", point));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "update did not crash at {point}"
        );
        assert!(
            fs::read(&wim).unwrap()[..208] == header[..],
            "header changed at {point}"
        );
        assert_eq!(ok(wimlib(["dir"]).arg(&wim)), listing);
        ok(wimlib(["verify"]).arg(&wim));
    }
    ok(wimfs_cmd(["update", "-q"])
        .arg(&wim)
        .arg(format!("--command=add {} /added", add.display())));
    ok(wimlib(["verify"]).arg(&wim));
    let out = t.path().join("out");
    ok(wimlib(["extract"])
        .arg(&wim)
        .arg("1")
        .arg("/added")
        .arg(format!("--dest-dir={}", out.display())));
    assert_same_tree(&add, &out.join("added"));
}
