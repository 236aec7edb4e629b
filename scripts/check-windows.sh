#!/usr/bin/env bash
# Type-checks the whole workspace for Windows (x86_64-pc-windows-msvc) from Linux, so that
# Windows-only code (WinFsp adapter, named-pipe control channel) cannot rot unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-msvc
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if grep -q '^name = "winfsp' Cargo.lock 2>/dev/null; then
    # The winfsp crate generates bindings with bindgen against the MinGW headers.
    need=()
    dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
    dpkg -s mingw-w64-x86-64-dev >/dev/null 2>&1 || need+=(mingw-w64-x86-64-dev)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    args="-I/usr/x86_64-w64-mingw32/include -fgnuc-version=4.2.1 -D__MINGW32__ -D_ReadWriteBarrier=_ReadWriteBarrier"
    # Debian's libclang looks for its own headers (x86intrin.h, ...) beside the real library
    # file, where there are none; point it at the resource directory of the newest clang.
    clang_inc=$(ls -d /usr/lib/llvm-*/lib/clang/*/include 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$clang_inc" ]; then
        args="$args -isystem $clang_inc"
    fi
    export BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_msvc="$args"
fi
# A type-check never links, so the C sources that -sys crates build with cc-rs (libsais) need
# no real Windows compiler here: stand-ins for cl.exe and lib.exe only create the object and
# library files cc-rs expects, empty.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
cat > "$tools/cl" <<'SH'
#!/bin/sh
for a in "$@"; do case $a in -Fo*|/Fo*) : > "${a#???}" ;; esac; done
SH
cat > "$tools/lib" <<'SH'
#!/bin/sh
for a in "$@"; do case $a in -out:*|/OUT:*) : > "${a#*:}" ;; esac; done
SH
chmod +x "$tools/cl" "$tools/lib"
CC_x86_64_pc_windows_msvc="$tools/cl" AR_x86_64_pc_windows_msvc="$tools/lib" \
    cargo check --workspace --lib --bins --target "$target" --target-dir target/windows-check
echo "check-windows: workspace type-checks for $target"
