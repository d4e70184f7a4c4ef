#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared-memory channel against raw probes, between two processes,
# alternating toolkit and baseline (A B A B, RUNS times each); medians and
# spread, and the ratio. The placement is printed with every figure.
# Usage: bench/shm-channel.sh [BUILD_DIR]  (env: RUNS (5), BENCH_CPUS ("0,1" | same | none), N)
set -eu
build=${1:-build}
runs=${RUNS:-5}
b="$build/bench/bench_shm"
[ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 69; }
n=${N:-20000}
export BENCH_CPUS=${BENCH_CPUS:-0,1}

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }

# compare LABEL FIELD "A probe args" "B probe args" GOAL_TEXT
compare() {
    label=$1 key=$2 a=$3 bb=$4 goal=$5
    : > /tmp/ipc-bench-a.$$; : > /tmp/ipc-bench-b.$$
    placement=""
    i=0
    while [ $i -lt "$runs" ]; do
        out=$($b $a); echo "$out" | field "$key" >> /tmp/ipc-bench-a.$$
        placement=$(echo "$out" | sed -n 's/.*placement="\([^"]*\)".*/\1/p')
        $b $bb | field "$key" >> /tmp/ipc-bench-b.$$
        i=$((i + 1))
    done
    ma=$(median < /tmp/ipc-bench-a.$$); mb=$(median < /tmp/ipc-bench-b.$$)
    printf '%-40s %-14s toolkit %s (%s)  baseline %s (%s)  ratio %.2f  [%s; goal %s]\n' "$label" "$key" "$ma" \
        "$(spread < /tmp/ipc-bench-a.$$)" "$mb" "$(spread < /tmp/ipc-bench-b.$$)" "$(echo "$ma / $mb" | bc -l)" \
        "$placement" "$goal"
    rm -f /tmp/ipc-bench-a.$$ /tmp/ipc-bench-b.$$
}

# Round trips: the channel and its baseline alternate in 20 blocks inside one
# pair of processes (rt-compare), RUNS times; on a VM the host moves virtual
# CPUs about between runs, which makes separate runs incomparable.
# rt_compare LABEL MODE GOAL
rt_compare() {
    : > /tmp/ipc-bench-r.$$
    i=0
    while [ $i -lt "$runs" ]; do
        out=$($b rt-compare "$2" "$((n * 2))" 20)
        echo "$out" >> /tmp/ipc-bench-r.$$
        i=$((i + 1))
    done
    placement=$(tail -1 /tmp/ipc-bench-r.$$ | sed -n 's/.*placement="\([^"]*\)".*/\1/p')
    baseline=$(tail -1 /tmp/ipc-bench-r.$$ | sed -n 's/.*baseline=\([a-z-]*\).*/\1/p')
    printf '%-40s p50_ns         toolkit %s (%s)  baseline %s %s (%s)  ratio %s (%s)  [%s; goal %s]\n' "$1" \
        "$(field channel_p50_ns < /tmp/ipc-bench-r.$$ | median)" "$(field channel_p50_ns < /tmp/ipc-bench-r.$$ | spread)" \
        "$baseline" "$(field baseline_p50_ns < /tmp/ipc-bench-r.$$ | median)" "$(field baseline_p50_ns < /tmp/ipc-bench-r.$$ | spread)" \
        "$(field ' ratio' < /tmp/ipc-bench-r.$$ | median)" "$(field ' ratio' < /tmp/ipc-bench-r.$$ | spread)" "$placement" "$3"
    rm -f /tmp/ipc-bench-r.$$
}

echo "shared-memory channel vs raw probes, $runs alternating runs each (BENCH_CPUS=$BENCH_CPUS)"
rt_compare "64 B round trip, spin" spin "<= 2 x two-atomic ping-pong"
rt_compare "64 B round trip, block" block "<= 1.5 x futex ping-pong"
compare "64 B one-way stream (bursts)" msgs_per_s "stream-channel 64 $((n * 100))" "stream-spsc 64 $((n * 100))" ">= 0.5 x SPSC ring"
compare "64 B one-way stream (one call each)" msgs_per_s "stream-channel-single 64 $((n * 100))" "stream-spsc 64 $((n * 100))" "none: for contrast"
compare "64 KiB one-way stream" msgs_per_s "stream-channel 65536 $((n * 2))" "stream-spsc 65536 $((n * 2))" ">= 0.8 x SPSC ring"
echo "for contrast, through the kernel:"
for p in rt-pipe rt-socket; do $b $p "$n"; done
for p in stream-pipe stream-socket; do $b $p 64 "$((n * 20))"; $b $p 65536 "$((n * 2))"; done
