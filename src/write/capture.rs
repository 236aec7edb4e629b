//! Capturing a Linux directory tree as an [`Image`], the way wimlib's UNIX capture does.
//!
//! Three steps, so the CLI can show progress for each and big files never sit in memory:
//! [`scan`] walks the tree (metadata only), [`Scan::hash`] hashes file data in parallel,
//! [`Scan::write`] writes each distinct blob once and returns the finished image.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::commit::{new_stream, solid_key, Edited, NewData};
use super::config::Filter;
use super::resource::BlobSource;
use super::writer::{BlobJob, WimWriter};
use crate::error::{Error, Result};
use crate::format::dentry::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_ATTRIBUTE_SPARSE_FILE,
};
use crate::format::reparse::{symlink_reparse_data, IO_REPARSE_TAG_SYMLINK, RP_FLAG_NOT_FIXED};
use crate::format::tagged::UnixData;
use crate::format::Sha1Hash;
use crate::image::{Dentry, Image, Inode, StreamKind};
use crate::time::unix_to_filetime;

/// What to capture and how.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Store owner, group, mode and device numbers; capture device nodes, FIFOs, sockets.
    pub unix_data: bool,
    /// Follow symbolic links instead of storing them.
    pub dereference: bool,
    /// Skip files and directories that cannot be read (with a warning) instead of failing.
    pub skip_unreadable: bool,
    /// Rewrite absolute links that point inside the tree relative to its root (wimlib's
    /// default for a new WIM; the header then carries RP_FIX).
    pub rp_fix: bool,
    /// Exclusion rules from a configuration file (`--config`).
    pub config: Option<super::config::CaptureConfig>,
}

/// A regular file as the scan saw it. Its data is read only from that same file: opened
/// without following a link (unless the capture dereferences links) and without blocking,
/// then checked to be the regular file the scan found (device and inode), so a file swapped
/// for a link, a FIFO or a device between scan and read fails with an error naming it.
#[derive(Debug, Clone)]
struct ScannedFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    follow: bool,
}

impl ScannedFile {
    fn open_checked(&self) -> std::io::Result<fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
        if !self.follow {
            flags |= libc::O_NOFOLLOW;
        }
        let replaced = || {
            std::io::Error::other(
                "it was replaced since it was scanned (now a link, a device, a FIFO or \
                 another file)",
            )
        };
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&self.path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => replaced(),
                _ => e,
            })?;
        let m = f.metadata()?;
        if !m.is_file() || m.dev() != self.dev || m.ino() != self.ino {
            return Err(replaced());
        }
        Ok(f)
    }
}

impl BlobSource for ScannedFile {
    fn open(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.open_checked()?))
    }
}

/// A regular file whose data still has to be hashed and written.
#[derive(Debug, Clone)]
struct FileData {
    file: ScannedFile,
    size: u64,
    inode: usize,
    /// Known before writing only for files that [`Scan::hash`] read: the others are hashed
    /// while they are written, so their data is read once.
    hash: Option<Sha1Hash>,
}

/// A walked tree: the image without file hashes yet, and the files to read.
#[derive(Debug)]
pub struct Scan {
    image: Image,
    files: Vec<FileData>,
    /// Reparse data kept in memory (small), by inode.
    reparse: Vec<(usize, Vec<u8>)>,
    /// (device, inode number) of every file that is not a directory, and its inode.
    ids: Vec<((u64, u64), usize)>,
}

impl Scan {
    /// Bytes of file data to hash (and at most that much to compress).
    pub fn data_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether each file must be hashed before writing: with `all` (solid resources, where
    /// a duplicate must be known before any of it is written) every file; otherwise only
    /// large files whose size another file shares, as only those can duplicate each other.
    /// Writing hashes the rest, and recognises duplicates of blobs already in the WIM (small
    /// files are read whole and hashed before they are compressed, so a duplicate costs no
    /// compression).
    fn needs_hash(&self, all: bool) -> Vec<bool> {
        if all {
            return vec![true; self.files.len()];
        }
        let mut sizes: HashMap<u64, u32> = HashMap::with_capacity(self.files.len());
        for f in &self.files {
            *sizes.entry(f.size).or_insert(0) += 1;
        }
        self.files
            .iter()
            .map(|f| f.size > super::writer::SMALL_BLOB && sizes[&f.size] > 1)
            .collect()
    }

    /// Bytes [`Scan::hash`] will read with the same `all`.
    pub fn bytes_to_hash(&self, all: bool) -> u64 {
        let need = self.needs_hash(all);
        self.files
            .iter()
            .zip(need)
            .filter(|(_, n)| *n)
            .map(|(f, _)| f.size)
            .sum()
    }

    /// Hashes, on the current rayon pool, the data of the files that need it before writing
    /// (all of them if `all`, see [`Scan::bytes_to_hash`]); `progress` gets bytes done.
    pub fn hash(&mut self, all: bool, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let need = self.needs_hash(all);
        self.files
            .par_iter_mut()
            .zip(need)
            .filter(|(_, n)| *n)
            .try_for_each(|(f, _)| {
                f.hash = Some(hash_file(&f.file, f.size, progress)?);
                Ok(())
            })
    }

    /// (device, inode number) of every file that is not a directory, and its inode.
    pub fn file_ids(&self) -> &[((u64, u64), usize)] {
        &self.ids
    }

    /// The scanned tree as an image to graft into another ([`Image::graft`]) and write with
    /// [`super::commit::write_edited`]: its files' data and its links' reparse data are
    /// still to be written.
    pub fn into_edited(self) -> Edited {
        let data = self
            .files
            .into_iter()
            .map(|f| NewData {
                inode: f.inode,
                what: f.file.path.clone(),
                source: Box::new(f.file),
                len: f.size,
            })
            .collect();
        Edited {
            image: self.image,
            data,
            reparse: self.reparse,
            streams: Vec::new(),
        }
    }

    /// Writes every distinct blob not yet in `writer` and returns the image.
    pub fn write(
        mut self,
        writer: &mut WimWriter,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Image> {
        for (ino, data) in std::mem::take(&mut self.reparse) {
            let hash = writer.write_blob(
                &data,
                data.len() as u64,
                None,
                Path::new("reparse data"),
                &|_| {},
            )?;
            self.image.inodes[ino].streams.push(new_stream(
                StreamKind::Reparse,
                hash,
                data.len() as u64,
            ));
        }
        // A solid resource compresses best with similar files side by side: they go in
        // order of file name extension, then name (as wimlib orders them); otherwise in the
        // order of the walk.
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        if writer.is_solid() {
            let keys: Vec<(String, String)> =
                self.files.iter().map(|f| solid_key(&f.file.path)).collect();
            order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        let jobs: Vec<BlobJob<'_>> = order
            .iter()
            .map(|&i| {
                let f = &self.files[i];
                BlobJob {
                    source: &f.file,
                    size: f.size,
                    expected: f.hash,
                    what: &f.file.path,
                }
            })
            .collect();
        let hashes = writer.write_blobs(&jobs, progress)?;
        for (&i, hash) in order.iter().zip(hashes) {
            let f = &self.files[i];
            self.image.inodes[f.inode]
                .streams
                .insert(0, new_stream(StreamKind::Data, hash, f.size));
        }
        Ok(self.image)
    }
}

fn hash_file(file: &ScannedFile, size: u64, progress: &(dyn Fn(u64) + Sync)) -> Result<Sha1Hash> {
    let path = file.path.as_path();
    let mut f = file
        .open_checked()
        .map_err(|e| Error::io(path, "opening", e))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; size.clamp(1, 1 << 20) as usize];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(path, "reading", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
        progress(n as u64);
    }
    if total != size {
        return Err(Error::invalid(
            path,
            "the file changed size while it was being captured",
        ));
    }
    Ok(h.finalize().into())
}

/// Walks `root` and builds the image skeleton.
pub fn scan(root: &Path, opts: &CaptureOptions) -> Result<Scan> {
    let meta = fs::metadata(root).map_err(|e| Error::io(root, "reading metadata", e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(root, "is not a directory"));
    }
    let mut s = Scanner::new(opts, &meta);
    s.image.inodes[0].dentries.push(0);
    s.scan_dir(root, 0, Filter::Normal)?;
    Ok(Scan {
        image: s.image,
        files: s.files,
        reparse: s.reparse,
        ids: s.ids,
    })
}

/// Walks `path` for `wimfs update`'s add command: a directory as [`scan`] does; anything
/// else (a file, a link, with `--unix-data` a special file) becomes the root of a
/// one-entry tree.
pub fn scan_branch(path: &Path, opts: &CaptureOptions) -> Result<Scan> {
    let meta = match opts.dereference {
        true => fs::metadata(path),
        false => fs::symlink_metadata(path),
    }
    .map_err(|e| Error::io(path, "reading metadata", e))?;
    if meta.is_dir() {
        return scan(path, opts);
    }
    // Scanned as the one entry of a stand-in directory, then made the root.
    let mut s = Scanner::new(opts, &meta);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    s.scan_entry(path, &name, 0, Filter::Normal)?;
    if s.image.dentries.len() != 2 {
        return Err(Error::invalid(
            path,
            "cannot be added (a special file needs --unix-data)",
        ));
    }
    s.image.dentries.swap(0, 1);
    let img = &mut s.image;
    img.dentries[0].parent = 0;
    img.dentries[1].children.clear();
    let file = img.dentries[0].inode;
    img.inodes[file].dentries = vec![0];
    // The stand-in directory (inode 0) is left without names.
    img.inodes[0].dentries.clear();
    Ok(Scan {
        image: s.image,
        files: s.files,
        reparse: s.reparse,
        ids: s.ids,
    })
}

struct Scanner<'a> {
    opts: &'a CaptureOptions,
    root_id: (u64, u64),
    image: Image,
    files: Vec<FileData>,
    reparse: Vec<(usize, Vec<u8>)>,
    /// Inodes of multiply-linked non-directories by (device, inode number).
    links: HashMap<(u64, u64), usize>,
    /// (device, inode number) of every non-directory, and its inode.
    ids: Vec<((u64, u64), usize)>,
}

impl<'a> Scanner<'a> {
    /// A scanner whose image has a root directory (dentry and inode 0, not yet linked to
    /// each other) with the times of `meta`, the scan root's metadata.
    fn new(opts: &'a CaptureOptions, meta: &Metadata) -> Self {
        let mut s = Scanner {
            opts,
            root_id: (meta.dev(), meta.ino()),
            image: Image {
                index: 1,
                security: Vec::new(),
                dentries: Vec::new(),
                inodes: Vec::new(),
            },
            files: Vec::new(),
            reparse: Vec::new(),
            links: HashMap::new(),
            ids: Vec::new(),
        };
        let ino = s.new_inode(meta, FILE_ATTRIBUTE_DIRECTORY);
        s.image.dentries.push(Dentry {
            name: String::new(),
            short_name: String::new(),
            parent: 0,
            children: Vec::new(),
            inode: ino,
        });
        s
    }

    fn new_inode(&mut self, m: &Metadata, attributes: u32) -> usize {
        let mtime = unix_to_filetime(m.mtime(), m.mtime_nsec() as u32);
        // Linux has no birth time in stat; wimlib records the modification time.
        self.image.inodes.push(Inode {
            last_access_time: unix_to_filetime(m.atime(), m.atime_nsec() as u32),
            unix: self.opts.unix_data.then(|| UnixData {
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode(),
                rdev: m.rdev() as u32,
            }),
            ..Inode::new(attributes, mtime)
        });
        self.image.inodes.len() - 1
    }

    fn unreadable(&self, path: &Path, e: std::io::Error, what: &str) -> Result<()> {
        if self.opts.skip_unreadable {
            tracing::warn!("{}: skipped: cannot {what}: {e}", path.display());
            Ok(())
        } else {
            Err(Error::io(
                path,
                format!("cannot {what} (use --skip-unreadable to skip it)"),
                e,
            ))
        }
    }

    fn scan_dir(&mut self, dir: &Path, parent: usize, filter: Filter) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => return self.unreadable(dir, e, "read the directory"),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(dir, "reading the directory", e))?;
            names.push(e.file_name());
        }
        for os_name in names {
            let path = dir.join(&os_name);
            let name = os_name.to_str().ok_or_else(|| {
                Error::invalid(
                    &path,
                    "the name is not valid UTF-8, which a WIM cannot store",
                )
            })?;
            let filter = match &self.opts.config {
                None => Filter::Normal,
                Some(c) => {
                    let mut image_path = self.image.path_of(parent);
                    if !image_path.ends_with('/') {
                        image_path.push('/');
                    }
                    image_path.push_str(name);
                    match c.filter(&image_path, filter) {
                        Some(f) => f,
                        None => {
                            tracing::debug!("{}: excluded by the configuration", path.display());
                            continue;
                        }
                    }
                }
            };
            self.scan_entry(&path, name, parent, filter)?;
        }
        let mut kids = std::mem::take(&mut self.image.dentries[parent].children);
        kids.sort_by(|&a, &b| {
            crate::image::name_order(&self.image.dentries[a].name, &self.image.dentries[b].name)
        });
        self.image.dentries[parent].children = kids;
        Ok(())
    }

    fn add_dentry(&mut self, name: &str, parent: usize, inode: usize) -> usize {
        let d = self.image.dentries.len();
        self.image.dentries.push(Dentry {
            name: name.to_string(),
            short_name: String::new(),
            parent,
            children: Vec::new(),
            inode,
        });
        self.image.dentries[parent].children.push(d);
        self.image.inodes[inode].dentries.push(d);
        d
    }

    fn scan_entry(&mut self, path: &Path, name: &str, parent: usize, filter: Filter) -> Result<()> {
        let m = if self.opts.dereference {
            fs::metadata(path)
        } else {
            fs::symlink_metadata(path)
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => return self.unreadable(path, e, "read its metadata"),
        };
        let ft = m.file_type();
        if filter == Filter::Excluded && !ft.is_dir() {
            // Only directories of an excluded subtree are walked, for exceptions below them.
            return Ok(());
        }
        let special = ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket();
        if special && !self.opts.unix_data {
            tracing::warn!(
                "{}: skipped: special files are captured only with --unix-data",
                path.display()
            );
            return Ok(());
        }
        if !ft.is_dir() && m.nlink() > 1 {
            if let Some(&ino) = self.links.get(&(m.dev(), m.ino())) {
                self.add_dentry(name, parent, ino);
                return Ok(());
            }
        }
        if ft.is_file() {
            // Whether it can be read, asked without opening it (which would cost an open and
            // a close per file; the data is only read when it is written).
            if let Err(e) = rustix::fs::access(path, rustix::fs::Access::READ_OK) {
                return self.unreadable(path, e.into(), "read the file");
            }
            // Fewer blocks than the size needs means holes, which wimlib marks as sparse.
            let attr = if m.blocks() < m.size().div_ceil(512) {
                FILE_ATTRIBUTE_SPARSE_FILE
            } else {
                FILE_ATTRIBUTE_NORMAL
            };
            let ino = self.new_inode(&m, attr);
            if m.size() > 0 {
                self.files.push(FileData {
                    file: ScannedFile {
                        path: path.to_path_buf(),
                        dev: m.dev(),
                        ino: m.ino(),
                        follow: self.opts.dereference,
                    },
                    size: m.size(),
                    inode: ino,
                    hash: None,
                });
            }
            self.remember_link(&m, ino);
            self.add_dentry(name, parent, ino);
        } else if ft.is_dir() {
            let ino = self.new_inode(&m, FILE_ATTRIBUTE_DIRECTORY);
            let d = self.add_dentry(name, parent, ino);
            self.scan_dir(path, d, filter)?;
        } else if ft.is_symlink() {
            let target = match fs::read_link(path) {
                Ok(t) => t,
                Err(e) => return self.unreadable(path, e, "read the link target"),
            };
            let target = target.to_str().ok_or_else(|| {
                Error::invalid(
                    path,
                    "the link target is not valid UTF-8, which a WIM cannot store",
                )
            })?;
            let ino = self.new_inode(&m, FILE_ATTRIBUTE_REPARSE_POINT);
            let (target, fixed) = match self.opts.rp_fix && target.starts_with('/') {
                true => self.relativize(target),
                false => (target.to_string(), false),
            };
            let data = symlink_reparse_data(&target).ok_or_else(|| {
                Error::invalid(path, "the link target is too long for a reparse point")
            })?;
            let inode = &mut self.image.inodes[ino];
            inode.reparse_tag = IO_REPARSE_TAG_SYMLINK;
            inode.rp_flags = if fixed { 0 } else { RP_FLAG_NOT_FIXED };
            // Windows keeps links to directories on directory files; so does wimlib.
            if fs::metadata(path).is_ok_and(|t| t.is_dir()) {
                inode.attributes |= FILE_ATTRIBUTE_DIRECTORY;
            }
            self.reparse.push((ino, data));
            self.remember_link(&m, ino);
            self.add_dentry(name, parent, ino);
        } else {
            // Device, FIFO or socket with --unix-data: no data; the mode says what it is.
            let ino = self.new_inode(&m, 0);
            self.remember_link(&m, ino);
            self.add_dentry(name, parent, ino);
        }
        Ok(())
    }

    fn remember_link(&mut self, m: &Metadata, ino: usize) {
        self.ids.push(((m.dev(), m.ino()), ino));
        if m.nlink() > 1 {
            self.links.insert((m.dev(), m.ino()), ino);
        }
    }

    /// If some prefix of the absolute `target` is the capture root (same device and inode,
    /// so other paths to it count too), returns the rest ("" or starting with '/') and true.
    fn relativize(&self, target: &str) -> (String, bool) {
        let bytes = target.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && bytes[i] == b'/' {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            while i < bytes.len() && bytes[i] != b'/' {
                i += 1;
            }
            match fs::metadata(&target[..i]) {
                Ok(m) if (m.dev(), m.ino()) == self.root_id => {
                    return (target[i..].to_string(), true)
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (target.to_string(), false)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn children_sort_like_load() {
        let mut v = vec!["b", "B", "a", "_"];
        v.sort_by(|a, b| crate::image::name_order(a, b));
        assert_eq!(v, vec!["a", "B", "b", "_"]);
    }
}
