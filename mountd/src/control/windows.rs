//! The control channel on Windows: a named pipe per mount, named from the user's secret key
//! (wimfs::mount_proto::windows), so other users can neither predict nor take the name.
//!
//! The pipe's ACL grants only the mounting user (see [`super::pipe_sddl`]); it is created as
//! the first instance of its name (so nobody can have planted one) and rejects remote clients.
//! Clients check that the serving process runs as their user.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::windows::io::{AsRawHandle, FromRawHandle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
pub use wimfs::mount_proto::windows::{pipe_name, request, user_sid};
use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_PIPE_CONNECTED, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
use windows_sys::Win32::Storage::FileSystem::{
    FlushFileBuffers, FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, PIPE_READMODE_BYTE,
    PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
};

use super::{pipe_sddl, reply_to, unmount_refusal, ControlError, Mounted, Status};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// A security descriptor built from SDDL, freed on drop.
pub(crate) struct Descriptor(PSECURITY_DESCRIPTOR);

impl Descriptor {
    pub(crate) fn from_sddl(sddl: &str) -> std::io::Result<Descriptor> {
        let text = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; `sd` receives a LocalAlloc'd descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Descriptor(sd))
    }
}

impl Descriptor {
    /// The descriptor, for a SECURITY_ATTRIBUTES.
    pub(crate) fn as_ptr(&self) -> PSECURITY_DESCRIPTOR {
        self.0
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW, freed once.
        unsafe { LocalFree(self.0) };
    }
}

/// The listening side, owned by the daemon.
pub struct Control {
    pipe: File,
    name: String,
}

impl Control {
    /// Creates the pipe for `mountpoint`, refusing if a live daemon already serves it.
    pub fn bind(mountpoint: &str) -> Result<Control, ControlError> {
        let name =
            pipe_name(mountpoint).map_err(|e| ControlError::Bind(PathBuf::from(mountpoint), e))?;
        if let Ok(line) = request(Path::new(&name), "status", Duration::from_secs(5)) {
            if let Ok(s) = Status::parse(&line) {
                return Err(ControlError::AlreadyMounted(mountpoint.into(), s.pid));
            }
        }
        let bind_err = |e| ControlError::Bind(PathBuf::from(&name), e);
        let sd =
            Descriptor::from_sddl(&pipe_sddl(&user_sid().map_err(bind_err)?)).map_err(bind_err)?;
        let sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd.0,
            bInheritHandle: 0,
        };
        let wname = wide(&name);
        // SAFETY: `wname` is NUL-terminated and `sa` (with the descriptor it points to) lives
        // for the call; the returned handle is owned by the File below.
        let h = unsafe {
            CreateNamedPipeW(
                wname.as_ptr(),
                PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                4096,
                4096,
                0,
                &sa,
            )
        };
        if h == INVALID_HANDLE_VALUE {
            return Err(bind_err(std::io::Error::last_os_error()));
        }
        // SAFETY: `h` is a fresh, valid pipe handle that nothing else owns.
        let pipe = unsafe { File::from_raw_handle(h) };
        Ok(Control { pipe, name })
    }

    /// Name of the pipe.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Serves requests on a background thread until the process exits. `unmount(lazy)` is
    /// called for an accepted unmount request (the daemon then unmounts and exits).
    pub fn serve(
        self,
        fs: Arc<dyn Mounted>,
        status: Status,
        unmount: Box<dyn Fn(bool) + Send>,
    ) -> Served {
        let served = Served {
            busy: Arc::new(Mutex::new(())),
        };
        let busy = Arc::clone(&served.busy);
        let pipe = self.pipe;
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || loop {
                let h = pipe.as_raw_handle();
                // SAFETY: `h` is the pipe handle `pipe` owns for this whole loop.
                let connected = unsafe { ConnectNamedPipe(h, std::ptr::null_mut()) } != 0
                    // SAFETY: reads this thread's last error, no preconditions.
                    || unsafe { GetLastError() } == ERROR_PIPE_CONNECTED;
                if !connected {
                    tracing::warn!("control pipe: {}", std::io::Error::last_os_error());
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                {
                    let _busy = busy.lock();
                    let mut line = String::new();
                    let r = BufReader::new(&pipe).read_line(&mut line).and_then(|_| {
                        let reply = reply_to(&line, &*fs, &status, &|lazy| {
                            if let Some(no) = unmount_refusal(fs.open_files(), lazy) {
                                return no;
                            }
                            unmount(lazy);
                            "ok".to_string()
                        });
                        (&pipe).write_all(format!("{reply}\n").as_bytes())
                    });
                    if let Err(e) = r {
                        tracing::warn!("control request failed: {e}");
                    }
                    // SAFETY: as above; flushing lets the client read the whole reply
                    // before the disconnect discards unread data.
                    unsafe {
                        FlushFileBuffers(h);
                        DisconnectNamedPipe(h);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the control thread: {e}");
        }
        served
    }
}

/// A running control thread.
pub struct Served {
    /// Held while a request is handled, so that the daemon does not exit between
    /// unmounting and sending the reply.
    busy: Arc<Mutex<()>>,
}

impl Served {
    /// Waits for a request in progress; the pipe goes away with the process.
    pub fn finish(self) {
        let _done = self.busy.lock();
    }
}
