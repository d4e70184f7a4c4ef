#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's first command: the toolkit's main job on this machine, a quick
# comparison of every IPC mechanism (ipc-bench run --quick), then a short
# demonstration of ipc-pipe. Uses a private directory and removes it.
set -eu
build=${1:-build}
pipe="$build/ipc-pipe"
dir=$(mktemp -d /tmp/ipc-demo-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); else bold=; plain=; fi
say() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { say "$*"; "$@"; }

run "$build/ipc-bench" run --quick
run "$pipe" create "$dir/jobs"
say "$pipe recv $dir/jobs --count 3 -o jsonl &   # a reader waits for three messages"
"$pipe" recv "$dir/jobs" --count 3 -o jsonl > "$dir/received" &
reader=$!
sleep 0.2
run "$pipe" stat "$dir/jobs"
run "$pipe" send "$dir/jobs" "build" "test" "deploy"
wait $reader
cat "$dir/received"
say "seq 1 100000 | $pipe send --framed $dir/jobs & $pipe recv --framed --follow --until-eof $dir/jobs | tail -1"
seq 1 100000 | "$pipe" send --framed "$dir/jobs" &
"$pipe" recv --framed --follow --until-eof "$dir/jobs" | tail -1
wait
say "$pipe relay: 256 MiB through the FIFO with splice(2), against cat"
if [ -x "$build/bench/bench_source" ]; then
    BYTES=268435456 RUNS=2 bench/pipe-relay.sh "$build" | tail -3
fi
run "$pipe" rm "$dir/jobs"
