//! Writing a new WIM file that replaces an old one: a temporary file beside the target's
//! real path (a symlinked WIM path stays a link), given the old file's access rights (mode
//! and owner on Unix, security descriptor on Windows) before anything is written to it, and
//! made durable after the rename.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `target` with symlinks resolved, if it exists (else as given).
pub(crate) fn resolve_links(target: &Path) -> PathBuf {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf())
        }
        _ => target.to_path_buf(),
    }
}

/// Creates `<target>.tmp-XXXX` (exclusive create, so two writers never share one), with the
/// access rights of `target` if it exists.
pub(crate) fn create_temp_beside(target: &Path) -> Result<(PathBuf, File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seed = u32::from_le_bytes(random_guid()[..4].try_into().expect("4 bytes"));
    for attempt in 0..100u32 {
        let tmp = target.with_file_name(format!("{name}.tmp-{:08x}", seed.wrapping_add(attempt)));
        match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => {
                if let Err(e) = keep_access(&f, &tmp, target) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                return Ok((tmp, f));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, "creating the temporary file", e)),
        }
    }
    Err(Error::invalid(
        target,
        "cannot find a free temporary file name beside it",
    ))
}

/// 16 random bytes from the operating system (GUIDs, temporary names).
pub(crate) fn random_guid() -> [u8; 16] {
    let mut g = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut g) {
        // No OS randomness at all: unique enough for a name or a GUID from time and pid.
        tracing::warn!("no random source ({e}); using the clock");
        use sha1::Digest;
        let seed = format!(
            "{:?} {} {:?}",
            std::time::SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        );
        let h: [u8; 20] = sha1::Sha1::digest(seed.as_bytes()).into();
        g.copy_from_slice(&h[..16]);
    }
    g
}

/// Makes the rename durable; best effort (not every platform can open a directory).
pub(crate) fn sync_parent_dir(target: &Path) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
}

/// Gives the new file `tmp` that will replace `target` the target's permissions and (where
/// the writer may) its owner, so a rebuild never widens who can read the WIM.
#[cfg(unix)]
fn keep_access(file: &File, _tmp: &Path, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(target) else {
        return Ok(());
    };
    // Owner first: changing it may clear set-id bits the mode below restores.
    match std::os::unix::fs::fchown(file, Some(m.uid()), Some(m.gid())) {
        Ok(()) => {}
        // Not root: the file stays the writer's own, as with any copy.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(Error::io(target, "keeping the owner", e)),
    }
    file.set_permissions(m.permissions())
        .map_err(|e| Error::io(target, "keeping the permissions", e))
}

/// Gives the new file `tmp` that will replace `target` the target's security descriptor:
/// its DACL (protected or inheriting as it was) and, where the writer may set them, its
/// owner and group; and its read-only attribute.
#[cfg(windows)]
fn keep_access(file: &File, tmp: &Path, target: &Path) -> Result<()> {
    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        GetNamedSecurityInfoW, SetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorControl, ACL, DACL_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION,
        OWNER_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
        PSID, SE_DACL_PROTECTED, UNPROTECTED_DACL_SECURITY_INFORMATION,
    };
    let Ok(m) = std::fs::metadata(target) else {
        return Ok(());
    };
    let wide = |p: &Path| -> Vec<u16> {
        use std::os::windows::ffi::OsStrExt;
        p.as_os_str().encode_wide().chain(Some(0)).collect()
    };
    let (from, to) = (wide(target), wide(tmp));
    let (mut owner, mut group): (PSID, PSID) = (std::ptr::null_mut(), std::ptr::null_mut());
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    let what = OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    // SAFETY: `from` is NUL-terminated; the out pointers point into `sd`, which the call
    // allocates with LocalAlloc and which is freed below.
    let got = unsafe {
        GetNamedSecurityInfoW(
            from.as_ptr(),
            SE_FILE_OBJECT,
            what,
            &mut owner,
            &mut group,
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if got != ERROR_SUCCESS {
        return Err(Error::io(
            target,
            "reading its security descriptor",
            std::io::Error::from_raw_os_error(got as i32),
        ));
    }
    let (mut control, mut revision) = (0u16, 0u32);
    // SAFETY: `sd` is the descriptor returned above.
    unsafe { GetSecurityDescriptorControl(sd, &mut control, &mut revision) };
    let protection = match control & SE_DACL_PROTECTED {
        0 => UNPROTECTED_DACL_SECURITY_INFORMATION,
        _ => PROTECTED_DACL_SECURITY_INFORMATION,
    };
    let set = |info| {
        // SAFETY: `to` is NUL-terminated; the SIDs and ACL point into `sd`, alive here.
        unsafe {
            SetNamedSecurityInfoW(
                to.as_ptr(),
                SE_FILE_OBJECT,
                info,
                owner,
                group,
                dacl,
                std::ptr::null(),
            )
        }
    };
    // The owner can be given away only with privileges; without them keep the DACL alone.
    let mut r = set(what | protection);
    if r != ERROR_SUCCESS {
        r = set(DACL_SECURITY_INFORMATION | protection);
    }
    // SAFETY: `sd` was allocated by GetNamedSecurityInfoW and is freed once; nothing uses
    // the pointers into it after this.
    unsafe { LocalFree(sd) };
    if r != ERROR_SUCCESS {
        return Err(Error::io(
            target,
            "giving its security descriptor to the new file",
            std::io::Error::from_raw_os_error(r as i32),
        ));
    }
    // Read-only is an attribute, not part of the descriptor (handles already open, like the
    // writer's, can still write).
    file.set_permissions(m.permissions())
        .map_err(|e| Error::io(target, "keeping the permissions", e))
}
