#!/usr/bin/env bash
# Read benchmark: `wimfs verify` against `wimlib-imagex verify` on the same files, in one run.
# The corpus is /usr/share + /usr/bin + /usr/lib/x86_64-linux-gnu captured by wimlib in XPRESS,
# LZX, LZMS and solid LZMS. Prints median wall times of RUNS runs (default 3) and the
# wimfs/wimlib ratio (below 1.0 = wimfs faster).
#   BENCH_DIR=/tmp/wimfs-bench RUNS=3 FORMATS="xpress lzx lzms solid" scripts/bench-read.sh
# SOURCES="/usr/bin:/bin" narrows the corpus (LZMS captures of all of it take long on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${WIMFS:-}" ]; then
    cargo build --release --quiet
fi
wimfs=${WIMFS:-$PWD/target/release/wimfs}
runs=${RUNS:-3}
formats=${FORMATS:-xpress lzx lzms solid}
. scripts/bench-corpus.sh

printf '%-8s %10s %12s %12s %8s\n' format size_MB wimfs_s wimlib_s ratio
for f in $formats; do
    case $f in
        xpress) wim=$(capture xpress --compress=xpress) ;;
        lzx) wim=$(capture lzx --compress=lzx) ;;
        lzms) wim=$(capture lzms --compress=lzms) ;;
        solid) wim=$(capture solid --solid) ;;
        *) echo "unknown format $f" >&2; exit 2 ;;
    esac
    cat "$wim" > /dev/null # same page-cache state for both tools
    ours=(); theirs=()
    for _ in $(seq "$runs"); do
        ours+=("$(timeit "$wimfs" verify --quiet "$wim")")
        theirs+=("$(timeit wimlib-imagex verify "$wim")")
    done
    a=$(printf '%s\n' "${ours[@]}" | median)
    b=$(printf '%s\n' "${theirs[@]}" | median)
    printf '%-8s %10d %12.2f %12.2f %8.2f\n' "$f" $(( $(stat -c %s "$wim") / 1048576 )) "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
