#!/usr/bin/env bash
# Runs each fuzz target for a set time (default 120 s each) or a set number of runs.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 600 lzx lzms
#   RUNS=1000000 scripts/fuzz.sh 0 xpress      stop after a number of executions instead
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Seeds each corpus
# with chunks of WIMs that wimlib-imagex writes, so the fuzzer starts from valid streams.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(xpress lzx lzms metadata structures xpress_roundtrip lzx_roundtrip lzms_roundtrip wim)
bash scripts/setup.sh
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo build --release --quiet --workspace
scripts/fuzz-seeds.sh
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    args=(-max_len=70000 -rss_limit_mb=4096)
    # The whole-WIM target: no single allocation or the process beyond 2 GB (as the hostile
    # tests' ulimit -v 2000000), and no input slower than 10 s.
    [ "$t" != wim ] || args=(-max_len=1000000 -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
    if [ -n "${RUNS:-}" ]; then args+=(-runs="$RUNS"); else args+=(-max_total_time="$secs"); fi
    echo "fuzz: $t" >&2
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- "${args[@]}" 2>&1 | grep -E '^(#[0-9]+.*DONE|Done|==|SUMMARY|.*panicked)' || true
    [ ! -d "fuzz/artifacts/$t" ] || ! ls "fuzz/artifacts/$t" | grep -q . || { echo "fuzz: $t found crashes in fuzz/artifacts/$t" >&2; exit 1; }
done
