//! Path patterns in an image, as wimlib-imagex's `extract` takes them: `*` (any run of
//! characters) and `?` (one character) within a path component, never across a separator.

use super::edit::{components, Case};
use super::model::{DentryId, Image};

/// Whether `name` matches the single-component `pattern` under `case`.
pub fn name_matches(name: &str, pattern: &str, case: Case) -> bool {
    let fold = |c: char| match case {
        Case::Sensitive => c,
        Case::Insensitive => c.to_lowercase().next().unwrap_or(c),
    };
    let n: Vec<char> = name.chars().map(fold).collect();
    let p: Vec<char> = pattern.chars().map(fold).collect();
    // Iterative wildcard match with one backtrack point (the last `*`).
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < n.len() {
        if j < p.len() && (p[j] == '?' || p[j] == n[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '*' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p[j..].iter().all(|&c| c == '*')
}

/// Whether `path` holds a wildcard.
pub fn has_wildcards(path: &str) -> bool {
    path.contains(['*', '?'])
}

impl Image {
    /// Every entry whose path matches `pattern` component by component, in listing order
    /// (the root for an empty pattern or `/`).
    pub fn expand_pattern(&self, pattern: &str, case: Case) -> Vec<DentryId> {
        let comps = components(pattern);
        let mut level = vec![Self::ROOT];
        for c in comps {
            let mut next = Vec::new();
            for d in level {
                if !self.inode_of(d).is_directory() {
                    continue;
                }
                next.extend(
                    self.dentries[d]
                        .children
                        .iter()
                        .copied()
                        .filter(|&k| name_matches(&self.dentries[k].name, c, case)),
                );
            }
            level = next;
        }
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_within_a_name() {
        let yes = [
            ("setup.exe", "*.exe"),
            ("setup.exe", "s?tup.*"),
            ("a", "*"),
            ("", "*"),
            ("abcabc", "*abc"),
            ("abc", "a*b*c"),
            ("ÄBC", "äb?"),
        ];
        for (n, p) in yes {
            let case = if n == "ÄBC" {
                Case::Insensitive
            } else {
                Case::Sensitive
            };
            assert!(name_matches(n, p, case), "{n} ~ {p}");
        }
        for (n, p) in [
            ("setup.exe", "*.EXE"),
            ("ab", "a?b"),
            ("abc", "*d*"),
            ("b", "a*"),
        ] {
            assert!(!name_matches(n, p, Case::Sensitive), "{n} !~ {p}");
        }
        assert!(name_matches("setup.exe", "*.EXE", Case::Insensitive));
    }
}
