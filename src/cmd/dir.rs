//! `wimfs dir`: list the files of an image.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::json;
use wimfs::format::hash_hex;
use wimfs::time::format_filetime;
use wimfs::{Image, StreamKind};

#[derive(Args, Debug)]
pub struct DirArgs {
    /// The WIM file.
    wimfile: PathBuf,
    /// Image (1-based index or name); optional if the WIM has one image.
    image: Option<String>,
    /// List only this path and what is below it.
    #[arg(long)]
    path: Option<String>,
    /// Show attributes, times, streams and more for each entry.
    #[arg(long)]
    detailed: bool,
    /// Print machine-readable JSON (one array of entries).
    #[arg(long)]
    json: bool,
    /// List only the entry itself, not what is below it.
    #[arg(long)]
    one_file_only: bool,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
}

const ATTR_NAMES: &[(u32, &str)] = &[
    (0x1, "FILE_ATTRIBUTE_READONLY"),
    (0x2, "FILE_ATTRIBUTE_HIDDEN"),
    (0x4, "FILE_ATTRIBUTE_SYSTEM"),
    (0x10, "FILE_ATTRIBUTE_DIRECTORY"),
    (0x20, "FILE_ATTRIBUTE_ARCHIVE"),
    (0x40, "FILE_ATTRIBUTE_DEVICE"),
    (0x80, "FILE_ATTRIBUTE_NORMAL"),
    (0x100, "FILE_ATTRIBUTE_TEMPORARY"),
    (0x200, "FILE_ATTRIBUTE_SPARSE_FILE"),
    (0x400, "FILE_ATTRIBUTE_REPARSE_POINT"),
    (0x800, "FILE_ATTRIBUTE_COMPRESSED"),
    (0x1000, "FILE_ATTRIBUTE_OFFLINE"),
    (0x2000, "FILE_ATTRIBUTE_NOT_CONTENT_INDEXED"),
    (0x4000, "FILE_ATTRIBUTE_ENCRYPTED"),
    (0x8000, "FILE_ATTRIBUTE_INTEGRITY_STREAM"),
    (0x10000, "FILE_ATTRIBUTE_VIRTUAL"),
    (0x20000, "FILE_ATTRIBUTE_NO_SCRUB_DATA"),
    (0x40000, "FILE_ATTRIBUTE_EA"),
];

pub fn run(a: DirArgs) -> Result<i32> {
    let wim = super::open_wim_with(&a.wimfile, &a.refs, false, true)?;
    let index = super::pick_image(&wim, a.image.as_deref())?;
    let img = Image::load(&wim, index)?;
    let start = match &a.path {
        Some(p) => img.lookup(p).ok_or_else(|| {
            anyhow!(
                "{}: image {index} has no file \"{p}\"",
                wim.path().display()
            )
        })?,
        None => Image::ROOT,
    };
    let entries = if a.one_file_only {
        vec![start]
    } else {
        img.walk(start)
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if a.json {
        let list: Vec<_> = entries
            .iter()
            .map(|&d| {
                let ino = img.inode_of(d);
                json!({
                    "path": img.path_of(d),
                    "short_name": img.dentries[d].short_name,
                    "attributes": ino.attributes,
                    "size": ino.size(),
                    "is_directory": ino.is_directory(),
                    "is_symlink": ino.is_symlink(),
                    "reparse_tag": ino.is_reparse_point().then_some(ino.reparse_tag),
                    "link_count": ino.nlink(),
                    "link_group": ino.link_group,
                    "security_id": ino.security_id,
                    "creation_time": ino.creation_time,
                    "last_write_time": ino.last_write_time,
                    "last_access_time": ino.last_access_time,
                    "unix": ino.unix,
                    "streams": ino.streams.iter().map(|s| json!({
                        "name": s.name,
                        "kind": s.kind,
                        "size": s.size(),
                        "sha1": hash_hex(&s.hash),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(0);
    }
    for &d in &entries {
        if !a.detailed {
            writeln!(out, "{}", super::printable(&img.path_of(d)))?;
            continue;
        }
        let ino = img.inode_of(d);
        writeln!(
            out,
            "----------------------------------------------------------------------------"
        )?;
        writeln!(
            out,
            "Full Path           = \"{}\"",
            super::printable(&img.path_of(d))
        )?;
        writeln!(
            out,
            "Short Name          = \"{}\"",
            super::printable(&img.dentries[d].short_name)
        )?;
        writeln!(out, "Attributes          = 0x{:08x}", ino.attributes)?;
        for (bit, name) in ATTR_NAMES {
            if ino.attributes & bit != 0 {
                writeln!(out, "    {name} is set")?;
            }
        }
        if ino.security_id >= 0 {
            writeln!(out, "Security ID         = {}", ino.security_id)?;
        }
        if ino.is_reparse_point() {
            writeln!(out, "Reparse Tag         = 0x{:08x}", ino.reparse_tag)?;
        }
        writeln!(
            out,
            "Creation Time       = {}",
            format_filetime(ino.creation_time)
        )?;
        writeln!(
            out,
            "Last Write Time     = {}",
            format_filetime(ino.last_write_time)
        )?;
        writeln!(
            out,
            "Last Access Time    = {}",
            format_filetime(ino.last_access_time)
        )?;
        if let Some(u) = ino.unix {
            writeln!(
                out,
                "UNIX Data           = uid:{} gid:{} mode:0{:o} rdev:{}",
                u.uid, u.gid, u.mode, u.rdev
            )?;
        }
        writeln!(out, "Link Group ID       = 0x{:016x}", ino.link_group)?;
        writeln!(out, "Link Count          = {}", ino.nlink())?;
        for s in &ino.streams {
            match (s.kind, s.name.is_empty()) {
                (StreamKind::Reparse, _) => writeln!(out, "\tReparse point stream:")?,
                (_, true) => writeln!(out, "\tUnnamed data stream:")?,
                (_, false) => writeln!(
                    out,
                    "\tNamed data stream \"{}\":",
                    super::printable(&s.name)
                )?,
            }
            writeln!(out, "Hash              = 0x{}", hash_hex(&s.hash))?;
            writeln!(out, "Uncompressed size = {} bytes", s.size())?;
        }
        writeln!(out)?;
    }
    Ok(0)
}
