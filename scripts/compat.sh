#!/usr/bin/env bash
# A deployment workflow written for wimlib-imagex, run twice with the same command lines:
# once with wimlib-imagex, once with wimfs. Then every WIM made, every tree applied and every
# exit status is compared; any difference fails the script.
#
#   bash scripts/compat.sh [WIMFS]     (default: target/release/wimfs; needs wimlib-imagex)
#
# The workflow: capture, append, update (add, delete, rename), info edits (rename an image,
# boot index, an XML property), export of all images with other compression, export of one
# image as a pipable WIM, split and join, delete, optimize, apply from a pipe, apply, extract
# with a wildcard, and two failures scripts test for (a missing image, a missing path).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
wimfs=${1:-$here/target/release/wimfs}
wimfs=$(realpath "$wimfs")
command -v wimlib-imagex >/dev/null || { echo "compat: wimlib-imagex is not installed" >&2; exit 2; }
[ -x "$wimfs" ] || { echo "compat: $wimfs is not built (cargo build --release)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wimfs-compat.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# The sources: files, a hard link, symlinks, Unicode names, an empty file and directory.
src1=$work/src1 src2=$work/src2 add=$work/add
mkdir -p "$src1/dir/sub" "$src1/empty dir" "$src2/Windows/System32" "$add/drivers/net"
for i in $(seq 1 40); do printf 'line %d of the first tree\n' $(seq 1 $((i * 50))) > "$src1/dir/file$i.txt"; done
head -c 3000000 /dev/urandom > "$src1/dir/sub/random.bin"
: > "$src1/empty.txt"
ln "$src1/dir/file3.txt" "$src1/hardlink.txt"
ln -s ../dir/file1.txt "$src1/dir/sub/rel-link"
ln -s "$src1/dir" "$src1/abs-link"
printf 'Ünïcödé\n' > "$src1/dir/Ünïcödé 名前.txt"
printf 'wpeinit\r\n' > "$src2/Windows/System32/startnet.cmd"
cp "$src1/dir/file7.txt" "$src2/copy.txt"
head -c 500000 /dev/urandom > "$add/drivers/net/e1000.sys"
printf '[Version]\nSignature="$Windows NT$"\n' > "$add/drivers/net/e1000.inf"
printf 'start.exe\r\n' > "$work/startnet.cmd"
cat > "$work/update.txt" <<'EOF'
# inject drivers, replace the start script, tidy up
add add/drivers /Windows/System32/drivers
add startnet.cmd /Windows/System32/startnet.cmd
rename /copy.txt "/renamed copy.txt"
delete --force /does-not-exist
EOF

# One run of the workflow with tool $1 into directory $2; every exit status goes to status.
flow() {
    local tool=$1 out=$2
    mkdir -p "$out"
    cp -p "$work/update.txt" "$work/startnet.cmd" "$out/"
    ln -s "$add" "$out/add"
    (
        cd "$out"
        step() { local s=0; "$@" >/dev/null 2>&1 || s=$?; echo "$s $*" >> status; }
        step $tool capture "$src1" a.wim "One" "the first image" --compress=lzx
        step $tool append "$src2" a.wim "Two"
        $tool update a.wim 2 < update.txt >/dev/null 2>&1; echo "$? update a.wim 2" >> status
        step $tool info a.wim 2 "Two renamed" "patched"
        step $tool info a.wim 1 --boot
        step $tool info a.wim 1 --image-property DISPLAYNAME=Shown
        step $tool export a.wim all b.wim --compress=xpress
        step $tool export a.wim 2 p.wim --pipable
        step $tool split b.wim s.swm 1
        step $tool join j.wim s*.swm
        step $tool delete j.wim 1
        step $tool optimize j.wim
        sh -c "cat p.wim | $tool apply - 1 applied-pipe" >/dev/null 2>&1; echo "$? apply - from a pipe" >> status
        step $tool apply a.wim 1 applied-1
        step $tool extract a.wim 1 '/dir/file1*.txt' --dest-dir=extracted
        step $tool dir a.wim 3
        step $tool extract a.wim 1 /missing --dest-dir=nothing
        ls s*.swm > parts
    )
}

flow wimlib-imagex "$work/lib"
flow "$wimfs" "$work/ours"
# COMPAT_SABOTAGE=1 changes one applied file, to see the comparison catch it.
[ -z "${COMPAT_SABOTAGE:-}" ] || echo changed >> "$work/ours/applied-1/dir/file2.txt"

fail=0
differ() { echo "compat: $*" >&2; fail=1; }

# Exit statuses, step by step (the tool's name aside).
diff <(sed "s|wimlib-imagex||" "$work/lib/status") <(sed "s|$wimfs||" "$work/ours/status") \
    || differ "exit statuses differ"
cmp -s "$work/lib/parts" "$work/ours/parts" || differ "split made other parts"

# What wimlib-imagex reads in each WIM made: listings record by record (without what two
# writers lay out differently: offsets, compressed sizes, link group numbers, access times),
# and the information of every image (without times, sizes, GUIDs and paths).
records() {
    wimlib-imagex dir "$1" "$2" --detailed |
        grep -v -e '^Offset in WIM' -e '^Compressed size' -e '^Link Group ID' \
            -e '^Last Access Time' -e '^Solid ' -e '^Part Number' -e '^Flags'
}
summary() {
    wimlib-imagex info "$1" |
        grep -v -e 'Time:' -e '^Size:' -e '^GUID:' -e '^Path:'
}
for w in a.wim b.wim p.wim j.wim; do
    for d in lib ours; do wimlib-imagex verify "$work/$d/$w" >/dev/null 2>&1 || differ "$d/$w does not verify"; done
    diff <(summary "$work/lib/$w") <(summary "$work/ours/$w") || differ "info of $w differs"
    count=$(wimlib-imagex info "$work/lib/$w" | sed -n 's/^Image Count: *//p')
    for i in $(seq 1 "$count"); do
        diff <(records "$work/lib/$w" "$i") <(records "$work/ours/$w" "$i") ||
            differ "dir --detailed of $w image $i differs"
    done
done
# Applied trees: contents, and link targets (absolute ones point into their own target
# directory, so the two target directories are named alike before comparing).
links() {
    (cd "$1" && find . -type l -printf '%p -> %l\n' | sed "s|$2|TARGET|" | sort)
}
for t in applied-pipe applied-1 extracted; do
    out=$(diff -r --no-dereference "$work/lib/$t" "$work/ours/$t" | grep -v '^Symbolic links ' || true)
    [ -z "$out" ] || { echo "$out" >&2; differ "$t differs"; }
    diff <(links "$work/lib/$t" "$work/lib/$t") <(links "$work/ours/$t" "$work/ours/$t") ||
        differ "links in $t differ"
done

if [ "$fail" = 0 ]; then
    echo "compat: wimfs and wimlib-imagex agree on $(wc -l < "$work/lib/status") steps"
fi
exit "$fail"
