//! `wimfs delete`: remove images from a WIM.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wimfs::write::{WimWriter, WriterOptions};

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// WIM file to change.
    wimfile: PathBuf,
    /// Image to delete (index or name), or `all`.
    image: String,
    /// Write an integrity table.
    #[arg(long)]
    check: bool,
    /// Only drop the image from the tables, in place (fast; the file does not shrink until
    /// `optimize`). By default the file is rebuilt without the image.
    #[arg(long)]
    soft: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: DeleteArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &[], false)?;
    let count = wim.image_count();
    let doomed: Vec<u32> = if a.image.eq_ignore_ascii_case("all") {
        (1..=count).collect()
    } else {
        vec![wim.resolve_image(&a.image)?]
    };
    // The file's own compression and header flags (RP_FIX stays as it was).
    let opts = WriterOptions {
        check_integrity: a.check,
        ..wimfs::write::options_of(&wim)?
    };
    drop(wim);
    if doomed.is_empty() {
        bail!("{}: holds no images", a.wimfile.display());
    }
    let writer = if a.soft {
        let mut w = WimWriter::append(&a.wimfile, opts)
            .with_context(|| format!("{}: opening to change", a.wimfile.display()))?;
        if w.image_count() != count {
            bail!("{}: changed while it was being opened", a.wimfile.display());
        }
        for &i in doomed.iter().rev() {
            w.delete_image(i)?;
        }
        w
    } else {
        super::rebuild_writer(&a.wimfile, opts, false, a.quiet, true, &|i| {
            !doomed.contains(&i)
        })?
    };
    writer
        .finish()
        .with_context(|| format!("{}: finishing", a.wimfile.display()))?;
    Ok(0)
}
