//! Mount tests through the kernel: WIMs captured by wimlib-imagex, mounted by wimfs-mountd
//! (and by `wimfs mount`), checked with ordinary file system calls.
//!
//! Every mount lives in its own temporary directory and is torn down by a guard, even when
//! the test fails. Needs root (or fusermount3) and /dev/fuse.

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Half compressible text-like bytes, half noise.
        if (out.len() / 4096) % 2 == 0 {
            out.push(b"the quick brown fox "[(x % 20) as usize]);
        } else {
            out.push(x as u8);
        }
    }
    out
}

/// A tree with everything that survives a plain Linux capture unchanged.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty_dir")).unwrap();
    fs::write(root.join("hello.txt"), "hello\n").unwrap();
    fs::write(root.join("dir/big.bin"), pattern(5 << 20, 3)).unwrap();
    fs::write(root.join("dir/sub/small"), pattern(5000, 4)).unwrap();
    fs::write(root.join("dir/sub/deeper/empty"), "").unwrap();
    fs::write(root.join("Ünïcödé 名前.txt"), "unicode\n").unwrap();
    fs::hard_link(root.join("dir/big.bin"), root.join("big_link")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("dir/rel_link")).unwrap();
    std::os::unix::fs::symlink("sub/deeper", root.join("dir/dir_link")).unwrap();
    for i in 0..200 {
        fs::write(root.join(format!("dir/f{i:03}")), pattern(i * 97, i as u64)).unwrap();
    }
}

fn capture(src: &Path, wim: &Path, extra: &[&str]) {
    let out = Command::new("wimlib-imagex")
        .arg("capture")
        .arg(src)
        .arg(wim)
        .args(extra)
        .output()
        .expect("wimlib-imagex runs");
    assert!(
        out.status.success(),
        "capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.as_str()))
}

/// Whether process `pid` has exited: gone, or a zombie whose threads have all ended (a
/// zombie main thread alone does not mean its files, e.g. a WIM's lock, are released).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => {
            let zombie = s
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let one = s
                .lines()
                .any(|l| l.starts_with("Threads:") && l[8..].trim() == "1");
            zombie && one
        }
        Err(_) => true,
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        // Generous: a daemon killed during a commit exits only once its pending disk
        // syncs return, which on a loaded machine can take many seconds.
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A live mount; dropping it unmounts and makes sure the daemon is gone.
struct Mount {
    dir: PathBuf,
    child: Option<Child>,
}

impl Mount {
    /// Starts wimfs-mountd directly, the way `wimfs mount` does.
    fn start(wim: &Path, dir: &Path, extra: &[&str]) -> Mount {
        Self::start_with_env(wim, dir, extra, &[])
    }

    /// [`Mount::start`] with variables set for the daemon.
    fn start_with_env(wim: &Path, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Mount {
        fs::create_dir_all(dir).unwrap();
        let dir = fs::canonicalize(dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wimfs-mountd"))
            .envs(env.iter().copied())
            .arg(wim)
            .arg("1")
            .arg(&dir)
            .args(["--ready-fd", "1", "--log", "auto"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wimfs-mountd starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let m = Mount {
            dir,
            child: Some(child),
        };
        assert_eq!(line.trim(), "ok", "daemon did not report a live mount");
        assert!(is_mounted(&m.dir));
        m
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn log(&self) -> String {
        let sock = wimfs_mountd::control::socket_path(&self.dir);
        fs::read_to_string(sock.with_extension("log")).unwrap_or_default()
    }
}

fn remove_log(dir: &Path) {
    let _ = fs::remove_file(wimfs_mountd::control::socket_path(dir).with_extension("log"));
}

impl Drop for Mount {
    fn drop(&mut self) {
        remove_log(&self.dir);
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn diff(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mounted_tree_equals_source_for_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    for (name, args) in [
        ("none", &["--compress=none"][..]),
        ("xpress", &["--compress=xpress"]),
        ("lzx", &["--compress=lzx"]),
        ("lzms", &["--compress=lzms"]),
        ("solid", &["--solid"]),
    ] {
        let wim = tmp.path().join(format!("{name}.wim"));
        capture(&src, &wim, args);
        let m = Mount::start(&wim, &tmp.path().join(format!("mnt-{name}")), &[]);
        diff(&src, &m.dir);
        if name == "solid" {
            // With no scratch space at all (the cap reached at once), solid chunks are
            // decoded in memory as needed: the same bytes.
            let capped = Mount::start(
                &wim,
                &tmp.path().join("mnt-capped"),
                &["--scratch-size", "0", "--cache-size", "1M"],
            );
            diff(&src, &capped.dir);
            assert!(capped.log().contains("reached its cap"), "{}", capped.log());
        }
        let a = fs::metadata(m.p("dir/big.bin")).unwrap();
        let b = fs::metadata(m.p("big_link")).unwrap();
        assert_eq!(a.ino(), b.ino(), "{name}: hard links share an inode");
        assert_eq!(a.nlink(), 2);
        assert_eq!(
            fs::read_link(m.p("dir/rel_link")).unwrap(),
            Path::new("../hello.txt")
        );
        drop(m);
    }
}

#[test]
fn links_unix_data_and_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    std::os::unix::fs::symlink(src.join("dir/sub/small"), src.join("abs_link")).unwrap();
    fs::set_permissions(src.join("hello.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(src.join("dir/sub"), fs::Permissions::from_mode(0o711)).unwrap();
    let fifo = std::ffi::CString::new(src.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let wim = tmp.path().join("u.wim");
    capture(&src, &wim, &["--unix-data"]);

    let m = Mount::start(&wim, &tmp.path().join("mnt"), &["--unix-data"]);
    assert_eq!(
        fs::read_link(m.p("abs_link")).unwrap(),
        m.dir.join("dir/sub/small"),
        "absolute links inside the image point into the mountpoint"
    );
    assert_eq!(fs::read(m.p("abs_link")).unwrap(), pattern(5000, 4));
    let meta = |p: &str| fs::symlink_metadata(m.p(p)).unwrap();
    assert_eq!(meta("hello.txt").mode() & 0o7777, 0o600);
    assert_eq!(meta("dir/sub").mode() & 0o7777, 0o711);
    assert!(meta("fifo").file_type().is_fifo());
    assert_eq!(meta("fifo").mode() & 0o7777, 0o640);
    let attrs = xattr(&m.p("dir"), "system.wim.attributes").unwrap();
    assert_eq!(attrs, b"0x00000010");
    assert!(xattr(&m.p("hello.txt"), "user.nope").is_err());
    drop(m);

    let m = Mount::start(&wim, &tmp.path().join("mnt2"), &[]);
    assert_eq!(
        fs::symlink_metadata(m.p("hello.txt")).unwrap().mode() & 0o7777,
        0o644
    );
    // SAFETY: getuid cannot fail.
    assert_eq!(fs::metadata(m.p("hello.txt")).unwrap().uid(), unsafe {
        libc::getuid()
    });
}

fn xattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated strings; `buf` is writable for its length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

#[test]
fn writes_fail_with_erofs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    let m = Mount::start(&wim, &tmp.path().join("mnt"), &[]);
    let erofs = |r: std::io::Result<()>, what: &str| {
        assert_eq!(
            r.unwrap_err().raw_os_error(),
            Some(libc::EROFS),
            "{what} should fail with EROFS"
        )
    };
    erofs(fs::write(m.p("new.txt"), "x"), "create");
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .open(m.p("hello.txt"))
            .map(|_| ()),
        "open for writing",
    );
    erofs(fs::create_dir(m.p("newdir")), "mkdir");
    erofs(fs::remove_file(m.p("hello.txt")), "unlink");
    erofs(fs::rename(m.p("hello.txt"), m.p("x")), "rename");
    erofs(
        fs::set_permissions(m.p("hello.txt"), fs::Permissions::from_mode(0o600)),
        "chmod",
    );
    assert_eq!(fs::read(m.p("hello.txt")).unwrap(), b"hello\n");
}

/// Eight threads read random ranges of one file and whole small files at once: of an LZX
/// image through a cache smaller than the file, and of a solid image in 1 MiB chunks, whose
/// chunks are decoded into the scratch file while other threads wait for them.
#[test]
fn eight_concurrent_readers_read_correct_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    for (name, args) in [
        ("lzx", &["--compress=lzx"][..]),
        ("solid", &["--solid", "--solid-chunk-size=1M"]),
    ] {
        let wim = tmp.path().join(format!("{name}.wim"));
        capture(&src, &wim, args);
        let m = Mount::start(
            &wim,
            &tmp.path().join(format!("mnt-{name}")),
            &["--cache-size", "4M"],
        );
        read_concurrently(&m, &src);
    }
}

fn read_concurrently(m: &Mount, src: &Path) {
    let want = pattern(5 << 20, 3);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let want = &want;
            s.spawn(move || {
                let mut f = fs::File::open(m.p("dir/big.bin")).unwrap();
                let mut x = t * 7919 + 1;
                for _ in 0..200 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let off = (x >> 20) % (want.len() as u64 - 70_000);
                    let len = 1 + (x >> 8) as usize % 70_000;
                    let mut buf = vec![0u8; len];
                    f.seek(SeekFrom::Start(off)).unwrap();
                    f.read_exact(&mut buf).unwrap();
                    assert!(
                        buf == want[off as usize..off as usize + len],
                        "t{t} @{off}+{len}"
                    );
                }
                for i in (t as usize..200).step_by(8) {
                    let name = format!("dir/f{i:03}");
                    assert_eq!(
                        fs::read(m.p(&name)).unwrap(),
                        fs::read(src.join(&name)).unwrap()
                    );
                }
            });
        }
    });
}

#[test]
fn corrupt_blob_gives_eio_and_the_rest_stays_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=none"]);
    let victim = pattern(5000, 4);
    let mut bytes = fs::read(&wim).unwrap();
    let at = bytes
        .windows(victim.len())
        .position(|w| w == victim)
        .unwrap();
    bytes[at + 2000] ^= 0x55;
    fs::write(&wim, &bytes).unwrap();
    let m = Mount::start(&wim, &tmp.path().join("mnt"), &[]);
    let err = fs::read(m.p("dir/sub/small")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(
        fs::read(m.p("dir/sub/small")).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    diff(&src.join("dir/sub/deeper"), &m.p("dir/sub/deeper"));
    assert_eq!(fs::read(m.p("dir/big.bin")).unwrap(), pattern(5 << 20, 3));
    assert!(
        m.log().contains("/dir/sub/small"),
        "the log names the file: {}",
        m.log()
    );
}

#[test]
fn fusermount_unmount_ends_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    let mut m = Mount::start(&wim, &tmp.path().join("mnt"), &[]);
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&m.dir)
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = m.child.take().unwrap();
    wait_until("daemon exits", || matches!(child.try_wait(), Ok(Some(_))));
    assert!(child.try_wait().unwrap().unwrap().success());
    assert!(!is_mounted(&m.dir));
    assert!(!wimfs_mountd::control::socket_path(&m.dir).exists());
}

/// The `wimfs` CLI, built beside the daemon by `cargo build/test --workspace`.
fn wimfs_cli() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_wimfs-mountd")).with_file_name("wimfs");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is not built (cargo build --workspace)",
            p.display()
        );
        None
    }
}

/// Guard for mounts made through the CLI: unmounts and kills the daemon by pid.
struct CliMount {
    dir: PathBuf,
    pid: u32,
}

impl Drop for CliMount {
    fn drop(&mut self) {
        remove_log(&self.dir);
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.dir)
                .status();
        }
        let start = Instant::now();
        while !gone(self.pid) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !gone(self.pid) {
            // SAFETY: kill has no memory-safety preconditions; the pid is our daemon's.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn cli_mount_mounts_unmount_and_busy() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=lzx"]);
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let out = Command::new(&cli)
        .arg("mount")
        .arg(&wim)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "mount prints nothing on stdout");
    let out = Command::new(&cli)
        .args(["mounts", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dir"] == dir.to_str().unwrap())
        .expect("listed by wimfs mounts")
        .clone();
    let pid = me["pid"].as_u64().unwrap() as u32;
    let _guard = CliMount {
        dir: dir.clone(),
        pid,
    };
    assert_eq!(me["mode"], "ro");
    assert_eq!(me["image"], 1);
    diff(&src, &dir);

    // Busy: an open file keeps a plain unmount from succeeding.
    let held = fs::File::open(dir.join("hello.txt")).unwrap();
    let out = Command::new(&cli)
        .arg("unmount")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("EBUSY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&dir));
    drop(held);

    let out = Command::new(&cli)
        .args(["unmount", "--commit"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&dir));
    assert!(gone(pid), "daemon {pid} is gone after unmount");
}

#[test]
fn cli_lazy_unmount_of_a_busy_mount() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let st = Command::new(&cli)
        .arg("mount")
        .arg(&wim)
        .arg("1")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let sock = wimfs_mountd::control::socket_path(&dir);
    let status = wimfs_mountd::control::request(&sock, "status").unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let pid = v["pid"].as_u64().unwrap() as u32;
    let _guard = CliMount {
        dir: dir.clone(),
        pid,
    };
    let mut held = fs::File::open(dir.join("dir/big.bin")).unwrap();
    let st = Command::new(&cli)
        .args(["unmount", "--lazy"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!is_mounted(&dir));
    // The open file still reads; the daemon leaves once it is closed.
    let mut buf = vec![0u8; 4096];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pattern(5 << 20, 3)[..4096]);
    drop(held);
    wait_until("daemon exits after the last close", || gone(pid));
}

/// Mounts `wim` read-write on `dir` through the CLI; returns the guard.
fn cli_mountrw(cli: &Path, wim: &Path, dir: &Path) -> CliMount {
    cli_mountrw_with(cli, wim, dir, &[], None)
}

/// [`cli_mountrw`] with more options, and `env` set for the daemon (the crash test hook).
fn cli_mountrw_with(
    cli: &Path,
    wim: &Path,
    dir: &Path,
    extra: &[&str],
    env: Option<(&str, &str)>,
) -> CliMount {
    let mut cmd = Command::new(cli);
    cmd.arg("mountrw").arg(wim).arg(dir).args(extra);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    run_mountrw(cli, cmd, dir)
}

/// Runs a `wimfs mountrw` command line (perhaps wrapped) and guards the mount it makes.
fn run_mountrw(cli: &Path, mut cmd: Command, dir: &Path) -> CliMount {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(cli)
        .args(["mounts", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dir"] == dir.to_str().unwrap())
        .expect("listed by wimfs mounts")
        .clone();
    assert_eq!(me["mode"], "rw");
    CliMount {
        dir: dir.to_path_buf(),
        pid: me["pid"].as_u64().unwrap() as u32,
    }
}

/// The same changes, made on a mounted image or on a plain directory.
fn change_tree(root: &Path, extra: &Path) {
    let out = Command::new("cp")
        .arg("-r")
        .arg(extra)
        .arg(root.join("copied"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("dir/sub/small"))
        .unwrap();
    f.write_all(b"appended\n").unwrap();
    drop(f);
    fs::remove_file(root.join("hello.txt")).unwrap();
    fs::rename(root.join("dir/f007"), root.join("renamed")).unwrap();
    fs::create_dir_all(root.join("new/a/b")).unwrap();
    std::os::unix::fs::symlink("../../renamed", root.join("new/a/link")).unwrap();
    fs::hard_link(root.join("renamed"), root.join("new/hard")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(root.join("dir/big.bin"))
        .unwrap()
        .set_len(12345)
        .unwrap();
    fs::remove_dir(root.join("empty_dir")).unwrap();
}

#[test]
fn cli_mountrw_commit_equals_the_same_changes_on_a_copy() {
    let Some(cli) = wimfs_cli() else { return };
    // A driver-like tree of thousands of files is copied in.
    let c = rw_case_with(3000);
    let guard = cli_mountrw(&cli, &c.wim, &c.dir);

    // The mount holds the WIM's lock: a second read-write mount fails clearly.
    let dir2 = c.tmp.path().join("mnt2");
    fs::create_dir(&dir2).unwrap();
    let out = Command::new(&cli)
        .arg("mountrw")
        .arg(&c.wim)
        .arg(&dir2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another process is writing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    change_tree(&c.dir, &c.extra);
    diff(&c.expect, &c.dir);
    ok(Command::new(&cli).args(["unmount", "--commit"]).arg(&c.dir));
    assert!(!is_mounted(&c.dir));
    drop(guard);
    verify_and_compare(&c.wim, 1, &c.expect, &c.tmp.path().join("applied"));
    let staging: Vec<_> = fs::read_dir(c.tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".staging-"))
        .collect();
    assert!(staging.is_empty(), "the staging directory is removed");
}

#[test]
fn cli_mountrw_without_commit_leaves_the_wim_unchanged() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=lzx"]);
    let before = fs::read(&wim).unwrap();
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let guard = cli_mountrw(&cli, &wim, &dir);
    change_tree(&dir, &src.join("dir/sub"));
    let out = Command::new(&cli)
        .arg("unmount")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The unmount returned only once the daemon let go of the WIM.
    assert!(
        wimfs::write::TargetLock::acquire(&wim).is_ok(),
        "unmount returned while the WIM was still locked"
    );
    drop(guard);
    assert!(
        fs::read(&wim).unwrap() == before,
        "the WIM is byte-identical"
    );
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.to_str().unwrap()).unwrap()
}

fn set_xattr(path: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let (p, n) = (cstr(path), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated strings; `value` is readable for its length.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn remove_xattr(path: &Path, name: &str) -> std::io::Result<()> {
    let (p, n) = (cstr(path), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated strings.
    if unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn list_xattrs(path: &Path) -> Vec<String> {
    let p = cstr(path);
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated string; `buf` is writable for its length.
    let r = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "{}", std::io::Error::last_os_error());
    buf[..r as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn errno_of(r: std::io::Result<impl std::fmt::Debug>) -> i32 {
    r.expect_err("fails").raw_os_error().unwrap()
}

fn fallocate(path: &Path, mode: i32, offset: i64, len: i64) {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    // SAFETY: `f` is an open file.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset, len) };
    assert_eq!(r, 0, "fallocate: {}", std::io::Error::last_os_error());
}

fn unmount_commit(cli: &Path, dir: &Path) {
    let out = Command::new(cli)
        .args(["unmount", "--commit"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(dir));
}

fn wimlib(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("wimlib-imagex").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "wimlib-imagex {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_mountrw_streams_special_files_and_fallocate() {
    let Some(cli) = wimfs_cli() else { return };
    if !is_root("device nodes and owners") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("hello.txt"), "hello\n").unwrap();
    fs::write(src.join("dir/data.bin"), pattern(100_000, 9)).unwrap();
    fs::write(src.join("tagged"), "has a Linux xattr\n").unwrap();
    // wimlib keeps Linux xattrs (with --unix-data), but cannot capture named data streams
    // on Linux: the existing streams for the second mount come from the first one's commit.
    let linux_xattr = set_xattr(&src.join("tagged"), "user.linux", b"kept", 0).is_ok();
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--unix-data"]);
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();

    // First mount: streams on a new and an existing file, a fifo, a device, fallocate.
    let guard = cli_mountrw_with(&cli, &wim, &dir, &["--unix-data"], None);
    fs::write(dir.join("new.txt"), "new\n").unwrap();
    set_xattr(&dir.join("new.txt"), "user.s1", b"stream on a new file", 0).unwrap();
    let hello = dir.join("hello.txt");
    set_xattr(&hello, "user.keep", b"kept stream", 0).unwrap();
    set_xattr(&hello, "user.drop", b"dropped later", libc::XATTR_CREATE).unwrap();
    assert_eq!(
        errno_of(set_xattr(&hello, "user.keep", b"x", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(
        errno_of(set_xattr(&hello, "user.none", b"x", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    assert_eq!(
        errno_of(set_xattr(&hello, "system.wim.attributes", b"0x1", 0)),
        libc::EPERM
    );
    assert_eq!(xattr(&hello, "user.keep").unwrap(), b"kept stream");
    let names = list_xattrs(&hello);
    assert!(
        names.contains(&"user.keep".into()) && names.contains(&"user.drop".into()),
        "{names:?}"
    );
    if linux_xattr {
        assert_eq!(xattr(&dir.join("tagged"), "user.linux").unwrap(), b"kept");
        assert_eq!(
            errno_of(set_xattr(&dir.join("tagged"), "user.linux", b"x", 0)),
            libc::EPERM
        );
    }
    let fifo = cstr(&dir.join("fifo"));
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let null = cstr(&dir.join("null"));
    let rdev = libc::makedev(1, 3);
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, rdev) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    let meta = |p: &Path| fs::symlink_metadata(p).unwrap();
    assert!(meta(&dir.join("fifo")).file_type().is_fifo());
    assert_eq!(meta(&dir.join("fifo")).mode() & 0o7777, 0o640);
    assert!(meta(&dir.join("null")).file_type().is_char_device());
    assert_eq!(meta(&dir.join("null")).rdev(), rdev);
    fallocate(&dir.join("alloc"), 0, 0, 100_000);
    assert_eq!(meta(&dir.join("alloc")).len(), 100_000);
    fallocate(
        &dir.join("dir/data.bin"),
        libc::FALLOC_FL_KEEP_SIZE,
        0,
        1 << 20,
    );
    assert_eq!(meta(&dir.join("dir/data.bin")).len(), 100_000);
    unmount_commit(&cli, &dir);
    drop(guard);
    wimlib(&["verify".as_ref(), wim.as_os_str()]);

    // Second mount: the committed streams read back from the WIM; one is removed.
    let guard = cli_mountrw_with(&cli, &wim, &dir, &["--unix-data"], None);
    assert_eq!(xattr(&hello, "user.keep").unwrap(), b"kept stream");
    assert_eq!(xattr(&hello, "user.drop").unwrap(), b"dropped later");
    remove_xattr(&hello, "user.drop").unwrap();
    assert_eq!(errno_of(remove_xattr(&hello, "user.drop")), libc::ENODATA);
    assert_eq!(errno_of(xattr(&hello, "user.drop")), libc::ENODATA);
    unmount_commit(&cli, &dir);
    drop(guard);
    wimlib(&["verify".as_ref(), wim.as_os_str()]);

    // wimlib sees the streams and restores the special files.
    let detailed = wimlib(&[
        "dir".as_ref(),
        wim.as_os_str(),
        "1".as_ref(),
        "--path=/hello.txt".as_ref(),
        "--detailed".as_ref(),
    ]);
    assert!(detailed.contains("\"keep\""), "{detailed}");
    assert!(!detailed.contains("drop"), "{detailed}");
    let applied = tmp.path().join("applied");
    wimlib(&[
        "apply".as_ref(),
        wim.as_os_str(),
        "1".as_ref(),
        applied.as_os_str(),
        "--unix-data".as_ref(),
    ]);
    assert!(meta(&applied.join("fifo")).file_type().is_fifo());
    assert_eq!(meta(&applied.join("fifo")).mode() & 0o7777, 0o640);
    assert!(meta(&applied.join("null")).file_type().is_char_device());
    assert_eq!(meta(&applied.join("null")).rdev(), rdev);
    assert_eq!(fs::read(applied.join("alloc")).unwrap(), vec![0u8; 100_000]);
    assert_eq!(
        fs::read(applied.join("dir/data.bin")).unwrap(),
        pattern(100_000, 9)
    );
    assert_eq!(fs::read(applied.join("hello.txt")).unwrap(), b"hello\n");
    assert_eq!(fs::read(applied.join("new.txt")).unwrap(), b"new\n");

    // A read-only mount shows the same.
    let m = Mount::start(&wim, &tmp.path().join("ro"), &["--unix-data"]);
    assert_eq!(
        xattr(&m.p("hello.txt"), "user.keep").unwrap(),
        b"kept stream"
    );
    assert_eq!(
        errno_of(xattr(&m.p("hello.txt"), "user.drop")),
        libc::ENODATA
    );
    assert_eq!(
        xattr(&m.p("new.txt"), "user.s1").unwrap(),
        b"stream on a new file"
    );
    if linux_xattr {
        assert_eq!(xattr(&m.p("tagged"), "user.linux").unwrap(), b"kept");
    }
    assert!(meta(&m.p("fifo")).file_type().is_fifo());
    assert_eq!(meta(&m.p("null")).rdev(), rdev);
    assert_eq!(meta(&m.p("alloc")).len(), 100_000);
    assert_eq!(meta(&m.p("dir/data.bin")).len(), 100_000);
    assert_eq!(fs::read(m.p("new.txt")).unwrap(), b"new\n");
}

/// Pid of the daemon serving `dir`, from `wimfs mounts --json`.
fn daemon_pid(cli: &Path, dir: &Path) -> u32 {
    let out = Command::new(cli)
        .args(["mounts", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["dir"] == dir.to_str().unwrap())
        .expect("listed by wimfs mounts")["pid"]
        .as_u64()
        .unwrap() as u32
}

/// Removes the `mount.wimfs` link this test put into /usr/sbin.
struct HelperLink(PathBuf);

impl Drop for HelperLink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn mount_helper_mount_t_and_fstab() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=xpress"]);
    let wim2 = tmp.path().join("two.wim");
    fs::copy(&wim, &wim2).unwrap();
    let extra = tmp.path().join("extra");
    fs::create_dir_all(extra.join("d")).unwrap();
    fs::write(extra.join("d/f"), "second image\n").unwrap();
    let out = Command::new("wimlib-imagex")
        .arg("append")
        .arg(&extra)
        .arg(&wim2)
        .arg("second")
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();

    // The helper called directly, as mount(8) calls it.
    let helper = tmp.path().join("mount.wimfs");
    std::os::unix::fs::symlink(&cli, &helper).unwrap();
    let out = Command::new(&helper)
        .arg(&wim2)
        .arg(&dir)
        .args(["-o", "ro,image=2,nodev,x-test=1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guard = CliMount {
        dir: dir.clone(),
        pid: daemon_pid(&cli, &dir),
    };
    diff(&extra, &dir);
    let st = Command::new("umount").arg(&dir).status().unwrap();
    assert!(st.success());
    drop(guard);
    let out = Command::new(&helper)
        .arg(&wim2)
        .arg(&dir)
        .args(["-o", "image=2,bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));

    // `mount -t wimfs` and an fstab line need the helper where mount(8) looks for it.
    let system = Path::new("/usr/sbin/mount.wimfs");
    if system.symlink_metadata().is_ok() || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping mount -t: /usr/sbin/mount.wimfs exists or not root");
        return;
    }
    std::os::unix::fs::symlink(&cli, system).unwrap();
    let _link = HelperLink(system.to_path_buf());
    let st = Command::new("mount")
        .args(["-t", "wimfs", "-o", "ro"])
        .arg(&wim)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let guard = CliMount {
        dir: dir.clone(),
        pid: daemon_pid(&cli, &dir),
    };
    diff(&src, &dir);
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    drop(guard);
    let fstab = tmp.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "{} {} wimfs ro,noauto,image=2 0 0\n",
            wim2.display(),
            dir.display()
        ),
    )
    .unwrap();
    let st = Command::new("mount")
        .arg("-T")
        .arg(&fstab)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = CliMount {
        dir: dir.clone(),
        pid: daemon_pid(&cli, &dir),
    };
    diff(&extra, &dir);
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
}

/// Whether the tests run as root; says what is skipped if not.
fn is_root(needed_for: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping: {needed_for} need root");
    }
    root
}

/// Runs `cmd`, asserting that it succeeds; returns its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `wimlib-imagex verify` passes and image `index` applies to exactly `expect`.
fn verify_and_compare(wim: &Path, index: u32, expect: &Path, scratch: &Path) {
    ok(Command::new("wimlib-imagex").arg("verify").arg(wim));
    let _ = fs::remove_dir_all(scratch);
    ok(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(wim)
        .arg(index.to_string())
        .arg(scratch));
    diff(expect, scratch);
}

/// Whether image `index` of `wim` applies to exactly `expect`.
fn applies_to(wim: &Path, index: u32, expect: &Path, scratch: &Path) -> bool {
    let _ = fs::remove_dir_all(scratch);
    ok(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(wim)
        .arg(index.to_string())
        .arg(scratch));
    Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(expect)
        .arg(scratch)
        .output()
        .unwrap()
        .status
        .success()
}

/// Orphans `wimfs mounts --json` lists for `wim`.
fn orphans_of(cli: &Path, wim: &Path) -> Vec<serde_json::Value> {
    orphans(cli)
        .into_iter()
        .filter(|o| o["wim"] == wim.to_str().unwrap())
        .collect()
}

/// Orphans `wimfs mounts --json` lists.
fn orphans(cli: &Path) -> Vec<serde_json::Value> {
    let out = ok(Command::new(cli).args(["mounts", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["mode"] == "orphan")
        .cloned()
        .collect()
}

/// A source tree, a WIM of it, the changed tree expected after [`change_tree`], and a
/// mountpoint.
struct RwCase {
    tmp: tempfile::TempDir,
    src: PathBuf,
    wim: PathBuf,
    expect: PathBuf,
    extra: PathBuf,
    dir: PathBuf,
}

fn rw_case() -> RwCase {
    rw_case_with(60)
}

/// [`rw_case`] with `files` files in the tree [`change_tree`] copies in.
fn rw_case_with(files: usize) -> RwCase {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let extra = tmp.path().join("extra");
    for i in 0..files {
        let d = extra.join(format!("d{}", i % 6));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("g{i:03}")), pattern(i * 131, i as u64 + 11)).unwrap();
    }
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=lzx"]);
    let expect = tmp.path().join("expect");
    ok(Command::new("cp").arg("-a").arg(&src).arg(&expect));
    change_tree(&expect, &extra);
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    RwCase {
        tmp,
        src,
        wim,
        expect,
        extra,
        dir,
    }
}

fn kill9(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our daemon's.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until("the killed daemon is gone", || gone(pid));
}

/// kill -9 of the daemon before any commit: `wimfs recover --commit` writes what it had.
/// Also after a `wimfs commit` and more changes: the journal then starts from the
/// committed image.
#[test]
fn cli_mountrw_killed_daemon_is_recovered() {
    let Some(cli) = wimfs_cli() else { return };
    for commit_first in [false, true] {
        let c = rw_case();
        let guard = cli_mountrw(&cli, &c.wim, &c.dir);
        change_tree(&c.dir, &c.extra);
        let mut expect = c.expect.clone();
        if commit_first {
            ok(Command::new(&cli).arg("commit").arg(&c.dir));
            fs::write(c.dir.join("renamed"), "changed after the commit\n").unwrap();
            fs::rename(c.dir.join("copied/d1"), c.dir.join("new/d1")).unwrap();
            fs::write(c.dir.join("new/d1/later"), "later\n").unwrap();
            expect = c.tmp.path().join("second");
            ok(Command::new("cp").arg("-a").arg(&c.expect).arg(&expect));
            fs::write(expect.join("renamed"), "changed after the commit\n").unwrap();
            fs::rename(expect.join("copied/d1"), expect.join("new/d1")).unwrap();
            fs::write(expect.join("new/d1/later"), "later\n").unwrap();
        }
        diff(&expect, &c.dir);
        let before = fs::read(&c.wim).unwrap();
        kill9(guard.pid);
        drop(guard);
        assert!(fs::read(&c.wim).unwrap() == before, "the WIM is untouched");
        let mine = orphans_of(&cli, &c.wim);
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0]["state"], "recoverable");
        if !commit_first {
            // A recovery killed right after the WIM's header is written: the next one sees
            // the work done and only cleans up.
            let out = Command::new(&cli)
                .arg("recover")
                .arg(&c.wim)
                .arg("--commit")
                .env("WIMFS_CRASH_AT", "header")
                .output()
                .unwrap();
            assert!(!out.status.success());
            let mine = orphans_of(&cli, &c.wim);
            assert_eq!(mine.len(), 1, "{mine:?}");
            assert_eq!(mine[0]["state"], "committed");
            let out = ok(Command::new(&cli)
                .arg("recover")
                .arg(&c.wim)
                .arg("--commit"));
            assert!(out.contains("already holds"), "{out}");
        } else {
            let out = ok(Command::new(&cli)
                .arg("recover")
                .arg(&c.wim)
                .arg("--commit"));
            assert!(out.contains("committed"), "{out}");
        }
        verify_and_compare(&c.wim, 1, &expect, &c.tmp.path().join("applied"));
        assert!(orphans(&cli)
            .iter()
            .all(|o| o["wim"] != c.wim.to_str().unwrap()));
        let out = Command::new(&cli)
            .arg("recover")
            .arg(&c.wim)
            .arg("--commit")
            .output()
            .unwrap();
        assert!(!out.status.success(), "nothing left to recover");
    }
}

/// kill -9 of the daemon at every named point of a commit (after the new data, after the
/// tables, after the header; after the rename that puts a rebuilt file in place), for a
/// commit in place, one adding a new image and one rebuilding the file: the WIM always
/// verifies and holds the old or the new tree, and `wimfs recover --commit` then finishes
/// the job the way it was being done (or sees that it was done).
#[test]
fn cli_mountrw_killed_during_commit() {
    let Some(cli) = wimfs_cli() else { return };
    // (how, unmount options, [(crash point, whether the WIM then holds the new tree)])
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, bool)]);
    let cases: &[Case] = &[
        (
            "in place",
            &[],
            &[("data", false), ("tables", false), ("header", true)],
        ),
        (
            "new image",
            &["--new-image"],
            &[("data", false), ("tables", false), ("header", true)],
        ),
        (
            "rebuild",
            &["--rebuild"],
            &[
                ("data", false),
                ("tables", false),
                ("header", false),
                ("renamed", true),
            ],
        ),
    ];
    for &(how, args, points) in cases {
        let new_image = args.contains(&"--new-image");
        for &(point, committed) in points {
            let what = format!("{how}, killed at {point}");
            let c = rw_case_with(12);
            let guard =
                cli_mountrw_with(&cli, &c.wim, &c.dir, &[], Some(("WIMFS_CRASH_AT", point)));
            change_tree(&c.dir, &c.extra);
            let out = Command::new(&cli)
                .args(["unmount", "--commit"])
                .args(args)
                .arg(&c.dir)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{what}: the commit died");
            wait_until("the daemon is gone", || gone(guard.pid));
            drop(guard);
            let scratch = c.tmp.path().join("applied");
            ok(Command::new("wimlib-imagex").arg("verify").arg(&c.wim));
            let count = wimfs::Wim::open(&c.wim).unwrap().image_count();
            let (old, new) = match new_image {
                true => (
                    count == 1,
                    count == 2 && applies_to(&c.wim, 2, &c.expect, &scratch),
                ),
                false => (
                    applies_to(&c.wim, 1, &c.src, &scratch),
                    applies_to(&c.wim, 1, &c.expect, &scratch),
                ),
            };
            assert_eq!((old, new), (!committed, committed), "{what}");
            let mine = orphans_of(&cli, &c.wim);
            assert_eq!(mine.len(), 1, "{what}: {mine:?}");
            let want = if committed {
                "committed"
            } else {
                "recoverable"
            };
            assert_eq!(mine[0]["state"], want, "{what}");
            ok(Command::new(&cli)
                .arg("recover")
                .arg(&c.wim)
                .arg("--commit"));
            assert!(orphans_of(&cli, &c.wim).is_empty(), "{what}");
            let images = wimfs::Wim::open(&c.wim).unwrap().image_count();
            if new_image {
                assert_eq!(images, 2, "{what}");
                verify_and_compare(&c.wim, 1, &c.src, &scratch);
                verify_and_compare(&c.wim, 2, &c.expect, &scratch);
            } else {
                assert_eq!(images, 1, "{what}");
                verify_and_compare(&c.wim, 1, &c.expect, &scratch);
            }
        }
    }
}

/// `wimfs commit` keeps the mount; an unmount with open files is refused unless --force;
/// `--new-image` adds an image and leaves the first as it was.
#[test]
fn cli_commit_without_unmount_new_image_and_force() {
    let Some(cli) = wimfs_cli() else { return };
    let c = rw_case();
    // Windows information in the image's XML survives commits.
    ok(Command::new("wimlib-imagex")
        .arg("info")
        .arg(&c.wim)
        .arg("1")
        .args(["--image-property", "WINDOWS/EDITIONID=Professional"]));
    let guard = cli_mountrw(&cli, &c.wim, &c.dir);
    change_tree(&c.dir, &c.extra);
    ok(Command::new(&cli).arg("commit").arg(&c.dir));
    assert!(is_mounted(&c.dir));
    let scratch = c.tmp.path().join("applied");
    verify_and_compare(&c.wim, 1, &c.expect, &scratch);
    // Keep working on the mount: change a committed file, add one.
    fs::write(c.dir.join("renamed"), "changed after the commit\n").unwrap();
    fs::write(c.dir.join("later"), "later\n").unwrap();
    let second = c.tmp.path().join("second");
    ok(Command::new("cp").arg("-a").arg(&c.expect).arg(&second));
    fs::write(second.join("renamed"), "changed after the commit\n").unwrap();
    fs::write(second.join("later"), "later\n").unwrap();
    diff(&second, &c.dir);
    // A daemon killed now would be recoverable against the committed image.
    assert!(orphans(&cli)
        .iter()
        .all(|o| o["wim"] != c.wim.to_str().unwrap()));

    let held = fs::File::open(c.dir.join("later")).unwrap();
    let out = Command::new(&cli)
        .args(["unmount", "--commit", "--new-image"])
        .arg(&c.dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busy") && err.contains("--force"), "{err}");
    assert!(is_mounted(&c.dir));
    ok(Command::new(&cli)
        .args(["unmount", "--commit", "--new-image", "--force"])
        .arg(&c.dir));
    drop(held);
    wait_until("daemon exits after the last close", || gone(guard.pid));
    drop(guard);
    let wim = wimfs::Wim::open(&c.wim).unwrap();
    assert_eq!(wim.image_count(), 2);
    drop(wim);
    verify_and_compare(&c.wim, 1, &c.expect, &scratch);
    verify_and_compare(&c.wim, 2, &second, &scratch);
    // The XML keeps the name and Windows info and has the counts wimlib gives the tree.
    let reference = c.tmp.path().join("ref.wim");
    capture(&second, &reference, &[]);
    let counts = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| {
                [
                    "Directory Count",
                    "File Count",
                    "Total Bytes",
                    "Hard Link Bytes",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(str::to_string)
            .collect()
    };
    let want = counts(&ok(Command::new("wimlib-imagex")
        .arg("info")
        .arg(&reference)
        .arg("1")));
    assert_eq!(want.len(), 4);
    for index in ["1", "2"] {
        let out = ok(Command::new("wimlib-imagex")
            .arg("info")
            .arg(&c.wim)
            .arg(index));
        assert!(
            out.contains("Edition ID:             Professional"),
            "image {index}: {out}"
        );
        assert!(
            out.contains("Name:                   src"),
            "image {index}: {out}"
        );
        if index == "2" {
            assert_eq!(counts(&out), want);
        }
    }
}

/// `unmount --commit --rebuild --check` on a two-image WIM: a new file with both images (the
/// other one untouched, still bootable), an integrity table, and none of the replaced data.
#[test]
fn cli_commit_rebuild_with_check() {
    let Some(cli) = wimfs_cli() else { return };
    let c = rw_case();
    let other = c.tmp.path().join("other");
    fs::create_dir_all(other.join("d")).unwrap();
    fs::write(other.join("d/x"), pattern(70_000, 99)).unwrap();
    ok(Command::new("wimlib-imagex")
        .arg("append")
        .arg(&other)
        .arg(&c.wim)
        .arg("two")
        .arg("--boot"));
    let in_place = c.tmp.path().join("in-place.wim");
    fs::copy(&c.wim, &in_place).unwrap();
    for (wim, extra) in [
        (&in_place, &[][..]),
        (&c.wim, &["--rebuild", "--check"][..]),
    ] {
        ok(Command::new(&cli)
            .arg("mountrw")
            .arg(wim)
            .arg("1")
            .arg(&c.dir));
        let guard = CliMount {
            dir: c.dir.clone(),
            pid: daemon_pid(&cli, &c.dir),
        };
        change_tree(&c.dir, &c.extra);
        ok(Command::new(&cli)
            .args(["unmount", "--commit"])
            .args(extra)
            .arg(&c.dir));
        wait_until("daemon exits", || gone(guard.pid));
        drop(guard);
    }
    let scratch = c.tmp.path().join("applied");
    verify_and_compare(&c.wim, 1, &c.expect, &scratch);
    verify_and_compare(&c.wim, 2, &other, &scratch);
    let info = ok(Command::new("wimlib-imagex").arg("info").arg(&c.wim));
    assert!(info.contains("Image Count:    2"), "{info}");
    assert!(info.contains("Boot Index:     2"), "{info}");
    assert!(info.contains("Integrity info"), "{info}");
    let rebuilt = fs::metadata(&c.wim).unwrap().len();
    let appended = fs::metadata(&in_place).unwrap().len();
    assert!(
        rebuilt + (1 << 20) < appended,
        "rebuilt {rebuilt} bytes, appended in place {appended}"
    );
}

/// Type, mode, owner and device number of every entry under `root`, by path.
fn unix_listing(root: &Path) -> String {
    ok(Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U %G %s\\n"])
        .current_dir(root))
    .lines()
    .map(|l| {
        // Devices: add the device number, which find's %s does not give.
        let path = l.split(' ').next().unwrap();
        let m = fs::symlink_metadata(root.join(path)).unwrap();
        let ft = m.file_type();
        let size = if m.is_file() { m.len() } else { 0 };
        let rdev = if ft.is_char_device() || ft.is_block_device() {
            m.rdev()
        } else {
            0
        };
        let head: Vec<&str> = l.split(' ').take(5).collect();
        format!("{} size={size} rdev={rdev}", head.join(" "))
    })
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect::<Vec<_>>()
    .join("\n")
}

/// A tar archive with special files, owners and modes, extracted onto a `--unix-data`
/// read-write mount, committed, and applied by wimlib with --unix-data, equals the same
/// archive extracted onto a plain directory.
#[test]
fn cli_tar_extract_onto_unix_data_mount_round_trips() {
    let Some(cli) = wimfs_cli() else { return };
    if !is_root("device nodes and owners") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tree = t.join("tree");
    fs::create_dir_all(tree.join("etc/private")).unwrap();
    fs::create_dir_all(tree.join("dev")).unwrap();
    fs::write(tree.join("etc/conf"), "key=value\n").unwrap();
    fs::write(tree.join("etc/private/secret"), pattern(3000, 5)).unwrap();
    fs::write(tree.join("tool"), pattern(40_000, 6)).unwrap();
    fs::hard_link(tree.join("tool"), tree.join("tool-alias")).unwrap();
    std::os::unix::fs::symlink("etc/conf", tree.join("conf-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/abs", tree.join("abs-link")).unwrap();
    ok(Command::new("mkfifo").arg(tree.join("dev/fifo")));
    ok(Command::new("mknod")
        .arg(tree.join("dev/null"))
        .args(["c", "1", "3"]));
    ok(Command::new("mknod")
        .arg(tree.join("dev/loop9"))
        .args(["b", "7", "9"]));
    for (p, mode) in [
        ("tool", "4755"),
        ("etc/private", "700"),
        ("etc/private/secret", "600"),
        ("dev/fifo", "620"),
    ] {
        ok(Command::new("chmod").arg(mode).arg(tree.join(p)));
    }
    ok(Command::new("chown")
        .args(["-h", "1234:5678"])
        .arg(tree.join("etc/private/secret"))
        .arg(tree.join("conf-link")));
    ok(Command::new("chown")
        .arg("42:43")
        .arg(tree.join("dev/null")));
    let tarball = t.join("t.tar");
    ok(Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg("."));

    // The base image: a small tree captured by wimlib with UNIX data.
    let base = t.join("base");
    fs::create_dir_all(base.join("x")).unwrap();
    fs::write(base.join("readme"), "base\n").unwrap();
    let wim = t.join("t.wim");
    capture(&base, &wim, &["--unix-data"]);
    let dir = t.join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let guard = cli_mountrw_with(&cli, &wim, &dir, &["--unix-data"], None);
    let extract = |to: &Path| {
        ok(Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(&tarball)
            .arg("-C")
            .arg(to));
    };
    extract(&dir.join("x"));
    let expect = t.join("expect");
    ok(Command::new("cp").arg("-a").arg(&base).arg(&expect));
    extract(&expect.join("x"));
    assert_eq!(
        unix_listing(&dir.join("x")),
        unix_listing(&expect.join("x"))
    );
    ok(Command::new(&cli).args(["unmount", "--commit"]).arg(&dir));
    wait_until("daemon exits", || gone(guard.pid));
    drop(guard);

    ok(Command::new("wimlib-imagex").arg("verify").arg(&wim));
    let applied = t.join("applied");
    ok(Command::new("wimlib-imagex")
        .arg("apply")
        .arg(&wim)
        .arg(&applied)
        .arg("--unix-data"));
    // Contents (diff calls device nodes and fifos different whatever they are; the
    // listing compares those).
    ok(Command::new("diff")
        .args(["-r", "--no-dereference", "--exclude=dev"])
        .arg(&expect)
        .arg(&applied));
    assert_eq!(unix_listing(&applied), unix_listing(&expect));
}

/// Modes of the staging directory beside `wim` and of every file in it.
fn staging_modes(wim: &Path) -> Vec<(String, u32)> {
    let parent = wim.parent().unwrap();
    let mut out = Vec::new();
    for e in fs::read_dir(parent).unwrap() {
        let e = e.unwrap();
        if !e.file_name().to_string_lossy().contains(".staging-") {
            continue;
        }
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            e.metadata().unwrap().mode() & 0o7777,
        ));
        for f in fs::read_dir(e.path()).unwrap() {
            let f = f.unwrap();
            out.push((
                f.file_name().to_string_lossy().into_owned(),
                f.metadata().unwrap().mode() & 0o7777,
            ));
        }
    }
    out
}

/// Staged data is private to its owner whatever the umask (directory 0700, files 0600),
/// and chmod/chown without --unix-data fail with EOPNOTSUPP, as with wimlib's mount.
#[test]
fn cli_mountrw_staging_is_private_and_chmod_is_refused() {
    let Some(cli) = wimfs_cli() else { return };
    for umask in ["000", "022"] {
        let c = rw_case();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" mountrw \"$1\" \"$2\""
            ))
            .arg(&cli)
            .arg(&c.wim)
            .arg(&c.dir);
        let guard = run_mountrw(&cli, cmd, &c.dir);
        // A new big file (its own staging file), a new small one (the data log), a changed
        // image file (copied up), and the journal.
        fs::write(c.dir.join("big.new"), pattern(300_000, 9)).unwrap();
        fs::write(c.dir.join("small.new"), "small\n").unwrap();
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(c.dir.join("dir/sub/small"))
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let modes = staging_modes(&c.wim);
        assert!(modes.len() >= 5, "umask {umask}: {modes:?}");
        for (name, mode) in &modes {
            let want = if name.contains(".staging-") {
                0o700
            } else {
                0o600
            };
            assert_eq!(*mode, want, "umask {umask}: {name} has mode {mode:o}");
        }

        let f = c.dir.join("hello.txt");
        let before = fs::metadata(&f).unwrap().mode();
        let e = fs::set_permissions(&f, fs::Permissions::from_mode(0o600));
        assert_eq!(errno_of(e), libc::EOPNOTSUPP);
        let e = std::os::unix::fs::chown(&f, Some(1), Some(1));
        assert_eq!(errno_of(e), libc::EOPNOTSUPP);
        assert_eq!(fs::metadata(&f).unwrap().mode(), before);

        // `wimfs unmount` without --commit is an explicit discard: nothing stays.
        ok(Command::new(&cli).arg("unmount").arg(&c.dir));
        drop(guard);
        assert_eq!(staging_modes(&c.wim), Vec::new(), "umask {umask}");
    }
}

/// An unmount not made through `wimfs unmount` (here fusermount3 -u) never deletes the
/// user's uncommitted work: it stays as an orphan that `wimfs recover --commit` turns into
/// exactly those changes. Without changes, nothing is left behind.
#[test]
fn cli_mountrw_fusermount_unmount_leaves_a_recoverable_orphan() {
    let Some(cli) = wimfs_cli() else { return };
    let c = rw_case();

    let guard = cli_mountrw(&cli, &c.wim, &c.dir);
    ok(Command::new("ls").arg("-R").arg(&c.dir));
    ok(Command::new("fusermount3").arg("-u").arg(&c.dir));
    wait_until("the daemon exits", || gone(guard.pid));
    drop(guard);
    assert!(
        staging_modes(&c.wim).is_empty(),
        "nothing staged, nothing kept"
    );

    let guard = cli_mountrw(&cli, &c.wim, &c.dir);
    change_tree(&c.dir, &c.extra);
    let before = fs::read(&c.wim).unwrap();
    ok(Command::new("fusermount3").arg("-u").arg(&c.dir));
    wait_until("the daemon exits", || gone(guard.pid));
    drop(guard);
    assert!(fs::read(&c.wim).unwrap() == before, "the WIM is untouched");
    let mine = orphans_of(&cli, &c.wim);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["state"], "recoverable");
    ok(Command::new(&cli)
        .arg("recover")
        .arg(&c.wim)
        .arg("--commit"));
    verify_and_compare(&c.wim, 1, &c.expect, &c.tmp.path().join("applied"));
    assert!(staging_modes(&c.wim).is_empty());
}

/// A byte flipped in a file's stored data: on a read-write mount, reading that file fails
/// with EIO (checked as on a read-only mount), and so does changing it (at the copy-up),
/// leaving no staging file; the commit does not store the corrupt data under a fresh hash.
#[test]
fn cli_mountrw_copy_up_of_corrupt_data_fails() {
    let Some(cli) = wimfs_cli() else { return };
    let c = rw_case();
    capture(&c.src, &c.wim, &["--compress=none"]);
    let victim = pattern(5000, 4);
    let mut bytes = fs::read(&c.wim).unwrap();
    let at = bytes
        .windows(victim.len())
        .position(|w| w == victim)
        .unwrap();
    bytes[at + 2000] ^= 0x55;
    fs::write(&c.wim, &bytes).unwrap();
    let listing = |wim: &Path| {
        wimlib(&[
            "dir".as_ref(),
            wim.as_os_str(),
            "1".as_ref(),
            "--detailed".as_ref(),
            "--path".as_ref(),
            "/dir/sub/small".as_ref(),
        ])
    };
    let before = listing(&c.wim);

    let guard = cli_mountrw(&cli, &c.wim, &c.dir);
    // A read of the unchanged file is checked as on a read-only mount.
    assert_eq!(
        errno_of(fs::read(c.dir.join("dir/sub/small"))),
        libc::EIO,
        "reading corrupt data of the image fails"
    );
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(c.dir.join("dir/sub/small"))
        .unwrap();
    assert_eq!(errno_of(f.write_all(b"more")), libc::EIO);
    drop(f);
    let staged: Vec<_> = staging_modes(&c.wim)
        .into_iter()
        .filter(|(n, _)| n.parse::<u64>().is_ok())
        .collect();
    assert!(staged.is_empty(), "no staging file is left: {staged:?}");
    // Other files still change and commit.
    fs::write(c.dir.join("hello.txt"), "changed\n").unwrap();
    unmount_commit(&cli, &c.dir);
    drop(guard);
    assert_eq!(
        listing(&c.wim),
        before,
        "the corrupt file's entry is unchanged"
    );
    let applied = c.tmp.path().join("applied");
    let out = Command::new("wimlib-imagex")
        .arg("extract")
        .arg(&c.wim)
        .arg("1")
        .arg("/hello.txt")
        .arg(format!("--dest-dir={}", applied.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(applied.join("hello.txt")).unwrap(), b"changed\n");
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A staging directory that fills up: the writer gets ENOSPC (not EIO), and once space is
/// freed the mount goes on working and commits.
#[test]
fn cli_mountrw_enospc_reaches_the_writer() {
    let Some(cli) = wimfs_cli() else { return };
    if !is_root("tmpfs mounts") {
        return;
    }
    let c = rw_case();
    let small = c.tmp.path().join("tmpfs");
    fs::create_dir(&small).unwrap();
    ok(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small));
    let _tmpfs = Tmpfs(small.clone());
    let staging = small.join("staging");
    let guard = cli_mountrw_with(
        &cli,
        &c.wim,
        &c.dir,
        &["--staging-dir", staging.to_str().unwrap()],
        None,
    );
    let e = fs::write(c.dir.join("too-big"), pattern(4 << 20, 5));
    assert_eq!(errno_of(e), libc::ENOSPC);
    fs::remove_file(c.dir.join("too-big")).unwrap();
    fs::write(c.dir.join("fits"), pattern(200_000, 6)).unwrap();
    assert_eq!(fs::read(c.dir.join("fits")).unwrap(), pattern(200_000, 6));
    unmount_commit(&cli, &c.dir);
    drop(guard);
    let out = wimlib(&["dir".as_ref(), c.wim.as_os_str(), "1".as_ref()]);
    assert!(out.lines().any(|l| l == "/fits"), "{out}");
    assert!(!out.lines().any(|l| l == "/too-big"), "{out}");
}

/// Runs `exe ARGS` as `nobody` with `XDG_RUNTIME_DIR=xdg`.
fn as_nobody(exe: &Path, xdg: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args(args)
        .env("XDG_RUNTIME_DIR", xdg)
        .env_remove("WIMFS_LOG")
        .output()
        .unwrap()
}

/// A directory owned by `uid` with `mode`.
fn dir_of(path: &Path, uid: u32, mode: u32) -> PathBuf {
    fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// Another local user cannot redirect or spoof the control channel: a control directory
/// the user does not own, or that others may write to, is refused; a socket owned by
/// someone else is not talked to; a symlink planted where the daemon's log goes is not
/// followed; a staging directory owned by someone else is not adopted by recovery.
#[test]
fn local_users_cannot_redirect_or_spoof_a_mount() {
    let Some(cli) = wimfs_cli() else { return };
    if !is_root("acting as another user (setpriv)") {
        return;
    }
    const NOBODY: u32 = 65534;
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The binaries, where the other user can run them.
    let bin = dir_of(&tmp.path().join("bin"), 0, 0o755);
    let exe = bin.join("wimfs");
    fs::copy(&cli, &exe).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_wimfs-mountd"), bin.join("wimfs-mountd")).unwrap();
    let mounts = [std::ffi::OsStr::new("mounts")];

    // A control directory someone else owns, or others may write to: refused, clearly.
    let xdg = dir_of(&tmp.path().join("xdg-foreign"), NOBODY, 0o700);
    dir_of(&xdg.join("wimfs"), 0, 0o700);
    let o = as_nobody(&exe, &xdg, &mounts);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("owned by uid 0"), "{err}");
    let xdg = dir_of(&tmp.path().join("xdg-open"), NOBODY, 0o700);
    dir_of(&xdg.join("wimfs"), NOBODY, 0o770);
    let o = as_nobody(&exe, &xdg, &mounts);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("lets others in"), "{err}");

    // A socket in the user's directory but owned by another user (root here), answering
    // like a daemon: never asked anything.
    let xdg = dir_of(&tmp.path().join("xdg-socket"), NOBODY, 0o700);
    let ctl = dir_of(&xdg.join("wimfs"), NOBODY, 0o700);
    let listener = std::os::unix::net::UnixListener::bind(ctl.join("mnt-0.sock")).unwrap();
    fs::set_permissions(ctl.join("mnt-0.sock"), fs::Permissions::from_mode(0o777)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = as_nobody(&exe, &xdg, &mounts);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not talking to it"), "{err}");
    assert!(
        listener.accept().is_err(),
        "the CLI connected to a socket another user owns"
    );

    // A symlink where the daemon's log will go: the daemon does not truncate its target.
    let xdg = dir_of(&tmp.path().join("xdg-log"), NOBODY, 0o700);
    let ctl = dir_of(&xdg.join("wimfs"), NOBODY, 0o700);
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    fs::set_permissions(&wim, fs::Permissions::from_mode(0o644)).unwrap();
    let mnt = dir_of(&tmp.path().join("mnt"), NOBODY, 0o755);
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::chown(&victim, Some(NOBODY), Some(NOBODY)).unwrap();
    let log = wimfs::mount_proto::unix::socket_path(&mnt).with_extension("log");
    std::os::unix::fs::symlink(&victim, ctl.join(log.file_name().unwrap())).unwrap();
    let o = as_nobody(
        &exe,
        &xdg,
        &["mount".as_ref(), wim.as_os_str(), mnt.as_os_str()],
    );
    if is_mounted(&mnt) {
        let _ = Command::new("fusermount3").arg("-uz").arg(&mnt).status();
    }
    // The daemon got as far as the log and refused the link.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("cannot open log"), "{err}");
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "the log followed a planted link: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A staging directory with a valid journal for this WIM, owned by someone else: not
    // listed, not recovered. The same directory owned by the user is.
    let c = rw_case();
    let guard = cli_mountrw(&cli, &c.wim, &c.dir);
    fs::write(c.dir.join("planted.txt"), "from another user\n").unwrap();
    kill9(guard.pid);
    drop(guard);
    let staging = fs::read_dir(c.tmp.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains(".staging-"))
        .expect("an orphan")
        .path();
    let chown_all = |uid: u32| {
        ok(Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{uid}"))
            .arg(&staging));
    };
    chown_all(NOBODY);
    let mine = |list: Vec<serde_json::Value>| {
        list.into_iter()
            .filter(|o| o["wim"] == c.wim.to_str().unwrap())
            .count()
    };
    assert_eq!(
        mine(orphans(&cli)),
        0,
        "a foreign staging directory is listed"
    );
    let o = Command::new(&cli)
        .arg("recover")
        .arg(&c.wim)
        .arg("--commit")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let o = Command::new(&cli)
        .arg("recover")
        .arg(&c.wim)
        .arg("--commit")
        .arg("--staging-dir")
        .arg(&staging)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a staging directory of this user"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    chown_all(0);
    assert_eq!(mine(orphans(&cli)), 1, "the user's own orphan is listed");
    ok(Command::new(&cli)
        .arg("recover")
        .arg(&c.wim)
        .arg("--discard"));
}

/// A panic while serving a request (here injected into reads of one file) fails that request
/// with EIO and is logged; the daemon's workers survive it, so after many such panics every
/// other file still reads correctly.
#[test]
fn a_panic_in_a_request_costs_that_request_only() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    let m = Mount::start_with_env(
        &wim,
        &tmp.path().join("mnt"),
        &[],
        &[("WIMFS_TEST_PANIC_READ_SIZE", "5000")],
    );
    for _ in 0..20 {
        let e = fs::read(m.p("dir/sub/small")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }
    // Everything else, after far more panics than the daemon has workers.
    for i in 0..200 {
        let rel = format!("dir/f{i:03}");
        assert!(fs::read(m.p(&rel)).unwrap() == fs::read(src.join(&rel)).unwrap());
    }
    assert_eq!(fs::read(m.p("dir/big.bin")).unwrap(), pattern(5 << 20, 3));
    assert_eq!(fs::read(m.p("hello.txt")).unwrap(), b"hello\n");
    assert!(m.log().contains("internal error"), "{}", m.log());
}

/// Every symlink's `st_size` is the length of its target as `readlink` gives it (relative,
/// and absolute ones pointed into the mountpoint), on read-only and read-write mounts.
#[test]
fn symlink_sizes_are_their_target_lengths() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    std::os::unix::fs::symlink(src.join("dir/sub"), src.join("absolute")).unwrap();
    std::os::unix::fs::symlink("a/b/c/../../../../x", src.join("dangling")).unwrap();
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &[]);
    let check = |root: &Path, what: &str| {
        let mut n = 0;
        for e in walk_all(root) {
            let m = fs::symlink_metadata(&e).unwrap();
            if m.file_type().is_symlink() {
                let t = fs::read_link(&e).unwrap();
                assert_eq!(
                    m.len(),
                    t.as_os_str().len() as u64,
                    "{what}: {} -> {}",
                    e.display(),
                    t.display()
                );
                n += 1;
            }
        }
        n
    };
    let m = Mount::start(&wim, &tmp.path().join("ro"), &[]);
    assert_eq!(check(&m.dir, "read-only"), 4);
    drop(m);
    let dir = tmp.path().join("rw");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let guard = cli_mountrw(&cli, &wim, &dir);
    std::os::unix::fs::symlink("../made/on/the/mount", dir.join("new_link")).unwrap();
    assert_eq!(check(&dir, "read-write"), 5);
    ok(Command::new(&cli).arg("unmount").arg(&dir));
    drop(guard);
}

/// Every path below `root` (not following links).
fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// kill -9 of the daemon right after a `commit --new-image` reached the WIM's header: the
/// orphan is seen as committed (the base image is untouched, so only the image count tells),
/// and recovery does not apply the changes a second time over the original image.
#[test]
fn cli_mountrw_killed_after_a_new_image_commit() {
    let Some(cli) = wimfs_cli() else { return };
    let c = rw_case();
    let guard = cli_mountrw_with(
        &cli,
        &c.wim,
        &c.dir,
        &[],
        Some(("WIMFS_CRASH_AT", "header")),
    );
    change_tree(&c.dir, &c.extra);
    let out = Command::new(&cli)
        .args(["commit", "--new-image"])
        .arg(&c.dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the commit died");
    wait_until("the daemon is gone", || gone(guard.pid));
    drop(guard);
    let mine = orphans_of(&cli, &c.wim);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["state"], "committed");
    let out = ok(Command::new(&cli)
        .arg("recover")
        .arg(&c.wim)
        .arg("--commit"));
    assert!(out.contains("already holds"), "{out}");
    let scratch = c.tmp.path().join("applied");
    verify_and_compare(&c.wim, 1, &c.src, &scratch);
    verify_and_compare(&c.wim, 2, &c.expect, &scratch);
    assert_eq!(wimfs::Wim::open(&c.wim).unwrap().image_count(), 2);
}

/// A commit does not freeze the mount: while `wimfs commit --rebuild` compresses new data
/// and copies a WIM of several hundred MB, lookups, listings and reads of unchanged files
/// answer within a second, also while a writer in another directory waits for the commit
/// to end (a waiting change holds its own directory's lock in the kernel); the writer's
/// change then lands in the next commit.
#[test]
fn cli_commit_rebuild_keeps_the_mount_answering() {
    let Some(cli) = wimfs_cli() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut big = pattern(50 << 20, 5);
    for i in 0..6u8 {
        big[0] = i;
        fs::write(src.join(format!("big{i}")), &big).unwrap();
    }
    drop(big);
    fs::write(src.join("unchanged.txt"), "unchanged\n").unwrap();
    let wim = tmp.path().join("t.wim");
    capture(&src, &wim, &["--compress=lzx"]);
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let dir = fs::canonicalize(&dir).unwrap();
    let guard = cli_mountrw(&cli, &wim, &dir);
    // New data for the commit to compress.
    let new = pattern(64 << 20, 77);
    fs::write(dir.join("new.bin"), &new).unwrap();
    fs::write(src.join("new.bin"), &new).unwrap();
    drop(new);
    fs::create_dir(dir.join("w")).unwrap();
    fs::create_dir(src.join("w")).unwrap();

    let mut commit = Command::new(&cli)
        .args(["commit", "--rebuild"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the commit take the gate, then start a writer that has to wait for it.
    std::thread::sleep(Duration::from_millis(300));
    let writer = {
        let path = dir.join("w/written-during-commit");
        std::thread::spawn(move || fs::write(path, "late\n"))
    };
    let mut worst = Duration::ZERO;
    let mut during = 0;
    let mut n = 0;
    while commit.try_wait().unwrap().is_none() {
        let t = Instant::now();
        // A name never looked up before always reaches the daemon.
        assert!(fs::metadata(dir.join(format!("missing{n}"))).is_err());
        let names = fs::read_dir(&dir).unwrap().count();
        assert!(names >= 9, "{names} entries");
        assert_eq!(fs::read(dir.join("unchanged.txt")).unwrap(), b"unchanged\n");
        let took = t.elapsed();
        if commit.try_wait().unwrap().is_none() {
            worst = worst.max(took);
            during += 1;
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = commit.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    writer.join().unwrap().unwrap();
    assert!(
        during >= 5,
        "the commit was too quick to show anything ({during} probes)"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a probe took {worst:?} during the commit"
    );
    fs::write(src.join("w/written-during-commit"), "late\n").unwrap();
    unmount_commit(&cli, &dir);
    drop(guard);
    let scratch = tmp.path().join("applied");
    verify_and_compare(&wim, 1, &src, &scratch);
}
