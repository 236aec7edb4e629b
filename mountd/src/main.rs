//! wimfs-mountd: the mount daemon. The read-only mount is not built yet; this binary
//! reports that clearly instead of pretending to mount.

fn main() {
    eprintln!("wimfs-mountd: mounting is not implemented in this build");
    std::process::exit(2);
}
