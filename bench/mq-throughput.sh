#!/bin/sh
# SPDX-License-Identifier: MIT
# One million lines through a POSIX queue: `ipc-mq send` from stdin into a
# queue drained by `ipc-mq recv --follow`, against a minimal C++ loop doing
# mq_send/mq_receive on the same messages. Alternates A B, RUNS times each;
# then ipc-mq's start-up time against /bin/true.
# Usage: bench/mq-throughput.sh [BUILD_DIR]  (env: LINES_N, RUNS)
set -eu
build=${1:-build}
n=${LINES_N:-1000000}
runs=${RUNS:-5}
mq="$build/ipc-mq"
raw="$build/bench/bench_mq_raw"
startup="$build/bench/bench_startup"
for b in "$mq" "$raw" "$startup"; do [ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 69; }; done
dir=$(mktemp -d /tmp/ipc-bench-XXXXXX)
q="/ipc-bench-$$"
trap '"$mq" rm -q "$q" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
seq -f 'message %.0f' 1 "$n" > "$dir/lines"
"$mq" create -q "$q"   # the system's default capacity and message size, for both

toolkit() {
    start=$(date +%s.%N)
    "$mq" recv --follow --count "$n" "$q" > "$dir/out" &
    "$mq" send "$q" < "$dir/lines"
    wait
    end=$(date +%s.%N)
    [ "$(wc -l < "$dir/out")" -eq "$n" ] || { echo "lost messages" >&2; exit 1; }
    echo "$n / ($end - $start)" | bc -l
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "$n lines through POSIX queue $q ($(cat /proc/sys/fs/mqueue/msg_default) messages deep), $runs runs each, alternating"
: > "$dir/a"; : > "$dir/b"
i=0
while [ $i -lt "$runs" ]; do
    a=$(toolkit); echo "$a" >> "$dir/a"
    b=$("$raw" "$q" "$dir/lines"); echo "$b" >> "$dir/b"
    printf 'run %d: ipc-mq %.0f msg/s   raw loop %.0f msg/s\n' $((i + 1)) "$a" "$b"
    i=$((i + 1))
done
ma=$(median < "$dir/a"); mb=$(median < "$dir/b")
printf 'ipc-mq send|recv: median %.0f msg/s (min %.0f, max %.0f)\n' "$ma" "$(sort -n "$dir/a" | head -1)" "$(sort -n "$dir/a" | tail -1)"
printf 'raw mq loop:      median %.0f msg/s (min %.0f, max %.0f)\n' "$mb" "$(sort -n "$dir/b" | head -1)" "$(sort -n "$dir/b" | tail -1)"
printf 'ratio (ipc-mq / raw, medians): %.2f\n' "$(echo "$ma / $mb" | bc -l)"
echo
echo "start-up: ipc-mq --version against /bin/true, 300 runs each, alternating"
"$startup" 300 -- "$(readlink -f "$mq")" --version -- /bin/true
