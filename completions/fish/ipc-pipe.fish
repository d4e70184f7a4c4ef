# fish completion for ipc-pipe
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-pipe/main.cpp and lib/src/cli.cpp.

set -l verbs create rm stat ls send recv set-capacity relay wait watch

# The index (0 for the first) of the positional argument of the verb that the
# token under the cursor would be; nothing before the verb is typed. Options
# that take a value: -o -m -p -t -c and their long forms, --max-msg-size,
# --file, --min-bytes and --interval; a short cluster takes one when its first
# such letter ends it (-qo).
function __ipc_pipe_arg_index
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
        else if contains -- $t --output --mode --pid --max-msg-size --file --timeout --count --min-bytes --interval
            set skip 1
        else if string match -qr -- '^-[^-omptc]*[omptc]$' $t
            set skip 1
        end
    end
    test $verb_seen -eq 1; and echo $n
end

# True when the verb is $argv[1] and the token being typed is its positional
# argument number $argv[2] (counted from 0); N+ means N or any later one.
function __ipc_pipe_at_arg --argument-names verb index
    set -l v (__ipc_pipe_verb); or return 1
    test "$v" = "$verb"; or return 1
    set -l i (__ipc_pipe_arg_index); or return 1
    if string match -q -- '*+' $index
        test $i -ge (string trim -r -c + -- $index)
    else
        test $i -eq $index
    end
end

# The verb: the first word after ipc-pipe that is not an option.
function __ipc_pipe_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# FIFOs that complete the current token, and the directories on the way to
# them; with an argument, also '-' described by it.
function __ipc_pipe_fifos
    set -l tok (commandline -ct)
    # The completions of an empty command are plain file names (dirs end in /).
    for f in (complete -C"'' $tok")
        set -l path (string split -f1 \t -- $f)
        if string match -q -- '*/' $path
            printf '%s\tDirectory\n' $path
            continue
        end
        set -l real $path
        if string match -qr -- '^~(/|$)' $path
            set real $HOME(string sub -s 2 -- $path)
        end
        test -p "$real"; and printf '%s\tFIFO\n' $path
    end
    if set -q argv[1]; and contains -- "$tok" '' -
        printf '%s\t%s\n' - $argv[1]
    end
end

complete -c ipc-pipe -f

# Before the verb.
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -s h -l help -d 'Print this help and exit'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -s V -l version -d 'Print the version and exit'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a create -d 'Make FIFOs (mkfifo)'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a rm -d 'Remove FIFOs (refuses anything else)'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a stat -d 'Describe a FIFO or pipe: capacity, bytes queued, holders'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a ls -d 'List FIFOs in a directory, or the pipes processes hold'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a send -d 'Write messages into a FIFO'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a recv -d 'Read messages from a FIFO or stdin'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a set-capacity -d "Resize a pipe's buffer (F_SETPIPE_SZ)"
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a relay -d 'Copy a FIFO or stdin to a FIFO or stdout, with splice(2)'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a wait -d 'Wait until a FIFO exists, or has a reader, a writer, data'
complete -c ipc-pipe -n "not __fish_seen_subcommand_from $verbs" -a watch -d "Stream changes of a FIFO's queue and holders"

# Every verb.
complete -c ipc-pipe -n "__fish_seen_subcommand_from $verbs" -s h -l help -d 'Print this help and exit'
complete -c ipc-pipe -n "__fish_seen_subcommand_from $verbs" -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-pipe -n "__fish_seen_subcommand_from $verbs" -l json -d 'Same as -o json'
complete -c ipc-pipe -n "__fish_seen_subcommand_from $verbs" -s q -l quiet -d 'No output on success'

# Waiting: send, recv, relay, wait.
complete -c ipc-pipe -n '__fish_seen_subcommand_from send recv relay wait' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last'
complete -c ipc-pipe -n '__fish_seen_subcommand_from send recv relay wait' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# Polling: wait, watch.
complete -c ipc-pipe -n '__fish_seen_subcommand_from wait watch' -l interval -x -a '50ms 100ms 1s' -d 'How often to look (default 100ms)'

# Messages: send, recv.
complete -c ipc-pipe -n '__fish_seen_subcommand_from send recv' -l framed -d 'Length-prefixed frames (4-byte big-endian length), binary-safe'
complete -c ipc-pipe -n '__fish_seen_subcommand_from send recv' -l max-msg-size -x -a '64K 1M 16M 64M' -d 'Largest message accepted (default 64M)'

# create
complete -c ipc-pipe -n '__fish_seen_subcommand_from create' -s m -l mode -x -a '0600 0644 0660 0666' -d 'Permissions of the created object (default 0600)'
complete -c ipc-pipe -n '__ipc_pipe_at_arg create 0+' -F

# rm
complete -c ipc-pipe -n '__fish_seen_subcommand_from rm' -l dry-run -d 'Say what would be removed; remove nothing'
complete -c ipc-pipe -n '__ipc_pipe_at_arg rm 0+' -a '(__ipc_pipe_fifos)'

# stat
complete -c ipc-pipe -n '__ipc_pipe_at_arg stat 0+' -a '(__ipc_pipe_fifos "standard input")'

# ls
complete -c ipc-pipe -n '__fish_seen_subcommand_from ls' -s r -l recursive -d 'Descend into subdirectories'
complete -c ipc-pipe -n '__fish_seen_subcommand_from ls' -s p -l pid -x -a '(__fish_complete_pids)' -d 'Pipes and FIFOs that process PID holds'
complete -c ipc-pipe -n '__fish_seen_subcommand_from ls' -s a -l anon -d 'Anonymous pipes of every visible process'
complete -c ipc-pipe -n '__ipc_pipe_at_arg ls 0' -a '(__fish_complete_directories)'

# send
complete -c ipc-pipe -n '__fish_seen_subcommand_from send' -s 0 -l null -d 'Input messages end with NUL, not newline'
complete -c ipc-pipe -n '__fish_seen_subcommand_from send' -l whole -d 'All of the input is one message'
complete -c ipc-pipe -n '__fish_seen_subcommand_from send' -l jsonl -d 'Input is JSON Lines records as recv -o jsonl writes them'
complete -c ipc-pipe -n '__fish_seen_subcommand_from send' -l file -r -F -d 'Read messages from FILE instead of stdin'
complete -c ipc-pipe -n '__ipc_pipe_at_arg send 0' -a '(__ipc_pipe_fifos "standard output")'

# recv
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -s c -l count -x -d 'Take N messages (default 1)'
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -s f -l follow -d 'Keep taking messages'
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -l until-eof -d 'Stop when the writers close the FIFO'
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -l whole -d "Everything up to the writers' close is one message"
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -s 0 -l null -d 'Messages end with NUL instead of newline'
complete -c ipc-pipe -n '__fish_seen_subcommand_from recv' -l no-delimiter -d 'Write payloads with nothing between them'
complete -c ipc-pipe -n '__ipc_pipe_at_arg recv 0' -a '(__ipc_pipe_fifos "standard input")'

# set-capacity
complete -c ipc-pipe -n '__ipc_pipe_at_arg set-capacity 0' -a '(__ipc_pipe_fifos "standard input")'
complete -c ipc-pipe -n '__ipc_pipe_at_arg set-capacity 1' -a '4K 16K 64K 256K 1M' -d 'New capacity'

# relay
complete -c ipc-pipe -n '__fish_seen_subcommand_from relay' -l progress -d 'Bytes and rate on stderr (default when stderr is a terminal)'
complete -c ipc-pipe -n '__fish_seen_subcommand_from relay' -l no-progress -d 'No progress line'
complete -c ipc-pipe -n '__ipc_pipe_at_arg relay 0' -a '(__ipc_pipe_fifos "standard input")'
complete -c ipc-pipe -n '__ipc_pipe_at_arg relay 1' -a '(__ipc_pipe_fifos "standard output")'

# wait (for a FIFO that may not exist yet: any path)
complete -c ipc-pipe -n '__fish_seen_subcommand_from wait' -l reader -d 'Until some process holds it for reading'
complete -c ipc-pipe -n '__fish_seen_subcommand_from wait' -l writer -d 'Until some process holds it for writing'
complete -c ipc-pipe -n '__fish_seen_subcommand_from wait' -l empty -d 'Until nothing is queued in it'
complete -c ipc-pipe -n '__fish_seen_subcommand_from wait' -l min-bytes -x -a '1 4K 64K' -d 'Until at least SIZE bytes are queued'
complete -c ipc-pipe -n '__ipc_pipe_at_arg wait 0' -F -a '(__ipc_pipe_fifos "standard input")'

# watch
complete -c ipc-pipe -n '__fish_seen_subcommand_from watch' -s c -l count -x -d 'Stop after N changes (default: until interrupted)'
complete -c ipc-pipe -n '__fish_seen_subcommand_from watch' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'Stop watching after DUR (default inf)'
complete -c ipc-pipe -n '__ipc_pipe_at_arg watch 0' -a '(__ipc_pipe_fifos "standard input")'
