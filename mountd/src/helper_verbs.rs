//! The daemon binary's helper verbs, on every platform: `wimfs-mountd recover DIR
//! --commit|--discard [--check]` and `wimfs-mountd orphans [WIM]`, which `wimfs recover` and
//! `wimfs mounts` run (the recovery code lives with the read-write filesystem, in this
//! crate).

use std::path::PathBuf;

use clap::Parser;

/// `wimfs-mountd recover DIR --commit|--discard [--check]`: finishes a dead daemon's work.
#[derive(Parser, Debug)]
#[command(name = "wimfs-mountd recover")]
struct RecoverArgs {
    /// The staging directory the dead daemon left.
    staging: PathBuf,
    #[arg(long, conflicts_with = "discard", required_unless_present = "discard")]
    commit: bool,
    #[arg(long)]
    discard: bool,
    #[arg(long)]
    check: bool,
}

/// `wimfs-mountd orphans [WIM]`: staging directories no daemon holds, as JSON.
#[derive(Parser, Debug)]
#[command(name = "wimfs-mountd orphans")]
struct OrphansArgs {
    wim: Option<PathBuf>,
}

/// Runs helper verb `verb` with the process's arguments after it and returns its exit
/// status; `None` if `verb` is none (a mount). `init_log` sets up logging for a recovery.
pub fn run(verb: &str, init_log: impl FnOnce()) -> Option<i32> {
    let rest = std::env::args_os().skip(1);
    match verb {
        "recover" => {
            let a = RecoverArgs::parse_from(rest);
            init_log();
            Some(
                match crate::recover::recover(&a.staging, a.commit, a.check) {
                    Ok(msg) => {
                        println!("{msg}");
                        0
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        1
                    }
                },
            )
        }
        "orphans" => {
            let a = OrphansArgs::parse_from(rest);
            let found = crate::recover::find_orphans(a.wim.as_deref());
            match serde_json::to_string(&found) {
                Ok(s) => {
                    println!("{s}");
                    Some(0)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Some(1)
                }
            }
        }
        _ => None,
    }
}
