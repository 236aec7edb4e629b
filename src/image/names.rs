//! Which names a file system can hold safely. An image may carry any UTF-16 name; before one
//! becomes a file on disk (apply, extract, a read-write mount) it must be one the target
//! cannot misread as a path, a device or another name.

/// Why `name` cannot be a file name on a Unix file system, if it cannot.
pub fn unix_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == "." || name == ".." {
        Some("the reserved name \".\" or \"..\"")
    } else if name.contains('/') {
        Some("a '/' in its name")
    } else if name.contains('\0') {
        Some("a NUL in its name")
    } else {
        None
    }
}

/// Device names Windows reserves in every directory, with or without an extension.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Why `name` cannot be a file name on Windows (NTFS through the Win32 API), if it cannot:
/// path separators and a drive's or stream's `:` (which would reach outside the target or
/// into a stream), the other characters Windows forbids, control characters, reserved
/// device names, and trailing dots or spaces (which Windows strips, making two names one).
pub fn windows_name_problem(name: &str) -> Option<&'static str> {
    if let Some(p) = unix_name_problem(name) {
        return Some(p);
    }
    if name.contains('\\') {
        return Some("a '\\' in its name");
    }
    if name.contains(':') {
        return Some("a ':' in its name (a drive or stream)");
    }
    if name.contains(['*', '?', '"', '<', '>', '|']) {
        return Some("a character Windows forbids in names (* ? \" < > |)");
    }
    if name.chars().any(|c| (c as u32) < 0x20) {
        return Some("a control character in its name");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("a trailing dot or space");
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return Some("a name Windows reserves for a device");
    }
    None
}

/// Why `name` cannot be a file name on the file systems of this platform, if it cannot.
pub fn native_name_problem(name: &str) -> Option<&'static str> {
    if cfg!(windows) {
        windows_name_problem(name)
    } else {
        unix_name_problem(name)
    }
}

/// `s` for a terminal: control characters (which could move the cursor, retitle the window
/// or hide text) shown as `\xNN` escapes; everything else as it is. JSON output stays exact.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_rules() {
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(unix_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["...", "a\\b", "C:", "con", "x.", "日本語"] {
            assert_eq!(unix_name_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn windows_rules() {
        for bad in [
            "..",
            "a/b",
            "..\\..\\x",
            "C:",
            "C:x",
            "file:stream",
            "a*",
            "q?",
            "\"",
            "<",
            ">",
            "|",
            "tab\t",
            "dot.",
            "space ",
            "CON",
            "con",
            "Con.txt",
            "nul.tar.gz",
            "COM1",
            "lpt9.log",
            "AUX ",
        ] {
            assert!(windows_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in [
            "...a",
            "CONSOLE",
            "com10",
            "lpt",
            "a.b",
            "日本語",
            "x y",
            ".hidden",
            "NUL_",
        ] {
            assert_eq!(windows_name_problem(good), None, "{good:?}");
        }
    }
}
