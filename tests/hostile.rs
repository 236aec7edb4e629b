//! Hostile WIMs: files made by wimlib-imagex, then patched so that a size, count or chunk
//! size lies. Every verb runs over each under a 2 GB address-space limit and a timeout, and
//! must end with a clear error (an exit status from 1 to 123 and a message naming the file)
//! or, where it never reads the lying field, succeed: never a panic, an abort, a signal or
//! a hang, and never a write outside its target.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use wimfs::format::blob_table::{parse_blob_table, BlobEntry, BLOB_ENTRY_SIZE};
use wimfs::format::header::Header;
use wimfs::format::reshdr::SOLID_RESOURCE_MAGIC;

fn tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("a.txt"), "first\n").unwrap();
    fs::write(root.join("dir/sub/file"), mixed_data(200_000, 5)).unwrap();
    fs::write(root.join("dir/big"), mixed_data(400_000, 11)).unwrap();
}

fn captured(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let src = dir.join("src");
    if !src.exists() {
        tree(&src);
    }
    let wim = dir.join(name);
    ok(wimlib(["capture"]).arg(&src).arg(&wim).args(args));
    fs::read(&wim).unwrap()
}

fn header(bytes: &[u8]) -> Header {
    Header::parse(bytes).unwrap()
}

fn set_header(bytes: &mut [u8], f: impl FnOnce(&mut Header)) {
    let mut h = header(bytes);
    f(&mut h);
    bytes[..h.to_bytes().len()].copy_from_slice(&h.to_bytes());
}

/// The blob table's entries and the file offset of the first.
fn entries(bytes: &[u8]) -> (usize, Vec<BlobEntry>) {
    let bt = header(bytes).blob_table;
    assert!(!bt.is_compressed());
    let at = bt.offset as usize;
    let table = &bytes[at..at + bt.size_in_wim as usize];
    (at, parse_blob_table(table).unwrap())
}

/// Changes the blob-table entry that `pick` chooses (by index among all entries).
fn set_entry(
    bytes: &mut [u8],
    pick: impl Fn(&[BlobEntry]) -> usize,
    f: impl FnOnce(&mut BlobEntry),
) {
    let (at, es) = entries(bytes);
    let i = pick(&es);
    let mut e = es[i];
    f(&mut e);
    let off = at + i * BLOB_ENTRY_SIZE;
    bytes[off..off + BLOB_ENTRY_SIZE].copy_from_slice(&e.to_bytes());
}

fn metadata(es: &[BlobEntry]) -> usize {
    es.iter().position(|e| e.reshdr.is_metadata()).unwrap()
}

fn biggest_data(es: &[BlobEntry]) -> usize {
    (0..es.len())
        .filter(|&i| !es[i].reshdr.is_metadata() && !es[i].reshdr.is_solid())
        .max_by_key(|&i| es[i].reshdr.uncompressed_size)
        .unwrap()
}

/// The hostile files, by name.
fn hostile(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let lzx = captured(dir, "lzx.wim", &["--compress=lzx"]);
    let none = captured(dir, "none.wim", &["--compress=none"]);
    let esd = captured(dir, "solid.esd", &["--solid"]);
    let check = captured(dir, "check.wim", &["--compress=xpress", "--check"]);
    let mut out = Vec::new();
    let mut case = |name: &str, base: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.to_vec();
        f(&mut b);
        assert!(b != base, "{name}: patch changed nothing");
        out.push((name.to_string(), b));
    };
    const TIB: u64 = 1 << 40;
    case("metadata-claims-1tib", &lzx, &|b| {
        set_entry(b, metadata, |e| e.reshdr.uncompressed_size = TIB)
    });
    case("raw-metadata-claims-1tib", &none, &|b| {
        set_entry(b, metadata, |e| e.reshdr.uncompressed_size = TIB)
    });
    case("chunk-size-1-blob-2^61", &lzx, &|b| {
        set_entry(b, biggest_data, |e| {
            e.reshdr.uncompressed_size = (1 << 61) + 1
        });
        set_header(b, |h| h.chunk_size = 1)
    });
    case("chunk-size-2^31", &lzx, &|b| {
        set_header(b, |h| h.chunk_size = 1 << 31)
    });
    case("lzx-chunk-size-4k", &lzx, &|b| {
        set_header(b, |h| h.chunk_size = 4096)
    });
    case("data-blob-claims-1tib", &lzx, &|b| {
        set_entry(b, biggest_data, |e| e.reshdr.uncompressed_size = TIB)
    });
    case("data-blob-claims-2^64-1", &lzx, &|b| {
        set_entry(b, biggest_data, |e| e.reshdr.uncompressed_size = u64::MAX)
    });
    case("xml-claims-1tib", &lzx, &|b| {
        set_header(b, |h| h.xml.uncompressed_size = TIB)
    });
    case("blob-table-claims-1tib-compressed", &lzx, &|b| {
        set_header(b, |h| {
            h.blob_table.uncompressed_size = TIB;
            h.blob_table.flags |= wimfs::format::reshdr::RESHDR_FLAG_COMPRESSED;
        })
    });
    case("integrity-claims-1tib", &check, &|b| {
        set_header(b, |h| {
            h.integrity.uncompressed_size = TIB;
            h.integrity.size_in_wim = TIB;
        })
    });
    case("image-count-4g", &lzx, &|b| {
        set_header(b, |h| h.image_count = u32::MAX)
    });
    // The solid resource's own 16-byte header: a 1 GiB chunk size and a 1 TiB size.
    let solid_at = {
        let (_, es) = entries(&esd);
        es.iter()
            .find(|e| e.reshdr.uncompressed_size == SOLID_RESOURCE_MAGIC)
            .expect("an ESD has a solid resource")
            .reshdr
            .offset as usize
    };
    case("solid-1gib-chunks-claims-1tib", &esd, &|b| {
        b[solid_at..solid_at + 8].copy_from_slice(&TIB.to_le_bytes());
        b[solid_at + 8..solid_at + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    });
    case("solid-chunk-size-1", &esd, &|b| {
        b[solid_at + 8..solid_at + 12].copy_from_slice(&1u32.to_le_bytes());
    });
    case("solid-claims-2^64-1", &esd, &|b| {
        b[solid_at..solid_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    });
    out
}

/// Runs `wimfs ARGS` in `cwd` under `ulimit -v 2000000` and a 120 s timeout.
fn limited(cwd: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    run(std::process::Command::new("sh")
        .current_dir(cwd)
        .arg("-c")
        .arg("ulimit -v 2000000 && exec timeout -s KILL 120 \"$0\" \"$@\"")
        .arg(wimfs())
        .args(args))
}

/// Unmounts a mountpoint left behind by a failed assertion.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.0)
            .output();
    }
}

/// Mounts `wim` under the same limits (the daemon inherits them) and reads every file: the
/// mount either fails cleanly or serves, reads of bad data fail one by one, and the daemon
/// is still answering and unmounts at the end. `None` where FUSE is not available.
fn mount_and_read(case_dir: &Path, wim: &Path, name: &str) -> Option<String> {
    if !Path::new("/dev/fuse").exists() || !running_as_root() {
        return None;
    }
    let daemon = wimfs().with_file_name("wimfs-mountd");
    assert!(
        daemon.exists(),
        "{}: build the workspace first",
        daemon.display()
    );
    let mnt = case_dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt = fs::canonicalize(&mnt).unwrap();
    let what = format!("{name}: wimfs mount");
    let o = limited(
        case_dir,
        &[
            "mount".as_ref(),
            wim.as_os_str(),
            "1".as_ref(),
            mnt.as_os_str(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    let code = o.status.code();
    assert!(
        matches!(code, Some(0..=123)),
        "{what}: ended with {:?}: {err}",
        o.status
    );
    if code != Some(0) {
        assert!(
            err.contains(&wim.display().to_string()),
            "{what}: the error does not name the file: {err}"
        );
        return Some(format!("{what} -> {code:?}"));
    }
    let _guard = Unmount(mnt.clone());
    // Every file read through the mount; reads of lying data fail with EIO, one by one.
    let read = run(std::process::Command::new("timeout")
        .args(["-s", "KILL", "120", "sh", "-c"])
        .arg("find \"$0\" -type f -exec cat {} + > /dev/null")
        .arg(&mnt));
    assert!(
        read.status.code().is_some(),
        "{what}: reading every file hung"
    );
    // The daemon still answers, and unmounts.
    assert!(
        fs::read_dir(&mnt).is_ok(),
        "{what}: the mount stopped answering"
    );
    ok(std::process::Command::new(wimfs()).arg("unmount").arg(&mnt));
    Some(format!("{what} -> served; reads {:?}", read.status.code()))
}

#[test]
fn hostile_wims_fail_cleanly_in_every_verb() {
    let dir = tempdir();
    let cases = hostile(dir.path());
    assert!(cases.len() >= 14);
    // scripts/fuzz-seeds.sh seeds the whole-WIM fuzz target with these.
    if let Some(seeds) = std::env::var_os("WIMFS_HOSTILE_SEEDS") {
        fs::create_dir_all(&seeds).unwrap();
        for (name, bytes) in &cases {
            fs::write(Path::new(&seeds).join(format!("hostile-{name}")), bytes).unwrap();
        }
    }
    let mut report = Vec::new();
    for (name, bytes) in &cases {
        let case_dir = dir.path().join(name);
        fs::create_dir(&case_dir).unwrap();
        let wim: PathBuf = case_dir.join("hostile.wim");
        fs::write(&wim, bytes).unwrap();
        let work = case_dir.join("cwd");
        fs::create_dir(&work).unwrap();
        let out = work.join("out");
        let w = wim.as_os_str();
        let verbs: Vec<Vec<&std::ffi::OsStr>> = vec![
            vec!["info".as_ref(), w],
            vec!["info".as_ref(), w, "--check".as_ref()],
            vec!["dir".as_ref(), w, "1".as_ref()],
            vec!["dir".as_ref(), w, "1".as_ref(), "--detailed".as_ref()],
            vec!["verify".as_ref(), w],
            vec!["apply".as_ref(), w, "1".as_ref(), out.as_os_str()],
            vec![
                "extract".as_ref(),
                w,
                "1".as_ref(),
                "/dir/big".as_ref(),
                "--dest-dir".as_ref(),
                out.as_os_str(),
            ],
        ];
        let mut failed_verify = false;
        for args in &verbs {
            let o = limited(&work, args);
            let err = String::from_utf8_lossy(&o.stderr);
            let what = format!("{name}: wimfs {:?}", &args[..1]);
            let code = o.status.code();
            assert!(
                matches!(code, Some(0..=123)),
                "{what}: ended with {:?} (signal or timeout): {err}",
                o.status
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
            if code != Some(0) {
                assert!(
                    err.contains(&wim.display().to_string()),
                    "{what}: the error does not name the file: {err}"
                );
            }
            if args[0] == "verify" {
                failed_verify = code != Some(0);
            }
            report.push(format!("{what} -> {code:?}"));
            let _ = fs::remove_dir_all(&out);
        }
        assert!(failed_verify, "{name}: verify passed a hostile file");
        if let Some(r) = mount_and_read(&case_dir, &wim, name) {
            report.push(r);
        }
        // Nothing was written beside the target.
        let left: Vec<_> = fs::read_dir(&work).unwrap().collect();
        assert!(
            left.is_empty(),
            "{name}: left {left:?} in the working directory"
        );
    }
    eprintln!("{}", report.join("\n"));
}
