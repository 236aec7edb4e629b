//! Remote images against real servers started on 127.0.0.1 for each test and stopped again:
//! nginx (HTTP range requests) and Garage (an S3-compatible object store). Every verb that
//! reads, and a read-only mount, must see exactly what they see in the local file; faults
//! (server gone, object replaced) fail reads with EIO while the mount keeps working.
//!
//! `scripts/setup.sh` installs nginx (Debian) and Garage (crates.io).

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A server process of this test, killed (by pid) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A program the setup script installs, from PATH or cargo's bin directory.
fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/setup.sh"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx serving `root` on `port`, as one process (no workers to outlive it).
fn nginx(work: &Path, root: &Path, port: u16) -> Server {
    nginx_with(work, root, port, "")
}

/// The same, with more directives for the server block.
fn nginx_with(work: &Path, root: &Path, port: u16, extra: &str) -> Server {
    fs::create_dir_all(work.join("tmp")).unwrap();
    let conf = work.join("nginx.conf");
    let w = work.display();
    fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log {w}/access.log;\n client_body_temp_path {w}/tmp;\n\
             proxy_temp_path {w}/tmp;\n fastcgi_temp_path {w}/tmp;\n uwsgi_temp_path {w}/tmp;\n\
             scgi_temp_path {w}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {}; {extra} }}\n}}\n",
            root.display()
        ),
    )
    .unwrap();
    let child = Command::new(tool("nginx"))
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let server = Server(child);
    wait_for_port(port, "nginx");
    server
}

/// A one-node Garage cluster with bucket `images`, readable and writable by one key.
struct Garage {
    _server: Server,
    port: u16,
}

const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "5ec7e7c0de5ec7e7c0de5ec7e7c0de5ec7e7c0de5ec7e7c0de5ec7e7c0de5ec7";

impl Garage {
    fn start(work: &Path) -> Garage {
        fs::create_dir_all(work).unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let conf = work.join("garage.toml");
        let w = work.display();
        fs::write(
            &conf,
            format!(
                "metadata_dir = \"{w}/meta\"\ndata_dir = \"{w}/data\"\ndb_engine = \"lmdb\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"4425f5c26c5e11581d3223904324dcb5b5d5dfb14e5e7f35e38c595424f5f1e6\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
        let garage = tool("garage");
        let child = Command::new(&garage)
            .arg("-c")
            .arg(&conf)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(fs::File::create(work.join("server.log")).unwrap())
            .spawn()
            .expect("garage starts");
        let server = Server(child);
        wait_for_port(s3, "garage");
        let g = |args: &[&str]| -> String {
            let mut c = Command::new(&garage);
            c.arg("-c").arg(&conf).args(args);
            ok(&mut c)
        };
        let start = Instant::now();
        let id = loop {
            let out = run(Command::new(&garage)
                .arg("-c")
                .arg(&conf)
                .args(["node", "id", "-q"]));
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout)
                    .split('@')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "garage has no node id"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        g(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        g(&["layout", "apply", "--version", "1"]);
        g(&["key", "import", "--yes", "-n", "wimfs", KEY_ID, SECRET]);
        g(&["bucket", "create", "images"]);
        g(&[
            "bucket", "allow", "--read", "--write", "images", "--key", "wimfs",
        ]);
        Garage {
            _server: server,
            port: s3,
        }
    }

    /// Uploads `file` as `images/KEY` (curl signs the request).
    fn put(&self, file: &Path, key: &str) {
        ok(Command::new("curl")
            .args(["-sS", "-f", "--aws-sigv4", "aws:amz:garage:s3", "--user"])
            .arg(format!("{KEY_ID}:{SECRET}"))
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T"])
            .arg(file)
            .arg(format!("http://127.0.0.1:{}/images/{key}", self.port)));
    }

    /// `wimfs ARGS` with this store's endpoint and credentials in the environment.
    fn wimfs<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = wimfs_cmd(args);
        c.env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "garage")
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("AWS_ALLOW_HTTP", "true");
        c
    }
}

/// A read-only mount, unmounted (lazily, if need be) when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.0)
            .output();
    }
}

fn mount(mut cmd: Command, dir: &Path) -> Mounted {
    fs::create_dir_all(dir).unwrap();
    ok(&mut cmd);
    Mounted(dir.to_path_buf())
}

/// The fixture tree and wimlib's images of it: an LZX WIM, a solid ESD and a split set.
struct Fixture {
    src: PathBuf,
    /// Directory served: a.wim, a.esd, s.swm, s2.swm, ...
    www: PathBuf,
    parts: Vec<String>,
}

fn fixture(dir: &Path, large: bool) -> Fixture {
    let src = dir.join("src");
    make_tree(&src);
    if large {
        // Incompressible data over several of the reader's 1 MiB blocks, between the data a
        // mount reads first (the header, small files) and the metadata at the end.
        fs::write(src.join("large.bin"), pseudo_random(8 << 20, 11)).unwrap();
    }
    let www = dir.join("www");
    fs::create_dir_all(&www).unwrap();
    let wl = |args: &[&std::ffi::OsStr]| ok(&mut wimlib(args));
    let (a_wim, a_esd, swm) = (www.join("a.wim"), www.join("a.esd"), www.join("s.swm"));
    let s = src.as_os_str();
    wl(&[
        "capture".as_ref(),
        s,
        a_wim.as_os_str(),
        "src".as_ref(),
        "--compress=lzx".as_ref(),
    ]);
    wl(&[
        "capture".as_ref(),
        s,
        a_esd.as_os_str(),
        "src".as_ref(),
        "--solid".as_ref(),
    ]);
    wl(&[
        "split".as_ref(),
        a_wim.as_os_str(),
        swm.as_os_str(),
        "1".as_ref(),
    ]);
    let mut parts: Vec<String> = fs::read_dir(&www)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".swm"))
        .collect();
    parts.sort();
    assert!(parts.len() >= 2, "the split set has parts {parts:?}");
    Fixture { src, www, parts }
}

type Cmd<'a> = &'a dyn Fn(&[OsString]) -> Command;

/// Owned arguments from anything path-like.
fn args<const N: usize>(xs: [&dyn AsRef<OsStr>; N]) -> Vec<OsString> {
    xs.iter().map(|x| x.as_ref().to_os_string()).collect()
}

/// `wimfs dir` and `verify` of `url` match the local file's; applying it and mounting it give
/// the source tree. `cmd` makes a `wimfs` command for this server.
fn reads_as_local(t: &Path, cmd: Cmd, url: &str, local: &Path, src: &Path, refs: &[String]) {
    let with_refs = |mut a: Vec<OsString>| {
        for r in refs {
            a.push("--ref".into());
            a.push(r.into());
        }
        a
    };
    let listing =
        |w: &dyn AsRef<OsStr>| ok(&mut cmd(&with_refs(args([&"dir", w, &"1", &"--detailed"]))));
    assert_eq!(listing(&url), listing(&local), "dir --detailed of {url}");
    let verified = ok(&mut cmd(&with_refs(args([&"verify", &url]))));
    assert!(verified.contains("OK"), "{verified}");
    let name = url.rsplit('/').next().unwrap();
    let out = t.join(format!("apply-{name}"));
    ok(&mut cmd(&with_refs(args([&"apply", &url, &"1", &out]))));
    assert_same_tree(src, &out);
    if refs.is_empty() {
        let mnt = t.join(format!("mnt-{name}"));
        let m = mount(cmd(&args([&"mount", &url, &"1", &mnt])), &mnt);
        assert_same_tree(src, &m.0);
        ok(&mut cmd(&args([&"unmount", &mnt])));
    }
}

/// The fixture's WIM, ESD and split set (its other parts by URL too), read through `cmd` at
/// `prefix` followed by their file names, match the local files.
fn fixtures_read_as_local(t: &Path, cmd: Cmd, prefix: &str, fx: &Fixture) {
    for name in ["a.wim", "a.esd"] {
        let url = format!("{prefix}{name}");
        reads_as_local(t, cmd, &url, &fx.www.join(name), &fx.src, &[]);
    }
    let refs: Vec<String> = fx.parts[1..]
        .iter()
        .map(|p| format!("{prefix}{p}"))
        .collect();
    let first = format!("{prefix}{}", fx.parts[0]);
    reads_as_local(t, cmd, &first, &fx.www.join(&fx.parts[0]), &fx.src, &refs);
}

#[test]
fn http_images_read_as_the_local_files() {
    let t = tempdir();
    let fx = fixture(t.path(), false);
    let port = free_port();
    let _nginx = nginx(&t.path().join("nginx"), &fx.www, port);
    let base = format!("http://127.0.0.1:{port}");
    let cmd = |a: &[OsString]| wimfs_cmd(a);
    fixtures_read_as_local(t.path(), &cmd, &format!("{base}/"), &fx);
    // Remote images are read-only, with a clear message and status.
    let dir = t.path().join("rw");
    fs::create_dir_all(&dir).unwrap();
    for args in [
        vec![
            "mountrw".to_string(),
            format!("{base}/a.wim"),
            "1".into(),
            dir.display().to_string(),
        ],
        vec![
            "append".into(),
            fx.src.display().to_string(),
            format!("{base}/a.wim"),
            "x".into(),
        ],
        vec!["delete".into(), format!("{base}/a.wim"), "1".into()],
    ] {
        let out = run(&mut wimfs_cmd(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("read-only"), "{args:?}: {err}");
    }
    // A missing object is a clear error naming it.
    let out = run(&mut wimfs_cmd(["info", &format!("{base}/missing.wim")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("missing.wim") && err.contains("no such object"),
        "{err}"
    );
}

#[test]
fn s3_images_read_as_the_local_files() {
    let t = tempdir();
    let fx = fixture(t.path(), false);
    let garage = Garage::start(&t.path().join("garage"));
    for name in fx
        .parts
        .iter()
        .map(String::as_str)
        .chain(["a.wim", "a.esd"])
    {
        garage.put(&fx.www.join(name), &format!("set/{name}"));
    }
    let cmd = |a: &[OsString]| garage.wimfs(a);
    fixtures_read_as_local(t.path(), &cmd, "s3://images/set/", &fx);
    // The secret is in no process's arguments and not in `wimfs mounts`.
    let mnt = t.path().join("mnt-secret");
    let url = "s3://images/set/a.wim";
    let _m = mount(
        garage.wimfs(["mount", url, "1", mnt.to_str().unwrap()]),
        &mnt,
    );
    let mounts = ok(&mut garage.wimfs(["mounts"]));
    assert!(mounts.contains(url) && !mounts.contains(SECRET), "{mounts}");
    assert_in_no_arguments(SECRET);
    ok(&mut garage.wimfs(["unmount", mnt.to_str().unwrap()]));
}

/// No process's arguments hold `secret`.
fn assert_in_no_arguments(secret: &str) {
    for p in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(p.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(secret),
                "a secret is in the arguments of process {:?}",
                p.file_name()
            );
        }
    }
}

#[test]
fn credentials_come_from_netrc_headers_urls_profiles_and_the_command_line() {
    let t = tempdir();
    let fx = fixture(t.path(), false);
    let local = ok(&mut wimfs_cmd([
        "dir".as_ref(),
        fx.www.join("a.wim").as_os_str(),
        "1".as_ref(),
    ]));
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    // HTTP: a directory behind basic authentication.
    let work = t.path().join("nginx");
    fs::create_dir_all(&work).unwrap();
    const PASS: &str = "pass-of-reader";
    fs::write(work.join("htpasswd"), format!("reader:{{PLAIN}}{PASS}\n")).unwrap();
    fs::create_dir_all(fx.www.join("private")).unwrap();
    fs::copy(fx.www.join("a.wim"), fx.www.join("private/a.wim")).unwrap();
    let port = free_port();
    let _nginx = nginx_with(
        &work,
        &fx.www,
        port,
        &format!(
            "location /private/ {{ auth_basic \"wimfs\"; auth_basic_user_file {}/htpasswd; }}",
            work.display()
        ),
    );
    let url = format!("http://127.0.0.1:{port}/private/a.wim");
    let http = |args: &[&str]| {
        let mut c = wimfs_cmd(args);
        c.env("HOME", &home)
            .env_remove("NETRC")
            .env_remove("WIMFS_HTTP_HEADERS");
        c
    };
    let out = run(&mut http(&["dir", &url, "1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "without credentials: {err}");
    assert!(err.contains("private/a.wim"), "{err}");
    // From ~/.netrc, from NETRC, from the headers variable, from the URL.
    let netrc = format!("machine 127.0.0.1 login reader password {PASS}\n");
    fs::write(home.join(".netrc"), &netrc).unwrap();
    assert_eq!(ok(&mut http(&["dir", &url, "1"])), local, "~/.netrc");
    fs::remove_file(home.join(".netrc")).unwrap();
    fs::write(
        t.path().join("netrc"),
        format!("default login reader password {PASS}\n"),
    )
    .unwrap();
    assert_eq!(
        ok(http(&["dir", &url, "1"]).env("NETRC", t.path().join("netrc"))),
        local,
        "NETRC"
    );
    let header = "Authorization: Basic cmVhZGVyOnBhc3Mtb2YtcmVhZGVy";
    assert_eq!(
        ok(http(&["dir", &url, "1"]).env("WIMFS_HTTP_HEADERS", format!("X-Other: 1\n{header}\n"))),
        local,
        "WIMFS_HTTP_HEADERS"
    );
    let in_url = format!("http://reader:{PASS}@127.0.0.1:{port}/private/a.wim?token={PASS}");
    assert_eq!(
        ok(&mut http(&["dir", &in_url, "1"])),
        local,
        "user and password in the URL"
    );
    // Mounted, the daemon gets the URL without them; they show nowhere.
    let mnt = t.path().join("mnt-http");
    let m = mount(http(&["mount", &in_url, "1", mnt.to_str().unwrap()]), &mnt);
    assert_same_tree(&fx.src, &m.0);
    let mounts = ok(&mut http(&["mounts"]));
    assert!(
        mounts.contains("private/a.wim") && !mounts.contains(PASS),
        "{mounts}"
    );
    assert_in_no_arguments(PASS);
    ok(&mut http(&["unmount", mnt.to_str().unwrap()]));
    drop(m);
    // S3: a profile of the shared credentials and config files, the endpoint from the profile
    // or from --endpoint (which the mount daemon is handed too).
    let garage = Garage::start(&t.path().join("garage"));
    garage.put(&fx.www.join("a.wim"), "a.wim");
    let (creds, config) = (t.path().join("credentials"), t.path().join("config"));
    fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = GKwrong\naws_secret_access_key = wrong\n\n\
             [wimfs]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{}", garage.port);
    fs::write(
        &config,
        format!("[default]\nregion = garage\n\n[profile wimfs]\nregion = garage\nendpoint_url = {endpoint}\n"),
    )
    .unwrap();
    let s3 = |profile: Option<&str>, args: &[&str]| {
        let mut c = wimfs_cmd(args);
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_PROFILE",
        ] {
            c.env_remove(v);
        }
        if let Some(p) = profile {
            c.env("AWS_PROFILE", p);
        }
        c.env("HOME", &home)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &config);
        c
    };
    let obj = "s3://images/a.wim";
    assert_eq!(
        ok(&mut s3(Some("wimfs"), &["dir", obj, "1"])),
        local,
        "profile wimfs"
    );
    // The default profile's key is refused by the store: a clear error, no secret in it.
    let out = run(&mut s3(None, &["dir", obj, "1", "--endpoint", &endpoint]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a.wim") && !err.contains(SECRET) && !err.contains("wrong\n"),
        "{err}"
    );
    // Keys from the environment win over the profile's; the endpoint from --endpoint.
    let mut c = s3(None, &["dir", obj, "1", "--endpoint", &endpoint]);
    c.env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    assert_eq!(ok(&mut c), local, "environment keys and --endpoint");
    let mnt = t.path().join("mnt-s3");
    let mut c = s3(
        None,
        &[
            "mount",
            obj,
            "1",
            mnt.to_str().unwrap(),
            "--endpoint",
            &endpoint,
        ],
    );
    c.env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let m = mount(c, &mnt);
    assert_same_tree(&fx.src, &m.0);
    assert_in_no_arguments(SECRET);
    ok(&mut s3(None, &["unmount", mnt.to_str().unwrap()]));
    drop(m);
    // A profile that is not there.
    let out = run(&mut s3(Some("missing"), &["info", obj]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("AWS_PROFILE=missing") && err.contains("no such profile"),
        "{err}"
    );
}

/// Reads every file below `mnt` (each within `limit`): each reads as in `src` or fails
/// with EIO, never anything else. Returns how many failed.
fn read_all(mnt: &Path, src: &Path, limit: Duration) -> usize {
    let mut failed = 0;
    for rel in walk(src) {
        let m = fs::symlink_metadata(src.join(&rel)).unwrap();
        if !m.is_file() {
            continue;
        }
        let start = Instant::now();
        let got = fs::read(mnt.join(&rel));
        assert!(
            start.elapsed() < limit,
            "reading {rel:?} took {:?}",
            start.elapsed()
        );
        match got {
            Ok(data) => assert!(data == fs::read(src.join(&rel)).unwrap(), "{rel:?} differs"),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{rel:?}: {e}");
                failed += 1;
            }
        }
    }
    failed
}

#[test]
fn a_server_gone_or_an_object_replaced_fails_reads_not_the_mount() {
    let t = tempdir();
    let fx = fixture(t.path(), true);
    let port = free_port();
    let work = t.path().join("nginx");
    let mut server = Some(nginx(&work, &fx.www, port));
    let url = format!("http://127.0.0.1:{port}/a.wim");
    let limit = Duration::from_secs(120);
    let (mnt1, mnt2) = (t.path().join("mnt1"), t.path().join("mnt2"));
    let m1 = mount(
        wimfs_cmd(["mount", &url, "1", mnt1.to_str().unwrap()]),
        &mnt1,
    );
    assert_eq!(fs::read(m1.0.join("hello.txt")).unwrap(), b"Hello, WIM!\n");
    // The server goes away: data not fetched yet fails with EIO within the timeout; what was
    // read stays readable and the daemon keeps answering.
    drop(server.take());
    assert!(
        read_all(&m1.0, &fx.src, limit) > 0,
        "nothing failed with the server gone"
    );
    assert_eq!(fs::read(m1.0.join("hello.txt")).unwrap(), b"Hello, WIM!\n");
    assert!(ok(&mut wimfs_cmd(["mounts"])).contains(&url));
    // It comes back: everything reads.
    server = Some(nginx(&work, &fx.www, port));
    assert_eq!(read_all(&m1.0, &fx.src, limit), 0);
    // The object is replaced under a fresh mount: reads of data not fetched before fail, and
    // nothing reads as a mix of the two versions.
    let m2 = mount(
        wimfs_cmd(["mount", &url, "1", mnt2.to_str().unwrap()]),
        &mnt2,
    );
    assert_eq!(fs::read(m2.0.join("hello.txt")).unwrap(), b"Hello, WIM!\n");
    let replacement = t.path().join("replacement.wim");
    fs::copy(fx.www.join("a.esd"), &replacement).unwrap();
    fs::rename(&replacement, fx.www.join("a.wim")).unwrap();
    assert!(
        read_all(&m2.0, &fx.src, limit) > 0,
        "nothing failed after the replacement"
    );
    // Unmounting works while the server is down.
    drop(server.take());
    ok(&mut wimfs_cmd(["unmount", mnt2.to_str().unwrap()]));
    ok(&mut wimfs_cmd(["unmount", mnt1.to_str().unwrap()]));
    drop((m1, m2));
}

/// GET requests nginx has answered so far.
fn gets(work: &Path) -> usize {
    fs::read_to_string(work.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET "))
        .count()
}

fn cache_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter_map(|r| fs::metadata(dir.join(r)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_cache_dir_fetches_nothing_twice_and_stays_bounded() {
    let t = tempdir();
    let fx = fixture(t.path(), true);
    let port = free_port();
    let work = t.path().join("nginx");
    let _nginx = nginx(&work, &fx.www, port);
    let url = format!("http://127.0.0.1:{port}/a.wim");
    let cache = t.path().join("cache");
    let c = cache.to_str().unwrap();
    ok(&mut wimfs_cmd(["--cache-dir", c, "verify", &url]));
    let first = gets(&work);
    assert!(first > 0);
    // Again, and a mount read in full: only HEAD requests (the object's version).
    ok(&mut wimfs_cmd(["verify", &url, "--cache-dir", c]));
    let mnt = t.path().join("mnt");
    let m = mount(
        wimfs_cmd(["mount", &url, "1", mnt.to_str().unwrap(), "--cache-dir", c]),
        &mnt,
    );
    assert_eq!(read_all(&m.0, &fx.src, Duration::from_secs(60)), 0);
    ok(&mut wimfs_cmd(["unmount", mnt.to_str().unwrap()]));
    drop(m);
    assert_eq!(gets(&work), first, "data fetched again despite the cache");
    // The environment names it too; a damaged block is dropped and fetched again.
    let blocks: Vec<PathBuf> = walk(&cache)
        .into_iter()
        .filter(|r| cache.join(r).is_file())
        .collect();
    let victim = cache.join(&blocks[0]);
    let mut bytes = fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    ok(wimfs_cmd(["verify", &url]).env("WIMFS_CACHE_DIR", &cache));
    // The block is fetched again, in one request or (a block shared by the ends of two
    // resources, each fetched as far as its resource goes) two.
    let again = gets(&work) - first;
    assert!(
        (1..=2).contains(&again),
        "the damaged block took {again} requests"
    );
    // A bounded cache stays within its bound.
    let small = t.path().join("small");
    ok(&mut wimfs_cmd([
        "--cache-dir",
        small.to_str().unwrap(),
        "--cache-dir-size",
        "3M",
        "verify",
        &url,
    ]));
    let held = cache_bytes(&small);
    assert!(held > 0 && held <= 3 << 20, "{held} bytes held");
}

/// What the test proxy does with the next request.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Pass,
    /// Answer this many requests with 503, then pass.
    Unavailable(usize),
    /// Wait this long before passing each request on.
    Slow(Duration),
}

/// A small HTTP proxy in front of nginx that can answer 503 or answer late; one request per
/// connection (`Connection: close` both ways).
struct Proxy {
    port: u16,
    mode: std::sync::Arc<std::sync::Mutex<Mode>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (Arc::clone(&mode), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let m = Arc::clone(&m);
                        std::thread::spawn(move || serve(conn, upstream, &m));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy { port, mode, stop }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, upstream: u16, mode: &std::sync::Mutex<Mode>) {
    use std::io::{Read, Write};
    client.set_nonblocking(false).unwrap();
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let now = {
        let mut m = mode.lock().unwrap();
        let now = *m;
        if let Mode::Unavailable(n) = now {
            *m = if n > 1 {
                Mode::Unavailable(n - 1)
            } else {
                Mode::Pass
            };
        }
        now
    };
    match now {
        Mode::Unavailable(_) => {
            let _ = client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        Mode::Slow(d) => std::thread::sleep(d),
        Mode::Pass => {}
    }
    let text = String::from_utf8_lossy(&head);
    let mut request: String = text
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    request.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(request.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut up, &mut client);
    }
}

#[test]
fn unavailable_and_slow_servers_are_retried_or_fail_the_read_alone() {
    let t = tempdir();
    let fx = fixture(t.path(), true);
    let port = free_port();
    let _nginx = nginx(&t.path().join("nginx"), &fx.www, port);
    let proxy = Proxy::start(port);
    let url = format!("http://127.0.0.1:{}/a.wim", proxy.port);
    let large = fs::read(fx.src.join("large.bin")).unwrap();
    let mnt = |n: &str| t.path().join(n);
    let mount_fast = |dir: &Path| {
        let mut c = wimfs_cmd(["mount", &url, "1", dir.to_str().unwrap()]);
        c.env("WIMFS_REMOTE_TIMEOUT", "1");
        mount(c, dir)
    };
    // A few 503s are retried away.
    let m1 = mount_fast(&mnt("m1"));
    proxy.set(Mode::Unavailable(2));
    assert_eq!(read_all(&m1.0, &fx.src, Duration::from_secs(60)), 0);
    // A server that keeps answering 503: the read fails with EIO, quickly, alone.
    let m2 = mount_fast(&mnt("m2"));
    assert_eq!(fs::read(m2.0.join("hello.txt")).unwrap(), b"Hello, WIM!\n");
    proxy.set(Mode::Unavailable(usize::MAX));
    let e = read_within(&m2.0.join("large.bin"), Duration::from_secs(30)).map(|d| d.len());
    assert_eq!(e.map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)));
    assert_eq!(fs::read(m2.0.join("hello.txt")).unwrap(), b"Hello, WIM!\n");
    // A server slower than the timeout: the same, within a few timeouts.
    proxy.set(Mode::Slow(Duration::from_secs(4)));
    let e = read_within(&m2.0.join("large.bin"), Duration::from_secs(40)).map(|d| d.len());
    assert_eq!(e.map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)));
    // Slow (within the timeout), then healthy again: the data reads.
    proxy.set(Mode::Slow(Duration::from_millis(200)));
    assert!(read_within(&m2.0.join("large.bin"), Duration::from_secs(60)).unwrap() == large);
    proxy.set(Mode::Pass);
    assert_eq!(read_all(&m2.0, &fx.src, Duration::from_secs(60)), 0);
    for m in [&m1, &m2] {
        ok(&mut wimfs_cmd(["unmount", m.0.to_str().unwrap()]));
    }
}

/// Reads `path` in full, failing the test if it takes longer than `limit`.
fn read_within(path: &Path, limit: Duration) -> std::io::Result<Vec<u8>> {
    let start = Instant::now();
    let r = fs::read(path);
    assert!(
        start.elapsed() < limit,
        "reading {} took {:?}",
        path.display(),
        start.elapsed()
    );
    r
}
