#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages the build and the tests need, only those that
# are missing. Runs `apt-get update` once, before the first install. A package
# that an installed one provides counts as installed (a nodejs that bundles
# npm provides npm, and conflicts with Debian's).
# Usage: tools/deps.sh [build|test|man|bench]...
set -eu

build="cmake g++ make pkg-config libcli11-dev libfmt-dev catch2 nlohmann-json3-dev libhiredis-dev"
test="zsh fish python3 python3-sysv-ipc util-linux procps gnuplot-nox libzmq3-dev libnng-dev redis-server redis-tools nodejs npm"
man="ronn"
bench="bc util-linux"

want=""
for set in "${@:-build test}"; do
    for s in $set; do
        case "$s" in
        build) want="$want $build" ;;
        test) want="$want $test" ;;
        man) want="$want $man" ;;
        bench) want="$want $bench" ;;
        *) echo "deps.sh: unknown package set '$s'" >&2; exit 64 ;;
        esac
    done
done

# The names that installed packages provide, one a line.
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
    sed -n 's/^ii *|//p' | tr ',' '\n' | sed 's/([^)]*)//; s/:any//; s/^ *//; s/ *$//' | sort -u)
missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' &&
       ! printf '%s\n' "$provided" | grep -qx -- "$p"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
        exit 69
    fi
else
    SUDO=
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
