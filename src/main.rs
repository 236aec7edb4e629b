//! The `wimfs` command line: argument parsing and dispatch only.

mod cmd;

use clap::Parser;

fn main() {
    let cli = cmd::Cli::parse();
    cmd::init_logging(cli.debug);
    match cmd::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("wimfs: {e:#}");
            std::process::exit(1);
        }
    }
}
