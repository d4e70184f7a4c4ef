# fish completion for ipc-mq
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-mq/main.cpp and lib/src/cli.cpp.

# The verb: the first word after ipc-mq that is not an option (the top level
# has no options that take a value).
function __ipc_mq_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# True when the verb is typed (and quiet, for conditions).
function __ipc_mq_verb_seen
    __ipc_mq_verb >/dev/null
end

# True when the verb is one of $argv.
function __ipc_mq_verb_in
    set -l v (__ipc_mq_verb); or return 1
    contains -- $v $argv
end

# The index (0 for the first) of the positional argument of the verb that the
# token under the cursor would be; nothing before the verb is typed. Options
# that take a value: -o -k -i -m -p -T -t -c and their long forms,
# --max-msgs, --max-msg-size, --max-bytes, --file, --match, --min-msgs and
# --interval; a short cluster takes one when its first such letter ends it
# (-qo).
function __ipc_mq_arg_index
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l verb_seen 0
    set -l n 0
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
            set n (math $n + 1)
        else if test "$t" = --
            set dashdash 1
        else if contains -- $t --output --key --id --mode --max-msgs --max-msg-size --max-bytes --priority \
                --type --file --timeout --count --match --min-msgs --interval
            set skip 1
        else if string match -qr -- '^-[^-okimpTtc]*[okimpTtc]$' $t
            set skip 1
        end
    end
    test $verb_seen -eq 1; and echo $n
end

# True when the options typed pick a System V queue (-k, --key, -i, --id, or
# a cluster such as -qk) or, for rm, give --match: then the operands are no
# POSIX queue names.
function __ipc_mq_no_names
    for t in (commandline -opc)[2..-1]
        test "$t" = --; and return 1
        string match -qr -- '^(--key|--id|--match)(=|$)|^-[^-okimpTtc]*[ki]' $t; and return 0
    end
    return 1
end

# True when the verb is $argv[1] and the token being typed is its positional
# argument number $argv[2] (counted from 0); N+ means N or any later one.
function __ipc_mq_at_arg --argument-names verb index
    set -l v (__ipc_mq_verb); or return 1
    test "$v" = "$verb"; or return 1
    set -l i (__ipc_mq_arg_index); or return 1
    if string match -q -- '*+' $index
        test $i -ge (string trim -r -c + -- $index)
    else
        test $i -eq $index
    end
end

# Like __ipc_mq_at_arg, and the argument is a POSIX queue name (no --key,
# --id or --match given).
function __ipc_mq_at_name
    __ipc_mq_at_arg $argv; and not __ipc_mq_no_names
end

# The mount point of the mqueue file system; false when it is not mounted.
# /proc/self/mountinfo lines are "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
# [OPTIONAL...] - FSTYPE SOURCE SUPER", with blanks and backslashes in
# MOUNTPOINT escaped as octal (\040).
function __ipc_mq_mqueue_dir
    test -r /proc/self/mountinfo; or return 1
    while read -l line
        string match -q -- '* - mqueue *' $line; or continue
        set -l head (string split -m1 ' - ' -- $line)[1]
        set -l point (string split ' ' -- $head)[5]
        test -n "$point"; or continue
        set point (printf '%b' $point | string collect)
        if test -d "$point"
            echo $point
            return 0
        end
    end </proc/self/mountinfo
    return 1
end

# The POSIX queues, as /NAME (as NAME when the token is a name typed without
# its '/'); nothing when the mqueue file system is not mounted.
function __ipc_mq_names
    set -l dir (__ipc_mq_mqueue_dir); or return
    set -l tok (commandline -ct)
    set -l slash /
    if test -n "$tok"; and not string match -q -- '/*' $tok
        set slash ''
    end
    for f in $dir/* $dir/.*
        printf '%s%s\tPOSIX queue\n' $slash (string replace -r -- '.*/' '' $f)
    end
end

# The keys (as 0x%08x; private queues have none) or, with msqid, the ids of
# the System V queues. The columns of /proc/sysvipc/msg are named by its
# header line; keys are in decimal.
function __ipc_mq_sysv --argument-names what
    test -r /proc/sysvipc/msg; or return
    set -l lines (string trim < /proc/sysvipc/msg)
    set -l header (string split -n ' ' -- $lines[1])
    set -l kc (contains -i -- key $header); or return
    set -l ic (contains -i -- msqid $header); or return
    for line in $lines[2..-1]
        set -l f (string split -n ' ' -- $line)
        set -l key $f[$kc]
        set -l id $f[$ic]
        string match -qr -- '^-?[0-9]+$' "$key"; or continue
        string match -qr -- '^[0-9]+$' "$id"; or continue
        test $key -lt 0; and set key (math $key + 4294967296)
        set -l hex (printf '0x%08x' $key)
        if test "$what" = key
            test $key -ne 0; and printf '%s\tSystem V queue id %s\n' $hex $id
        else if test $key -eq 0
            printf '%s\tPrivate System V queue\n' $id
        else
            printf '%s\tSystem V queue key %s\n' $id $hex
        end
    end
end

complete -c ipc-mq -f

# Before the verb.
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -s h -l help -d 'Print this help and exit'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a create -d 'Make queues (POSIX NAME, or System V --key)'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a send -d 'Send messages from the arguments or stdin'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a recv -d 'Receive messages'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a stat -d 'Describe queues'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a ls -d 'List POSIX queues (needs /dev/mqueue), or System V ones'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a rm -d 'Remove queues'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a wait -d 'Wait until a queue exists, or holds messages, or is empty'
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a watch -d "Stream a queue's depth changes (never takes a message)"
complete -c ipc-mq -n 'not __ipc_mq_verb_seen' -a set-capacity -d "Set a System V queue's capacity in bytes (msg_qbytes)"

# Every verb.
complete -c ipc-mq -n __ipc_mq_verb_seen -s h -l help -d 'Print this help and exit'
complete -c ipc-mq -n __ipc_mq_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-mq -n __ipc_mq_verb_seen -l json -d 'Same as -o json'
complete -c ipc-mq -n __ipc_mq_verb_seen -s q -l quiet -d 'No output on success'

# System V queues by key or id: every verb but ls.
set -l sysv_verbs create send recv stat rm wait watch set-capacity
set -l id_verbs send recv stat rm wait watch set-capacity  # create makes queues by key only
complete -c ipc-mq -n "__ipc_mq_verb_in $sysv_verbs" -s k -l key -x -a '(__ipc_mq_sysv key)' -d 'System V queue by key (decimal or 0x hex)'
complete -c ipc-mq -n "__ipc_mq_verb_in $id_verbs" -s i -l id -x -a '(__ipc_mq_sysv msqid)' -d 'System V queue by id'

# Waiting: send, recv, wait.
complete -c ipc-mq -n '__ipc_mq_verb_in send recv wait' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last'
complete -c ipc-mq -n '__ipc_mq_verb_in send recv wait' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# Polling: wait, watch.
complete -c ipc-mq -n '__ipc_mq_verb_in wait watch' -l interval -x -a '50ms 100ms 1s' -d 'How often to look (default 100ms)'

# create (no completion for the names of new queues)
complete -c ipc-mq -n '__ipc_mq_verb_in create' -l max-msgs -x -a '1 5 10' -d "POSIX: capacity in messages (default: the system's)"
complete -c ipc-mq -n '__ipc_mq_verb_in create' -l max-msg-size -x -a '1K 4K 8K' -d "POSIX: largest message (default: the system's)"
complete -c ipc-mq -n '__ipc_mq_verb_in create' -l max-bytes -x -a '1K 4K 8K' -d 'System V: capacity in bytes (msg_qbytes)'
complete -c ipc-mq -n '__ipc_mq_verb_in create' -s x -l exclusive -d 'Fail (73) if the queue exists'
complete -c ipc-mq -n '__ipc_mq_verb_in create' -s m -l mode -x -a '0600 0644 0660 0666' -d 'Permissions of the created object (default 0600)'

# send
complete -c ipc-mq -n '__ipc_mq_verb_in send' -s p -l priority -x -a '0 1 5 9' -d 'POSIX: priority, higher first (default 0)'
complete -c ipc-mq -n '__ipc_mq_verb_in send' -s T -l type -x -a 1 -d 'System V: message type, above 0 (default 1)'
complete -c ipc-mq -n '__ipc_mq_verb_in send' -s 0 -l null -d 'Input messages end with NUL, not newline'
complete -c ipc-mq -n '__ipc_mq_verb_in send' -l whole -d 'All of the input is one message'
complete -c ipc-mq -n '__ipc_mq_verb_in send' -l jsonl -d 'Input is JSON Lines records as recv -o jsonl writes them'
complete -c ipc-mq -n '__ipc_mq_verb_in send' -l file -r -F -d 'Read messages from FILE instead of stdin'
complete -c ipc-mq -n '__ipc_mq_at_name send 0' -a '(__ipc_mq_names)'

# recv
# fish offers options, not the option's values, for a token that starts with
# '-': the negative type is added to them.
function __ipc_mq_recv_type_value
    __ipc_mq_verb_in recv; or return 1
    set -l last (commandline -opc)[-1]
    string match -qr -- '^(--type|-[^-okimpTtc]*T)$' $last
end
complete -c ipc-mq -n __ipc_mq_recv_type_value -a -1 -d 'The lowest type, up to 1'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -s c -l count -x -d 'Take N messages (default 1)'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -s f -l follow -d 'Keep taking messages'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -s d -l drain -d 'Take what is queued now, then exit 0'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -s T -l type -x -a '0 1 -1' -d 'System V: 0 the first message, T the first of type T, -T the lowest type up to T'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -s 0 -l null -d 'Messages end with NUL instead of newline'
complete -c ipc-mq -n '__ipc_mq_verb_in recv' -l no-delimiter -d 'Write payloads with nothing between them'
complete -c ipc-mq -n '__ipc_mq_at_name recv 0' -a '(__ipc_mq_names)'

# stat
complete -c ipc-mq -n '__ipc_mq_at_name stat 0+' -a '(__ipc_mq_names)'

# ls
complete -c ipc-mq -n '__ipc_mq_verb_in ls' -s s -l sysv -d 'List System V queues'

# rm
complete -c ipc-mq -n '__ipc_mq_verb_in rm' -l match -x -d 'Remove the POSIX queues whose names match GLOB'
complete -c ipc-mq -n '__ipc_mq_verb_in rm' -l dry-run -d 'Say what would be removed; remove nothing'
complete -c ipc-mq -n '__ipc_mq_at_name rm 0+' -a '(__ipc_mq_names)'

# wait (for a queue that may not exist yet: the existing ones are offered)
complete -c ipc-mq -n '__ipc_mq_verb_in wait' -l min-msgs -x -a '1 5 10' -d 'Until at least N messages are queued'
complete -c ipc-mq -n '__ipc_mq_verb_in wait' -l empty -d 'Until the queue is empty'
complete -c ipc-mq -n '__ipc_mq_at_name wait 0' -a '(__ipc_mq_names)'

# watch
complete -c ipc-mq -n '__ipc_mq_verb_in watch' -s c -l count -x -d 'Stop after N changes (default: until interrupted)'
complete -c ipc-mq -n '__ipc_mq_verb_in watch' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'Stop watching after DUR (default inf)'
complete -c ipc-mq -n '__ipc_mq_at_name watch 0' -a '(__ipc_mq_names)'

# set-capacity (System V only: the queue is given by --key or --id)
complete -c ipc-mq -n '__ipc_mq_at_arg set-capacity 0' -a '4K 8K 16K' -d 'New capacity in bytes'
