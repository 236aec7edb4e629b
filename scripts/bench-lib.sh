# Sourced by the benchmark scripts: timing and reporting helpers.

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Random-read driver: N reads of 4 KiB at seeded random offsets of files >= 4 KiB.
randread() { # mountpoint, file list, count
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, lst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = [l.rstrip("\n").split("\t") for l in open(lst)]
files = [(p, int(s)) for p, s in files if int(s) >= 4096]
rng = random.Random(42)
for _ in range(n):
    p, s = rng.choice(files)
    with open(os.path.join(root, p), "rb") as f:
        f.seek(rng.randrange(0, s - 4096 + 1))
        f.read(4096)
PY
}

timeit() { # command... -> seconds (0 and a message on stderr if it fails)
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; echo 0; return; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}

# size_time_header: the column titles of size_time_row.
size_time_header() {
    printf '%-12s %10s %10s %9s %9s %9s %9s\n' case wimfs_MB wimlib_MB size_x wimfs_s wimlib_s time_x
}

# size_time_row NAME OURS.wim THEIRS.wim OURS_SECONDS... -- THEIRS_SECONDS...: checks the wimfs
# WIM with wimlib-imagex verify, then prints both sizes and median times and the ratios.
size_time_row() {
    local name=$1 ours=$2 theirs=$3
    shift 3
    local -a a=() b=()
    while [ "$1" != -- ]; do a+=("$1"); shift; done
    shift
    b=("$@")
    local ma mb sa sb
    ma=$(printf '%s\n' "${a[@]}" | median)
    mb=$(printf '%s\n' "${b[@]}" | median)
    sa=$(stat -c %s "$ours" 2>/dev/null || echo 0)
    sb=$(stat -c %s "$theirs")
    wimlib-imagex verify "$ours" >/dev/null 2>&1 || echo "$name: wimlib-imagex verify FAILED on the wimfs WIM" >&2
    printf '%-12s %10.1f %10.1f %9.4f %9.2f %9.2f %9.2f\n' "$name" "$(echo "$sa / 1048576" | bc -l)" \
        "$(echo "$sb / 1048576" | bc -l)" "$(echo "$sa / $sb" | bc -l)" "$ma" "$mb" "$(echo "$ma / $mb" | bc -l)"
}
