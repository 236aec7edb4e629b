//! `wimfs apply` and `wimfs extract`: write an image (or parts of it) to a directory, through
//! the library's extraction (wimfs::apply).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wimfs::apply::{Extraction, Options};
use wimfs::{Image, Wim};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image (1-based index or name) and target directory; the image may be left out if the
    /// WIM has exactly one.
    #[arg(num_args = 1..=2, required = true)]
    rest: Vec<String>,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Restore UNIX owners, modes and special files stored with --unix-data.
    #[arg(long)]
    unix_data: bool,
    /// Do not rewrite absolute link targets to point into the target directory.
    #[arg(long)]
    norpfix: bool,
    /// Check the WIM's integrity table first (if it has one).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    common: WindowsOnlyArgs,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Image (1-based index or name).
    image: String,
    /// Paths inside the image to extract (`*` and `?` match within a name; `@FILE` reads
    /// paths from FILE, one per line, `@-` from standard input). None: the whole image.
    paths: Vec<String>,
    /// Directory to extract into (default: the current directory).
    #[arg(long, default_value = ".")]
    dest_dir: PathBuf,
    /// Write the data of the files named to standard output instead.
    #[arg(long)]
    to_stdout: bool,
    /// Take the paths literally: `*` and `?` are characters like others.
    #[arg(long)]
    no_globs: bool,
    /// A pattern that matches nothing is a warning, not an error.
    #[arg(long)]
    nullglob: bool,
    /// Extract each path at its full path below the destination (as paths from an @FILE
    /// always are), not under its own name.
    #[arg(long)]
    preserve_dir_structure: bool,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Restore UNIX owners, modes and special files stored with --unix-data.
    #[arg(long)]
    unix_data: bool,
    /// Do not rewrite absolute link targets to point into the target directory.
    #[arg(long)]
    norpfix: bool,
    /// Check the WIM's integrity table first (if it has one).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    common: WindowsOnlyArgs,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// wimlib-imagex's options for what only a Windows target can hold: accepted, and those
/// that cannot be honoured here are refused with a clear error.
#[derive(Args, Debug)]
pub struct WindowsOnlyArgs {
    /// Security descriptors are not applied on this system; accepted for compatibility.
    #[arg(long, alias = "noacls")]
    no_acls: bool,
    /// Security descriptors are not applied on this system; accepted for compatibility.
    #[arg(long)]
    strict_acls: bool,
    /// File attributes are not applied on this system; accepted for compatibility.
    #[arg(long)]
    no_attributes: bool,
    /// Accepted for wimlib-imagex compatibility; it does nothing.
    #[arg(long)]
    verbose: bool,
    /// Windows only (WIMBoot pointer files): refused here.
    #[arg(long)]
    wimboot: bool,
    /// Windows only (compact-compressed files): refused here.
    #[arg(long, value_name = "FORMAT")]
    compact: Option<String>,
}

impl WindowsOnlyArgs {
    fn check(&self) -> Result<()> {
        if self.no_acls && self.strict_acls {
            return Err(super::status::failure(
                super::status::code::INVALID_PARAM,
                "--no-acls and --strict-acls cannot be combined",
            ));
        }
        if self.wimboot || self.compact.is_some() {
            let what = if self.wimboot {
                "--wimboot"
            } else {
                "--compact"
            };
            return Err(super::status::failure(
                super::status::code::UNSUPPORTED,
                format!("{what} needs a Windows target (WOF); it cannot be done here"),
            ));
        }
        Ok(())
    }
}

pub fn run_apply(a: ApplyArgs) -> Result<i32> {
    a.common.check()?;
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let (image_spec, target) = match a.rest.as_slice() {
        [t] => (None, t.clone()),
        [i, t] => (Some(i.as_str()), t.clone()),
        _ => unreachable!("clap enforces 1..=2 values"),
    };
    let target = PathBuf::from(target);
    // `all` (or `*`): every image into a directory of its own under TARGET, named after the
    // image (its index if it has no name a directory can take), as wimlib does; hard links
    // stay within an image.
    let all = matches!(image_spec, Some("all" | "*"));
    let indexes = match all {
        true => (1..=wim.image_count()).collect(),
        false => vec![super::pick_image(&wim, image_spec)?],
    };
    for index in indexes {
        let img = Image::load(&wim, index)?;
        let dest = match all {
            true => {
                let name = wim
                    .xml()
                    .images
                    .iter()
                    .find(|i| i.index == index)
                    .and_then(|i| i.name.clone())
                    .filter(|n| {
                        !n.is_empty() && wimfs::image::names::native_name_problem(n).is_none()
                    });
                target.join(name.unwrap_or_else(|| index.to_string()))
            }
            false => target.clone(),
        };
        fs::create_dir_all(&dest)
            .with_context(|| format!("{}: cannot create target directory", dest.display()))?;
        let opts = Options {
            unix_data: a.unix_data,
            norpfix: a.norpfix,
        };
        extract(
            &wim,
            &img,
            &dest,
            &[(Image::ROOT, PathBuf::new())],
            opts,
            a.quiet,
        )?;
    }
    Ok(0)
}

/// Reads an @LISTFILE (`-`: standard input): one path per line, blank lines and lines
/// starting with `#` or `;` skipped, surrounding whitespace and one pair of quotes removed.
fn read_list(name: &str) -> Result<Vec<String>> {
    let bytes = if name == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .context("reading the path list from standard input")?;
        v
    } else {
        fs::read(name).with_context(|| format!("{name}: cannot read the path list"))?
    };
    let text = super::decode_text(&bytes).with_context(|| format!("{name}: path list"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with(['#', ';']) {
            continue;
        }
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|&q| l.strip_prefix(q)?.strip_suffix(q).filter(|_| l.len() >= 2));
        out.push(unquoted.unwrap_or(l).to_string());
    }
    Ok(out)
}

pub fn run_extract(a: ExtractArgs) -> Result<i32> {
    use super::status::{code, failure};
    a.common.check()?;
    if a.no_globs && a.nullglob {
        return Err(failure(
            code::USAGE,
            "--no-globs and --nullglob cannot be combined",
        ));
    }
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let index = wim.resolve_image(&a.image)?;
    let img = Image::load(&wim, index)?;
    let case = super::case_rule();
    if !a.to_stdout {
        // Made before the paths are looked for, as wimlib-imagex does.
        fs::create_dir_all(&a.dest_dir)
            .with_context(|| format!("{}: cannot create directory", a.dest_dir.display()))?;
    }
    // (dentry, keep its full path below the destination), in the order named.
    let mut found: Vec<(wimfs::image::DentryId, bool)> = Vec::new();
    let mut add = |path: &str, glob: bool, preserve: bool| -> Result<()> {
        if glob {
            let hits = img.expand_pattern(path, case);
            if hits.is_empty() {
                let msg = format!(
                    "{}: no matches for path pattern \"{}\" in image {index}",
                    wim.path().display(),
                    super::printable(path)
                );
                if !a.nullglob {
                    return Err(failure(code::PATH_DOES_NOT_EXIST, msg));
                }
                tracing::warn!("{msg}");
            }
            found.extend(hits.into_iter().map(|d| (d, preserve)));
        } else {
            let d = img.resolve(path, case).ok_or_else(|| {
                failure(
                    code::PATH_DOES_NOT_EXIST,
                    format!(
                        "{}: path \"{}\" does not exist in image {index}",
                        wim.path().display(),
                        super::printable(path)
                    ),
                )
            })?;
            found.push((d, preserve));
        }
        Ok(())
    };
    if a.paths.is_empty() {
        add("/", false, false)?;
    }
    for p in &a.paths {
        match p.strip_prefix('@') {
            Some(list) => {
                for q in read_list(list)? {
                    add(&q, !a.no_globs, true)?;
                }
            }
            None => add(p, !a.no_globs, a.preserve_dir_structure)?,
        }
    }
    if a.to_stdout {
        return to_stdout(&wim, &img, &found);
    }
    // A path named twice, or inside another one named, is extracted once.
    let under = |d: wimfs::image::DentryId, top: wimfs::image::DentryId| {
        let mut x = d;
        loop {
            if x == top {
                return true;
            }
            if x == Image::ROOT {
                return false;
            }
            x = img.dentries[x].parent;
        }
    };
    let mut roots = Vec::new();
    for (i, &(d, preserve)) in found.iter().enumerate() {
        let covered = found
            .iter()
            .enumerate()
            .any(|(j, &(t, p))| p == preserve && (t != d || j < i) && under(d, t));
        if covered {
            continue;
        }
        let dest = if d == Image::ROOT {
            PathBuf::new()
        } else {
            let mut chain = Vec::new();
            let mut x = d;
            while x != Image::ROOT && (preserve || chain.is_empty()) {
                chain.push(x);
                x = img.dentries[x].parent;
            }
            let mut dest = PathBuf::new();
            for &c in chain.iter().rev() {
                let name = &img.dentries[c].name;
                if let Some(why) = wimfs::image::names::native_name_problem(name) {
                    bail!(
                        "{}: \"{}\" cannot be extracted here: it has {why}",
                        wim.path().display(),
                        super::printable(&img.path_of(d))
                    );
                }
                dest.push(name);
            }
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                wimfs::apply::make_dirs(&a.dest_dir, parent)?;
            }
            dest
        };
        roots.push((d, dest));
    }
    let opts = Options {
        unix_data: a.unix_data,
        norpfix: a.norpfix,
    };
    extract(&wim, &img, &a.dest_dir, &roots, opts, a.quiet)?;
    Ok(0)
}

/// `extract --to-stdout`: the data of each file named, in order; anything else (a
/// directory, a link) is an error, as with wimlib-imagex.
fn to_stdout(wim: &Wim, img: &Image, found: &[(wimfs::image::DentryId, bool)]) -> Result<i32> {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = out.lock();
    for &(d, _) in found {
        let inode = img.inode_of(d);
        if inode.is_directory() || inode.is_reparse_point() {
            return Err(super::status::failure(
                super::status::code::NOT_A_REGULAR_FILE,
                format!(
                    "{}: \"{}\" is not a regular file, so it cannot go to standard output",
                    wim.path().display(),
                    super::printable(&img.path_of(d))
                ),
            ));
        }
        let loc = inode.data_stream().and_then(|s| s.blob);
        let mut r = wimfs::read::blob::CheckedBlobReader::new(wim, loc);
        std::io::copy(&mut r, &mut out).with_context(|| {
            format!(
                "{}: extracting \"{}\"",
                wim.path().display(),
                super::printable(&img.path_of(d))
            )
        })?;
    }
    out.flush().context("writing to standard output")?;
    Ok(0)
}

/// Extracts `roots` (destinations relative to `target`) with a progress bar.
fn extract(
    wim: &Wim,
    img: &Image,
    target: &Path,
    roots: &[(wimfs::image::DentryId, PathBuf)],
    opts: Options,
    quiet: bool,
) -> Result<()> {
    let job = Extraction::plan(wim, img, target, roots, opts)?;
    let pb = super::progress::bytes_bar(job.data_bytes(), "extracting", quiet);
    job.run(&|n| pb.inc(n))?;
    pb.finish_and_clear();
    Ok(())
}
