//! Finding and finishing the work of read-write mounts whose daemon died: `wimfs recover`
//! and the orphans `wimfs mounts` lists.
//!
//! A staging directory is found in two places: beside the WIM (the default, named
//! `<wim>.staging-<pid>`), and through the registry in the runtime directory, where every
//! read-write daemon leaves the path of its staging directory while it runs (so that one
//! given with `--staging-dir` is found too, until the runtime directory is cleared at
//! boot; after that, name it with `wimfs recover --staging-dir`). A staging directory whose
//! journal no live daemon holds is an orphan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wimfs::write::TargetLock;
use wimfs::{Image, Wim};

use super::private;
use crate::commit::{commit, CommitOptions};
use crate::core::rw::RwFs;
use crate::core::FsOptions;
use crate::journal::{self, Record, JOURNAL_NAME};
use crate::overlay::Overlay;

/// Where running daemons register their staging directories.
fn registry_dir() -> PathBuf {
    crate::control::runtime_dir().join("staging")
}

fn registry_entry(staging: &Path) -> PathBuf {
    let h = crate::control::mount_hash(staging.as_os_str().as_encoded_bytes());
    registry_dir().join(format!("{h:016x}"))
}

/// Checks (with `create`, makes) the registry directory: the user's alone, or refused.
fn checked_registry(create: bool) -> std::io::Result<PathBuf> {
    let dir = registry_dir();
    #[cfg(unix)]
    {
        use wimfs::mount_proto::unix::{check_private_dir, checked_runtime_dir, runtime_dir};
        match create {
            true => checked_runtime_dir(true).map(drop)?,
            false => check_private_dir(&runtime_dir(), false)?,
        }
        check_private_dir(&dir, create)?;
    }
    // The runtime directory is in the user's profile, closed to others by its ACL.
    #[cfg(windows)]
    if create {
        std::fs::create_dir_all(&dir)?;
    }
    Ok(dir)
}

/// Records `staging` (an absolute path) in the registry; failures only cost discoverability.
pub fn register(staging: &Path) {
    let res = checked_registry(true).and_then(|_| {
        std::fs::write(
            registry_entry(staging),
            staging.as_os_str().as_encoded_bytes(),
        )
    });
    if let Err(e) = res {
        tracing::warn!(
            "{}: cannot register the staging directory: {e}",
            registry_dir().display()
        );
    }
}

/// Removes `staging` from the registry.
pub fn unregister(staging: &Path) {
    let _ = std::fs::remove_file(registry_entry(staging));
}

pub use wimfs::mount_proto::Orphan;

/// Whether `dir` is a real directory (not a link) owned by this user, holding a journal
/// that is too: the only staging directories wimfs adopts, so that another user cannot plant
/// changes for a recovery to commit.
fn is_own_staging(dir: &Path) -> bool {
    private::is_own(dir, true) && private::is_own(&dir.join(JOURNAL_NAME), false)
}

fn candidates(wim: Option<&Path>) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    let registry = checked_registry(false);
    if let Err(e) = &registry {
        if registry_dir().exists() {
            tracing::warn!("ignoring the staging registry: {e}");
        }
    }
    if let Ok(rd) = registry.and_then(std::fs::read_dir) {
        for e in rd.flatten() {
            if let Ok(p) = std::fs::read(e.path()) {
                if let Ok(s) = String::from_utf8(p) {
                    let dir = PathBuf::from(s);
                    if dir.exists() {
                        out.insert(dir);
                    } else {
                        // Recovered, discarded or removed by hand: forget it.
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
    if let Some(wim) = wim {
        let name = wim.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!("{name}.staging-");
        let dir = match wim.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.insert(e.path());
                }
            }
        }
    }
    out.into_iter().collect()
}

fn state_of(base: &Record, records: &[Record]) -> &'static str {
    let Record::Base {
        wim,
        image,
        metadata,
        ..
    } = base
    else {
        return "stale";
    };
    let Ok(now) = Wim::open(wim) else {
        return "stale";
    };
    let base_now = now.metadata_location(*image).map(|l| journal::hex(&l.hash));
    if base_now.as_deref() == Some(metadata.as_str()) {
        // Unchanged base: unless the last act was adding the tree as a new image and the
        // WIM has that image now (then replaying would apply the changes a second time).
        match records.last() {
            Some(Record::CommittingNewImage { images }) if now.image_count() > *images => {
                "committed"
            }
            _ => "recoverable",
        }
    } else if records.last() == Some(&Record::Committing) {
        "committed"
    } else {
        "stale"
    }
}

/// The orphans among the staging directories of `wim` (every registered one if `None`).
pub fn find_orphans(wim: Option<&Path>) -> Vec<Orphan> {
    let wim = wim.and_then(|w| std::fs::canonicalize(w).ok());
    let mut out = Vec::new();
    for dir in candidates(wim.as_deref()) {
        if !is_own_staging(&dir) || journal::is_held(&dir).unwrap_or(true) {
            continue;
        }
        let Ok(rep) = journal::read(&dir) else {
            continue;
        };
        let Record::Base {
            wim: ref base_wim,
            image,
            ..
        } = rep.base
        else {
            continue;
        };
        if wim.as_ref().is_some_and(|w| Path::new(base_wim) != w) {
            continue;
        }
        out.push(Orphan {
            staging: dir.to_string_lossy().into_owned(),
            wim: base_wim.clone(),
            image,
            changes: rep.records.len(),
            state: state_of(&rep.base, &rep.records).to_string(),
        });
    }
    out
}

/// Commits (or with `commit == false` discards) what the dead daemon that staged in `dir`
/// left; returns a line saying what was done. The staging directory is removed after
/// either, unless committing fails.
pub fn recover(dir: &Path, commit_it: bool, check: bool) -> Result<String> {
    if !is_own_staging(dir) {
        bail!(
            "{}: not a staging directory of this user (it must be a directory owned by {}, \
             holding its journal)",
            dir.display(),
            private::me()
        );
    }
    let Some(mut held) =
        journal::take_orphan(dir).with_context(|| format!("{}: no journal", dir.display()))?
    else {
        bail!(
            "{}: a running wimfs daemon (or another recovery) still uses it",
            dir.display()
        );
    };
    let rep = journal::read_from(&held, &dir.join(JOURNAL_NAME))?;
    let Record::Base {
        wim: ref wim_path,
        image,
        unix_data,
        ..
    } = rep.base
    else {
        bail!("{}: no base line", dir.display());
    };
    let state = state_of(&rep.base, &rep.records);
    let remove = |what: &str| -> Result<String> {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("{}: cannot remove", dir.display()))?;
        unregister(dir);
        Ok(format!("{what}; removed {}", dir.display()))
    };
    if !commit_it {
        return remove(&format!(
            "discarded {} change(s) to image {image} of {wim_path}",
            rep.records.len()
        ));
    }
    match state {
        "committed" => {
            return remove(&format!(
                "image {image} of {wim_path} already holds these changes (the daemon died after \
                 its commit)"
            ))
        }
        "stale" => bail!(
            "{wim_path}: image {image} is no longer the one {} was staged against (the WIM \
             changed since); the changes cannot be applied. Use --discard to remove them",
            dir.display()
        ),
        _ => {}
    }
    let lock = Arc::new(
        TargetLock::acquire(Path::new(wim_path))
            .with_context(|| format!("{wim_path}: cannot lock for the commit"))?,
    );
    let wim = Arc::new(Wim::open(wim_path)?);
    let img = Image::load(&wim, image)?;
    let scratch = dir.join("replay");
    let _ = std::fs::remove_dir_all(&scratch);
    let overlay = Overlay::create(&scratch)?;
    let opts = FsOptions {
        unix_data,
        ..FsOptions::default()
    };
    let fs = RwFs::new(Arc::clone(&wim), img, opts, overlay);
    if rep.torn > 0 {
        tracing::warn!(
            "{}: ignoring {} torn line(s) at the end of the journal",
            dir.display(),
            rep.torn
        );
    }
    let files = fs
        .replay(&rep.records, dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    // A commit that was adding the tree as a new image when the daemon died is finished
    // the same way; anything else replaces the mounted image.
    let new_image = matches!(rep.records.last(), Some(Record::CommittingNewImage { .. }));
    let how = CommitOptions {
        check,
        new_image,
        ..CommitOptions::default()
    };
    // As a daemon's commit does: if this one dies after the WIM's header names the new
    // image, the next recovery sees the work as done instead of as stale.
    let marker = match new_image {
        true => Record::CommittingNewImage {
            images: wim.image_count(),
        },
        false => Record::Committing,
    };
    journal::append_to(&mut held, &marker)
        .with_context(|| format!("{}: writing the journal", dir.display()))?;
    let log = Overlay::log_path_in(dir);
    commit(
        &fs,
        lock,
        how,
        &|ino| dir.join(files.get(&ino).copied().unwrap_or(u64::MAX).to_string()),
        &log,
    )
    .with_context(|| format!("{wim_path}: committing the recovered changes"))?;
    drop(fs);
    let to = match new_image {
        true => format!("a new image {} of {wim_path}", wim.image_count() + 1),
        false => format!("image {image} of {wim_path}"),
    };
    remove(&format!(
        "committed {} change(s) to {to}",
        rep.records.len()
    ))
}
