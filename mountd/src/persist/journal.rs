//! The journal of a read-write mount: a record of every change to the tree's metadata, kept
//! in the staging directory beside the changed file data, so that the work of a daemon that
//! died (killed, crashed, machine reset) can be found and committed or discarded later
//! (`wimfs recover`).
//!
//! The journal is a text file of JSON lines. The first names the base: the WIM, the image
//! index and the SHA-1 of that image's metadata resource when the journal was started. Every
//! later line is one successful change, written while the tree's lock is held, so the lines
//! are in the order the changes were made. Names are paths from the image root; file data
//! is never journaled, only which staging file holds a path's data (`staged`). Replaying the
//! lines against the base image rebuilds the tree the daemon had.
//!
//! Lines are written with one `write` each and not synced (except on `fsync` of a file and
//! around a commit), so a killed daemon loses nothing, and a machine crash at most the last
//! moments, as with any filesystem. A torn last line is ignored on replay.
//!
//! The daemon holds an exclusive `flock` on the journal for its whole life: a journal nobody
//! holds belongs to a dead daemon (an orphan).
//!
//! A commit appends `committing` before it writes; once the WIM's header names the new
//! image, the journal is started again with that image as its base. If the daemon dies in
//! between, the WIM holds either the old image (the base still matches: replay) or the new
//! one (the base differs and the last line is `committing`: nothing is left to do).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::private;

/// File name of the journal inside the staging directory.
pub const JOURNAL_NAME: &str = "journal";

/// Journal format version written in the base line.
pub const VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// First line: what the changes apply to.
    Base {
        version: u32,
        wim: String,
        image: u32,
        /// Hex SHA-1 of the image's metadata resource.
        metadata: String,
        unix_data: bool,
    },
    Create {
        path: String,
        /// Staging file holding its data.
        file: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
    Mknod {
        path: String,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        flags: u32,
    },
    /// The data of `path` now lives in staging file `file`.
    Staged {
        path: String,
        file: u64,
    },
    /// The whole data of `path` is `len` bytes at `offset` of the data log.
    Data {
        path: String,
        offset: u64,
        len: u64,
    },
    /// Attribute changes; times are Windows FILETIMEs.
    SetAttr {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        atime: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime: Option<u64>,
        /// Creation time (Windows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        btime: Option<u64>,
        /// FILE_ATTRIBUTE_* bits (Windows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attributes: Option<u32>,
    },
    /// A security descriptor set (Windows).
    Security {
        path: String,
        sd: Vec<u8>,
    },
    /// A named data stream set (`value`) or removed (`None`).
    Stream {
        path: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Vec<u8>>,
    },
    /// A commit is about to write the WIM.
    Committing,
    /// A commit is about to add the tree to the WIM as a new image, after the `images` it
    /// has (the base image stays as it is, so only the count shows the commit happened).
    CommittingNewImage {
        images: u32,
    },
}

/// `r` as one line of the journal, newline included.
pub fn line(r: &Record) -> io::Result<String> {
    let mut l = serde_json::to_string(r).map_err(io::Error::other)?;
    l.push('\n');
    Ok(l)
}

/// The open journal of a live mount.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Set after a failed write: later lines would not replay correctly, so none are written.
    broken: bool,
}

impl Journal {
    /// Starts a journal at `dir/journal` (replacing one there atomically) whose first line is
    /// `base` and whose next lines are `lines`. The new journal's contents are synced before
    /// it replaces the old one and the directory after, so a power cut leaves either the
    /// old journal (which ends with the commit that reached the WIM, or is the mount's
    /// empty first one) or the complete new one, never a torn or empty file.
    pub fn start(dir: &Path, base: &Record, lines: &[Record]) -> io::Result<Journal> {
        let path = dir.join(JOURNAL_NAME);
        let tmp = dir.join(format!("{JOURNAL_NAME}.new"));
        let mut file = private::open(
            &tmp,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )?;
        if !private::try_lock(&file, true)? {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: held by another process", tmp.display()),
            ));
        }
        let mut text = String::new();
        for r in std::iter::once(base).chain(lines) {
            text.push_str(&line(r)?);
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        private::sync_dir(dir)?;
        Ok(Journal {
            file,
            path,
            broken: false,
        })
    }

    /// Appends one line. A failure is logged once and stops the journal (the mount itself
    /// keeps working; only recovery after a crash would lose the changes from then on).
    pub fn append(&mut self, r: &Record) {
        match line(r) {
            Ok(l) => self.append_lines(l.as_bytes()),
            Err(e) => self.fail(e),
        }
    }

    /// Appends lines made by [`line`], as [`Journal::append`] does.
    pub fn append_lines(&mut self, lines: &[u8]) {
        if self.broken || lines.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(lines) {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: io::Error) {
        tracing::error!(
            "{}: cannot write the journal ({e}); changes from now on can only be saved by a \
             commit, not recovered after a crash",
            self.path.display()
        );
        self.broken = true;
    }

    /// Flushes the lines appended so far to disk (the journal's own directory entry is
    /// durable from [`Journal::start`] on).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A second handle on the journal file, to sync it without holding what guards the
    /// journal (a sync waits for the disk; appends need not wait for it).
    pub fn syncer(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// A journal read back.
#[derive(Debug)]
pub struct Replay {
    pub base: Record,
    pub records: Vec<Record>,
    /// Lines that could not be read (a torn tail); replay stops at the first.
    pub torn: usize,
}

/// Reads `dir/journal`.
pub fn read(dir: &Path) -> io::Result<Replay> {
    let path = dir.join(JOURNAL_NAME);
    read_from(&File::open(&path)?, &path)
}

/// Reads the journal at `path` through `f`, an open handle on it from its start (on
/// Windows, a locked journal can be read only through the handle holding the lock).
pub fn read_from(f: &File, path: &Path) -> io::Result<Replay> {
    let mut lines = BufReader::new(f).lines();
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let first = lines
        .next()
        .ok_or_else(|| bad(format!("{}: empty journal", path.display())))??;
    let base: Record = serde_json::from_str(&first)
        .map_err(|e| bad(format!("{}: bad first line: {e}", path.display())))?;
    match &base {
        Record::Base { version, .. } if *version == VERSION => {}
        Record::Base { version, .. } => {
            return Err(bad(format!(
                "{}: journal version {version} (this wimfs reads {VERSION})",
                path.display()
            )))
        }
        _ => return Err(bad(format!("{}: no base line", path.display()))),
    }
    let mut records = Vec::new();
    let mut torn = 0;
    for line in lines {
        let line = match line {
            Ok(l) => l,
            Err(_) => {
                torn += 1;
                break;
            }
        };
        if torn > 0 {
            torn += 1;
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => records.push(r),
            Err(_) => torn += 1,
        }
    }
    Ok(Replay {
        base,
        records,
        torn,
    })
}

/// Takes the journal of a dead daemon in `dir` for recovery: locked as a daemon holds it
/// (so no second recovery runs at once), opened for reading from its start
/// ([`read_from`]) and appending. `None` if a live daemon or another recovery holds it.
pub fn take_orphan(dir: &Path) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .open(dir.join(JOURNAL_NAME))?;
    Ok(private::try_lock(&f, true)?.then_some(f))
}

/// Appends `r` to a journal taken with [`take_orphan`] and syncs it.
pub fn append_to(f: &mut File, r: &Record) -> io::Result<()> {
    f.write_all(line(r)?.as_bytes())?;
    f.sync_data()
}

/// Whether a live daemon holds the journal in `dir` (it keeps an exclusive lock on it).
pub fn is_held(dir: &Path) -> io::Result<bool> {
    let f = File::open(dir.join(JOURNAL_NAME))?;
    Ok(!private::try_lock(&f, false)?)
}

/// Hex form of a SHA-1.
pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Record {
        Record::Base {
            version: VERSION,
            wim: "/x/a.wim".into(),
            image: 1,
            metadata: "00".repeat(20),
            unix_data: false,
        }
    }

    #[test]
    fn lines_round_trip_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::start(dir.path(), &base(), &[]).unwrap();
        let recs = vec![
            Record::Mkdir {
                path: "a".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            Record::SetAttr {
                path: "a".into(),
                size: None,
                mode: Some(0o700),
                uid: None,
                gid: None,
                atime: None,
                mtime: Some(5),
                btime: None,
                attributes: Some(0x20),
            },
            Record::Security {
                path: "a".into(),
                sd: vec![1, 0, 4, 128],
            },
            Record::Stream {
                path: "a".into(),
                name: "s".into(),
                value: Some(vec![0, 1, 255]),
            },
            Record::Committing,
            Record::CommittingNewImage { images: 3 },
        ];
        for r in &recs {
            j.append(r);
        }
        assert!(is_held(dir.path()).unwrap());
        // A torn last line, as a crash in the middle of a write leaves.
        j.file.write_all(b"{\"op\":\"unl").unwrap();
        drop(j);
        assert!(!is_held(dir.path()).unwrap());
        let r = read(dir.path()).unwrap();
        assert_eq!(r.base, base());
        assert_eq!(r.records, recs);
        assert_eq!(r.torn, 1);
    }

    #[test]
    fn restart_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::start(dir.path(), &base(), &[]).unwrap();
        j.append(&Record::Unlink { path: "x".into() });
        let staged = [Record::Staged {
            path: "f".into(),
            file: 9,
        }];
        let j2 = Journal::start(dir.path(), &base(), &staged).unwrap();
        drop(j);
        let r = read(dir.path()).unwrap();
        assert_eq!(r.records, staged);
        assert!(is_held(dir.path()).unwrap());
        drop(j2);
        std::fs::write(dir.path().join(JOURNAL_NAME), "{\"op\":\"unlink\"}\n").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
