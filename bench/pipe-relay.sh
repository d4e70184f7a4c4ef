#!/bin/sh
# SPDX-License-Identifier: MIT
# ipc-pipe relay against cat, moving the same bytes through a FIFO:
#   bench_source > FIFO;  {relay FIFO | cat FIFO} | bench_sink
# Same source, sink and CPU placement for both; runs alternate A B A B.
# Prints each run, the medians, the spread, and the ratio of medians.
# Usage: bench/pipe-relay.sh [BUILD_DIR] (env: BYTES, RUNS, CPUS="0,1"|"none")
set -eu
build=${1:-build}
bytes=${BYTES:-1073741824}
runs=${RUNS:-5}
cpus=${CPUS:-none}
relay="$build/ipc-pipe"
src="$build/bench/bench_source"
sink="$build/bench/bench_sink"
for b in "$relay" "$src" "$sink"; do [ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 69; }; done
dir=$(mktemp -d /tmp/ipc-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
mkfifo "$dir/fifo"
pin=""
[ "$cpus" != none ] && pin="taskset -c $cpus"

# One run: prints elapsed seconds; fails if the sink did not get every byte.
one() {
    copier=$1
    start=$(date +%s.%N)
    $pin "$src" "$bytes" > "$dir/fifo" &
    got=$($pin $copier "$dir/fifo" | $pin "$sink")
    wait
    end=$(date +%s.%N)
    [ "$got" = "$bytes" ] || { echo "lost data: $got of $bytes bytes" >&2; exit 1; }
    echo "$end - $start" | bc -l
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "moving $bytes bytes through a FIFO, $runs runs each, alternating; cpus: $cpus"
: > "$dir/a"; : > "$dir/b"
i=0
while [ $i -lt "$runs" ]; do
    a=$(one "$relay relay --no-progress"); echo "$a" >> "$dir/a"
    b=$(one "cat"); echo "$b" >> "$dir/b"
    printf 'run %d: ipc-pipe relay %.3fs   cat %.3fs\n' $((i + 1)) "$a" "$b"
    i=$((i + 1))
done
ma=$(median < "$dir/a"); mb=$(median < "$dir/b")
printf 'ipc-pipe relay: median %.3fs (min %.3fs, max %.3fs) = %.2f GiB/s\n' "$ma" \
    "$(sort -n "$dir/a" | head -1)" "$(sort -n "$dir/a" | tail -1)" "$(echo "$bytes / $ma / 1073741824" | bc -l)"
printf 'cat:            median %.3fs (min %.3fs, max %.3fs) = %.2f GiB/s\n' "$mb" \
    "$(sort -n "$dir/b" | head -1)" "$(sort -n "$dir/b" | tail -1)" "$(echo "$bytes / $mb / 1073741824" | bc -l)"
printf 'ratio (cat / relay, medians): %.2fx\n' "$(echo "$mb / $ma" | bc -l)"
