//! Bad input: truncated and corrupted files, bad chunk tables, hash mismatches and malicious
//! metadata all give a clear error naming the file and a non-zero exit, never a panic, and
//! apply never writes outside its target.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use sha1::{Digest, Sha1};
use wimfs::format::blob_table::{parse_blob_table, BLOB_ENTRY_SIZE};
use wimfs::format::dentry::parse_metadata;
use wimfs::format::header::Header;

fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("aaa1"), "first\n").unwrap();
    fs::write(root.join("aaa2"), "second\n").unwrap();
    fs::write(root.join("ab"), "two letters\n").unwrap();
    fs::write(root.join("dir/sub/file"), mixed_data(200_000, 5)).unwrap();
    fs::write(root.join("dir/big"), mixed_data(400_000, 11)).unwrap();
}

fn make_wim(dir: &Path, args: &[&str]) -> PathBuf {
    let src = dir.join("src");
    small_tree(&src);
    let wim = dir.join("t.wim");
    ok(wimlib(["capture"]).arg(&src).arg(&wim).args(args));
    wim
}

/// Asserts a failed run: non-zero exit that is not a panic, stderr naming the file and
/// containing `needle`.
fn assert_clean_failure(out: &Output, wim: &Path, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        err.contains(&wim.display().to_string()),
        "error does not name the file: {err}"
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "error lacks {needle:?}: {err}"
    );
}

/// Every read verb fails cleanly on `wim`.
fn all_verbs_fail(wim: &Path, needle: &str) {
    let t = tempdir();
    assert_clean_failure(&run(wimfs_cmd(["verify"]).arg(wim)), wim, needle);
    assert_clean_failure(
        &run(wimfs_cmd(["apply"])
            .arg(wim)
            .arg("1")
            .arg(t.path().join("out"))),
        wim,
        needle,
    );
}

struct MetaPatch {
    wim: PathBuf,
    bytes: Vec<u8>,
    meta_off: usize,
    meta_len: usize,
    entry_off: usize,
}

impl MetaPatch {
    /// Locates image 1's (uncompressed) metadata resource and its blob table entry.
    fn open(wim: &Path) -> Self {
        let bytes = fs::read(wim).unwrap();
        let h = Header::parse(&bytes).unwrap();
        let bt = h.blob_table;
        assert!(!bt.is_compressed());
        let table = &bytes[bt.offset as usize..(bt.offset + bt.size_in_wim) as usize];
        let entries = parse_blob_table(table).unwrap();
        let i = entries.iter().position(|e| e.reshdr.is_metadata()).unwrap();
        let r = entries[i].reshdr;
        assert!(!r.is_compressed(), "test needs an uncompressed WIM");
        MetaPatch {
            wim: wim.to_path_buf(),
            meta_off: r.offset as usize,
            meta_len: r.size_in_wim as usize,
            entry_off: bt.offset as usize + i * BLOB_ENTRY_SIZE,
            bytes,
        }
    }

    fn meta(&mut self) -> &mut [u8] {
        &mut self.bytes[self.meta_off..self.meta_off + self.meta_len]
    }

    /// Offset (in the metadata) of the dentry named `name`.
    fn dentry(&mut self, name: &str) -> usize {
        let tree = parse_metadata(self.meta()).unwrap();
        tree.dentries
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no dentry {name}"))
            .offset as usize
    }

    fn set_name(&mut self, name: &str, new: &str) {
        assert_eq!(name.len(), new.len());
        let off = self.dentry(name) + 102;
        let utf16: Vec<u8> = new.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        self.meta()[off..off + utf16.len()].copy_from_slice(&utf16);
    }

    /// Writes the file back with the metadata hash fixed, so only the metadata is wrong.
    fn save(mut self) {
        let digest = Sha1::digest(self.meta());
        let e = self.entry_off + 30;
        self.bytes[e..e + 20].copy_from_slice(&digest);
        fs::write(&self.wim, &self.bytes).unwrap();
    }
}

#[test]
fn truncated_files() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=lzx"]);
    let full = fs::read(&wim).unwrap();
    for cut in [0usize, 100, 207, 208, full.len() / 2, full.len() - 1] {
        let p = d.path().join(format!("cut{cut}.wim"));
        fs::write(&p, &full[..cut]).unwrap();
        let out = run(wimfs_cmd(["info"]).arg(&p));
        let verify = run(wimfs_cmd(["verify"]).arg(&p));
        // A cut inside the data may still leave a readable header; verification must fail.
        assert_clean_failure(&verify, &p, "");
        if cut < 208 {
            assert_clean_failure(&out, &p, "");
        }
    }
}

#[test]
fn wrong_magic() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    let mut b = fs::read(&wim).unwrap();
    b[0..5].copy_from_slice(b"NOWIM");
    fs::write(&wim, &b).unwrap();
    assert_clean_failure(&run(wimfs_cmd(["info"]).arg(&wim)), &wim, "not a WIM file");
    all_verbs_fail(&wim, "not a WIM file");
    let text = d.path().join("text.wim");
    fs::write(&text, "just some text").unwrap();
    assert_clean_failure(&run(wimfs_cmd(["info"]).arg(&text)), &text, "too short");
}

/// Finds the blob table entry of the largest compressed resource with several chunks.
fn largest_compressed(bytes: &[u8]) -> (u64, u64, u64) {
    let h = Header::parse(bytes).unwrap();
    let bt = h.blob_table;
    let entries =
        parse_blob_table(&bytes[bt.offset as usize..(bt.offset + bt.size_in_wim) as usize])
            .unwrap();
    let r = entries
        .iter()
        .filter(|e| e.reshdr.is_compressed() && !e.reshdr.is_metadata())
        .max_by_key(|e| e.reshdr.uncompressed_size)
        .unwrap()
        .reshdr;
    (r.offset, r.size_in_wim, r.uncompressed_size)
}

#[test]
fn chunk_table_outside_file() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=lzx"]);
    let mut b = fs::read(&wim).unwrap();
    let (off, _, usize) = largest_compressed(&b);
    assert!(usize > 3 * 32768);
    // Second chunk-table entry: chunk 2 starts far beyond the resource and the file.
    let e = off as usize + 4;
    b[e..e + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    fs::write(&wim, &b).unwrap();
    all_verbs_fail(&wim, "chunk");
}

#[test]
fn corrupted_compressed_data() {
    for comp in ["--compress=xpress", "--compress=lzx", "--compress=lzms"] {
        let d = tempdir();
        let wim = make_wim(d.path(), &[comp]);
        let mut b = fs::read(&wim).unwrap();
        let (off, size, usize) = largest_compressed(&b);
        let table = 4
            * (usize.div_ceil(if comp.ends_with("lzms") {
                131072
            } else {
                32768
            }) - 1);
        let start = (off + table + 16) as usize;
        for i in (start..(off + size) as usize).step_by(97) {
            b[i] ^= 0x5a;
        }
        fs::write(&wim, &b).unwrap();
        let out = run(wimfs_cmd(["verify"]).arg(&wim));
        assert_clean_failure(&out, &wim, "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("corrupt"), "{comp}: {err}");
    }
}

#[test]
fn sha1_mismatch() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    let mut b = fs::read(&wim).unwrap();
    // File data starts right after the header in a wimlib-written WIM.
    b[208 + 3] ^= 0xff;
    fs::write(&wim, &b).unwrap();
    all_verbs_fail(&wim, "SHA-1");
}

#[test]
fn cyclic_directories() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    let mut p = MetaPatch::open(&wim);
    let tree = parse_metadata(p.meta()).unwrap();
    let root_children = tree.dentries[0].subdir_offset;
    let sub = p.dentry("sub");
    p.meta()[sub + 16..sub + 24].copy_from_slice(&root_children.to_le_bytes());
    p.save();
    all_verbs_fail(&wim, "cycle");
    assert_clean_failure(&run(wimfs_cmd(["dir"]).arg(&wim)), &wim, "cycle");
}

#[test]
fn duplicate_names() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    let mut p = MetaPatch::open(&wim);
    p.set_name("aaa2", "aaa1");
    p.save();
    all_verbs_fail(&wim, "duplicate name");
}

#[test]
fn dot_dot_names_never_escape() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    let mut p = MetaPatch::open(&wim);
    p.set_name("ab", "..");
    p.save();
    all_verbs_fail(&wim, "\"..\"");
    // Nothing was written next to the target.
    let target = d.path().join("nested/out");
    fs::create_dir_all(&target).unwrap();
    let _ = run(wimfs_cmd(["apply"]).arg(&wim).arg("1").arg(&target));
    assert!(!d.path().join("nested/two letters").exists());
    let names: Vec<_> = fs::read_dir(d.path().join("nested"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out")]);
}

#[test]
fn missing_image_and_path() {
    let d = tempdir();
    let wim = make_wim(d.path(), &["--compress=none"]);
    assert_clean_failure(
        &run(wimfs_cmd(["dir"]).arg(&wim).arg("7")),
        &wim,
        "no image 7",
    );
    assert_clean_failure(
        &run(wimfs_cmd(["dir"]).arg(&wim).arg("Nope")),
        &wim,
        "no image is named",
    );
    assert_clean_failure(
        &run(wimfs_cmd(["extract"])
            .arg(&wim)
            .arg("1")
            .arg("/missing")
            .arg("--dest-dir")
            .arg(d.path())),
        &wim,
        "no matches for path pattern \"/missing\"",
    );
    let missing = d.path().join("absent.wim");
    assert_clean_failure(
        &run(wimfs_cmd(["info"]).arg(&missing)),
        &missing,
        "cannot open",
    );
}

/// Names holding control characters reach the terminal escaped (`\x1b`), never raw; JSON
/// keeps them exact.
#[test]
fn control_characters_in_names_are_escaped() {
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
    fs::write(src.join(evil), "x").unwrap();
    let wim = t.path().join("t.wim");
    ok(wimlib(["capture"])
        .arg(&src)
        .arg(&wim)
        .arg("name\u{1b}[31m"));
    for args in [&["dir"][..], &["dir", "--detailed"][..], &["info"][..]] {
        let out = ok(wimfs_cmd(args).arg(&wim));
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
        assert!(out.contains("\\x1b"), "{args:?}: {out}");
    }
    let json = ok(wimfs_cmd(["dir", "--json"]).arg(&wim));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"].as_str() == Some(&format!("/{evil}"))),
        "{json}"
    );
}
