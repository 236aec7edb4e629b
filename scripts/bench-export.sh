#!/usr/bin/env bash
# Export benchmark: `wimfs export` against `wimlib-imagex export` of the same image into a new
# WIM with another compression, in one run. Sources are the corpus (see bench-corpus.sh)
# captured by wimlib in XPRESS and as a solid LZMS ESD; each goes to LZX ("xpress>lzx",
# "solid>lzx", the usual ESD-to-WIM conversion). Prints median wall times of RUNS runs
# (default 3), the output sizes and the wimfs/wimlib ratios (below 1.0 = wimfs smaller/faster).
#   BENCH_DIR=/tmp/wimfs-bench RUNS=3 CASES="xpress>lzx solid>lzx" scripts/bench-export.sh
# SOURCES="/usr/bin:/bin" narrows the corpus (solid captures of all of it take long on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${WIMFS:-}" ]; then
    cargo build --release --quiet
fi
wimfs=${WIMFS:-$PWD/target/release/wimfs}
runs=${RUNS:-3}
cases=${CASES:-xpress>lzx solid>lzx}
. scripts/bench-corpus.sh

out=$(mktemp -d "${TMPDIR:-/tmp}/wimfs-bench-export.XXXXXX")
trap 'rm -rf "$out"' EXIT
size_time_header
for c in $cases; do
    from=${c%%>*}
    to=${c##*>}
    case $from in
        xpress) src=$(capture xpress --compress=xpress) ;;
        lzx) src=$(capture lzx --compress=lzx) ;;
        solid) src=$(capture solid --solid) ;;
        *) echo "unknown source format $from" >&2; exit 2 ;;
    esac
    ours=(); theirs=()
    for _ in $(seq "$runs"); do
        rm -f "$out/ours.wim" "$out/theirs.wim"
        ours+=("$(timeit "$wimfs" export "$src" 1 "$out/ours.wim" --compress="$to" --quiet)")
        theirs+=("$(timeit wimlib-imagex export "$src" 1 "$out/theirs.wim" --compress="$to")")
    done
    size_time_row "$c" "$out/ours.wim" "$out/theirs.wim" "${ours[@]}" -- "${theirs[@]}"
done
