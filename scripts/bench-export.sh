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

timeit() { # command... -> seconds
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; echo 0; return; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}

out=$(mktemp -d "${TMPDIR:-/tmp}/wimfs-bench-export.XXXXXX")
trap 'rm -rf "$out"' EXIT
printf '%-12s %10s %10s %9s %9s %9s %9s\n' case wimfs_MB wimlib_MB size_x wimfs_s wimlib_s time_x
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
    a=$(printf '%s\n' "${ours[@]}" | median)
    b=$(printf '%s\n' "${theirs[@]}" | median)
    sa=$(stat -c %s "$out/ours.wim" 2>/dev/null || echo 0)
    sb=$(stat -c %s "$out/theirs.wim")
    wimlib-imagex verify "$out/ours.wim" >/dev/null 2>&1 || echo "$c: wimlib-imagex verify FAILED on the wimfs WIM" >&2
    printf '%-12s %10.1f %10.1f %9.4f %9.2f %9.2f %9.2f\n' "$c" "$(echo "$sa / 1048576" | bc -l)" \
        "$(echo "$sb / 1048576" | bc -l)" "$(echo "$sa / $sb" | bc -l)" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
