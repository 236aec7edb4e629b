//! The control channel on Windows, for both sides: pipe names only their user can work out,
//! and clients that talk only to a daemon of their own user.
//!
//! Pipe names are global on a machine. A name another user could predict could be taken
//! first (the daemon creates its pipe as the first instance, so it would fail to mount) or
//! answered by an impostor. So each user has a random key, kept in their local application
//! data (closed to other users by the profile's ACL); pipe names are derived from it with
//! [`super::pipe_name_for`], and a client checks that the process serving a pipe runs as its
//! own user before it sends anything.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_PIPE_BUSY, HANDLE};
use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
use windows_sys::Win32::System::Pipes::GetNamedPipeServerProcessId;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// Where named pipes live.
const PIPES: &str = r"\\.\pipe\";

/// This user's pipe key: 16 random bytes in `runtime_dir()\pipe-key`, made on first use.
pub fn pipe_key() -> io::Result<[u8; 16]> {
    let dir = super::runtime_dir();
    let path = dir.join("pipe-key");
    if let Some(key) = read_key(&path)? {
        return Ok(key);
    }
    std::fs::create_dir_all(&dir)?;
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
    // Written whole under a private name, then linked into place: a racing process either
    // wins (and both use its key) or finds the complete file.
    let tmp = dir.join(format!("pipe-key.{}", std::process::id()));
    std::fs::write(&tmp, key)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(&path)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "pipe key unreadable")),
        Err(e) => Err(e),
    }
}

fn read_key(path: &Path) -> io::Result<Option<[u8; 16]>> {
    let mut key = [0u8; 16];
    match File::open(path) {
        Ok(mut f) => match f.read_exact(&mut key) {
            Ok(()) => Ok(Some(key)),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e} (delete it to make a new key)", path.display()),
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The control pipe's full name for a mountpoint (as the daemon normalized it: `M:` or an
/// absolute path).
pub fn pipe_name(mountpoint: &str) -> io::Result<String> {
    Ok(format!(
        "{PIPES}{}",
        super::pipe_name_for(&pipe_key()?, mountpoint)
    ))
}

/// The control pipes of this user's daemons.
pub fn endpoints() -> io::Result<Vec<PathBuf>> {
    let prefix = super::pipe_prefix_for(&pipe_key()?);
    let Ok(entries) = std::fs::read_dir(PIPES) else {
        return Ok(Vec::new());
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| Path::new(PIPES).join(e.file_name()))
        .collect())
}

/// Opens a control pipe, waiting up to `timeout` while its one instance serves someone else,
/// and checks that the process serving it runs as this user.
pub fn connect(pipe: &Path, timeout: Duration) -> io::Result<File> {
    let start = Instant::now();
    let conn = loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pipe)
        {
            Ok(c) => break c,
            Err(e)
                if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32)
                    && start.elapsed() < timeout =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    };
    let mut pid = 0u32;
    // SAFETY: `conn` owns a valid pipe handle for the call; `pid` is written on success.
    if unsafe { GetNamedPipeServerProcessId(conn.as_raw_handle(), &mut pid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let (server, me) = (process_sid(pid)?, user_sid()?);
    if server != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: served by process {pid} of another user ({server}); not talking to it",
                pipe.display()
            ),
        ));
    }
    Ok(conn)
}

/// Sends one request line to a daemon and returns its reply line.
pub fn request(pipe: &Path, what: &str, timeout: Duration) -> io::Result<String> {
    let conn = connect(pipe, timeout)?;
    (&conn).write_all(format!("{what}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// The current user's SID as a string (`S-1-5-21-...`).
pub fn user_sid() -> io::Result<String> {
    // SAFETY: the pseudo handle of the current process needs no closing.
    token_sid(unsafe { GetCurrentProcess() })
}

/// The SID of the user process `pid` runs as.
fn process_sid(pid: u32) -> io::Result<String> {
    // SAFETY: plain call; the handle it returns is closed below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(io::Error::last_os_error());
    }
    let sid = token_sid(process);
    // SAFETY: `process` was opened above and is closed once.
    unsafe { CloseHandle(process) };
    sid
}

/// The user SID in the token of `process`.
fn token_sid(process: HANDLE) -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a valid process handle; `token` receives a handle closed below.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u64; 64];
    let mut len = 0u32;
    // SAFETY: `buf` is 512 writable bytes, 8-aligned as TOKEN_USER needs; `len` receives the
    // size used.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: `token` is the handle opened above, closed once.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(err);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into `buf`.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is valid while `buf` lives; `text` receives a LocalAlloc'd string.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is a NUL-terminated UTF-16 string from ConvertSidToStringSidW.
    let s = unsafe {
        let n = (0..).take_while(|&i| *text.add(i) != 0).count();
        String::from_utf16_lossy(std::slice::from_raw_parts(text, n))
    };
    // SAFETY: `text` was allocated by the system with LocalAlloc and is freed once.
    unsafe { LocalFree(text.cast()) };
    Ok(s)
}
