//! `wimfs apply` and `wimfs extract`: write an image (or parts of it) to a directory, through
//! the library's extraction (wimfs::apply).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
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
    /// Paths inside the image to extract.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Directory to extract into (default: the current directory).
    #[arg(long, default_value = ".")]
    dest_dir: PathBuf,
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
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run_apply(a: ApplyArgs) -> Result<i32> {
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

pub fn run_extract(a: ExtractArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let index = wim.resolve_image(&a.image)?;
    let img = Image::load(&wim, index)?;
    fs::create_dir_all(&a.dest_dir)
        .with_context(|| format!("{}: cannot create directory", a.dest_dir.display()))?;
    let mut roots = Vec::new();
    for p in &a.paths {
        let d = img.lookup(p).ok_or_else(|| {
            anyhow!(
                "{}: image {index} has no file \"{p}\"",
                wim.path().display()
            )
        })?;
        let dest = if d == Image::ROOT {
            PathBuf::new()
        } else {
            let name = &img.dentries[d].name;
            if let Some(why) = wimfs::image::names::native_name_problem(name) {
                bail!(
                    "{}: \"{}\" cannot be extracted here: it has {why}",
                    wim.path().display(),
                    super::printable(p)
                );
            }
            PathBuf::from(name)
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
