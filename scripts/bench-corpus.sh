# Sourced by the benchmark scripts: the corpus and its WIMs, captured once by wimlib and
# shared through BENCH_DIR (default /tmp/wimfs-bench). SOURCES lists "DIR:NAME" pairs (default:
# the "usr" corpus, /usr/share + /usr/bin + /usr/lib/x86_64-linux-gnu, ~1.6 GB); TAG names
# the corpus in the WIMs' file names (default usr; change it with SOURCES).
dir=${BENCH_DIR:-/tmp/wimfs-bench}
tag=${TAG:-usr}
mkdir -p "$dir"
list="$dir/sources-$tag.txt"
: > "$list"
for s in ${SOURCES:-/usr/share:/share /usr/bin:/bin /usr/lib/x86_64-linux-gnu:/lib}; do
    [ -d "${s%%:*}" ] && echo "${s%%:*} ${s##*:}" >> "$list"
done

# capture NAME ARGS...: the corpus captured by wimlib with ARGS, made once; prints its path.
capture() {
    local name=$1; shift
    local wim="$dir/$tag-$name.wim"
    if [ ! -s "$wim" ]; then
        echo "capturing $wim ..." >&2
        wimlib-imagex capture "$list" "$wim.tmp" "$tag" --source-list --norpfix "$@" >/dev/null 2>&1
        mv "$wim.tmp" "$wim"
    fi
    echo "$wim"
}

. scripts/bench-lib.sh
