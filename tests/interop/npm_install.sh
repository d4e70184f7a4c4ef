#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the npm packages the interoperation tests run (package.json and
# package-lock.json beside this script, exact versions) into DEST/node_modules,
# in the build tree. Nothing is fetched again while DEST holds the same lock
# and `npm ls` finds the tree whole; npm's cache is used before the registry.
# When the packages cannot be had, it fails, saying why: the tests that need
# them must not pass without them.
# Usage: tests/interop/npm_install.sh DEST
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: npm_install.sh DEST}

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "npm_install.sh: '$tool' not found: run tools/deps.sh test (Debian packages nodejs and npm)" >&2
        exit 69
    fi
done

mkdir -p "$dest"
stamp="$dest/node_modules/.ipc-interop-lock"
if cmp -s "$here/package-lock.json" "$stamp" && cmp -s "$here/package.json" "$dest/package.json" &&
   npm ls --prefix "$dest" --all >/dev/null 2>&1; then
    echo "npm_install.sh: already installed in $dest:"
    npm ls --prefix "$dest" --all
    exit 0
fi

cp "$here/package.json" "$here/package-lock.json" "$dest/"
echo "npm_install.sh: npm ci --prefix $dest"
if ! npm ci --prefix "$dest" --no-audit --no-fund --no-update-notifier --prefer-offline \
        --fetch-retries=2 --fetch-retry-mintimeout=2000 \
        --fetch-retry-maxtimeout=10000 --fetch-timeout=60000 --loglevel=warn; then
    echo "npm_install.sh: npm ci failed: the npm registry (or npm's cache) is needed for the interoperation tests" >&2
    exit 69
fi
if ! npm ls --prefix "$dest" --all; then
    echo "npm_install.sh: the installed tree does not match package-lock.json" >&2
    exit 70
fi
cp "$here/package-lock.json" "$stamp"
