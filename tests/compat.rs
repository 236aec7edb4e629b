//! `scripts/compat.sh`: a wimlib-imagex deployment workflow run with both tools and diffed.

mod common;

use std::process::Command;

#[test]
fn the_compat_workflow_matches_wimlib() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/compat.sh");
    let out = common::run(Command::new("bash").arg(script).arg(common::wimfs()));
    assert!(
        out.status.success(),
        "compat.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The comparison catches a difference it is shown.
    let out = common::run(
        Command::new("bash")
            .arg(script)
            .arg(common::wimfs())
            .env("COMPAT_SABOTAGE", "1"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("applied-1 differs"));
}
