//! Exit statuses: wimlib-imagex's, so that scripts written for it read wimfs's the same.
//!
//! wimlib-imagex exits 0 on success, with one of libwim's error codes when the library
//! failed, and with 255 when it refused its own input (a malformed update command, for
//! example). Failures that have a wimlib counterpart exit with its code; others with 1.

use wimfs::image::EditKind;

/// A failure with a known exit status; its message is shown as the error.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// wimlib's codes, by the name libwim gives them.
pub mod code {
    /// Bad input to the program itself (wimlib-imagex returns -1).
    pub const USAGE: i32 = 255;
    pub const DECOMPRESSION: i32 = 2;
    pub const INVALID_OVERLAY: i32 = 23;
    pub const INVALID_PARAM: i32 = 24;
    pub const INVALID_IMAGE: i32 = 18;
    pub const INVALID_RESOURCE_HASH: i32 = 28;
    pub const IS_DIRECTORY: i32 = 32;
    pub const NOTDIR: i32 = 40;
    pub const NOTEMPTY: i32 = 41;
    pub const NOT_A_REGULAR_FILE: i32 = 42;
    pub const PATH_DOES_NOT_EXIST: i32 = 49;
    /// (Only `update`, Unix-only for now, reports it.)
    #[cfg_attr(not(unix), allow(dead_code))]
    pub const STAT: i32 = 63;
    pub const UNSUPPORTED: i32 = 68;
}

/// A [`Failure`] as an `anyhow` error.
pub fn failure(code: i32, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

/// The code of an image edit's failure.
pub fn edit_code(kind: EditKind) -> i32 {
    match kind {
        EditKind::NotFound => code::PATH_DOES_NOT_EXIST,
        EditKind::NotDir => code::NOTDIR,
        EditKind::IsDir => code::IS_DIRECTORY,
        EditKind::NotEmpty => code::NOTEMPTY,
        EditKind::Exists => code::INVALID_OVERLAY,
        EditKind::BadName => code::INVALID_PARAM,
    }
}

/// The exit status for an error: the first cause in its chain with a known code, else 1.
pub fn exit_status(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if let Some(e) = cause.downcast_ref::<wimfs::Error>() {
            match e {
                wimfs::Error::Edit { cause, .. } => return edit_code(cause.kind),
                wimfs::Error::NotFound(_) => return code::INVALID_IMAGE,
                wimfs::Error::HashMismatch { .. } => return code::INVALID_RESOURCE_HASH,
                wimfs::Error::Decompress { .. } => return code::DECOMPRESSION,
                _ => {}
            }
        }
    }
    1
}
