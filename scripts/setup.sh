#!/usr/bin/env bash
# Installs what building and testing wimfs needs: the reference tools (wimlib-imagex, 7zz),
# FUSE, the servers the remote-image tests run (nginx; Garage, an S3-compatible store, from
# crates.io), and the Rust toolchain's components. Safe to run repeatedly.
set -euo pipefail

need=()
command -v wimlib-imagex >/dev/null 2>&1 || need+=(wimtools)
command -v 7zz >/dev/null 2>&1 || need+=(7zip)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Garage for the S3 tests (built once; a few minutes on two cores). Only the LMDB metadata
# engine, no metrics: the tests need nothing else.
GARAGE_VERSION=2.5.0
garage_bin="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
if ! { [ -x "$garage_bin" ] && "$garage_bin" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; }; then
    echo "setup: installing garage $GARAGE_VERSION from crates.io" >&2
    cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
        --no-default-features --features bundled-libs,lmdb
fi
