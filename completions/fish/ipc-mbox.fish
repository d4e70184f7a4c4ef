# fish completion for ipc-mbox
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-mbox/main.cpp and lib/src/cli.cpp.

# The verb: the first word after ipc-mbox that is not an option (the top
# level has no options that take a value).
function __ipc_mbox_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# True when the verb is typed (and quiet, for conditions).
function __ipc_mbox_verb_seen
    __ipc_mbox_verb >/dev/null
end

# True when the verb is one of $argv.
function __ipc_mbox_verb_in
    set -l v (__ipc_mbox_verb); or return 1
    contains -- $v $argv
end

# The options that take a value: -o -m -t -g -c and these long ones; a short
# cluster takes one when its first such letter ends it (-qo).
set -g __ipc_mbox_value_options --output --backend --dir --max-msgs --max-bytes --max-msg-size --overflow \
    --sync --mode --as --topic --to --file --timeout --group --from --count --lease --exec --max-deliveries \
    --dead-letter --wait --min-msgs --interval

function __ipc_mbox_takes_value --argument-names t
    contains -- $t $__ipc_mbox_value_options; and return 0
    string match -qr -- '^-[^-omtgc]*[omtgc]$' $t
end

# The operands of the verb typed so far, one per line (after '--' every word
# is one).
function __ipc_mbox_operands
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l verb_seen 0
    set -l skip 0
    set -l dashdash 0
    for t in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test $verb_seen -eq 0
            string match -q -- '-*' $t; or set verb_seen 1
            continue
        end
        if test $dashdash -eq 1; or test "$t" = -; or not string match -q -- '-*' $t
            echo $t
        else if test "$t" = --
            set dashdash 1
        else if __ipc_mbox_takes_value $t
            set skip 1
        end
    end
end

# True when the verb is $argv[1] and the token being typed is its operand
# number $argv[2] (counted from 0); N+ means N or any later one.
function __ipc_mbox_at_arg --argument-names verb index
    set -l v (__ipc_mbox_verb); or return 1
    test "$v" = "$verb"; or return 1
    set -l i (count (__ipc_mbox_operands))
    if string match -q -- '*+' $index
        test $i -ge (string trim -r -c + -- $index)
    else
        test $i -eq $index
    end
end

# The value of an option typed so far (the last one wins): --OPT VALUE or
# --OPT=VALUE; false when it is not there.
function __ipc_mbox_option_value --argument-names opt
    set -l tokens (commandline -opc)
    set -l found 1
    set -l value
    for i in (seq (count $tokens))
        set -l t $tokens[$i]
        if string match -q -- "$opt=*" $t
            set value (string replace -- "$opt=" '' $t)
            set found 0
        else if test "$t" = $opt; and test $i -lt (count $tokens)
            set value $tokens[(math $i + 1)]
            set found 0
        end
    end
    test $found -eq 0; and echo $value
end

# The backend and the mailbox directory: --backend and --dir typed, else
# $IPC_MBOX_BACKEND and $IPC_MBOX_DIR, else local and /dev/shm.
function __ipc_mbox_backend
    set -l b (__ipc_mbox_option_value --backend); or set b "$IPC_MBOX_BACKEND"
    echo $b
end

function __ipc_mbox_dir
    set -l d (__ipc_mbox_option_value --dir); or set d "$IPC_MBOX_DIR"
    test -n "$d"; or set d /dev/shm
    echo $d
end

# The local mailboxes, as /NAME (as NAME when the token is a name typed
# without its '/'): the regular files of the mailbox directory whose first 8
# bytes are the magic number "IPCMBOX1". Nothing for a Redis backend.
function __ipc_mbox_names
    string match -q -- 'redis://*' (__ipc_mbox_backend); and return
    set -l dir (__ipc_mbox_dir)
    test -d "$dir"; or return
    set -l tok (commandline -ct)
    set -l slash /
    if test -n "$tok"; and not string match -q -- '/*' $tok
        set slash ''
    end
    for f in $dir/* $dir/.*
        test -f "$f"; and test -r "$f"; and not test -L "$f"; or continue
        set -l magic (head -c 8 -- "$f" 2>/dev/null | string collect)
        test "$magic" = IPCMBOX1; or continue
        printf '%s%s\tmailbox\n' $slash (string replace -r -- '.*/' '' $f)
    end
end

# The groups of the mailbox given as the verb's first operand, as
# `ipc-mbox stat --json` lists them (nothing when that takes over a second).
function __ipc_mbox_groups
    set -l name (__ipc_mbox_operands)[1]
    test -n "$name"; or return
    set -l args stat --json
    set -l b (__ipc_mbox_backend)
    test -n "$b"; and set -a args --backend $b
    string match -q -- 'redis://*' "$b"; or set -a args --dir (__ipc_mbox_dir)
    timeout 1 ipc-mbox $args -- $name 2>/dev/null |
        string replace -rf -- '^\s*"group": "([^"\\\\]*)",?$' '$1\tgroup'
end

complete -c ipc-mbox -f

# Before the verb.
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -s h -l help -d 'Print this help and exit'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a create -d 'Make mailboxes'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a send -d 'Send messages from the arguments or stdin'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a recv -d 'Receive messages'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a ack -d 'Acknowledge messages received with --ack'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a stat -d 'Describe mailboxes and their groups'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a ls -d 'List mailboxes'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a rm -d 'Remove mailboxes, or one group of a mailbox'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a wait -d 'Wait until a mailbox exists, holds messages, or is empty'
complete -c ipc-mbox -n 'not __ipc_mbox_verb_seen' -a watch -d "Stream a mailbox's changes (never takes a message)"

# Every verb.
complete -c ipc-mbox -n __ipc_mbox_verb_seen -s h -l help -d 'Print this help and exit'
complete -c ipc-mbox -n __ipc_mbox_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-mbox -n __ipc_mbox_verb_seen -l json -d 'Same as -o json'
complete -c ipc-mbox -n __ipc_mbox_verb_seen -s q -l quiet -d 'No output on success'
complete -c ipc-mbox -n __ipc_mbox_verb_seen -l backend -x -a 'local redis://localhost:6379' -d 'local (default) or redis://HOST:PORT[/DB]'
complete -c ipc-mbox -n __ipc_mbox_verb_seen -l dir -x -a '(__fish_complete_directories)' -d 'Local: the directory of a durable mailbox'

# Waiting: send, recv, wait.
complete -c ipc-mbox -n '__ipc_mbox_verb_in send recv wait' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send recv wait' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# Groups: recv, ack, rm, wait.
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv ack rm wait' -s g -l group -x -a '(__ipc_mbox_groups)' -d 'The group'

# Input and output of messages: send, recv.
complete -c ipc-mbox -n '__ipc_mbox_verb_in send recv' -s 0 -l null -d 'Messages end with NUL, not newline'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send recv' -l as -x -d 'The name of this sender or receiver'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send recv' -l topic -x -d 'send: the topic; recv: a topic pattern to subscribe to'

# create (no completion for the names of new mailboxes)
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -l max-msgs -x -a '0 1000 4096' -d 'Capacity in messages (default 4096; 0: rendezvous)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -l max-bytes -x -a '64K 1M 4M' -d 'Capacity in bytes, headers included (default 4M)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -l max-msg-size -x -a '1K 4K 64K' -d 'Largest message (default 64K)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create send' -l overflow -x -a 'block drop-oldest' -d 'When full: block or drop-oldest'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -l sync -x -a 'none always' -d 'Durable mailbox: none (default) or always'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -s x -l exclusive -d 'Fail (73) if the mailbox exists'
complete -c ipc-mbox -n '__ipc_mbox_verb_in create' -s m -l mode -x -a '0600 0644 0660 0666' -d 'Permissions of the created object (default 0600)'

# send
complete -c ipc-mbox -n '__ipc_mbox_verb_in send' -l to -x -d 'Unicast: only receivers with --as NAME get it'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send' -l whole -d 'All of the input is one message'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send' -l jsonl -d 'Input is JSON Lines records as recv -o jsonl writes them'
complete -c ipc-mbox -n '__ipc_mbox_verb_in send' -l file -r -F -d 'Read messages from FILE instead of stdin'
complete -c ipc-mbox -n '__ipc_mbox_at_arg send 0' -a '(__ipc_mbox_names)'

# recv
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l new-only -d 'A group made now starts after the newest message'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l from -x -d "Subscribe the group to one sender's messages"
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -s c -l count -x -d 'Take N messages (default 1)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -s f -l follow -d 'Keep taking messages'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l ack -d 'At least once: a message stays pending until acknowledged'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l lease -x -a '10s 30s 5m' -d 'With --ack: redeliver when not acknowledged within DUR'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l exec -x -a '(__fish_complete_command)' -d 'Run CMD (with sh -c) for each message'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l max-deliveries -x -a '3 5 10' -d 'With --ack: after N deliveries, to the dead letters'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l dead-letter -x -a '(__ipc_mbox_names)' -d 'The dead-letter mailbox (default: NAME.dead)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l wait -x -a 'spin block adaptive' -d 'Local: how to wait (default adaptive)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in recv' -l no-delimiter -d 'Write payloads with nothing between them'
complete -c ipc-mbox -n '__ipc_mbox_at_arg recv 0' -a '(__ipc_mbox_names)'

# ack (the seqs after the name are not completed)
complete -c ipc-mbox -n '__ipc_mbox_at_arg ack 0' -a '(__ipc_mbox_names)'

# stat, ls
complete -c ipc-mbox -n '__ipc_mbox_at_arg stat 0+' -a '(__ipc_mbox_names)'

# rm
complete -c ipc-mbox -n '__ipc_mbox_verb_in rm' -l dry-run -d 'Say what would be removed; remove nothing'
complete -c ipc-mbox -n '__ipc_mbox_at_arg rm 0+' -a '(__ipc_mbox_names)'

# wait (for a mailbox that may not exist yet: the existing ones are offered)
complete -c ipc-mbox -n '__ipc_mbox_verb_in wait' -l min-msgs -x -a '1 10 100' -d 'Until at least N messages are waiting'
complete -c ipc-mbox -n '__ipc_mbox_verb_in wait' -l empty -d 'Until nothing is waiting'
complete -c ipc-mbox -n '__ipc_mbox_verb_in wait watch' -l interval -x -a '50ms 100ms 1s' -d 'How often to look (default 100ms)'
complete -c ipc-mbox -n '__ipc_mbox_at_arg wait 0' -a '(__ipc_mbox_names)'

# watch
complete -c ipc-mbox -n '__ipc_mbox_verb_in watch' -s c -l count -x -d 'Stop after N changes (default: until interrupted)'
complete -c ipc-mbox -n '__ipc_mbox_verb_in watch' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'Stop watching after DUR (default inf)'
complete -c ipc-mbox -n '__ipc_mbox_at_arg watch 0' -a '(__ipc_mbox_names)'
