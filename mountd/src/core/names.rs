//! Name comparison: case folding, the directory collation order and Windows wildcards.
//!
//! Windows file systems compare names by UTF-16 code unit after mapping each unit through an
//! upper-case table (NTFS keeps one on disk). Here each unit gets its simple Unicode upper-case
//! mapping when that is a single BMP character, and stays itself otherwise (surrogates, `ß`,
//! ligatures), which agrees with NTFS's table for practically every name.
//!
//! Collation order (the order of the lookup index and of WinFsp directory listings): folded
//! units first, then the exact units, so names differing only in case sort next to each other
//! and still have a strict order (`"A" < "a"`). In a case-sensitive mount the order is plain
//! code point order, as it always was for FUSE lookups.

use std::cmp::Ordering;

/// The upper-case form of one UTF-16 code unit.
pub fn fold_unit(u: u16) -> u16 {
    if u < 0x80 {
        return u8::try_from(u).map_or(u, |b| b.to_ascii_uppercase() as u16);
    }
    let Some(c) = char::from_u32(u as u32) else {
        return u; // a surrogate half
    };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) => u16::try_from(x as u32).unwrap_or(u),
        _ => u,
    }
}

fn folded(s: &str) -> impl Iterator<Item = u16> + '_ {
    s.encode_utf16().map(fold_unit)
}

/// Compares two names ignoring case.
pub fn cmp_folded(a: &str, b: &str) -> Ordering {
    folded(a).cmp(folded(b))
}

/// Whether two names are equal ignoring case.
pub fn eq_folded(a: &str, b: &str) -> bool {
    cmp_folded(a, b) == Ordering::Equal
}

/// The collation order of a directory: see the module docs.
pub fn collate(a: &str, b: &str, case_insensitive: bool) -> Ordering {
    if case_insensitive {
        cmp_folded(a, b).then_with(|| a.encode_utf16().cmp(b.encode_utf16()))
    } else {
        a.cmp(b)
    }
}

/// Whether `name` matches the Windows wildcard `pattern` (`*`, `?` and the DOS wildcards
/// `<`, `>`, `"` that FindFirstFile's translation produces).
///
/// The result is a superset of the exact FsRtlIsNameInExpression semantics: `<` is treated
/// as `*`, `>` as "one character or none" and `"` as "a dot or nothing". The WinFsp driver
/// applies the exact rules to whatever the file system returns, so a superset only costs a
/// few extra entries, while an entry wrongly left out would be lost.
pub fn wildcard_match(pattern: &str, name: &str, case_insensitive: bool) -> bool {
    let fold = |c: char| -> u32 {
        if case_insensitive && (c as u32) < 0x10000 {
            fold_unit(c as u32 as u16) as u32
        } else {
            c as u32
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<u32> = name.chars().map(fold).collect();
    // reach[j]: the pattern prefix matched so far can end just before name[j].
    let mut reach = vec![false; n.len() + 1];
    reach[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '<' => {
                let mut on = false;
                for j in 0..=n.len() {
                    on |= reach[j];
                    next[j] = on;
                }
            }
            '>' => {
                for j in 0..=n.len() {
                    if reach[j] {
                        next[j] = true;
                        if j < n.len() {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            '"' => {
                for j in 0..=n.len() {
                    if reach[j] {
                        next[j] = true;
                        if j < n.len() && n[j] == '.' as u32 {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            '?' => next[1..].copy_from_slice(&reach[..n.len()]),
            c => {
                let c = fold(c);
                for j in 0..n.len() {
                    next[j + 1] = reach[j] && n[j] == c;
                }
            }
        }
        reach = next;
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[n.len()]
}

/// Whether a pattern matches everything (no filtering needed).
pub fn matches_all(pattern: &str) -> bool {
    pattern.is_empty() || pattern == "*" || pattern == "*.*" || pattern == "<\"*"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert!(eq_folded("Hello.TXT", "hello.txt"));
        assert!(eq_folded("ÄÖÜ", "äöü"));
        assert!(eq_folded("ΣΊΣΥΦΟΣ", "σίσυφοσ"));
        assert!(
            !eq_folded("straße", "STRASSE"),
            "no multi-character mappings"
        );
        assert!(
            eq_folded("😀a", "😀A"),
            "astral characters are kept, BMP ones fold"
        );
        assert_eq!(fold_unit(0xD83D), 0xD83D);
    }

    #[test]
    fn collation_orders_case_variants_together_and_strictly() {
        let mut v = vec!["b", "A", "a", "B", "ä", "_", "Ä"];
        v.sort_by(|a, b| collate(a, b, true));
        assert_eq!(v, ["A", "a", "B", "b", "_", "Ä", "ä"]);
        v.sort_by(|a, b| collate(a, b, false));
        assert_eq!(v, ["A", "B", "_", "a", "b", "Ä", "ä"]);
    }

    #[test]
    fn wildcards() {
        for (p, n, ci, want) in [
            ("*", "anything", true, true),
            ("*.txt", "a.TXT", true, true),
            ("*.txt", "a.TXT", false, false),
            ("a?c", "abc", true, true),
            ("a?c", "ac", true, false),
            ("file", "FILE", true, true),
            ("f*e*x", "freeze", true, false),
            ("*e*x", "textbox", true, true),
            // DOS wildcards: `dir a*.` becomes `a<"`, `dir ??` becomes `>>`.
            ("a<\"", "abc", true, true),
            ("a<\"", "abc.def", true, true), // superset: exact rules say no, the driver filters
            (">>", "ab", true, true),
            (">>", "a", true, true),
            (">>", "abc", true, false),
            ("<.txt", "x.y.txt", true, true),
        ] {
            assert_eq!(wildcard_match(p, n, ci), want, "{p:?} vs {n:?} (ci {ci})");
        }
        assert!(matches_all("*") && matches_all("") && !matches_all("*.txt"));
    }
}
