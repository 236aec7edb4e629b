#!/usr/bin/env bash
# Builds wimfs and runs it on the bundled sample image: info, listing, verification and
# extraction into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
wimfs=target/release/wimfs
img=examples/sample.wim
$wimfs info "$img"
$wimfs dir "$img" 1
$wimfs verify "$img"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$wimfs apply "$img" 1 "$out/sample"
echo "extracted to $out/sample:"
(cd "$out/sample" && find . | sort)
