//! The `wimfs` command line: argument parsing and dispatch only.

mod cmd;

use clap::Parser;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    #[cfg(unix)]
    let args = match args.first() {
        Some(argv0) if cmd::mount_helper::invoked_as_helper(argv0) => {
            match cmd::mount_helper::translate(&args) {
                Ok(Some(a)) => a,
                Ok(None) => std::process::exit(0),
                Err(e) => {
                    eprintln!("{e:#}");
                    // mount(8) helpers report bad usage with status 1 ("incorrect invocation").
                    std::process::exit(1);
                }
            }
        }
        _ => args,
    };
    let args = cmd::expand_short_name(args);
    let cli = cmd::Cli::parse_from(args);
    cmd::init_logging(cli.debug);
    match cmd::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("wimfs: {e:#}");
            std::process::exit(cmd::status::exit_status(&e));
        }
    }
}
