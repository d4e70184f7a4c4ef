# fish completion for ipc-bench
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-bench/main.cpp and lib/src/cli.cpp.

# The verb: the first word after ipc-bench that is not an option (the top
# level has no options that take a value).
function __ipc_bench_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# True when the verb is typed (and quiet, for conditions).
function __ipc_bench_verb_seen
    __ipc_bench_verb >/dev/null
end

# True when the token under the cursor is an operand of the verb $argv[1]:
# not the value of an option. Options that take a value: -o -M -s -i -d -r
# and their long forms, --warmup, --cpus, --only, --require, --svg,
# --markdown and --fail-over; a short cluster takes one when its first such
# letter ends it (-qo). After '--' every token is an operand.
function __ipc_bench_at_operand --argument-names verb
    set -l v (__ipc_bench_verb); or return 1
    test "$v" = "$verb"; or return 1
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l verb_seen 0
    set -l skip 0
    for t in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test $verb_seen -eq 0
            string match -q -- '-*' $t; or set verb_seen 1
            continue
        end
        if test "$t" = --
            return 0
        else if contains -- $t --output --mechanisms --sizes --iterations --warmup --duration --rounds --cpus \
                --only --require --svg --markdown --fail-over
            set skip 1
        else if string match -qr -- '^-[^-oMsidr]*[oMsidr]$' $t
            set skip 1
        end
    end
    test $skip -eq 0
end

# True when the verb is one of $argv.
function __ipc_bench_verb_in
    set -l v (__ipc_bench_verb); or return 1
    contains -- $v $argv
end

# The mechanisms (run --mechanisms, check --require), described; keep in step
# with cmd/ipc-bench/probe.cpp.
function __ipc_bench_mechanisms
    printf '%s\t%s\n' \
        pipe 'Anonymous pipe (pipe2)' \
        fifo 'Named pipe (mkfifo)' \
        unix-stream 'Unix stream socket pair' \
        unix-dgram 'Unix datagram socket pair' \
        unix-seqpacket 'Unix seqpacket socket pair' \
        tcp 'TCP over loopback' \
        udp 'UDP over loopback (may lose)' \
        posix-mq 'POSIX message queues' \
        sysv-mq 'A System V message queue' \
        eventfd 'eventfd counters: signals without data' \
        futex 'futex wait/wake: signals without data, round trips only' \
        shm-spin 'ipc-shm channel, --wait spin' \
        shm-adaptive 'ipc-shm channel, --wait adaptive' \
        shm-block 'ipc-shm channel, --wait block' \
        mbox 'ipc-mbox local mailbox' \
        mbox-redis 'ipc-mbox on the Redis server IPC_BENCH_REDIS names' \
        rpc 'ipc-rpc echo call, JSON lines over a Unix socket' \
        rpc-cbor 'ipc-rpc echo call, CBOR frames over a Unix socket'
end

# What check --require takes, described: the mechanisms, groups of them and
# the host's facts; keep in step with cmd/ipc-bench/host.cpp.
function __ipc_bench_requirements
    __ipc_bench_mechanisms
    printf '%s\t%s\n' \
        mq 'posix-mq and sysv-mq' \
        shm 'dev-shm, shm-spin, shm-adaptive and shm-block' \
        unix 'unix-stream, unix-dgram and unix-seqpacket' \
        loopback 'tcp and udp' \
        mqueue-mount 'The mqueue file system is mounted (POSIX queues can be listed)' \
        dev-shm '/dev/shm is there and has room' \
        pipe-max-size 'Largest pipe capacity without privilege is known' \
        mq-msg-max 'Most messages per POSIX queue is known' \
        mq-msgsize-max 'Largest POSIX queue message is known' \
        mq-queues-max 'Most POSIX queues is known' \
        rlimit-msgqueue 'Bytes of POSIX queues per user (RLIMIT_MSGQUEUE) above 0' \
        sysv-msgmax 'Largest System V message is known' \
        sysv-msgmni 'Most System V queues is known' \
        sysv-shmmax 'Largest System V segment is known'
end

# The candidates (CANDIDATE<tab>DESCRIPTION lines on stdin) for the last item
# of the comma-separated list being typed, each after the items before it;
# the items already in the list are not offered again. The token may hold
# the option too (--mechanisms=LIST, -MLIST, -qMLIST): fish matches what
# follows it. Options whose value is a list: -M --mechanisms -s --sizes
# --require; before it, a short cluster may hold other letters (-q), but no
# other option that takes a value (-o -M -s -i -d -r).
function __ipc_bench_list
    set -l tok (commandline -ct)
    set tok (string replace -r -- '^(--[^=]*=|-[^-oMsidr]*[Ms])' '' $tok)
    set -l head ''
    set -l have
    if string match -q -- '*,*' $tok
        set head (string replace -r -- '[^,]*$' '' $tok)
        set have (string split -n , -- $head)
    end
    while read -l line
        set -l item (string split -m1 \t -- $line)[1]
        contains -- $item $have; and continue
        printf '%s%s\n' $head $line
    end
end

complete -c ipc-bench -f

# Before the verb.
complete -c ipc-bench -n 'not __ipc_bench_verb_seen' -s h -l help -d 'Print this help and exit'
complete -c ipc-bench -n 'not __ipc_bench_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-bench -n 'not __ipc_bench_verb_seen' -a run -d 'Measure latency and throughput of each mechanism'
complete -c ipc-bench -n 'not __ipc_bench_verb_seen' -a check -d 'Check that each mechanism can be used here'
complete -c ipc-bench -n 'not __ipc_bench_verb_seen' -a report -d 'Render saved results as Markdown or an SVG plot, or compare two runs'

# Every verb.
complete -c ipc-bench -n __ipc_bench_verb_seen -s h -l help -d 'Print this help and exit'
complete -c ipc-bench -n __ipc_bench_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-bench -n __ipc_bench_verb_seen -l json -d 'Same as -o json'
complete -c ipc-bench -n __ipc_bench_verb_seen -s q -l quiet -d 'No output on success'

# run (all alone, as the first item, means every mechanism)
function __ipc_bench_run_mechanisms
    begin
        __ipc_bench_mechanisms
        printf '%s\t%s\n' nng-pair 'nng pair0 over ipc:// (libnng), for comparison' \
            zmq-pair 'ZeroMQ ZMQ_PAIR over ipc:// (libzmq), for comparison'
        string match -q -- '*,*' (commandline -ct); or printf '%s\t%s\n' all 'Every mechanism (the default)'
    end | __ipc_bench_list
end
function __ipc_bench_sizes
    printf '%s\tMessage size\n' 64 4K 64K 1M | __ipc_bench_list
end
complete -c ipc-bench -n '__ipc_bench_verb_in run' -s M -l mechanisms -x -a '(__ipc_bench_run_mechanisms)' -d 'Comma-separated mechanisms (default: all)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -s s -l sizes -x -a '(__ipc_bench_sizes)' -d 'Comma-separated message sizes (default 64,4K,64K)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -s i -l iterations -x -d 'Round trips per latency run (default 10000)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l warmup -x -d 'Round trips before measuring (default: a tenth of --iterations, at least 1000)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -s d -l duration -x -a '100ms 500ms 1s 2s' -d 'Length of a stream run, and cap of a latency run (default 500ms)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -s r -l rounds -x -d 'Alternating toolkit/raw rounds per figure (default 3)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l cpus -x -a '0,1\t"CPUs 0 and 1 (default)" same\t"One CPU for both" none\t"No pinning"' -d 'Where the two processes run: A,B (default 0,1), same, or none'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l only -x -a 'latency throughput' -d 'Measure only latency or throughput'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l verify -d 'Sequence number and checksum in every message; count faults'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l quick -d 'Every mechanism briefly (sizes 64,64K; under 30 s)'
complete -c ipc-bench -n '__ipc_bench_verb_in run' -l peers -d 'Also measure nng and ZeroMQ over ipc://, when built with them'

# check
complete -c ipc-bench -n '__ipc_bench_verb_in check' -l require -x -a '(__ipc_bench_requirements | __ipc_bench_list)' -d 'Exit 1 unless these are usable (e.g. mq,shm,tcp)'

# report (its FILEs: results of run --json or -o jsonl, or '-' for stdin)
complete -c ipc-bench -n '__ipc_bench_verb_in report' -l svg -r -F -d 'Write latency and throughput against size as an SVG plot (gnuplot)'
complete -c ipc-bench -n '__ipc_bench_verb_in report' -l markdown -r -F -d 'Write the Markdown table to FILE'
complete -c ipc-bench -n '__ipc_bench_verb_in report' -l compare -d 'Ratios between two runs: FILE OLD, FILE NEW'
complete -c ipc-bench -n '__ipc_bench_verb_in report' -l fail-over -x -a '5 10 20' -d 'With --compare: exit 1 when a figure got worse by more than PCT%'
complete -c ipc-bench -n '__ipc_bench_at_operand report' -F
complete -c ipc-bench -n '__ipc_bench_at_operand report' -a - -d 'Standard input'
