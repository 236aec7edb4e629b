#!/usr/bin/env bash
# Write benchmark: `wimfs capture` against `wimlib-imagex capture` of the same directory, in
# one run, per format. The default corpus is a ~500 MB mix from /usr (bin, share/doc,
# share/man, share/locale, lib/python3.11), linked (or copied) into a scratch directory. Prints median wall times of RUNS runs (default 3), the WIM sizes, and
# the wimfs/wimlib ratios of both (below 1.0 = wimfs smaller / faster). Goal: size <= 1.01,
# time <= 1.0.
#   SRC=DIR RUNS=3 FORMATS="xpress lzx lzms solid" THREADS=0 scripts/bench-write.sh
# THREADS=1 compares single-threaded compressors; 0 (default) uses every core on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${WIMFS:-}" ]; then
    cargo build --release --quiet
fi
wimfs=${WIMFS:-$PWD/target/release/wimfs}
runs=${RUNS:-3}
formats=${FORMATS:-xpress lzx lzms solid}
threads=${THREADS:-0}
dir=$(mktemp -d "${TMPDIR:-/tmp}/wimfs-bench-write.XXXXXX")
trap 'rm -rf "$dir"' EXIT
if [ -n "${SRC:-}" ]; then
    src=$SRC
else
    src="$dir/corpus"
    mkdir -p "$src"
    for d in /usr/bin /usr/share/doc /usr/share/man /usr/share/locale /usr/lib/python3.11; do
        [ -d "$d" ] || continue
        # Hard links when /usr and the scratch directory share a filesystem, else copies.
        cp -al "$d" "$src/" 2>/dev/null || cp -a "$d" "$src/"
    done
    echo "corpus: $(du -sm "$src" | cut -f1) MB in $src" >&2
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

timeit() { # command... -> seconds
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; echo 0; return; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}

wl_threads=()
[ "$threads" = 0 ] || wl_threads=(--threads="$threads")
tar cf - "$src" 2>/dev/null > /dev/null # same page-cache state for both tools
printf '%-8s %10s %10s %9s %9s %9s %9s\n' format wimfs_MB wimlib_MB size_x wimfs_s wimlib_s time_x
for f in $formats; do
    case $f in
        xpress) args=(--compress=xpress) ;;
        lzx) args=(--compress=lzx) ;;
        lzms) args=(--compress=lzms) ;;
        solid) args=(--solid) ;;
        *) echo "unknown format $f" >&2; exit 2 ;;
    esac
    ours=(); theirs=()
    for _ in $(seq "$runs"); do
        rm -f "$dir/ours.wim" "$dir/theirs.wim"
        ours+=("$(timeit "$wimfs" capture "$src" "$dir/ours.wim" bench --quiet --threads "$threads" "${args[@]}")")
        theirs+=("$(timeit wimlib-imagex capture "$src" "$dir/theirs.wim" bench "${wl_threads[@]}" "${args[@]}")")
    done
    a=$(printf '%s\n' "${ours[@]}" | median)
    b=$(printf '%s\n' "${theirs[@]}" | median)
    sa=$(stat -c %s "$dir/ours.wim" 2>/dev/null || echo 0)
    sb=$(stat -c %s "$dir/theirs.wim")
    wimlib-imagex verify "$dir/ours.wim" >/dev/null 2>&1 || echo "$f: wimlib-imagex verify FAILED on the wimfs WIM" >&2
    printf '%-8s %10.1f %10.1f %9.4f %9.2f %9.2f %9.2f\n' "$f" "$(echo "$sa / 1048576" | bc -l)" \
        "$(echo "$sb / 1048576" | bc -l)" "$(echo "$sa / $sb" | bc -l)" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
