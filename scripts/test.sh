#!/usr/bin/env bash
# Runs the whole test suite: unit tests, conformance tests against wimlib-imagex and 7-Zip.
# Installs the reference tools first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --release
cargo test --workspace --release "$@"
bash scripts/check-windows.sh
