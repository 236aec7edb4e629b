#!/usr/bin/env bash
# Seeds the fuzz corpora from WIMs written by wimlib-imagex (see fuzz-seeds.py).
set -euo pipefail
exec python3 "$(dirname "$0")/fuzz-seeds.py"
