# fish completion for ipc-shm
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-shm/main.cpp and lib/src/cli.cpp.

# The verb: the first word after ipc-shm that is not an option (the top level
# has no options that take a value).
function __ipc_shm_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# True when the verb is typed (and quiet, for conditions).
function __ipc_shm_verb_seen
    __ipc_shm_verb >/dev/null
end

# True when the verb is one of $argv.
function __ipc_shm_verb_in
    set -l v (__ipc_shm_verb); or return 1
    contains -- $v $argv
end

# True when the option $argv[1] (a flag such as --semaphore) is on the line,
# before a '--'.
function __ipc_shm_has_flag --argument-names flag
    for t in (commandline -op)[2..-1]
        test "$t" = --; and return 1
        test "$t" = $flag; and return 0
    end
    return 1
end

# The positional arguments of the verb before the token under the cursor, one
# per line, with '--' (when given) as a line of its own; nothing before the
# verb is typed. Options that take a value: -o -s -k -i -m -t -c -w and their
# long forms, --max-bytes, --max-msg-size, --value, --match, --older-than,
# --owner, --kind, --offset, --length, --data, --file and --interval; a short
# cluster takes one when its first such letter ends it (-qo).
function __ipc_shm_args
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
            printf '%s\n' $t
        else if test "$t" = --
            set dashdash 1
            printf '%s\n' --
        else if contains -- $t --output --size --max-bytes --max-msg-size --value --key --id --mode --match \
                --older-than --owner --kind --offset --length --data --file --timeout --interval --count --wait
            set skip 1
        else if string match -qr -- '^-[^-oskimtcw]*[oskimtcw]$' $t
            set skip 1
        end
    end
    test $verb_seen -eq 1
end

# The index (0 for the first) of the positional argument of the verb that the
# token under the cursor would be; nothing before the verb is typed.
function __ipc_shm_arg_index
    set -l args (__ipc_shm_args); or return 1
    set -l n (count (string match -v -- -- $args))
    # A '--' given twice: the second one is an argument.
    set -l dd (count (string match -- -- $args))
    test $dd -gt 1; and set n (math $n + $dd - 1)
    echo $n
end

# True when the options typed pick a System V object (-k, --key, -i, --id, or
# a cluster such as -qk) or, for rm, give a bulk selector (--match,
# --older-than, --owner, --stale): then the operands are no POSIX names.
function __ipc_shm_no_names
    set -l bulk 0
    __ipc_shm_verb_in rm; and set bulk 1
    for t in (commandline -opc)[2..-1]
        test "$t" = --; and return 1
        string match -qr -- '^(--key|--id)(=|$)|^-[^-oskimtcw]*[ki]' $t; and return 0
        if test $bulk -eq 1
            string match -qr -- '^(--match|--older-than|--owner)(=|$)|^--stale$' $t; and return 0
        end
    end
    return 1
end

# True when the verb is $argv[1] and the token being typed is its positional
# argument number $argv[2] (counted from 0); N+ means N or any later one.
function __ipc_shm_at_arg --argument-names verb index
    set -l v (__ipc_shm_verb); or return 1
    test "$v" = "$verb"; or return 1
    set -l i (__ipc_shm_arg_index); or return 1
    if string match -q -- '*+' $index
        test $i -ge (string trim -r -c + -- $index)
    else
        test $i -eq $index
    end
end

# Like __ipc_shm_at_arg, and the argument is a POSIX name (no --key or --id,
# nor rm's bulk selectors, given).
function __ipc_shm_at_name
    __ipc_shm_at_arg $argv; and not __ipc_shm_no_names
end

# The POSIX objects in /dev/shm, as /NAME (as NAME when the token is a name
# typed without its '/'). $argv[1] says which: all, sem (the semaphores),
# channel, segment (neither semaphores nor channels) or resizable (nor
# consistent segments either). A file sem.X is the semaphore /X; the others
# are told apart by their first 8 bytes: "IPCCHAN1" a channel, "IPCCONS1" a
# consistent segment (unreadable ones are no channel).
function __ipc_shm_names --argument-names class
    test -d /dev/shm; or return
    set -l tok (commandline -ct)
    set -l slash /
    if test -n "$tok"; and not string match -q -- '/*' $tok
        set slash ''
    end
    for f in /dev/shm/* /dev/shm/.*
        test -f $f; and not test -L $f; or continue
        set -l file (string replace -r -- '.*/' '' $f)
        string match -q -- '.ipc-tmp-*' $file; and continue
        set -l name $file
        set -l desc 'POSIX object'
        switch $class
            case all
                if string match -q -- 'sem.*' $file
                    set name (string sub -s 5 -- $file)
                    set desc 'POSIX semaphore'
                end
            case sem
                string match -q -- 'sem.*' $file; or continue
                set name (string sub -s 5 -- $file)
                set desc 'POSIX semaphore'
            case '*'
                string match -q -- 'sem.*' $file; and continue
                set -l magic
                # Up to 8 characters, no further than the first NUL (a large
                # zeroed segment is not read through).
                read -z -n 8 magic <$f 2>/dev/null
                switch $class
                    case channel
                        test "$magic" = IPCCHAN1; or continue
                        set desc Channel
                    case segment
                        test "$magic" != IPCCHAN1; or continue
                        set desc 'POSIX segment'
                    case resizable
                        test "$magic" != IPCCHAN1 -a "$magic" != IPCCONS1; or continue
                        set desc 'POSIX segment'
                end
        end
        test -n "$name"; and printf '%s%s\t%s\n' $slash $name $desc
    end
end

# The keys (as 0x%08x; private objects have none) or, with id, the ids of the
# System V shared memory segments (shm) or semaphore sets (sem). The columns
# of /proc/sysvipc/shm and /proc/sysvipc/sem are named by their header lines
# (key, shmid, semid); keys are in decimal.
function __ipc_shm_sysv --argument-names set what
    set -l file /proc/sysvipc/$set
    test -r $file; or return
    set -l thing 'System V segment'
    test $set = sem; and set thing 'System V semaphore set'
    set -l lines (string trim <$file)
    set -l header (string split -n ' ' -- $lines[1])
    set -l kc (contains -i -- key $header); or return
    set -l ic (contains -i -- {$set}id $header); or return
    for line in $lines[2..-1]
        set -l f (string split -n ' ' -- $line)
        set -l key $f[$kc]
        set -l id $f[$ic]
        string match -qr -- '^-?[0-9]+$' "$key"; or continue
        string match -qr -- '^[0-9]+$' "$id"; or continue
        test $key -lt 0; and set key (math $key + 4294967296)
        set -l hex (printf '0x%08x' $key)
        if test "$what" = key
            test $key -ne 0; and printf '%s\t%s id %s\n' $hex $thing $id
        else if test $key -eq 0
            printf '%s\tPrivate %s\n' $id $thing
        else
            printf '%s\t%s key %s\n' $id $thing $hex
        end
    end
end

# The keys or ids ($argv[1]) that -k and -i take: semaphore sets for post,
# wait and run, and with --semaphore for create, stat and rm; segments
# otherwise.
function __ipc_shm_selector --argument-names what
    set -l set shm
    if __ipc_shm_verb_in post wait run
        set set sem
    else if __ipc_shm_verb_in create stat rm; and __ipc_shm_has_flag --semaphore
        set set sem
    end
    __ipc_shm_sysv $set $what
end

# run: true when the token under the cursor is part of the COMMAND, that is
# after a '--' and after the semaphore's NAME (unless --key or --id gives
# the semaphore).
function __ipc_shm_at_command
    __ipc_shm_verb_in run; or return 1
    set -l args (__ipc_shm_args); or return 1
    contains -- -- $args; or return 1
    set -l names (string match -v -- -- $args)
    __ipc_shm_no_names; or test (count $names) -ge 1
end

# run: true when the token under the cursor would be the COMMAND but no '--'
# is typed yet: '--' is offered.
function __ipc_shm_before_command
    __ipc_shm_verb_in run; or return 1
    set -l args (__ipc_shm_args); or return 1
    contains -- -- $args; and return 1
    __ipc_shm_no_names; or test (count $args) -ge 1
end

# run: completes the COMMAND and its arguments as a command line of their own.
function __ipc_shm_command
    set -l args (__ipc_shm_args)
    set -l i (contains -i -- -- $args)
    set -l rest $args[(math $i + 1)..-1]
    # The NAME after the '--'.
    if not __ipc_shm_no_names; and not test (count (string match -v -- -- $args[1..$i])) -ge 1
        set -e rest[1]
    end
    if set -q rest[1]
        __fish_complete_subcommand --commandline (string escape -- $rest) (commandline -ct)
    else
        __fish_complete_command
    end
end

complete -c ipc-shm -f

# Before the verb.
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -s h -l help -d 'Print this help and exit'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a create -d 'Make a segment, a consistent segment, a channel or a semaphore'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a stat -d 'Describe objects'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a ls -d 'List /dev/shm objects with their kind, or System V segments and semaphores'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a rm -d 'Remove objects by name, or in bulk by selectors'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a resize -d "Change a segment's size"
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a read -d "Write a segment's bytes to stdout (raw, --hex or --base64)"
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a write -d 'Write stdin (or --data) into a segment'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a watch -d 'Stream which byte ranges of a segment change'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a send -d 'Send messages into a channel'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a recv -d 'Receive messages from a channel'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a post -d 'Release a semaphore (V, +1)'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a wait -d 'Take a semaphore (P, -1), or wait until an object exists'
complete -c ipc-shm -n 'not __ipc_shm_verb_seen' -a run -d 'Hold a semaphore while COMMAND runs; released also when COMMAND is killed'

# Every verb.
complete -c ipc-shm -n __ipc_shm_verb_seen -s h -l help -d 'Print this help and exit'
complete -c ipc-shm -n __ipc_shm_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-shm -n __ipc_shm_verb_seen -l json -d 'Same as -o json'
complete -c ipc-shm -n __ipc_shm_verb_seen -s q -l quiet -d 'No output on success'

# System V objects by key or id. create makes them by key only.
set -l key_verbs create stat rm read write watch post wait run
set -l id_verbs stat rm read write watch post wait run
complete -c ipc-shm -n "__ipc_shm_verb_in $key_verbs" -s k -l key -x -a '(__ipc_shm_selector key)' -d 'System V object by key (decimal or 0x hex)'
complete -c ipc-shm -n "__ipc_shm_verb_in $id_verbs" -s i -l id -x -a '(__ipc_shm_selector id)' -d 'System V object by id'

# Waiting: write, send, recv, wait, run.
complete -c ipc-shm -n '__ipc_shm_verb_in write send recv wait run' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last (default inf)'
complete -c ipc-shm -n '__ipc_shm_verb_in write send recv wait run' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# How to wait on a channel: send, recv.
complete -c ipc-shm -n '__ipc_shm_verb_in send recv' -s w -l wait -x -a 'spin block adaptive' -d 'How to wait: spin, block or adaptive (default)'

# create (no completion for the names of new objects)
complete -c ipc-shm -n '__ipc_shm_verb_in create' -s s -l size -x -a '4K 64K 1M' -d 'Size of a segment (of a consistent one: of its content)'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l consistent -d 'A double-buffered segment whose updates readers see whole'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l channel -d 'A message channel (ring) of --max-bytes'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l max-bytes -x -a '4K 64K 1M' -d 'Channel: ring capacity in bytes'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l max-msg-size -x -a '64 4K' -d 'Channel: largest message (default: half the ring)'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l semaphore -d 'A semaphore (with --key: a System V semaphore set)'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -l value -x -a '0 1 4' -d 'Semaphore: initial value (default 0)'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -s x -l exclusive -d 'Fail (73) if it exists'
complete -c ipc-shm -n '__ipc_shm_verb_in create' -s m -l mode -x -a '0600 0644 0660 0666' -d 'Permissions of the created object (default 0600)'

# stat
complete -c ipc-shm -n '__ipc_shm_verb_in stat' -l semaphore -d 'With --key/--id: a System V semaphore set'
complete -c ipc-shm -n '__ipc_shm_at_name stat 0+' -a '(__ipc_shm_names all)'

# ls
complete -c ipc-shm -n '__ipc_shm_verb_in ls' -l sysv -d 'List System V segments and semaphore sets'
complete -c ipc-shm -n '__ipc_shm_verb_in ls' -l kind -x -a 'segment consistent channel semaphore mailbox other' -d 'Only objects of KIND'

# rm
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l semaphore -d 'With --key/--id: a System V semaphore set'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l match -x -d 'Objects whose names match GLOB'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l older-than -x -a '1h 1d' -d 'Objects not modified for DUR'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l owner -x -a '(__fish_complete_users)' -d 'Objects owned by USER'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l stale -d 'Objects no process holds, whose creator is gone'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l kind -x -a 'segment consistent channel semaphore mailbox other' -d 'Only objects of KIND (default: the kinds ipc-shm makes)'
complete -c ipc-shm -n '__ipc_shm_verb_in rm' -l dry-run -d 'Say what would be removed; remove nothing'
complete -c ipc-shm -n '__ipc_shm_at_name rm 0+' -a '(__ipc_shm_names all)'

# resize
complete -c ipc-shm -n '__ipc_shm_verb_in resize' -s s -l size -x -a '4K 64K 1M' -d 'New size'
complete -c ipc-shm -n '__ipc_shm_at_name resize 0' -a '(__ipc_shm_names resizable)'

# read
complete -c ipc-shm -n '__ipc_shm_verb_in read write' -l offset -x -d 'First byte (default 0)'
complete -c ipc-shm -n '__ipc_shm_verb_in read' -l length -x -d 'Bytes to read (default: to the end)'
complete -c ipc-shm -n '__ipc_shm_verb_in read' -l hex -d 'Offset, hex and ASCII columns'
complete -c ipc-shm -n '__ipc_shm_verb_in read' -l base64 -d 'Base64, one line'
complete -c ipc-shm -n '__ipc_shm_at_name read 0' -a '(__ipc_shm_names segment)'

# write
complete -c ipc-shm -n '__ipc_shm_verb_in write' -l data -x -d 'The bytes to write (default: all of stdin)'
complete -c ipc-shm -n '__ipc_shm_at_name write 0' -a '(__ipc_shm_names segment)'

# watch
complete -c ipc-shm -n '__ipc_shm_verb_in watch' -l interval -x -a '50ms 200ms 1s' -d 'How often to compare (default 200ms)'
complete -c ipc-shm -n '__ipc_shm_verb_in watch' -s c -l count -x -d 'Stop after N records (default: until interrupted)'
complete -c ipc-shm -n '__ipc_shm_verb_in watch' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'Stop watching after DUR (default inf)'
complete -c ipc-shm -n '__ipc_shm_at_name watch 0' -a '(__ipc_shm_names segment)'

# send
complete -c ipc-shm -n '__ipc_shm_verb_in send' -s 0 -l null -d 'Input messages end with NUL, not newline'
complete -c ipc-shm -n '__ipc_shm_verb_in send' -l whole -d 'All of the input is one message'
complete -c ipc-shm -n '__ipc_shm_verb_in send' -l jsonl -d 'Input is JSON Lines records as recv -o jsonl writes them'
complete -c ipc-shm -n '__ipc_shm_verb_in send' -l file -r -F -d 'Read messages from FILE instead of stdin'
complete -c ipc-shm -n '__ipc_shm_at_arg send 0' -a '(__ipc_shm_names channel)'

# recv
complete -c ipc-shm -n '__ipc_shm_verb_in recv' -s c -l count -x -d 'Take N messages (default 1)'
complete -c ipc-shm -n '__ipc_shm_verb_in recv' -s f -l follow -d 'Keep taking messages'
complete -c ipc-shm -n '__ipc_shm_verb_in recv' -s 0 -l null -d 'Messages end with NUL instead of newline'
complete -c ipc-shm -n '__ipc_shm_verb_in recv' -l no-delimiter -d 'Write payloads with nothing between them'
complete -c ipc-shm -n '__ipc_shm_at_arg recv 0' -a '(__ipc_shm_names channel)'

# post
complete -c ipc-shm -n '__ipc_shm_at_name post 0' -a '(__ipc_shm_names sem)'

# wait (with --exists, for any object: the existing ones are offered)
complete -c ipc-shm -n '__ipc_shm_verb_in wait' -l exists -d 'Wait until the object exists instead'
complete -c ipc-shm -n '__ipc_shm_at_name wait 0; and not __ipc_shm_has_flag --exists' -a '(__ipc_shm_names sem)'
complete -c ipc-shm -n '__ipc_shm_at_name wait 0; and __ipc_shm_has_flag --exists' -a '(__ipc_shm_names all)'

# run: the semaphore, then '--' and the COMMAND with its arguments
complete -c ipc-shm -n '__ipc_shm_at_name run 0; and not __ipc_shm_at_command' -a '(__ipc_shm_names sem)'
complete -c ipc-shm -n __ipc_shm_before_command --arguments=-- -d 'End of options; the COMMAND follows'
complete -c ipc-shm -n __ipc_shm_at_command -a '(__ipc_shm_command)'
