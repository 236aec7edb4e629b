//! Windows path names as WinFsp passes them: `\dir\file`, `\dir\file:stream`,
//! `\dir\file:stream:$DATA`, `\dir\file::$DATA`.

use super::{Errno, FsResult};

/// A parsed path: its components and the named stream, if one was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinPath<'a> {
    /// Components below the root, in order; empty for the root itself.
    pub components: Vec<&'a str>,
    /// The named data stream; `None` for the file's unnamed stream (`file` or `file::$DATA`).
    pub stream: Option<&'a str>,
}

/// Splits a WinFsp file name into components and stream.
///
/// Empty components (doubled or trailing backslashes) are ignored, as the Windows object
/// manager does. Only the last component may name a stream; the stream type, if given, must be
/// `$DATA` (any case), the only type a WIM stores. Errors are `EINVAL` (an invalid name).
pub fn parse_win_path(path: &str) -> FsResult<WinPath<'_>> {
    let mut components: Vec<&str> = path.split('\\').filter(|c| !c.is_empty()).collect();
    let Some(last) = components.pop() else {
        return Ok(WinPath {
            components,
            stream: None,
        });
    };
    if components.iter().any(|c| c.contains(':')) {
        return Err(Errno::EINVAL);
    }
    let Some((base, spec)) = last.split_once(':') else {
        components.push(last);
        return Ok(WinPath {
            components,
            stream: None,
        });
    };
    let (name, kind) = match spec.split_once(':') {
        Some((name, kind)) => (name, Some(kind)),
        None => (spec, None),
    };
    if let Some(kind) = kind {
        if !kind.eq_ignore_ascii_case("$DATA") {
            return Err(Errno::EINVAL);
        }
    } else if name.is_empty() {
        // `file:` names no stream at all.
        return Err(Errno::EINVAL);
    }
    if base.is_empty() && !components.is_empty() {
        return Err(Errno::EINVAL);
    }
    if !base.is_empty() {
        components.push(base);
    }
    Ok(WinPath {
        components,
        stream: (!name.is_empty()).then_some(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> FsResult<(Vec<&str>, Option<&str>)> {
        parse_win_path(path).map(|w| (w.components, w.stream))
    }

    #[test]
    fn plain_paths() {
        assert_eq!(p("\\"), Ok((vec![], None)));
        assert_eq!(p(""), Ok((vec![], None)));
        assert_eq!(p("\\a\\b.txt"), Ok((vec!["a", "b.txt"], None)));
        assert_eq!(p("\\a\\\\b\\"), Ok((vec!["a", "b"], None)));
    }

    #[test]
    fn streams() {
        assert_eq!(p("\\f.txt:s"), Ok((vec!["f.txt"], Some("s"))));
        assert_eq!(
            p("\\d\\f:Zone.Identifier:$DATA"),
            Ok((vec!["d", "f"], Some("Zone.Identifier")))
        );
        assert_eq!(p("\\f:s:$data"), Ok((vec!["f"], Some("s"))));
        assert_eq!(p("\\f::$DATA"), Ok((vec!["f"], None)));
        // A stream of the root directory.
        assert_eq!(p("\\:s"), Ok((vec![], Some("s"))));
        assert_eq!(p("\\f:s.with.dots"), Ok((vec!["f"], Some("s.with.dots"))));
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "\\f:",
            "\\f:s:$INDEX_ALLOCATION",
            "\\f:s:$DATA:x",
            "\\d:s\\f",
            "\\d\\:s",
            "\\f::",
        ] {
            assert_eq!(p(bad), Err(Errno::EINVAL), "{bad}");
        }
    }
}
