#!/bin/sh
# SPDX-License-Identifier: MIT
# `cmake --install` into a DESTDIR installs every part, and a program outside
# the tree builds against the library through CMake and through pkg-config.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/ipc-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=/opt/ipc-test
dest="$tmp/root"
fail=0
problem() { echo "FAIL: $*"; fail=1; }

DESTDIR="$dest" cmake --install "$build" --prefix "$prefix" >/dev/null
root="$dest$prefix"
for f in bin/ipc-pipe share/man/man1/ipc-pipe.1 share/man/man7/ipc.7 \
         share/bash-completion/completions/ipc-pipe share/zsh/vendor-completions/_ipc-pipe \
         share/fish/vendor_completions.d/ipc-pipe.fish lib/libipctk.a include/ipc/pipe.hpp \
         include/ipc/cli.hpp lib/cmake/ipc/ipcConfig.cmake lib/cmake/ipc/ipcConfigVersion.cmake \
         lib/pkgconfig/ipc.pc; do
    [ -f "$root/$f" ] || problem "not installed: $prefix/$f"
done
"$root/bin/ipc-pipe" --version | grep -q '^ipc-pipe ' || problem "installed ipc-pipe does not run"

# CMake package.
cmake -S "$src/tests/install/consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$root" >/dev/null ||
    problem "find_package(ipc) failed"
cmake --build "$tmp/cmake-build" >/dev/null || problem "consumer did not build with CMake"
out=$("$tmp/cmake-build/consumer") || problem "consumer (CMake) failed"
[ "$out" = '{"size_bytes":4096}' ] || problem "consumer (CMake) printed '$out'"

# pkg-config: the .pc file locates the prefix from its own place.
flags=$(PKG_CONFIG_PATH="$root/lib/pkgconfig" pkg-config --cflags --libs ipc) ||
    problem "pkg-config ipc failed"
c++ -o "$tmp/pc-consumer" "$src/tests/install/consumer/main.cpp" $flags || problem "consumer did not build with pkg-config"
[ "$("$tmp/pc-consumer")" = '{"size_bytes":4096}' ] || problem "consumer (pkg-config) output differs"

[ $fail -eq 0 ] && echo "ok: install tree complete; CMake and pkg-config consumers build and run"
exit $fail
