//! Windows mountpoints: a drive letter (`M:`) or a directory.
//!
//! WinFsp creates a directory mountpoint itself and wants it absent; `wimfs mount` accepts an
//! empty directory as on Linux, so the daemon removes it before mounting and puts it back after.

/// Where a Windows mount goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WinMountpoint {
    /// A drive letter, upper case.
    Drive(char),
    /// A directory path, as given.
    Directory(String),
}

impl WinMountpoint {
    /// Parses `M:`, `m:` or `M:\` as a drive and anything else as a directory. A
    /// drive-relative path (`M:dir`) is refused: it depends on the current directory of M:.
    pub fn parse(s: &str) -> Result<WinMountpoint, String> {
        let b = s.as_bytes();
        if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
            return match &s[2..] {
                "" | "\\" | "/" => Ok(WinMountpoint::Drive(b[0].to_ascii_uppercase() as char)),
                rest if !rest.starts_with(['\\', '/']) => Err(format!(
                    "{s}: a drive-relative path; give a drive letter (M:) or a full path"
                )),
                _ => Ok(WinMountpoint::Directory(s.to_string())),
            };
        }
        if s.is_empty() {
            return Err("empty mountpoint".into());
        }
        Ok(WinMountpoint::Directory(s.to_string()))
    }

    /// The name WinFsp mounts on and the control channel is keyed by: `M:` for a drive.
    pub fn name(&self) -> String {
        match self {
            WinMountpoint::Drive(c) => format!("{c}:"),
            WinMountpoint::Directory(d) => d.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_and_directories() {
        assert_eq!(WinMountpoint::parse("m:"), Ok(WinMountpoint::Drive('M')));
        assert_eq!(WinMountpoint::parse("X:\\"), Ok(WinMountpoint::Drive('X')));
        assert_eq!(WinMountpoint::parse("X:\\"), WinMountpoint::parse("x:/"));
        assert_eq!(WinMountpoint::parse("m:").unwrap().name(), "M:");
        assert_eq!(
            WinMountpoint::parse("C:\\mnt\\w"),
            Ok(WinMountpoint::Directory("C:\\mnt\\w".into()))
        );
        assert_eq!(
            WinMountpoint::parse("mnt\\w"),
            Ok(WinMountpoint::Directory("mnt\\w".into()))
        );
        assert!(WinMountpoint::parse("C:mnt").is_err());
        assert!(WinMountpoint::parse("").is_err());
    }
}
