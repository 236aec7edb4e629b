#!/usr/bin/env bash
# Installs what building and testing wimfs needs: the reference tools (wimlib-imagex, 7zz),
# FUSE, and the Rust toolchain's components. Safe to run repeatedly.
set -euo pipefail

need=()
command -v wimlib-imagex >/dev/null 2>&1 || need+=(wimtools)
command -v 7zz >/dev/null 2>&1 || need+=(7zip)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v bc >/dev/null 2>&1 || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
