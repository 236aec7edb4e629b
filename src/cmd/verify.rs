//! `wimfs verify`: decode and hash everything.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wimfs::read::verify::verify_wim_with;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The WIM file (part 1 of a split set).
    wimfile: PathBuf,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Do not check the integrity table.
    #[arg(long)]
    nocheck: bool,
}

pub fn run(a: VerifyArgs) -> Result<i32> {
    let wim = super::open_wim(&a.wimfile, &a.refs, false)?;
    let total: u64 = wim.blobs().map(|b| b.size).sum();
    let pb = super::progress::bytes_bar(total, "verifying", a.quiet);
    let report = verify_wim_with(&wim, !a.nocheck, &|n| pb.inc(n));
    pb.finish_and_clear();
    for e in &report.errors {
        eprintln!("wimfs: {e}");
    }
    if !report.errors.is_empty() {
        eprintln!(
            "wimfs: {}: verification FAILED ({} problem(s))",
            wim.path().display(),
            report.errors.len()
        );
        return Ok(1);
    }
    println!(
        "{}: OK: {} image(s), {} blob(s), {} bytes{}",
        wim.path().display(),
        report.images,
        report.blobs,
        report.bytes,
        if report.integrity_checked {
            ", integrity table OK"
        } else {
            ""
        }
    );
    Ok(0)
}
