//! `wimfs update`: add, delete and rename files inside an image without mounting it, with
//! wimlib-imagex's command language, options and exit statuses.
//!
//! Every command is carried out on the image in memory first; the WIM is written only when
//! all of them succeeded, through the same path a read-write mount's commit takes
//! ([`wimfs::write::write_edited`]): new data appended after the old end of the file and
//! the header rewritten last (or, with `--rebuild`, a new file renamed over the old).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use wimfs::image::{Case, Image};
use wimfs::write::capture::{scan_branch, CaptureOptions};
use wimfs::write::config::CaptureConfig;
use wimfs::write::{options_of, write_edited, CommitOptions, Edited, TargetLock};

use super::status::{code, failure};

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// WIM file to change.
    wimfile: PathBuf,
    /// Image to change (index or name); may be left out when the file holds one image.
    image: Option<String>,
    /// One update command instead of reading them from standard input.
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
    /// Add FILE as /Windows/System32/WimBootCompress.ini (after the other commands; none
    /// are read from standard input).
    #[arg(long, value_name = "FILE")]
    wimboot_config: Option<PathBuf>,
    /// Compression threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Check the integrity table before changing the file, and write one.
    #[arg(long)]
    check: bool,
    /// Write an integrity table (without checking the old one).
    #[arg(long)]
    include_integrity: bool,
    /// Write a new file with every image instead of appending to the old one (no space
    /// is left behind by replaced data).
    #[arg(long)]
    rebuild: bool,
    /// wimlib compacts the file in place, at the risk of losing it on a crash; wimfs
    /// rebuilds it safely instead (the same result: no space left behind).
    #[arg(long)]
    unsafe_compact: bool,
    /// WIMs a delta WIM refers to (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// `delete` commands: a path that does not exist is no error.
    #[arg(long)]
    force: bool,
    /// `delete` commands: directories may be deleted (with everything in them).
    #[arg(long)]
    recursive: bool,
    /// `add` commands: exclusion rules (wimlib's format) instead of the default ones.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Accepted for wimlib-imagex compatibility; it does nothing.
    #[arg(long)]
    verbose: bool,
    /// `add` commands: store what symlinks point to instead of the links.
    #[arg(long)]
    dereference: bool,
    /// `add` commands: store UNIX owners, modes and special files.
    #[arg(long)]
    unix_data: bool,
    /// `add` commands: no Windows security descriptors (none are read on this system).
    #[arg(long, alias = "noacls")]
    no_acls: bool,
    /// `add` commands: fail where security descriptors cannot be read (none are read on
    /// this system).
    #[arg(long)]
    strict_acls: bool,
    /// `add` commands: an existing file is an error instead of being replaced.
    #[arg(long)]
    no_replace: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// One update command, as read from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateCommand {
    Add {
        source: PathBuf,
        target: String,
        unix_data: bool,
        dereference: bool,
        no_replace: bool,
    },
    Delete {
        path: String,
        force: bool,
        recursive: bool,
    },
    Rename {
        from: String,
        to: String,
    },
}

/// Splits a command line into words the way wimlib-imagex does: whitespace separates, a
/// word may be quoted with `"` or `'` (no escapes inside).
fn words(line: &str, number: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else {
            return Ok(out);
        };
        if first == '"' || first == '\'' {
            let body = &rest[1..];
            let Some(end) = body.find(first) else {
                return Err(failure(
                    code::USAGE,
                    format!("missing closing quote on line {number}: {rest}"),
                ));
            };
            out.push(body[..end].to_string());
            rest = &body[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
}

/// Parses update commands: one per line; blank lines and lines starting with `#` or `;`
/// are skipped; options (`--...`) may come anywhere after the command's name.
pub fn parse_commands(text: &str) -> Result<Vec<UpdateCommand>> {
    let mut cmds = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let w = words(line, number)?;
        let name = w[0].to_ascii_lowercase();
        let wanted = match name.as_str() {
            "add" | "rename" => 2,
            "delete" => 1,
            _ => {
                return Err(failure(
                    code::USAGE,
                    format!("unknown update command {:?} on line {number}", w[0]),
                ))
            }
        };
        let mut args: Vec<&str> = Vec::new();
        let mut flags: Vec<&str> = Vec::new();
        for word in &w[1..] {
            if word.starts_with("--") {
                let known: &[&str] = match name.as_str() {
                    "add" => &[
                        "--verbose",
                        "--unix-data",
                        "--no-acls",
                        "--noacls",
                        "--strict-acls",
                        "--dereference",
                        "--no-replace",
                    ],
                    "delete" => &["--force", "--recursive"],
                    _ => &[],
                };
                if !known.contains(&word.as_str()) {
                    return Err(failure(
                        code::USAGE,
                        format!(
                            "unknown option {word:?} to update command {name:?} on line {number}"
                        ),
                    ));
                }
                flags.push(word);
            } else if args.len() == wanted {
                return Err(failure(
                    code::USAGE,
                    format!(
                        "unexpected argument {word:?} on line {number} (the {name:?} command \
                         takes {wanted})"
                    ),
                ));
            } else {
                args.push(word);
            }
        }
        if args.len() != wanted {
            return Err(failure(
                code::USAGE,
                format!("not enough arguments to update command {name:?} on line {number}"),
            ));
        }
        let has = |f: &str| flags.contains(&f);
        cmds.push(match name.as_str() {
            "add" => UpdateCommand::Add {
                source: PathBuf::from(args[0]),
                target: args[1].to_string(),
                unix_data: has("--unix-data"),
                dereference: has("--dereference"),
                no_replace: has("--no-replace"),
            },
            "delete" => UpdateCommand::Delete {
                path: args[0].to_string(),
                force: has("--force"),
                recursive: has("--recursive"),
            },
            _ => UpdateCommand::Rename {
                from: args[0].to_string(),
                to: args[1].to_string(),
            },
        });
    }
    Ok(cmds)
}

/// The changed image, built command by command.
struct Session<'a> {
    wim: &'a Path,
    edited: Edited,
    case: Case,
    /// Files already added, by (device, inode): the same file added again by a later
    /// command becomes another name of the same inode (a hard link), as all of one
    /// update's adds share wimlib's inode table.
    links: HashMap<(u64, u64), usize>,
    rp_fix_root: bool,
}

impl Session<'_> {
    fn edit_error(&self, e: wimfs::image::EditError) -> anyhow::Error {
        anyhow::Error::new(wimfs::Error::Edit {
            path: self.wim.to_path_buf(),
            cause: e,
        })
    }

    fn add(
        &mut self,
        source: &Path,
        target: &str,
        opts: CaptureOptions,
        no_replace: bool,
    ) -> Result<()> {
        let mut opts = opts;
        let at_root = wimfs::image::edit::components(target).is_empty();
        opts.rp_fix = at_root && self.rp_fix_root;
        // A source that cannot even be looked at is wimlib's "cannot read metadata" (63).
        let look = match opts.dereference {
            true => std::fs::metadata(source),
            false => std::fs::symlink_metadata(source),
        };
        if let Err(e) = look {
            return Err(failure(
                code::STAT,
                format!("{}: cannot read its metadata: {e}", source.display()),
            ));
        }
        let scan =
            scan_branch(source, &opts).with_context(|| format!("adding {}", source.display()))?;
        let ids = scan.file_ids().to_vec();
        let branch = scan.into_edited();
        let offset = self
            .edited
            .image
            .graft(branch.image, target, self.case, no_replace)
            .map_err(|e| self.edit_error(e))?;
        let image = &mut self.edited.image;
        let mut joined = std::collections::HashSet::new();
        for (key, ino) in ids {
            let ino = ino + offset;
            match self.links.get(&key) {
                Some(&earlier) if earlier != ino => {
                    for d in std::mem::take(&mut image.inodes[ino].dentries) {
                        image.dentries[d].inode = earlier;
                        image.inodes[earlier].dentries.push(d);
                    }
                    joined.insert(ino);
                }
                _ => {
                    self.links.insert(key, ino);
                }
            }
        }
        for mut d in branch.data {
            d.inode += offset;
            if !joined.contains(&d.inode) {
                self.edited.data.push(d);
            }
        }
        for (i, r) in branch.reparse {
            if !joined.contains(&(i + offset)) {
                self.edited.reparse.push((i + offset, r));
            }
        }
        Ok(())
    }

    fn run(
        &mut self,
        cmd: &UpdateCommand,
        base: &UpdateArgs,
        config: &Option<CaptureConfig>,
    ) -> Result<()> {
        match cmd {
            UpdateCommand::Add {
                source,
                target,
                unix_data,
                dereference,
                no_replace,
            } => {
                let opts = CaptureOptions {
                    unix_data: *unix_data || base.unix_data,
                    dereference: *dereference || base.dereference,
                    skip_unreadable: false,
                    rp_fix: false,
                    config: config.clone(),
                };
                self.add(source, target, opts, *no_replace || base.no_replace)
            }
            UpdateCommand::Delete {
                path,
                force,
                recursive,
            } => self
                .edited
                .image
                .delete_path(
                    path,
                    self.case,
                    *force || base.force,
                    *recursive || base.recursive,
                )
                .map_err(|e| self.edit_error(e)),
            UpdateCommand::Rename { from, to } => self
                .edited
                .image
                .rename_path(from, to, self.case)
                .map_err(|e| self.edit_error(e)),
        }
    }
}

pub fn run(a: UpdateArgs) -> Result<i32> {
    if a.wimfile.to_str().is_some_and(wimfs::read::is_url) {
        anyhow::bail!(
            "{}: remote images are read-only: write a local copy (wimfs export URL all COPY.wim)",
            a.wimfile.display()
        );
    }
    let lock = Arc::new(
        TargetLock::acquire(&a.wimfile)
            .with_context(|| format!("{}: opening to change", a.wimfile.display()))?,
    );
    let wim = Arc::new(super::open_wim(&a.wimfile, &a.refs, a.check)?);
    let index = match &a.image {
        Some(s) => wim.resolve_image(s)?,
        None if wim.image_count() == 1 => 1,
        None => {
            return Err(failure(
                code::USAGE,
                format!(
                    "{}: holds {} images; name the one to update",
                    a.wimfile.display(),
                    wim.image_count()
                ),
            ))
        }
    };
    let cmds = match (&a.command, &a.wimboot_config) {
        (Some(c), _) => parse_commands(c)?,
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading update commands from standard input")?;
            parse_commands(&super::decode_text(&bytes)?)?
        }
    };
    let config = match &a.config {
        Some(p) => Some(CaptureConfig::load(p)?),
        None => Some(CaptureConfig::windows_default()),
    };
    let image = Image::load(&wim, index)?;
    let h = wim.header();
    let mut session = Session {
        wim: &a.wimfile,
        edited: Edited::new(image),
        case: super::case_rule(),
        links: HashMap::new(),
        rp_fix_root: h.flags & wimfs::format::header::FLAG_RP_FIX != 0 || h.image_count == 1,
    };
    for cmd in &cmds {
        session.run(cmd, &a, &config)?;
    }
    if let Some(file) = &a.wimboot_config {
        let opts = CaptureOptions::default();
        session.add(file, "/Windows/System32/WimBootCompress.ini", opts, false)?;
    }
    let mut edited = session.edited;
    let map = edited.image.compact();
    edited.remap(&map);
    let mut opts = options_of(&wim)?;
    opts.threads = a.threads;
    opts.check_integrity = a.check || a.include_integrity;
    let how = CommitOptions {
        check: opts.check_integrity,
        new_image: false,
        rebuild: a.rebuild || a.unsafe_compact,
    };
    let total: u64 = edited.data.iter().map(|d| d.len).sum();
    let pb = super::progress::bytes_bar(total, "writing", a.quiet);
    write_edited(wim, lock, opts, how, index, edited, &|n| pb.inc(n))
        .with_context(|| format!("{}: writing the updated image", a.wimfile.display()))?;
    pb.finish_and_clear();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_as_wimlib_reads_them() {
        let text = "# comment\n  ; another\n\nadd 'My Dir' \"/My Dir\" --no-replace\r\n\
                    DELETE --force /a\ndelete /b --recursive\nrename /x /y";
        let cmds = parse_commands(text).unwrap();
        assert_eq!(
            cmds,
            vec![
                UpdateCommand::Add {
                    source: "My Dir".into(),
                    target: "/My Dir".into(),
                    unix_data: false,
                    dereference: false,
                    no_replace: true
                },
                UpdateCommand::Delete {
                    path: "/a".into(),
                    force: true,
                    recursive: false
                },
                UpdateCommand::Delete {
                    path: "/b".into(),
                    force: false,
                    recursive: true
                },
                UpdateCommand::Rename {
                    from: "/x".into(),
                    to: "/y".into()
                },
            ]
        );
        for bad in [
            "bogus /a",
            "add a",
            "add a b c",
            "delete --bogus /a",
            "rename --force /a /b",
            "delete \"/a",
        ] {
            let e = parse_commands(bad).unwrap_err();
            assert_eq!(super::super::status::exit_status(&e), 255, "{bad}");
        }
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("delete /ä".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(super::super::decode_text(&utf16).unwrap(), "delete /ä");
    }
}
