#!/usr/bin/env bash
# Runs the whole test suite as if it were another day, in another time zone and locale, to
# show that no test depends on them: under libfaketime (Debian `faketime`), the clock starts
# at DATE and runs on; file timestamps on disk stay real.
#
#   bash scripts/test-dates.sh ['2027-03-04 23:30:00'] [cargo test args...]
#
# TZ defaults to Pacific/Auckland (east of UTC, with daylight saving) and the locale to
# de_DE.UTF-8 (generated if missing); set TZ or LOCALE to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
date_arg=${1:-2027-03-04 23:30:00}
[ $# -gt 0 ] && shift
zone=${TZ:-Pacific/Auckland}
loc=${LOCALE:-de_DE.UTF-8}

bash scripts/setup.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v faketime >/dev/null 2>&1 || ! command -v locale-gen >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime locales >/dev/null
fi
if ! locale -a 2>/dev/null | grep -qix "${loc/UTF-8/utf8}"; then
    echo "$loc ${loc#*.}" | $SUDO tee -a /etc/locale.gen >/dev/null
    $SUDO locale-gen >/dev/null
fi

# Build with the real clock (cargo itself stalls under libfaketime); then run every test
# binary, as `cargo test` would, under the fake clock. Integration tests find the binaries
# they run through CARGO_BIN_EXE_* (compiled in) and their fixtures through
# CARGO_MANIFEST_DIR, so each runs from its package's directory.
cargo build --workspace --release
tests=$(cargo test --workspace --release --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["manifest_path"].rsplit("/", 1)[0] + "\t" + m["executable"])
')

echo "test-dates: the suite at '$date_arg', TZ=$zone, LANG=$loc" >&2
failed=0
while IFS=$'\t' read -r pkg exe; do
    echo "test-dates: $exe" >&2
    # NO_FAKE_STAT keeps file times as the kernel has them (only "now" moves);
    # DONT_FAKE_MONOTONIC keeps timeouts measured in real time.
    if ! (cd "$pkg" && NO_FAKE_STAT=1 DONT_FAKE_MONOTONIC=1 TZ=$zone LANG=$loc LC_ALL=$loc \
        faketime -f "@$date_arg" "$exe" "$@"); then
        failed=$((failed + 1))
    fi
done <<<"$tests"
if [ $failed -ne 0 ]; then
    echo "test-dates: $failed test binaries failed" >&2
    exit 1
fi
echo "test-dates: every test binary passed" >&2
