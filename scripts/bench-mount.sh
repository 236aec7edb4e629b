#!/usr/bin/env bash
# Mount benchmark: the same WIMs mounted by `wimlib-imagex mount` and by `wimfs mount` in one
# run, each measurement on fresh mounts. Prints wimlib/wimfs wall-time ratios (above 1.0 =
# wimfs faster) for: a find walk, a stat of every entry, reading every file, 2000 random
# 4 KiB reads (for the solid image: a 40-file sample instead, see below); then wimfs's full
# read of the solid image and the daemon's peak RSS.
#   BENCH_DIR=/tmp/wimfs-bench FORMATS="lzx lzms solid" \
#   SOURCES="/usr/share:/share /usr/bin:/bin /usr/lib/x86_64-linux-gnu:/lib" scripts/bench-mount.sh
# The default SOURCES is the "usr" corpus of scripts/bench-read.sh (WIMs are shared with it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
wimfs=$bin/wimfs
formats=${FORMATS:-lzx lzms solid}
. scripts/bench-corpus.sh
ma="$dir/mnt-wimlib"
mb="$dir/mnt-wimfs"
mkdir -p "$ma" "$mb"

cleanup() {
    mountpoint -q "$ma" && { wimlib-imagex unmount "$ma" >/dev/null 2>&1 || fusermount3 -u -z "$ma"; }
    mountpoint -q "$mb" && { "$wimfs" unmount "$mb" >/dev/null 2>&1 || fusermount3 -u -z "$mb"; }
    true
}
trap cleanup EXIT
trap "exit 130" INT TERM

now() { date +%s.%N; }

mount_both() {
    wimlib-imagex mount "$1" 1 "$ma" >/dev/null
    "$wimfs" mount "$1" 1 "$mb" --cache-size "${CACHE:-256M}"
}

unmount_both() {
    wimlib-imagex unmount "$ma" >/dev/null
    "$wimfs" unmount "$mb"
}

sample() { # mountpoint, file list, count: read whole files
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, lst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = [l.rstrip("\n").split("\t")[0] for l in open(lst)]
for p in random.Random(7).sample(files, min(n, len(files))):
    with open(os.path.join(root, p), "rb") as f:
        while f.read(1 << 20):
            pass
PY
}

run_test() { # test name, mountpoint, filelist -> seconds
    local s e
    s=$(now)
    case $1 in
        find) find "$2" > /dev/null ;;
        stat) find "$2" -printf '%s %m %y\n' > /dev/null ;;
        read) find "$2" -type f -print0 | xargs -0 -n 200 cat > /dev/null ;;
        random) randread "$2" "$3" 2000 ;;
        sample40) sample "$2" "$3" 40 ;;
    esac
    e=$(now)
    echo "$e - $s" | bc -l
}

daemon_pid() { "$wimfs" mounts --json | python3 -c "
import json,sys; d=sys.argv[1]
print(next(m['pid'] for m in json.load(sys.stdin) if m['dir']==d))" "$(realpath "$mb")"; }

printf '%-7s %-9s %10s %10s %8s\n' format test wimlib_s wimfs_s ratio
peak=0
for f in $formats; do
    case $f in
        xpress) wim=$(capture xpress --compress=xpress) ;;
        lzx) wim=$(capture lzx --compress=lzx) ;;
        lzms) wim=$(capture lzms --compress=lzms) ;;
        solid) wim=$(capture solid --solid) ;;
        *) echo "unknown format $f" >&2; exit 2 ;;
    esac
    cat "$wim" > /dev/null
    files="$dir/files-$tag.txt"
    mount_both "$wim"
    (cd "$mb" && find . -type f -printf '%P\t%s\n') > "$files"
    unmount_both
    # wimlib decodes a whole solid chunk for every read of a solid image, so reading all of
    # it (or 2000 random pieces) through wimlib takes hours: for the solid image wimlib
    # reads a 40-file sample, and wimfs alone reads everything.
    tests="find stat read random"
    [ "$f" = solid ] && tests="find stat sample40 read"
    for t in $tests; do
        mount_both "$wim"
        if [ "$f" = solid ] && [ "$t" = read ]; then
            a=nan
        else
            a=$(run_test "$t" "$ma" "$files")
        fi
        b=$(run_test "$t" "$mb" "$files")
        if [ "$t" = read ]; then
            rss=$(awk '/VmHWM/ {print $2}' "/proc/$(daemon_pid)/status")
            [ "$rss" -gt "$peak" ] && peak=$rss
            [ "$f" = solid ] && solid_read=$b
        fi
        unmount_both
        if [ "$a" = nan ]; then
            printf '%-7s %-9s %10s %10.2f %8s\n' "$f" "$t" - "$b" -
        else
            printf '%-7s %-9s %10.2f %10.2f %8.2f\n' "$f" "$t" "$a" "$b" "$(echo "$a / $b" | bc -l)"
        fi
    done
done
[ -n "${solid_read:-}" ] && printf 'wimfs full read of the solid image: %.2f s\n' "$solid_read"
printf 'wimfs-mountd peak RSS: %d MiB\n' $((peak / 1024))
