#!/usr/bin/env bash
# Seeds the fuzz corpora from WIMs written by wimlib-imagex (see fuzz-seeds.py), and the
# whole-WIM target's corpus also with the crafted WIMs of tests/hostile.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/fuzz-seeds.py
WIMFS_HOSTILE_SEEDS="$PWD/fuzz/corpus/wim" cargo test --release --quiet --test hostile >/dev/null
