#!/bin/sh
# SPDX-License-Identifier: MIT
# ipc-rpc: a large param inline (inside the JSON request) against by
# reference (a shared-memory segment the server's command reads in place),
# for 1 MiB and 64 MiB, each the median of ROUNDS alternating runs. The
# method consumes the value either way (wc -c), so both sides do the same work.
# Usage: bench/rpc-ref.sh BUILD_DIR [ROUNDS]
set -eu
build=${1:?usage: rpc-ref.sh BUILD_DIR [ROUNDS]}
rounds=${2:-5}
rpc=$build/ipc-rpc
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
"$rpc" serve "unix:$dir/s.sock" --max-request 200M -q \
    -M 'count=sh -c "if [ -n \"$IPC_RPC_PARAM_DATA\" ] && [ -e \"$IPC_RPC_PARAM_DATA\" ]; then wc -c < \"$IPC_RPC_PARAM_DATA\"; else wc -c; fi"' &
pid=$!
"$rpc" wait "unix:$dir/s.sock" -t 10s
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %14s %14s %8s\n' size inline_ms by_ref_ms ratio
for mib in 1 64; do
    # Text (inline needs UTF-8): a repeated line.
    yes 'abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0' | head -c $((mib * 1048576)) > "$dir/data"
    : > "$dir/inline"; : > "$dir/ref"
    i=0
    while [ $i -lt "$rounds" ]; do
        t0=$(now); "$rpc" call --by-value "unix:$dir/s.sock" count "data=@$dir/data" > /dev/null; t1=$(now)
        echo $(( (t1 - t0) / 1000 )) >> "$dir/inline"
        t0=$(now); "$rpc" call "unix:$dir/s.sock" count "data=@$dir/data" > /dev/null; t1=$(now)
        echo $(( (t1 - t0) / 1000 )) >> "$dir/ref"
        i=$((i + 1))
    done
    a=$(median < "$dir/inline"); b=$(median < "$dir/ref")
    printf '%-8s %14.1f %14.1f %7.1fx\n' "${mib}MiB" "$(echo "$a / 1000" | bc -l)" "$(echo "$b / 1000" | bc -l)" "$(echo "$a / $b" | bc -l)"
done
