#!/usr/bin/env bash
# Read-only mount, this build against another build of wimfs (BEFORE=path/to/its/wimfs, with
# its wimfs-mountd beside it): the same WIM mounted by each in turn, a fresh mount per
# measurement, RUNS rounds (default 3) alternating the two. Prints medians of a find walk, a
# stat of every entry, reading every file, 2000 random 4 KiB reads and the daemon's peak
# RSS, and the ratio this/before (below 1.0 = this build faster). For "no slower than
# before" checks of changes to the mount path:
#   git worktree add /tmp/wimfs-before <commit>
#   (cd /tmp/wimfs-before && cargo build --release)
#   BEFORE=/tmp/wimfs-before/target/release/wimfs RUNS=5 scripts/bench-mount-ab.sh
# The WIM is the LZX one of the "usr" corpus (see scripts/bench-corpus.sh), or WIM=path.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "${BEFORE:-}" ] || { echo "set BEFORE to the other build's wimfs binary" >&2; exit 2; }
bash scripts/setup.sh
cargo build --workspace --release --quiet
this=${CARGO_TARGET_DIR:-$PWD/target}/release/wimfs
. scripts/bench-corpus.sh
wim=${WIM:-$(capture lzx --compress=lzx)}
mnt="$dir/mnt-ab"
files="$dir/files-ab.txt"
mkdir -p "$mnt"
trap 'mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"; true' EXIT
trap "exit 130" INT TERM
"$this" mount "$wim" 1 "$mnt"
(cd "$mnt" && find . -type f -printf '%P\t%s\n') > "$files"
"$this" unmount "$mnt"

now() { date +%s.%N; }
declare -A bin=([before]=$BEFORE [this]=$this) res
for _ in $(seq 1 "${RUNS:-3}"); do
    for b in before this; do
        for t in find stat read random; do
            "${bin[$b]}" mount "$wim" 1 "$mnt"
            s=$(now)
            case $t in
                find) find "$mnt" > /dev/null ;;
                stat) find "$mnt" -printf '%s %m %y\n' > /dev/null ;;
                read) find "$mnt" -type f -print0 | xargs -0 -n 200 cat > /dev/null ;;
                random) randread "$mnt" "$files" 2000 ;;
            esac
            e=$(now)
            if [ "$t" = read ]; then
                pid=$("${bin[$b]}" mounts --json | python3 -c "
import json, sys; d = sys.argv[1]
print(next(m['pid'] for m in json.load(sys.stdin) if m['dir'] == d))" "$(realpath "$mnt")")
                res[$b-rss]="${res[$b-rss]:-} $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")"
            fi
            "${bin[$b]}" unmount "$mnt"
            res[$b-$t]="${res[$b-$t]:-} $(echo "$e - $s" | bc -l)"
        done
    done
done
printf '%-7s %10s %10s %10s\n' test before this this/before
for t in find stat read random rss; do
    x=$(printf '%s\n' ${res[before-$t]} | median)
    y=$(printf '%s\n' ${res[this-$t]} | median)
    printf '%-7s %10.2f %10.2f %10.2f\n' "$t" "$x" "$y" "$(echo "$y / $x" | bc -l)"
done
echo "(rss in MiB; times in seconds)"
