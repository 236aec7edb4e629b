#!/usr/bin/env bash
# Builds wimfs and shows its main job on the bundled sample image, on a copy of it:
#   1. mount read-only, list a directory, read a file, show the Windows metadata xattrs,
#      unmount;
#   2. mount read-write, inject a small driver directory, delete a file, unmount --commit;
#   3. show with `wimfs dir` and `wimfs verify` that the image now holds the change.
# Whatever happens, nothing is left mounted and no daemon is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# What the demo needs besides Rust: FUSE (fusermount3 for non-root users) and getfattr.
need=()
command -v getfattr >/dev/null 2>&1 || need+=(attr)
[ "$(id -u)" -eq 0 ] || command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    step "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "building wimfs and wimfs-mountd (cargo build --release)"
cargo build --workspace --release --quiet
wimfs=$PWD/target/release/wimfs

work=$(mktemp -d "${TMPDIR:-/tmp}/wimfs-demo.XXXXXX")
wim=$work/sample.wim
mnt=$work/mnt
mkdir "$mnt"

# On any exit: end a mount still up (discarding uncommitted changes), wait for its daemon,
# and remove the work directory.
cleanup() {
    status=$?
    set +e
    if mountpoint -q "$mnt" 2>/dev/null; then
        pids=$("$wimfs" mounts --json 2>/dev/null |
            grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
        "$wimfs" unmount "$mnt" >/dev/null 2>&1 ||
            fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
        for pid in $pids; do
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        done
    fi
    rm -rf "$work"
    [ $status -eq 0 ] || echo "demo: failed (exit $status)" >&2
    exit $status
}
trap cleanup EXIT INT TERM

step "copying examples/sample.wim to $wim (the bundled image stays unchanged)"
cp examples/sample.wim "$wim"
"$wimfs" info "$wim" 1 | sed -n '1,3p'

step "wimfs mount $wim 1 $mnt  (read-only)"
"$wimfs" mount "$wim" 1 "$mnt"
"$wimfs" mounts

step "ls -l $mnt/docs"
ls -l "$mnt/docs"

step "cat $mnt/README.txt"
cat "$mnt/README.txt"

step "getfattr: Windows metadata as xattrs (attributes; the symlink's reparse point)"
getfattr --absolute-names -n system.wim.attributes "$mnt/README.txt" "$mnt/docs"
getfattr --absolute-names -h -n system.wim.reparse -e hex "$mnt/docs/readme-link"

step "writing to a read-only mount fails (EROFS)"
if touch "$mnt/new.txt" 2>&1; then echo "demo: a write succeeded" >&2; exit 1; fi

step "wimfs unmount $mnt"
"$wimfs" unmount "$mnt"

step "wimfs mountrw $wim 1 $mnt  (read-write; changes are staged beside the WIM)"
"$wimfs" mountrw "$wim" 1 "$mnt"

step "injecting drivers/demo: an .inf and a .sys"
mkdir -p "$mnt/drivers/demo"
cat >"$mnt/drivers/demo/demo.inf" <<'EOF'
; demo.inf - a driver package injected by scripts/demo.sh
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
Provider    = %Vendor%
DriverVer   = 01/01/2026,1.0.0.0

[Strings]
Vendor = "wimfs demo"
EOF
head -c 65536 /dev/urandom >"$mnt/drivers/demo/demo.sys"
ls -l "$mnt/drivers/demo"

step "deleting docs/log5.txt"
rm "$mnt/docs/log5.txt"

step "wimfs unmount $mnt --commit  (writes the changes into the WIM)"
"$wimfs" unmount "$mnt" --commit
echo "committed: the WIM is now $(stat -c %s "$wim") bytes (was $(stat -c %s examples/sample.wim))"

step "wimfs dir $wim 1: the driver is in, log5.txt is gone"
"$wimfs" dir "$wim" 1
"$wimfs" dir "$wim" 1 | grep -qx '/drivers/demo/demo.inf'
"$wimfs" dir "$wim" 1 | grep -qx '/drivers/demo/demo.sys'
if "$wimfs" dir "$wim" 1 | grep -qx '/docs/log5.txt'; then
    echo "demo: docs/log5.txt is still in the image" >&2
    exit 1
fi

step "wimfs verify $wim"
"$wimfs" verify "$wim"

step "done: nothing is mounted ($(mount | grep -c wimfs || true) wimfs mounts)"
