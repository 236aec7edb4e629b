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
. scripts/bench-lib.sh

wl_threads=()
[ "$threads" = 0 ] || wl_threads=(--threads="$threads")
tar cf - "$src" 2>/dev/null > /dev/null # same page-cache state for both tools
size_time_header
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
    size_time_row "$f" "$dir/ours.wim" "$dir/theirs.wim" "${ours[@]}" -- "${theirs[@]}"
done
