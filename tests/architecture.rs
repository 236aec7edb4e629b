//! docs/ARCHITECTURE.md stays a true map: it names every source file of both crates, and
//! every file it names in those trees exists.

use std::path::Path;

fn source_files(root: &Path, rel: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap_or_else(|e| panic!("cannot list {rel}: {e}"))
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = format!("{rel}/{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            source_files(root, &path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn architecture_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md exists");
    let mut files = Vec::new();
    for dir in ["src", "mountd/src"] {
        source_files(root, dir, &mut files);
    }
    assert!(files.len() > 50, "found only {files:?}");
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !doc.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md does not name {missing:?}"
    );
    // And nothing it names under those trees is gone.
    let stale: Vec<&str> = doc
        .split('`')
        .filter(|s| {
            (s.starts_with("src/") || s.starts_with("mountd/src/"))
                && s.ends_with(".rs")
                && !s.contains(' ')
        })
        .filter(|s| !root.join(s).exists())
        .collect();
    assert!(
        stale.is_empty(),
        "docs/ARCHITECTURE.md names files that do not exist: {stale:?}"
    );
}
