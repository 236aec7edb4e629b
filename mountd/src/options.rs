//! Parsing of daemon options: sizes with suffixes and (Unix) `-o` FUSE mount options.

#[cfg(unix)]
use fuser::MountOption;

/// Parses a byte count with an optional K/M/G/T suffix (see [`wimfs::units::parse_size`]),
/// as a `usize`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    wimfs::units::parse_size(s)
        .and_then(|n| usize::try_from(n).map_err(|_| format!("size {s:?} is too large")))
}

/// The WIM a daemon serves: a URL as given (remote images are read-only; the block cache
/// comes from the environment), or a local file by its real path.
pub fn wim_location(wimfile: &std::path::Path, rw: bool) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    if let Some((dir, limit)) =
        wimfs::read::remote::disk_cache_from_env().map_err(anyhow::Error::msg)?
    {
        wimfs::read::remote::set_disk_cache(dir, limit);
    }
    // A URL arrives without what may be secret in it; the full one is in the environment.
    let wimfile = wimfs::read::remote::reveal(wimfile);
    let wimfile = wimfile.as_path();
    if !wimfile.to_str().is_some_and(wimfs::read::is_url) {
        return std::fs::canonicalize(wimfile)
            .with_context(|| format!("{}: cannot open", wimfile.display()));
    }
    if rw {
        anyhow::bail!(
            "{}: remote images are read-only; mount it read-only, or copy it first \
             (wimfs export URL all COPY.wim) and mount the copy read-write",
            wimfile.display()
        );
    }
    Ok(wimfile.to_path_buf())
}

/// The other parts of a split WIM as given to the daemon (URLs in full, see
/// [`wim_location`]).
pub fn ref_locations(refs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    refs.iter()
        .map(|r| wimfs::read::remote::reveal(r))
        .collect()
}

/// Turns a comma-separated `-o` list into mount options. `rw` is refused: this mount is
/// read-only.
#[cfg(unix)]
pub fn parse_mount_options(s: &str) -> Result<Vec<MountOption>, String> {
    let mut out = Vec::new();
    for o in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        out.push(match o {
            "ro" => MountOption::RO,
            "rw" => return Err("-o rw: this mount is read-only (use wimfs mountrw)".into()),
            "dev" => MountOption::Dev,
            "nodev" => MountOption::NoDev,
            "suid" => MountOption::Suid,
            "nosuid" => MountOption::NoSuid,
            "exec" => MountOption::Exec,
            "noexec" => MountOption::NoExec,
            "atime" => MountOption::Atime,
            "noatime" => MountOption::NoAtime,
            "auto_unmount" => MountOption::AutoUnmount,
            "default_permissions" => MountOption::DefaultPermissions,
            o if o.starts_with("fsname=") => MountOption::FSName(o[7..].to_string()),
            o if o.starts_with("subtype=") => MountOption::Subtype(o[8..].to_string()),
            o => MountOption::CUSTOM(o.to_string()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn mount_options() {
        let o = parse_mount_options("noexec, noatime,max_read=65536").unwrap();
        assert_eq!(
            o,
            [
                MountOption::NoExec,
                MountOption::NoAtime,
                MountOption::CUSTOM("max_read=65536".into())
            ]
        );
        assert!(parse_mount_options("rw").is_err());
    }
}
