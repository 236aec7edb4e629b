//! Conformance: WIMs written by wimlib-imagex in every compression, chunk size and layout
//! read back identically through wimfs (verify, apply, dir, info), cross-checked with 7-Zip.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

/// The fixture tree, built once per test run under cargo's per-target temp dir (so nothing
/// is left behind in /tmp).
fn source() -> &'static Path {
    static SRC: OnceLock<PathBuf> = OnceLock::new();
    SRC.get_or_init(|| {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-src");
        if p.exists() {
            std::fs::remove_dir_all(&p).unwrap();
        }
        make_tree(&p);
        p
    })
}

fn capture(dir: &Path, args: &[&str]) -> PathBuf {
    let wim = dir.join("test.wim");
    let mut c = wimlib(["capture"]);
    c.arg(source()).arg(&wim).arg("Test Image").args(args);
    ok(&mut c);
    wim
}

/// Parses `key: value` lines of `wimlib-imagex info` into (header, per-image maps).
fn wimlib_info(
    wim: &Path,
    refs: &[String],
) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    // `wimlib-imagex info` reads part 1 alone; it takes no --ref.
    let _ = refs;
    let mut c = wimlib(["info"]);
    c.arg(wim);
    let text = ok(&mut c);
    let mut header = BTreeMap::new();
    let mut images: Vec<BTreeMap<String, String>> = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k == "Index" {
            images.push(BTreeMap::new());
        }
        match images.last_mut() {
            Some(m) => {
                m.insert(k, v);
            }
            None => {
                header.insert(k, v);
            }
        }
    }
    (header, images)
}

fn ref_args(refs: &[String]) -> Vec<String> {
    refs.iter()
        .flat_map(|r| ["--ref".to_string(), r.clone()])
        .collect()
}

/// All the checks for one WIM: verify, apply == source, dir == wimlib dir, info agrees,
/// 7-Zip's extraction equals ours.
fn check_wim(wim: &Path, image: &str, refs: &[String], seven_zip: bool) {
    let work = tempdir();
    let r = ref_args(refs);
    // verify
    ok(wimfs_cmd(["verify"]).arg(wim).args(&r));
    // apply
    let out = work.path().join("applied");
    ok(wimfs_cmd(["apply"]).arg(wim).arg(image).arg(&out).args(&r));
    assert_same_tree(source(), &out);
    // dir
    let ours = ok(wimfs_cmd(["dir"]).arg(wim).arg(image).args(&r));
    let theirs = ok(wimlib(["dir"]).arg(wim).arg(image).args(&r));
    let mut a: Vec<&str> = ours.lines().collect();
    let mut b: Vec<&str> = theirs.lines().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "dir listing differs from wimlib-imagex dir");
    // info --json
    let json: serde_json::Value =
        serde_json::from_str(&ok(wimfs_cmd(["info", "--json"]).arg(wim).args(&r)))
            .expect("info --json parses");
    let (hdr, imgs) = wimlib_info(wim, refs);
    // The text scripts parse: line for line what wimlib-imagex prints (it reads part 1 of a
    // split set alone).
    let ours = ok(wimfs_cmd(["info"]).arg(wim).args(&r));
    let theirs = ok(wimlib(["info"]).arg(wim));
    assert_eq!(ours, theirs, "info text differs from wimlib-imagex info");
    assert_eq!(json["image_count"].to_string(), hdr["Image Count"]);
    assert_eq!(json["compression"].as_str().unwrap(), hdr["Compression"]);
    if let Some(cs) = hdr.get("Chunk Size") {
        assert_eq!(format!("{} bytes", json["chunk_size"]), *cs);
    }
    assert_eq!(
        format!("{}/{}", json["part_number"], json["total_parts"]),
        hdr["Part Number"]
    );
    assert_eq!(format!("0x{}", json["guid"].as_str().unwrap()), hdr["GUID"]);
    assert_eq!(json["boot_index"].to_string(), hdr["Boot Index"]);
    let jimgs = json["images"].as_array().unwrap();
    assert_eq!(jimgs.len(), imgs.len());
    for (j, w) in jimgs.iter().zip(&imgs) {
        assert_eq!(j["index"].to_string(), w["Index"]);
        assert_eq!(j["name"].as_str().unwrap_or(""), w["Name"]);
        assert_eq!(j["dir_count"].to_string(), w["Directory Count"]);
        assert_eq!(j["file_count"].to_string(), w["File Count"]);
        assert_eq!(j["total_bytes"].to_string(), w["Total Bytes"]);
        assert_eq!(j["hard_link_bytes"].to_string(), w["Hard Link Bytes"]);
    }
    // 7-Zip cross-check (standalone files only: 7-Zip does not take split sets this way).
    if seven_zip {
        let sz = work.path().join("7z");
        let idx = image.parse::<usize>().ok();
        let o = run(Command::new("7zz")
            .arg("x")
            .arg("-y")
            .arg(format!("-o{}", sz.display()))
            .arg(wim));
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        // 7-Zip refuses to create links that leave the target ("Dangerous link path"); any
        // other error is a failure.
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("ERROR")).collect();
        assert!(
            errors.iter().all(|l| l.contains("link")),
            "7zz x failed:\n{text}"
        );
        assert!(
            o.status.success() || !errors.is_empty(),
            "7zz x failed:\n{text}"
        );
        let multi = json["image_count"].as_u64().unwrap() > 1;
        let root = match (multi, idx) {
            (true, Some(i)) => sz.join(i.to_string()),
            _ => sz.clone(),
        };
        for rel in walk(&out) {
            let m = std::fs::symlink_metadata(out.join(&rel)).unwrap();
            if m.is_file() {
                let ours = std::fs::read(out.join(&rel)).unwrap();
                let theirs = std::fs::read(root.join(&rel)).unwrap_or_else(|e| {
                    panic!("7zz did not extract {rel:?} into {}: {e}", root.display())
                });
                assert!(ours == theirs, "7-Zip and wimfs disagree on {rel:?}");
            }
        }
    }
}

fn case(args: &[&str]) {
    let dir = tempdir();
    let wim = capture(dir.path(), args);
    check_wim(&wim, "1", &[], true);
}

#[test]
fn none() {
    case(&["--compress=none"]);
}

#[test]
fn xpress_4k() {
    case(&["--compress=xpress", "--chunk-size=4096"]);
}

#[test]
fn xpress_32k() {
    case(&["--compress=xpress", "--chunk-size=32768"]);
}

#[test]
fn xpress_64k() {
    case(&["--compress=xpress", "--chunk-size=65536"]);
}

#[test]
fn lzx_32k() {
    case(&["--compress=lzx", "--chunk-size=32768"]);
}

#[test]
fn lzx_64k() {
    case(&["--compress=lzx", "--chunk-size=65536"]);
}

#[test]
fn lzx_2m() {
    case(&["--compress=lzx", "--chunk-size=2097152"]);
}

#[test]
fn lzms_default() {
    case(&["--compress=lzms"]);
}

#[test]
fn lzms_1m() {
    case(&["--compress=lzms", "--chunk-size=1048576"]);
}

#[test]
fn solid_lzms() {
    case(&["--solid"]);
}

#[test]
fn solid_lzx() {
    case(&["--solid", "--solid-compress=lzx"]);
}

#[test]
fn solid_xpress() {
    case(&["--solid", "--solid-compress=xpress"]);
}

/// A pipable WIM (wimlib's WLPWM layout: header again at the end, chunk headers, chunk
/// tables after the chunks) read from a file (every check but 7-Zip's, which does not read
/// the format), from standard input and from a named pipe; exported by wimfs to a normal
/// WIM that wimlib verifies and applies as the source.
fn pipable_case(args: &[&str]) {
    let dir = tempdir();
    let wim = capture(dir.path(), &[&["--pipable"], args].concat());
    assert_eq!(&std::fs::read(&wim).unwrap()[..5], b"WLPWM");
    check_wim(&wim, "1", &[], false);
    // From standard input through a real pipe, as `wimlib-imagex apply - 1 DIR` takes it.
    let out = dir.path().join("from-stdin");
    let mut child = wimfs_cmd(["apply", "-q", "-", "1"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = std::fs::read(&wim).unwrap();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
    assert!(child.wait().unwrap().success());
    feeder.join().unwrap().unwrap();
    assert_same_tree(source(), &out);
    // From a named pipe.
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (src, to) = (wim.clone(), fifo.clone());
    let feeder = std::thread::spawn(move || std::fs::write(&to, std::fs::read(&src).unwrap()));
    let listing = ok(wimfs_cmd(["dir"]).arg(&fifo).arg("1"));
    feeder.join().unwrap().unwrap();
    assert_eq!(listing, ok(wimfs_cmd(["dir"]).arg(&wim).arg("1")));
    let normal = dir.path().join("normal.wim");
    ok(wimfs_cmd(["export", "-q"]).arg(&wim).arg("1").arg(&normal));
    ok(wimlib(["verify"]).arg(&normal));
    let out = dir.path().join("normal-applied");
    ok(wimlib(["apply"]).arg(&normal).arg("1").arg(&out));
    assert_same_tree(source(), &out);
}

#[test]
fn pipable_lzx() {
    pipable_case(&[]);
}

#[test]
fn pipable_xpress_with_integrity_table() {
    pipable_case(&["--compress=xpress", "--check"]);
}

#[test]
fn pipable_uncompressed() {
    pipable_case(&["--compress=none"]);
}

#[test]
fn multi_image_by_name() {
    let dir = tempdir();
    let wim = capture(dir.path(), &["--compress=lzx"]);
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("only-in-two.txt"), "second image\n").unwrap();
    ok(wimlib(["append"]).arg(&other).arg(&wim).arg("Second"));
    ok(wimlib(["append"]).arg(source()).arg(&wim).arg("Third"));
    check_wim(&wim, "Third", &[], false);
    check_wim(&wim, "3", &[], true);
    let listing = ok(wimfs_cmd(["dir"]).arg(&wim).arg("Second"));
    assert_eq!(listing, "/\n/only-in-two.txt\n");
    // An image must be named when there are several.
    let out = run(wimfs_cmd(["dir"]).arg(&wim));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 images"));
}

#[test]
fn split_set() {
    let dir = tempdir();
    let wim = capture(dir.path(), &["--compress=lzx"]);
    let swm = dir.path().join("part.swm");
    ok(wimlib(["split"]).arg(&wim).arg(&swm).arg("1"));
    let glob = format!("{}/part*.swm", dir.path().display());
    let parts = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".swm"))
        .count();
    assert!(parts >= 3, "expected several parts, got {parts}");
    check_wim(&swm, "1", &[glob], false);
    // Part 1 alone: info and dir work as with wimlib-imagex (the header, XML and metadata
    // are all in it); what needs file data says which parts are missing.
    assert_eq!(
        ok(wimfs_cmd(["info"]).arg(&swm)),
        ok(wimlib(["info"]).arg(&swm)),
        "info of part 1"
    );
    let mut ours: Vec<String> = ok(wimfs_cmd(["dir"]).arg(&swm).arg("1"))
        .lines()
        .map(str::to_string)
        .collect();
    let mut theirs: Vec<String> = ok(wimlib(["dir"]).arg(&swm).arg("1"))
        .lines()
        .map(str::to_string)
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "dir of part 1");
    let out = run(wimfs_cmd(["apply"])
        .arg(&swm)
        .arg("1")
        .arg(dir.path().join("partial")));
    assert!(!out.status.success());
    // Without the other parts: a clear error naming the missing parts.
    let out = run(wimfs_cmd(["verify"]).arg(&swm));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing part"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn integrity_table_checked() {
    let dir = tempdir();
    let wim = capture(dir.path(), &["--compress=xpress", "--check"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(wimfs_cmd(["info", "--json", "--check"]).arg(&wim))).unwrap();
    assert_eq!(v["integrity_ok"], serde_json::Value::Bool(true));
    assert!(ok(wimfs_cmd(["verify"]).arg(&wim)).contains("integrity table OK"));
    assert!(!ok(wimfs_cmd(["verify", "--nocheck"]).arg(&wim)).contains("integrity"));
    // A damaged integrity table (its last hash): verify fails as wimlib's does, and with
    // --nocheck both pass.
    let header = ok(wimfs_cmd(["info", "--header"]).arg(&wim));
    let field = |name: &str| -> u64 {
        header
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split('=').nth(1))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let end = field("Integrity Offset") + field("Integrity Size");
    let mut bytes = std::fs::read(&wim).unwrap();
    bytes[end as usize - 1] ^= 0x55;
    std::fs::write(&wim, bytes).unwrap();
    for nocheck in [false, true] {
        let flag: &[&str] = if nocheck { &["--nocheck"] } else { &[] };
        let theirs = run(wimlib(["verify"]).arg(&wim).args(flag));
        let ours = run(wimfs_cmd(["verify"]).arg(&wim).args(flag));
        assert_eq!(ours.status.success(), nocheck, "{ours:?}");
        assert_eq!(theirs.status.success(), nocheck, "{theirs:?}");
    }
}

#[test]
fn sample_image_applies() {
    let wim = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample.wim");
    let work = tempdir();
    ok(wimfs_cmd(["verify"]).arg(&wim));
    ok(wimfs_cmd(["apply"]).arg(&wim).arg(work.path().join("a")));
    ok(wimlib(["apply"]).arg(&wim).arg(work.path().join("b")));
    assert_same_tree(&work.path().join("b"), &work.path().join("a"));
}

/// Lowering a loaded image reproduces wimlib's metadata resource byte for byte.
#[test]
fn metadata_round_trips_byte_identical() {
    for args in [
        &["--compress=none"][..],
        &["--compress=none", "--unix-data"][..],
    ] {
        let dir = tempdir();
        let wim_path = capture(dir.path(), args);
        let wim = wimfs::Wim::open(&wim_path).unwrap();
        let loc = *wim.metadata_location(1).unwrap();
        let original = wim.read_blob(&loc, true).unwrap();
        let img = wimfs::Image::load(&wim, 1).unwrap();
        let lowered = img.to_metadata();
        assert_eq!(
            lowered.len(),
            original.len(),
            "{args:?}: metadata size differs"
        );
        assert!(lowered == original, "{args:?}: metadata bytes differ");
        let again = wimfs::Image::from_metadata(&wim, 1, &lowered).unwrap();
        assert_eq!(again, img);
    }
}

/// `dir --detailed` and `info` print times exactly as wimlib-imagex does: zero-padded days,
/// hours, minutes and seconds, English names and UTC whatever the locale and time zone, and
/// dates before 1970 and after 2038. The times are fixed, so today's date plays no part.
#[test]
fn times_print_as_wimlib_prints_them() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // (name, Unix seconds): single-digit days and hours, the 1st and the 9th, the 10th and
    // the 31st, leap day, before the Unix epoch, past 2038.
    let times: &[(&str, i64)] = &[
        ("d01", 1_796_083_505),    // Tue Dec 01 00:05:05 2026
        ("d02", 1_796_202_307),    // Wed Dec 02 09:05:07 2026
        ("d09", 1_796_810_399),    // Wed Dec 09 09:59:59 2026
        ("d10", 1_796_860_800),    // Thu Dec 10 00:00:00 2026
        ("d31", 1_798_761_599),    // Thu Dec 31 23:59:59 2026
        ("leap", 1_709_164_800),   // Thu Feb 29 00:00:00 2024
        ("old", -14_182_940),      // Sun Jul 20 20:17:40 1969
        ("future", 4_107_542_400), // Mon Mar 01 00:00:00 2100
    ];
    for (name, t) in times {
        let p = src.join(name);
        std::fs::write(&p, name).unwrap();
        let ft = filetime::FileTime::from_unix_time(*t, 0);
        filetime::set_file_times(&p, ft, ft).unwrap();
    }
    let env_of = |c: &mut Command| {
        // A zone west of UTC and a non-English locale: neither may change what is printed.
        c.env("TZ", "America/Los_Angeles")
            .env("LANG", "de_DE.UTF-8")
            .env("LC_ALL", "de_DE.UTF-8");
    };
    for (writer, wim) in [
        ("wimlib", dir.path().join("a.wim")),
        ("wimfs", dir.path().join("b.wim")),
    ] {
        if writer == "wimlib" {
            ok(wimlib(["capture"]).arg(&src).arg(&wim));
        } else {
            ok(wimfs_cmd(["capture"]).arg(&src).arg(&wim));
        }
        let mut c = wimfs_cmd(["dir", "--detailed"]);
        c.arg(&wim).arg("1");
        env_of(&mut c);
        let ours = ok(&mut c);
        let theirs = ok(wimlib(["dir", "--detailed"]).arg(&wim).arg("1"));
        let time_lines = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("Full Path") || l.contains(" Time "))
                .map(str::to_string)
                .collect()
        };
        let (a, b) = (time_lines(&ours), time_lines(&theirs));
        assert_eq!(a.len(), 4 * (times.len() + 1), "{writer}: {ours}");
        assert_eq!(
            a, b,
            "{writer}: times differ from wimlib-imagex dir --detailed"
        );
        for needle in [
            "Tue Dec 01 00:05:05 2026 UTC",
            "Sun Jul 20 20:17:40 1969 UTC",
            "Mon Mar 01 00:00:00 2100 UTC",
        ] {
            assert!(ours.contains(needle), "{writer}: {needle} not in {ours}");
        }
        let mut c = wimfs_cmd(["info"]);
        c.arg(&wim);
        env_of(&mut c);
        assert_eq!(
            ok(&mut c),
            ok(wimlib(["info"]).arg(&wim)),
            "{writer}: info differs"
        );
    }
}

/// Run under wimlib's per-verb names (links to wimfs, as its package installs them), wimfs
/// does their verbs.
#[cfg(unix)]
#[test]
fn short_names_run_their_verbs() {
    let t = tempdir();
    let wim = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample.wim");
    for (name, verb) in [
        ("wiminfo", "info"),
        ("wimdir", "dir"),
        ("wimverify", "verify"),
    ] {
        let link = t.path().join(name);
        std::os::unix::fs::symlink(common::wimfs(), &link).unwrap();
        let by_link = ok(Command::new(&link).arg(&wim));
        assert_eq!(
            by_link,
            ok(&mut wimfs_cmd([verb.as_ref(), wim.as_os_str()])),
            "{name}"
        );
    }
    let link = t.path().join("wimapply");
    std::os::unix::fs::symlink(common::wimfs(), &link).unwrap();
    let out = t.path().join("applied");
    ok(Command::new(&link).arg(&wim).arg("1").arg(&out));
    assert_eq!(
        std::fs::read(out.join("README.txt")).unwrap(),
        ok(wimlib(["extract"])
            .arg(&wim)
            .args(["1", "/README.txt", "--to-stdout"]))
        .into_bytes()
    );
}
