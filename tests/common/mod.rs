//! Shared helpers for integration tests: fixture trees, reference tools, tree comparison.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the built `wimfs` binary.
pub fn wimfs() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wimfs"))
}

/// Runs a command, returning its output; panics with stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and asserts it succeeded; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `wimfs ARGS...`
pub fn wimfs_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(wimfs());
    c.args(args);
    c
}

/// `wimlib-imagex ARGS...`
pub fn wimlib<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new("wimlib-imagex");
    c.args(args);
    c
}

/// Deterministic pseudo-random bytes (xorshift), so fixtures are reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Data that compresses somewhat, like real files: text-ish runs mixed with binary.
pub fn mixed_data(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "delta\n",
        "\x00\x01\x02\x03",
        "epsilon ",
        "\u{e9}t\u{e9} ",
    ];
    let rnd = pseudo_random(len / 4 + 16, seed);
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        let r = rnd[i % rnd.len()];
        if r < 40 {
            out.extend_from_slice(&rnd[i % rnd.len()..(i % rnd.len() + 8).min(rnd.len())]);
        } else {
            out.extend_from_slice(words[r as usize % words.len()].as_bytes());
        }
        i += 1;
    }
    out.truncate(len);
    out
}

/// Builds the standard fixture tree: text, a >3 MiB binary, empty files, hard links,
/// relative and absolute symlinks, Unicode names, nested directories.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty_dir")).unwrap();
    fs::write(root.join("hello.txt"), "Hello, WIM!\n").unwrap();
    let mut text = String::new();
    for i in 0..20000 {
        text.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    fs::write(root.join("dir/big.txt"), &text).unwrap();
    // > 3 MiB binary: part real machine code (for E8/x86 filters), part mixed, part random.
    let mut bin = fs::read("/proc/self/exe").unwrap_or_default();
    bin.truncate(1 << 20);
    bin.extend_from_slice(&mixed_data(2 << 20, 7));
    bin.extend_from_slice(&pseudo_random(600 << 10, 9));
    fs::write(root.join("dir/sub/blob.bin"), &bin).unwrap();
    fs::write(root.join("empty.txt"), "").unwrap();
    fs::write(root.join("dir/sub/deeper/also_empty"), "").unwrap();
    fs::write(root.join("dir/sub/deeper/small.dat"), mixed_data(5000, 3)).unwrap();
    fs::write(root.join("dir/dup1.txt"), "same contents\n").unwrap();
    fs::write(root.join("dir/dup2.txt"), "same contents\n").unwrap();
    fs::hard_link(root.join("dir/big.txt"), root.join("big_link.txt")).unwrap();
    fs::hard_link(root.join("dir/big.txt"), root.join("dir/sub/big_link2.txt")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("dir/rel_link")).unwrap();
    std::os::unix::fs::symlink("sub/deeper", root.join("dir/dir_link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs_link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling_abs")).unwrap();
    fs::write(root.join("Ünïcödé 名前.txt"), "unicode\n").unwrap();
    fs::create_dir(root.join("dir/日本語")).unwrap();
    fs::write(root.join("dir/日本語/ファイル"), "ファイル\n").unwrap();
    fs::write(root.join("dir/with space & symbols!.txt"), "x\n").unwrap();
    let mut f = fs::File::create(root.join("dir/sub/many_zeros")).unwrap();
    f.write_all(&vec![0u8; 300_000]).unwrap();
}

/// Asserts two trees are equal (`diff -r --no-dereference`) and that hard-linked files in
/// `expected` are hard-linked in `actual`.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let out = run(Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(expected)
        .arg(actual));
    assert!(
        out.status.success(),
        "trees differ ({} vs {}):\n{}{}",
        expected.display(),
        actual.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut groups: std::collections::HashMap<u64, Vec<PathBuf>> = Default::default();
    for rel in walk(expected) {
        let m = fs::symlink_metadata(expected.join(&rel)).unwrap();
        if m.is_file() && m.nlink() > 1 {
            groups.entry(m.ino()).or_default().push(rel);
        }
    }
    for paths in groups.values() {
        let inos: Vec<u64> = paths
            .iter()
            .map(|p| fs::symlink_metadata(actual.join(p)).unwrap().ino())
            .collect();
        assert!(
            inos.windows(2).all(|w| w[0] == w[1]),
            "{paths:?} should be hard links in {}",
            actual.display()
        );
    }
    for rel in walk(expected) {
        let m = fs::symlink_metadata(expected.join(&rel)).unwrap();
        if m.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(expected.join(&rel)).unwrap(),
                fs::read_link(actual.join(&rel)).unwrap(),
                "symlink target of {rel:?}"
            );
        }
    }
}

/// Relative paths of everything below `root` (not following symlinks), sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r.clone());
            }
            out.push(r);
        }
    }
    out.sort();
    out
}

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wimfs-test")
        .tempdir()
        .unwrap()
}

/// Whether this process runs as root (whose reads no file mode stops).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
