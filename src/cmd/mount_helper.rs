//! `mount.wimfs`: the helper mount(8) runs for `mount -t wimfs WIMFILE DIR -o OPTIONS` and
//! for fstab lines of type `wimfs`. It is the `wimfs` binary under another name (a symlink);
//! this module turns mount(8)'s calling convention into a `wimfs mount` command line.

use std::ffi::OsString;

use anyhow::{bail, Result};

/// Options mount(8) or fstab may pass that mean nothing to a read-only image mount.
const IGNORED: &[&str] = &[
    "defaults", "ro", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail",
    "_netdev", "sync", "async", "loop",
];

/// Options handed on to FUSE as they are.
const FUSE_PASSTHROUGH: &[&str] = &[
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "default_permissions",
];

/// Whether the program was started under the helper's name.
pub fn invoked_as_helper(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "mount.wimfs")
}

/// Translates `mount.wimfs SOURCE DIR [-sfnv] [-o OPTS] [-t TYPE]` into the arguments of
/// `wimfs mount`. `None` means "do nothing and succeed" (mount's `-f`, fake).
pub fn translate(args: &[OsString]) -> Result<Option<Vec<OsString>>> {
    let mut positional: Vec<OsString> = Vec::new();
    let mut opts: Vec<String> = Vec::new();
    let mut sloppy = false;
    let mut fake = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => match it.next().and_then(|o| o.to_str()) {
                Some(o) => opts.extend(o.split(',').filter(|s| !s.is_empty()).map(String::from)),
                None => bail!("mount.wimfs: -o needs a list of options"),
            },
            Some("-t") => {
                it.next();
            }
            Some(flags) if flags.starts_with('-') && flags.len() > 1 => {
                for c in flags[1..].chars() {
                    match c {
                        's' => sloppy = true,
                        'f' => fake = true,
                        'n' | 'v' => {}
                        _ => bail!("mount.wimfs: unknown flag -{c}"),
                    }
                }
            }
            _ => positional.push(a.clone()),
        }
    }
    let [source, dir] = positional.as_slice() else {
        bail!("usage: mount.wimfs WIMFILE DIR [-o image=N,ref=GLOB,unix_data,...]");
    };
    let mut out: Vec<OsString> = vec!["wimfs".into(), "mount".into(), source.clone()];
    let mut image = None;
    let mut flags: Vec<OsString> = Vec::new();
    let mut fuse: Vec<String> = Vec::new();
    for o in &opts {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        let key_norm = key.replace('-', "_");
        match (key_norm.as_str(), value) {
            ("image", Some(v)) => image = Some(v.to_string()),
            ("ref", Some(v)) => flags.extend(["--ref".into(), v.into()]),
            ("streams_interface", Some(v)) => {
                flags.extend(["--streams-interface".into(), v.into()])
            }
            ("cache_size", Some(v)) => flags.extend(["--cache-size".into(), v.into()]),
            ("scratch_size", Some(v)) => flags.extend(["--scratch-size".into(), v.into()]),
            ("unix_data", None) => flags.push("--unix-data".into()),
            ("allow_other", None) => flags.push("--allow-other".into()),
            ("check", None) => flags.push("--check".into()),
            ("debug", None) => flags.push("--debug".into()),
            ("rw", None) => bail!(
                "mount.wimfs: {}: read-write mounts are made with `wimfs mountrw`",
                source.to_string_lossy()
            ),
            (k, _) if IGNORED.contains(&k) || k.starts_with("x_") || k == "comment" => {}
            (k, None) if FUSE_PASSTHROUGH.contains(&k) => fuse.push(k.to_string()),
            _ if sloppy => {}
            _ => bail!("mount.wimfs: unknown option {o:?}"),
        }
    }
    if fake {
        return Ok(None);
    }
    if let Some(i) = image {
        out.push(i.into());
    }
    out.push(dir.clone());
    out.extend(flags);
    if !fuse.is_empty() {
        out.extend(["-o".into(), fuse.join(",").into()]);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Result<Option<Vec<String>>> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        Ok(translate(&v)?.map(|o| {
            o.into_iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        }))
    }

    #[test]
    fn fstab_options_become_mount_arguments() {
        let got = t(&[
            "/sbin/mount.wimfs",
            "/x.wim",
            "/mnt",
            "-o",
            "ro,noauto,image=2,ref=/p*.swm,unix_data,streams-interface=windows,nodev,x-systemd.automount",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            [
                "wimfs",
                "mount",
                "/x.wim",
                "2",
                "/mnt",
                "--ref",
                "/p*.swm",
                "--unix-data",
                "--streams-interface",
                "windows",
                "-o",
                "nodev"
            ]
        );
    }

    #[test]
    fn bad_options_are_named_unless_sloppy() {
        let e = t(&["mount.wimfs", "a.wim", "/m", "-o", "frobnicate"]).unwrap_err();
        assert!(e.to_string().contains("frobnicate"), "{e}");
        assert!(t(&["mount.wimfs", "a.wim", "/m", "-s", "-o", "frobnicate"]).is_ok());
        assert!(t(&["mount.wimfs", "a.wim", "/m", "-o", "rw"])
            .unwrap_err()
            .to_string()
            .contains("mountrw"));
        assert!(t(&["mount.wimfs", "a.wim"]).is_err());
        assert_eq!(t(&["mount.wimfs", "a.wim", "/m", "-fv"]).unwrap(), None);
        assert!(invoked_as_helper(std::ffi::OsStr::new(
            "/usr/sbin/mount.wimfs"
        )));
        assert!(!invoked_as_helper(std::ffi::OsStr::new("wimfs")));
    }
}
