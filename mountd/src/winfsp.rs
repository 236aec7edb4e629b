//! The WinFsp adapter: translates WinFsp requests into [`WinOps`] calls, for read-only and
//! read-write mounts alike. No rules here; see [`crate::core::wininfo`] for what Windows is
//! shown and why, and `core/rw_win.rs` for the changes.

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use winfsp::filesystem::{
    DirInfo, DirMarker, FileInfo, FileSecurity, FileSystemContext, ModificationDescriptor,
    OpenFileInfo, StreamInfo, VolumeInfo, WideNameInfo,
};
use winfsp::host::{FileSystemHost, VolumeParams};
use winfsp::{FspError, U16CStr};

use crate::core::wininfo::{copy_into, nt};
use crate::core::{guarded, BasicInfo, Errno, NewFile, SetAttr, WinInfo, WinOps};

/// An open file or directory: the node, and the core's handle for files and streams.
pub struct WinHandle {
    ino: u64,
    fh: Option<u64>,
}

/// A mounted image served over WinFsp.
pub struct WinFs {
    fs: Arc<dyn WinOps>,
}

type WinResult<T> = winfsp::Result<T>;

fn status(code: i32) -> FspError {
    FspError::NTSTATUS(code)
}

fn errno(e: Errno) -> FspError {
    status(e.nt_status())
}

/// CreateOptions bit: the new file is a directory.
const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
/// `SetBasicInfo`'s "leave the attributes alone".
const INVALID_FILE_ATTRIBUTES: u32 = u32::MAX;
/// `Cleanup` flag: the file was marked for deletion and its last handle closed.
const CLEANUP_DELETE: u32 = 0x01;

/// A WinFsp name as UTF-8. WIM names are valid Unicode, so a name that is not can only be
/// missing.
fn name(s: &U16CStr) -> WinResult<String> {
    s.to_string().map_err(|_| errno(Errno::ENOENT))
}

fn fill(out: &mut FileInfo, w: &WinInfo) {
    out.file_attributes = w.attributes;
    out.reparse_tag = w.reparse_tag;
    out.allocation_size = w.allocation_size;
    out.file_size = w.size;
    out.creation_time = w.creation_time;
    out.last_access_time = w.last_access_time;
    out.last_write_time = w.last_write_time;
    out.change_time = w.change_time;
    out.index_number = w.index_number;
    out.hard_links = 0;
    out.ea_size = 0;
}

/// Views WinFsp's descriptor buffer as bytes.
fn bytes_of(buf: &mut [c_void]) -> &mut [u8] {
    // SAFETY: `c_void` is one byte wide, so the slice covers exactly `buf.len()` bytes of
    // memory WinFsp lent us for writing; the borrow keeps it exclusive.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len()) }
}

/// Views a descriptor WinFsp passes in as bytes.
fn bytes_in(buf: &[c_void]) -> &[u8] {
    // SAFETY: as `bytes_of`, read-only.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len()) }
}

/// `current` with `modification` applied to the parts `info` names, as WinFsp merges them.
fn merged_descriptor(
    current: &[u8],
    info: u32,
    modification: &ModificationDescriptor,
) -> WinResult<Vec<u8>> {
    use winfsp_sys::{FspDeleteSecurityDescriptor, FspSetSecurityDescriptor, PSECURITY_DESCRIPTOR};
    let mut input = current.to_vec();
    let mut out: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `input` is a well-formed self-relative descriptor (the core hands out no
    // other) that lives for the call; the modification descriptor is WinFsp's, valid for
    // this request; `out` receives a descriptor freed below.
    let rc = unsafe {
        FspSetSecurityDescriptor(
            input.as_mut_ptr().cast(),
            info,
            modification.as_mut_ptr().cast(),
            &mut out,
        )
    };
    if rc < 0 {
        return Err(status(rc));
    }
    // SAFETY: `out` is the valid descriptor just made.
    let len = unsafe { windows_sys::Win32::Security::GetSecurityDescriptorLength(out.cast()) };
    // SAFETY: `out` points to `len` readable bytes.
    let merged = unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len as usize) }.to_vec();
    type Make = unsafe extern "C" fn(
        PSECURITY_DESCRIPTOR,
        u32,
        PSECURITY_DESCRIPTOR,
        *mut PSECURITY_DESCRIPTOR,
    ) -> i32;
    // SAFETY: WinFsp identifies the allocator by the function that made the descriptor,
    // passed as a generic function pointer as its C API does; `out` is freed once.
    unsafe {
        let make = std::mem::transmute::<Make, unsafe extern "C" fn() -> i32>(
            FspSetSecurityDescriptor as Make,
        );
        FspDeleteSecurityDescriptor(out, Some(make));
    }
    Ok(merged)
}

impl WinFs {
    /// Wraps the core for WinFsp.
    pub fn new(fs: Arc<dyn WinOps>) -> Self {
        WinFs { fs }
    }

    fn resolve(&self, file_name: &U16CStr) -> WinResult<crate::core::Resolved> {
        let name = name(file_name)?;
        guarded("resolve_win_path", || self.fs.resolve_win_path(&name)).map_err(errno)
    }

    fn info(&self, ino: u64) -> WinResult<WinInfo> {
        guarded("win_info", || self.fs.win_info(ino)).map_err(errno)
    }

    fn refill(&self, ino: u64, out: &mut FileInfo) -> WinResult<()> {
        fill(out, &self.info(ino)?);
        Ok(())
    }

    fn copy_descriptor(&self, ino: u64, buf: Option<&mut [c_void]>) -> WinResult<u64> {
        let sd = guarded("win_security", || self.fs.win_security(ino)).map_err(errno)?;
        if let Some(buf) = buf {
            copy_into(&sd, bytes_of(buf)).map_err(|_| status(nt::STATUS_BUFFER_OVERFLOW))?;
        }
        Ok(sd.len() as u64)
    }

    fn copy_reparse(&self, ino: u64, buf: &mut [u8]) -> WinResult<u64> {
        let rp = guarded("reparse_point", || self.fs.reparse_point(ino)).map_err(errno)?;
        copy_into(&rp, buf)
            .map(|n| n as u64)
            .map_err(|_| status(nt::STATUS_BUFFER_TOO_SMALL))
    }

    /// What a change the core cannot make answers: write-protected on a read-only mount,
    /// not supported on a read-write one.
    fn unsupported(&self) -> FspError {
        match self.fs.writable() {
            true => status(nt::STATUS_NOT_SUPPORTED),
            false => errno(Errno::EROFS),
        }
    }

    fn set_size(&self, ino: u64, size: u64) -> WinResult<()> {
        let a = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        guarded("setattr", || self.fs.setattr(ino, &a))
            .map(drop)
            .map_err(errno)
    }
}

impl FileSystemContext for WinFs {
    type FileContext = WinHandle;

    fn get_security_by_name(
        &self,
        file_name: &U16CStr,
        security_descriptor: Option<&mut [c_void]>,
        reparse_point_resolver: impl FnOnce(&U16CStr) -> Option<FileSecurity>,
    ) -> WinResult<FileSecurity> {
        if let Some(through_link) = reparse_point_resolver(file_name) {
            return Ok(through_link);
        }
        let r = self.resolve(file_name)?;
        let info = self.info(r.ino)?;
        Ok(FileSecurity {
            reparse: false,
            sz_security_descriptor: self.copy_descriptor(r.ino, security_descriptor)?,
            attributes: info.attributes,
        })
    }

    fn open(
        &self,
        file_name: &U16CStr,
        _create_options: u32,
        granted_access: u32,
        file_info: &mut OpenFileInfo,
    ) -> WinResult<WinHandle> {
        let r = self.resolve(file_name)?;
        let info = self.info(r.ino)?;
        let fh = guarded("win_open", || self.fs.win_open(r.ino, granted_access)).map_err(errno)?;
        fill(file_info.as_mut(), &info);
        if let Some(n) = &r.normalized {
            let wide: Vec<u16> = n.encode_utf16().collect();
            file_info.set_normalized_name(&wide, None);
        }
        Ok(WinHandle { ino: r.ino, fh })
    }

    fn close(&self, context: WinHandle) {
        if let Some(fh) = context.fh {
            self.fs.release(fh);
        }
    }

    fn get_file_info(&self, context: &WinHandle, file_info: &mut FileInfo) -> WinResult<()> {
        self.refill(context.ino, file_info)
    }

    fn get_security(
        &self,
        context: &WinHandle,
        security_descriptor: Option<&mut [c_void]>,
    ) -> WinResult<u64> {
        self.copy_descriptor(context.ino, security_descriptor)
    }

    fn read(&self, context: &WinHandle, buffer: &mut [u8], offset: u64) -> WinResult<u32> {
        let fh = context.fh.ok_or_else(|| errno(Errno::EISDIR))?;
        let want = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        let data = guarded("read", || self.fs.read(fh, offset, want)).map_err(errno)?;
        if data.is_empty() && want > 0 {
            return Err(status(nt::STATUS_END_OF_FILE));
        }
        buffer[..data.len()].copy_from_slice(&data);
        Ok(data.len() as u32)
    }

    fn read_directory(
        &self,
        context: &WinHandle,
        pattern: Option<&U16CStr>,
        marker: DirMarker,
        buffer: &mut [u8],
    ) -> WinResult<u32> {
        let pattern = pattern.map(name).transpose()?;
        let marker = marker.inner_as_cstr().map(name).transpose()?;
        let mut cursor = 0u32;
        let mut full = false;
        let mut failed = None;
        let listed = guarded("win_readdir", || {
            self.fs.win_readdir(
                context.ino,
                marker.as_deref(),
                pattern.as_deref(),
                &mut |e| {
                    let info = match self.fs.win_info(e.ino) {
                        Ok(i) => i,
                        Err(err) => {
                            failed = Some(err);
                            return true;
                        }
                    };
                    let mut entry: DirInfo = DirInfo::new();
                    fill(entry.file_info_mut(), &info);
                    let wide: Vec<u16> = e.name.encode_utf16().collect();
                    if entry.set_name_raw(wide.as_slice()).is_err() {
                        tracing::warn!("{:?}: name too long for Windows, not listed", e.name);
                        return false;
                    }
                    full = !entry.append_to_buffer(buffer, &mut cursor);
                    full
                },
            )
        });
        listed.map_err(errno)?;
        if let Some(err) = failed {
            return Err(errno(err));
        }
        if !full {
            DirInfo::<255>::finalize_buffer(buffer, &mut cursor);
        }
        Ok(cursor)
    }

    fn get_volume_info(&self, out_volume_info: &mut VolumeInfo) -> WinResult<()> {
        let v = self.fs.win_volume();
        out_volume_info.total_size = v.total_size;
        out_volume_info.free_size = v.free_size;
        out_volume_info.set_volume_label(&v.label);
        Ok(())
    }

    fn get_stream_info(&self, context: &WinHandle, buffer: &mut [u8]) -> WinResult<u32> {
        let mut cursor = 0u32;
        for s in guarded("win_streams", || self.fs.win_streams(context.ino)).map_err(errno)? {
            let mut info: StreamInfo = StreamInfo::new();
            info.stream_size = s.size;
            info.stream_alloc_size = s.allocation_size;
            let wide: Vec<u16> = s.name.encode_utf16().collect();
            if info.set_name_raw(wide.as_slice()).is_err() {
                continue;
            }
            if !info.append_to_buffer(buffer, &mut cursor) {
                return Ok(cursor);
            }
        }
        StreamInfo::<255>::finalize_buffer(buffer, &mut cursor);
        Ok(cursor)
    }

    fn get_reparse_point_by_name(
        &self,
        file_name: &U16CStr,
        _is_directory: bool,
        buffer: &mut [u8],
    ) -> WinResult<u64> {
        let r = self.resolve(file_name)?;
        self.copy_reparse(r.ino, buffer)
    }

    fn get_reparse_point(
        &self,
        context: &WinHandle,
        _file_name: &U16CStr,
        buffer: &mut [u8],
    ) -> WinResult<u64> {
        self.copy_reparse(context.ino, buffer)
    }

    fn flush(&self, context: Option<&WinHandle>, file_info: &mut FileInfo) -> WinResult<()> {
        if let Some(c) = context {
            guarded("fsync", || self.fs.fsync(c.ino)).map_err(errno)?;
            self.refill(c.ino, file_info)?;
        }
        Ok(())
    }

    // Changes: a read-only mount's core refuses them all (EROFS); its volume is flagged
    // read-only too, so the driver rarely lets one through at all.

    fn create(
        &self,
        file_name: &U16CStr,
        create_options: u32,
        _granted_access: u32,
        file_attributes: u32,
        security_descriptor: Option<&[c_void]>,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        extra_buffer_is_reparse_point: bool,
        file_info: &mut OpenFileInfo,
    ) -> WinResult<WinHandle> {
        if extra_buffer_is_reparse_point {
            return Err(self.unsupported());
        }
        let path = name(file_name)?;
        let new = NewFile {
            directory: create_options & FILE_DIRECTORY_FILE != 0,
            attributes: file_attributes,
            security: security_descriptor.map(bytes_in),
        };
        let (ino, fh) = guarded("win_create", || self.fs.win_create(&path, new)).map_err(errno)?;
        fill(file_info.as_mut(), &self.info(ino)?);
        Ok(WinHandle { ino, fh })
    }

    fn overwrite(
        &self,
        context: &WinHandle,
        file_attributes: u32,
        replace_file_attributes: bool,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        file_info: &mut FileInfo,
    ) -> WinResult<()> {
        let ino = context.ino;
        self.set_size(ino, 0)?;
        let attributes = match replace_file_attributes {
            true => file_attributes,
            false => self.info(ino)?.attributes | file_attributes,
        };
        let basic = BasicInfo {
            attributes: Some(attributes),
            ..BasicInfo::default()
        };
        guarded("win_set_basic", || self.fs.win_set_basic(ino, basic)).map_err(errno)?;
        self.refill(ino, file_info)
    }

    fn write(
        &self,
        context: &WinHandle,
        buffer: &[u8],
        offset: u64,
        write_to_eof: bool,
        constrained_io: bool,
        file_info: &mut FileInfo,
    ) -> WinResult<u32> {
        let ino = context.ino;
        // The size matters only to these two kinds of write; others skip the lookup.
        let size = match write_to_eof || constrained_io {
            true => self.info(ino)?.size,
            false => 0,
        };
        let offset = if write_to_eof { size } else { offset };
        let mut data = buffer;
        if constrained_io {
            // Paging writes never extend the file.
            let room = size.saturating_sub(offset);
            data = &buffer[..buffer
                .len()
                .min(usize::try_from(room).unwrap_or(usize::MAX))];
            if data.is_empty() {
                self.refill(ino, file_info)?;
                return Ok(0);
            }
        }
        let n = guarded("write", || self.fs.write(ino, offset, data)).map_err(errno)?;
        self.refill(ino, file_info)?;
        Ok(n)
    }

    fn set_basic_info(
        &self,
        context: &WinHandle,
        file_attributes: u32,
        creation_time: u64,
        last_access_time: u64,
        last_write_time: u64,
        _last_change_time: u64,
        file_info: &mut FileInfo,
    ) -> WinResult<()> {
        // 0 leaves a time alone; there is no change time to keep.
        let time = |t: u64| (t != 0).then_some(t);
        let basic = BasicInfo {
            attributes: (file_attributes != INVALID_FILE_ATTRIBUTES).then_some(file_attributes),
            creation_time: time(creation_time),
            last_access_time: time(last_access_time),
            last_write_time: time(last_write_time),
        };
        guarded("win_set_basic", || {
            self.fs.win_set_basic(context.ino, basic)
        })
        .map_err(errno)?;
        self.refill(context.ino, file_info)
    }

    fn set_file_size(
        &self,
        context: &WinHandle,
        new_size: u64,
        set_allocation_size: bool,
        file_info: &mut FileInfo,
    ) -> WinResult<()> {
        let ino = context.ino;
        // Allocation is not kept; only an allocation below the data's size cuts it.
        if !set_allocation_size || new_size < self.info(ino)?.size {
            self.set_size(ino, new_size)?;
        }
        self.refill(ino, file_info)
    }

    fn set_delete(
        &self,
        _context: &WinHandle,
        file_name: &U16CStr,
        delete_file: bool,
    ) -> WinResult<()> {
        if !delete_file {
            return Ok(());
        }
        let path = name(file_name)?;
        guarded("win_can_delete", || self.fs.win_can_delete(&path)).map_err(errno)
    }

    fn cleanup(&self, _context: &WinHandle, file_name: Option<&U16CStr>, flags: u32) {
        if flags & CLEANUP_DELETE == 0 {
            return;
        }
        let Some(path) = file_name.and_then(|f| f.to_string().ok()) else {
            return;
        };
        if let Err(e) = guarded("win_delete", || self.fs.win_delete(&path)) {
            tracing::warn!("{path}: cannot delete: {e}");
        }
    }

    fn rename(
        &self,
        _context: &WinHandle,
        file_name: &U16CStr,
        new_file_name: &U16CStr,
        replace_if_exists: bool,
    ) -> WinResult<()> {
        let (from, to) = (name(file_name)?, name(new_file_name)?);
        guarded("win_rename", || {
            self.fs.win_rename(&from, &to, replace_if_exists)
        })
        .map_err(errno)
    }

    fn set_security(
        &self,
        context: &WinHandle,
        security_information: u32,
        modification_descriptor: ModificationDescriptor,
    ) -> WinResult<()> {
        if !self.fs.writable() {
            return Err(errno(Errno::EROFS));
        }
        let ino = context.ino;
        let current = guarded("win_security", || self.fs.win_security(ino)).map_err(errno)?;
        let merged = merged_descriptor(&current, security_information, &modification_descriptor)?;
        guarded("win_set_security", || {
            self.fs.win_set_security(ino, &merged)
        })
        .map_err(errno)
    }

    fn set_reparse_point(
        &self,
        _context: &WinHandle,
        _file_name: &U16CStr,
        _buffer: &[u8],
    ) -> WinResult<()> {
        Err(self.unsupported())
    }

    fn delete_reparse_point(
        &self,
        _context: &WinHandle,
        _file_name: &U16CStr,
        _buffer: &[u8],
    ) -> WinResult<()> {
        Err(self.unsupported())
    }

    fn set_volume_label(
        &self,
        _volume_label: &U16CStr,
        _volume_info: &mut VolumeInfo,
    ) -> WinResult<()> {
        Err(self.unsupported())
    }
}

/// How the volume presents itself.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// Look names up ignoring case (WinFsp then does too).
    pub case_insensitive: bool,
    /// Volume serial number, stable for one WIM image.
    pub serial: u32,
    /// FILETIME shown as the volume's creation time.
    pub created: u64,
}

/// A mounted file system; dropping it unmounts.
pub struct Mounted {
    host: FileSystemHost<WinFs>,
}

impl Mounted {
    /// Unmounts and stops serving.
    pub fn unmount(self) {
        // The host's drop unmounts, stops the dispatcher and frees the file system, in that
        // order.
        drop(self.host);
    }
}

/// Mounts `fs` on `mountpoint` (a drive letter like `M:` or a directory that does not exist
/// yet, as WinFsp requires) and starts serving, read-write if `fs` takes changes.
pub fn mount(fs: Arc<dyn WinOps>, mountpoint: &str, opts: &VolumeOptions) -> Result<Mounted> {
    let writable = fs.writable();
    let mut params = VolumeParams::new();
    params
        .filesystem_name("wimfs")
        .sector_size(512)
        .sectors_per_allocation_unit(8)
        .max_component_length(255)
        .volume_creation_time(opts.created)
        .volume_serial_number(opts.serial)
        // Every change goes through this driver, so its caches stay true: keep everything
        // (a read-write mount re-asks after a second, as its FUSE side does).
        .file_info_timeout(if writable { 1000 } else { u32::MAX })
        .case_sensitive_search(!opts.case_insensitive)
        .case_preserved_names(true)
        .unicode_on_disk(true)
        .persistent_acls(true)
        .reparse_points(true)
        .named_streams(true)
        .read_only_volume(!writable)
        .pass_query_directory_pattern(true)
        .post_cleanup_when_modified_only(true);
    let mut host: FileSystemHost<WinFs> = FileSystemHost::new(params, WinFs::new(fs))
        .map_err(|e| anyhow::anyhow!("cannot create the WinFsp file system: {e}"))?;
    host.mount(mountpoint)
        .map_err(|e| anyhow::anyhow!("{mountpoint}: cannot mount: {e}"))?;
    if let Err(e) = host.start() {
        host.unmount();
        bail!("{mountpoint}: cannot start the WinFsp dispatcher: {e}");
    }
    Ok(Mounted { host })
}

/// Loads the WinFsp DLL from WinFsp's installation directory (the registry says where), then
/// lets the winfsp crate initialize; the DLL is delay-loaded and not on PATH by default.
pub fn init() -> Result<()> {
    if let Some(dll) = installed_dll() {
        let wide: Vec<u16> = dll.as_os_str().encode_wide_nul();
        // SAFETY: `wide` is a NUL-terminated UTF-16 path that outlives the call.
        let h = unsafe { windows_sys::Win32::System::LibraryLoader::LoadLibraryW(wide.as_ptr()) };
        if h.is_null() {
            tracing::debug!("{}: cannot load", dll.display());
        }
    }
    winfsp::winfsp_init().map_err(|e| {
        anyhow::anyhow!("WinFsp is not installed (or its DLL cannot be loaded): {e}; install it from winfsp.dev")
    })?;
    Ok(())
}

trait EncodeWideNul {
    fn encode_wide_nul(&self) -> Vec<u16>;
}

impl EncodeWideNul for std::ffi::OsStr {
    fn encode_wide_nul(&self) -> Vec<u16> {
        use std::os::windows::ffi::OsStrExt;
        self.encode_wide().chain(Some(0)).collect()
    }
}

fn installed_dll() -> Option<PathBuf> {
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};
    let value: Vec<u16> = "InstallDir".encode_utf16().chain(Some(0)).collect();
    for key in ["SOFTWARE\\WOW6432Node\\WinFsp", "SOFTWARE\\WinFsp"] {
        let key: Vec<u16> = key.encode_utf16().chain(Some(0)).collect();
        let mut buf = vec![0u16; 1024];
        let mut size = (buf.len() * 2) as u32;
        // SAFETY: key and value are NUL-terminated; `buf` has `size` writable bytes and
        // `size` is updated to the bytes written.
        let rc = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                buf.as_mut_ptr().cast(),
                &mut size,
            )
        };
        if rc != 0 {
            continue;
        }
        let len = (size as usize / 2).min(buf.len());
        let dir = String::from_utf16_lossy(&buf[..len]);
        let dir = dir.trim_end_matches('\0');
        let arch = if cfg!(target_arch = "aarch64") {
            "a64"
        } else if cfg!(target_arch = "x86") {
            "x86"
        } else {
            "x64"
        };
        return Some(
            PathBuf::from(dir)
                .join("bin")
                .join(format!("winfsp-{arch}.dll")),
        );
    }
    None
}
