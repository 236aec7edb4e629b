#!/usr/bin/env bash
# Read-write mount benchmark: `wimlib-imagex mountrw` against `wimfs mountrw` on copies of
# the same WIM, in one run, per format: copy a tree of ~130 MB into the mount, then
# `unmount --commit`. Prints median wall times of RUNS runs (default 3) and the ratios
# wimlib/wimfs for copy-in and commit (above 1.0 = wimfs faster) and the size ratio of the
# committed files wimfs/wimlib (goal: copy-in >= 3, commit >= 1, size <= 1.01). Then, per
# format, a full read (`tar -cf - . | cat`) of the unchanged tree through `wimfs mountrw` and
# through `wimfs mount`, page cache dropped before each, and the ratio rw/ro (goal <= 1.1).
#   BENCH_DIR=/tmp/wimfs-bench FORMATS="xpress lzx lzms" RUNS=3 INJECT="DIR ..." PARTS="write read" \
#   SOURCES="/usr/share:/share /usr/bin:/bin /usr/lib/x86_64-linux-gnu:/lib" scripts/bench-rw.sh
# The base WIMs are the "usr" corpus of scripts/bench-mount.sh (shared through BENCH_DIR);
# INJECT defaults to /usr/include (~130 MB, ~9000 mostly small files, like a driver tree, and
# not in the base image, so a commit has new data to compress).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
wimfs=$bin/wimfs
formats=${FORMATS:-xpress lzx lzms}
runs=${RUNS:-3}
inject=${INJECT:-/usr/include}
. scripts/bench-corpus.sh
work=$(mktemp -d "$dir/rw.XXXXXX")
ma="$work/mnt-wimlib"
mb="$work/mnt-wimfs"
mkdir -p "$ma" "$mb"

cleanup() {
    mountpoint -q "$ma" && { wimlib-imagex unmount "$ma" >/dev/null 2>&1 || fusermount3 -u -z "$ma"; }
    mountpoint -q "$mb" && { "$wimfs" unmount "$mb" >/dev/null 2>&1 || fusermount3 -u -z "$mb"; }
    rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

# One copy-in + commit with tool $1 on a fresh copy of WIM $2; prints "copy commit size".
one() {
    local tool=$1 wim=$2 m t0 t1 t2
    cp "$wim" "$work/$tool.wim"
    sync
    if [ "$tool" = wimlib ]; then
        m=$ma
        wimlib-imagex mountrw "$work/$tool.wim" 1 "$m" >/dev/null
    else
        m=$mb
        "$wimfs" mountrw "$work/$tool.wim" 1 "$m"
    fi
    t0=$(now)
    mkdir "$m/injected"
    for d in $inject; do
        [ -d "$d" ] && cp -r "$d" "$m/injected/"
    done
    t1=$(now)
    if [ "$tool" = wimlib ]; then
        wimlib-imagex unmount "$m" --commit >/dev/null
    else
        "$wimfs" unmount "$m" --commit
    fi
    t2=$(now)
    echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2") $(stat -c %s "$work/$tool.wim")"
    rm -f "$work/$tool.wim"
}

parts=" ${PARTS:-write read} "
if [[ $parts == *" write "* ]]; then
echo "inject: $(du -scm $inject 2>/dev/null | tail -1 | cut -f1) MB from $inject" >&2
tar cf - $inject 2>/dev/null > /dev/null # same page-cache state for both tools
printf '%-7s %9s %9s %7s %10s %10s %7s %8s\n' format copy_wl copy_wf copy_x commit_wl commit_wf commit_x size_x
for f in $formats; do
    case $f in
        xpress) wim=$(capture xpress --compress=xpress) ;;
        lzx) wim=$(capture lzx --compress=lzx) ;;
        lzms) wim=$(capture lzms --compress=lzms) ;;
        *) echo "unknown format $f" >&2; exit 2 ;;
    esac
    ca=(); cb=(); ka=(); kb=(); sa=0; sb=0
    for _ in $(seq "$runs"); do
        read -r c k s < <(one wimlib "$wim"); ca+=("$c"); ka+=("$k"); sa=$s
        read -r c k s < <(one wimfs "$wim"); cb+=("$c"); kb+=("$k"); sb=$s
    done
    mca=$(printf '%s\n' "${ca[@]}" | median); mcb=$(printf '%s\n' "${cb[@]}" | median)
    mka=$(printf '%s\n' "${ka[@]}" | median); mkb=$(printf '%s\n' "${kb[@]}" | median)
    printf '%-7s %9.2f %9.2f %7.2f %10.2f %10.2f %7.2f %8.4f\n' "$f" "$mca" "$mcb" \
        "$(echo "$mca / $mcb" | bc -l)" "$mka" "$mkb" "$(echo "$mka / $mkb" | bc -l)" \
        "$(echo "$sb / $sa" | bc -l)"
done
fi

# Reading an unchanged tree: a read-write mount against a read-only one (same daemon code for
# unchanged data). The WIM is not changed: the read-write mount is ended without --commit.
readall() { # tool mode wim -> seconds
    local m=$mb t0 t1
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    "$wimfs" "$1" "$2" 1 "$m"
    t0=$(now)
    (cd "$m" && tar -cf - . | cat > /dev/null)
    t1=$(now)
    "$wimfs" unmount "$m"
    secs "$t0" "$t1"
}
[[ $parts == *" read "* ]] || exit 0
printf '%-7s %9s %9s %7s\n' format read_ro read_rw rw/ro
for f in $formats; do
    wim=$dir/$tag-$f.wim
    [ -s "$wim" ] || continue
    ra=(); rb=()
    for _ in $(seq "$runs"); do
        ra+=("$(readall mount "$wim")")
        rb+=("$(readall mountrw "$wim")")
    done
    mra=$(printf '%s\n' "${ra[@]}" | median); mrb=$(printf '%s\n' "${rb[@]}" | median)
    printf '%-7s %9.2f %9.2f %7.2f\n' "$f" "$mra" "$mrb" "$(echo "$mrb / $mra" | bc -l)"
done
