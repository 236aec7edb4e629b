//! Links the WinFsp DLL delay-loaded on Windows, so that the daemon starts (and can say what
//! is missing) even where WinFsp is not installed; nothing to do elsewhere.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A build script runs on the host: ask Cargo about the target instead of using cfg!.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        winfsp::build::winfsp_link_delayload();
    }
}
