//! Capture configuration files (`--config FILE`), in wimlib's INI-style format:
//! `[ExclusionList]` globs leave paths out of a capture, `[ExclusionException]` globs bring
//! them back. A glob starting with `/` (or `\`) is a path from the capture root; any other
//! glob matches a file name in any directory. `*` and `?` never match across a `/`. A matched
//! directory takes its whole subtree with it. Lines starting with `#` or `;` are comments;
//! globs may be quoted. Other sections (such as `[PrepopulateList]`) are accepted and ignored.

use std::path::Path;

use crate::error::{Error, Result};

/// One glob of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    /// Path components for an absolute glob; a single name pattern for a relative one.
    parts: Vec<String>,
    absolute: bool,
}

/// What the configuration says about one path, given what it said about the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Captured as usual.
    Normal,
    /// Captured, with everything below it: an exception matched it or a parent.
    Forced,
    /// Left out, but a directory to walk: an exception may match something below it.
    Excluded,
}

/// The exclusion rules of a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureConfig {
    exclude: Vec<Glob>,
    exceptions: Vec<Glob>,
}

/// What a capture without a configuration file leaves out, as wimlib-imagex does on every
/// system: the files and directories of a Windows volume that are not part of the system
/// (paging and hibernation files, restore points, recycle bins, offline files cache).
const WINDOWS_DEFAULT: &str = "[ExclusionList]
/$ntfs.log
/hiberfil.sys
/pagefile.sys
/swapfile.sys
/System Volume Information
/RECYCLER
/$RECYCLE.BIN
/$Recycle.Bin
/Windows/CSC
";

impl CaptureConfig {
    /// The rules a capture without `--config` follows (see `WINDOWS_DEFAULT`).
    pub fn windows_default() -> CaptureConfig {
        Self::parse(WINDOWS_DEFAULT).expect("the default configuration parses")
    }

    /// Reads a configuration file (UTF-8, or UTF-16LE with a byte order mark).
    pub fn load(path: &Path) -> Result<CaptureConfig> {
        let raw = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
        let text = if raw.starts_with(&[0xff, 0xfe]) {
            let units: Vec<u16> = raw[2..]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units)
                .map_err(|_| Error::invalid(path, "is not valid UTF-16LE text"))?
        } else {
            String::from_utf8(raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&raw).to_vec())
                .map_err(|_| Error::invalid(path, "is not valid UTF-8 text"))?
        };
        Self::parse(&text).map_err(|e| Error::invalid(path, e))
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> std::result::Result<CaptureConfig, String> {
        let mut cfg = CaptureConfig::default();
        let mut section: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {}: unclosed section name", n + 1))?;
                section = Some(name.trim().to_ascii_lowercase());
                continue;
            }
            let glob = parse_glob(line);
            match section.as_deref() {
                Some("exclusionlist") => cfg.exclude.extend(glob),
                Some("exclusionexception") => cfg.exceptions.extend(glob),
                Some(_) => {}
                None => return Err(format!("line {}: a glob before any [Section]", n + 1)),
            }
        }
        Ok(cfg)
    }

    /// Decides about `path` (from the capture root, like `/dir/file`) whose parent got
    /// `parent`. `None` leaves it out.
    pub fn filter(&self, path: &str, parent: Filter) -> Option<Filter> {
        if self.exceptions.iter().any(|g| g.matches(path)) {
            return Some(Filter::Forced);
        }
        match parent {
            Filter::Forced => Some(Filter::Forced),
            Filter::Excluded => self.may_include_below(path).then_some(Filter::Excluded),
            Filter::Normal if self.exclude.iter().any(|g| g.matches(path)) => {
                self.may_include_below(path).then_some(Filter::Excluded)
            }
            Filter::Normal => Some(Filter::Normal),
        }
    }

    /// Whether an absolute exception could match something strictly below `path`.
    fn may_include_below(&self, path: &str) -> bool {
        let comps: Vec<&str> = components(path).collect();
        self.exceptions.iter().any(|g| {
            g.absolute
                && g.parts.len() > comps.len()
                && g.parts.iter().zip(&comps).all(|(p, c)| wildcard(p, c))
        })
    }
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn parse_glob(line: &str) -> Option<Glob> {
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| line.strip_prefix(*q).and_then(|l| l.strip_suffix(*q)))
        .unwrap_or(line);
    let mut s = unquoted.replace('\\', "/");
    // Drive letters mean nothing for a directory capture.
    if s.len() >= 2 && s.as_bytes()[1] == b':' && s.as_bytes()[0].is_ascii_alphabetic() {
        s = s[2..].to_string();
    }
    let absolute = s.starts_with('/');
    let parts: Vec<String> = components(&s).map(String::from).collect();
    if parts.is_empty() {
        return None;
    }
    if !absolute && parts.len() > 1 {
        // "dir/file" without a leading slash: wimlib treats it as a path from the root.
        return Some(Glob {
            parts,
            absolute: true,
        });
    }
    Some(Glob { parts, absolute })
}

impl Glob {
    fn matches(&self, path: &str) -> bool {
        let comps: Vec<&str> = components(path).collect();
        if self.absolute {
            comps.len() == self.parts.len()
                && self.parts.iter().zip(&comps).all(|(p, c)| wildcard(p, c))
        } else {
            comps
                .last()
                .is_some_and(|name| wildcard(&self.parts[0], name))
        }
    }
}

/// `*` and `?` matching of one path component (exact case).
fn wildcard(pattern: &str, name: &str) -> bool {
    crate::image::pattern::name_matches(name, pattern, crate::image::Case::Sensitive)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
; comment
[ExclusionList]
*.tmp
\pagefile.sys
/cache
"/With Space/*"
/keep_none

[ExclusionException]
/cache/important
/With Space/yes.txt

[PrepopulateList]
/whatever
"#;

    #[test]
    fn exclusions_and_exceptions() {
        let c = CaptureConfig::parse(CFG).unwrap();
        let n = Filter::Normal;
        assert_eq!(c.filter("/a/b.tmp", n), None);
        assert_eq!(c.filter("/a/b.tmpx", n), Some(Filter::Normal));
        assert_eq!(c.filter("/pagefile.sys", n), None);
        assert_eq!(c.filter("/dir/pagefile.sys", n), Some(Filter::Normal));
        // An excluded directory is still walked when an exception lies below it.
        assert_eq!(c.filter("/cache", n), Some(Filter::Excluded));
        assert_eq!(c.filter("/cache/junk", Filter::Excluded), None);
        assert_eq!(
            c.filter("/cache/important", Filter::Excluded),
            Some(Filter::Forced)
        );
        assert_eq!(
            c.filter("/cache/important/x.tmp", Filter::Forced),
            Some(Filter::Forced)
        );
        assert_eq!(c.filter("/keep_none", n), None);
        assert_eq!(c.filter("/With Space/no.txt", n), None);
        assert_eq!(c.filter("/With Space/yes.txt", n), Some(Filter::Forced));
        assert_eq!(c.filter("/whatever", n), Some(Filter::Normal));
    }

    #[test]
    fn wildcards_stay_within_a_component() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c", "abbbc"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*.*", "x.y"));
        assert!(!wildcard("*.txt", "x.txt.gz"));
        let c = CaptureConfig::parse("[ExclusionList]\n/a/*\n").unwrap();
        assert_eq!(c.filter("/a/b", Filter::Normal), None);
        assert_eq!(c.filter("/a/b/c", Filter::Normal), Some(Filter::Normal));
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(CaptureConfig::parse("*.tmp\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(CaptureConfig::parse("[ExclusionList\n").is_err());
    }
}
