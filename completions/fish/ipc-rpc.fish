# fish completion for ipc-rpc
# SPDX-License-Identifier: MIT
#
# The verbs and, per verb, the options its --help lists; keep in step with
# cmd/ipc-rpc/main.cpp and lib/src/cli.cpp.

# The verb: the first word after ipc-rpc that is not an option.
function __ipc_rpc_verb
    for t in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $t
            echo $t
            return 0
        end
    end
    return 1
end

# True when the verb is typed.
function __ipc_rpc_verb_seen
    __ipc_rpc_verb >/dev/null
end

# True when the verb is one of $argv.
function __ipc_rpc_verb_in
    set -l v (__ipc_rpc_verb); or return 1
    contains -- $v $argv
end

# The number of positional arguments of the verb typed so far. Options that
# take a value: -o -M -w -m -r -t and the long ones below.
function __ipc_rpc_arg_index
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l verb_seen 0
    set -l n 0
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
        if test "$t" = -; or not string match -q -- '-*' $t
            set n (math $n + 1)
        else if contains -- $t --output --method --workers --call-timeout --max-request --max-connections \
                --allow-uid --allow-gid --api-version --mode --retries --timeout --interval
            set skip 1
        else if string match -qr -- '^-[^-oMwmrt]*[oMwmrt]$' $t
            set skip 1
        end
    end
    test $verb_seen -eq 1; and echo $n
end

# True when the token being typed is the verb's positional argument $argv[1].
function __ipc_rpc_at_arg
    set -l i (__ipc_rpc_arg_index); or return 1
    test $i -eq $argv[1]
end

complete -c ipc-rpc -f

# Before the verb.
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -s h -l help -d 'Print help and exit'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a serve -d 'Serve methods, each run as a command per call'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a call -d 'Call a method and print its result'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a describe -d "List a server's methods and its interface version"
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a wait -d 'Wait until a server answers'

# Every verb.
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s h -l help -d 'Print help and exit'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -l json -d 'Same as -o json'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s q -l quiet -d 'No output on success'

# The endpoint.
complete -c ipc-rpc -n '__ipc_rpc_verb_seen; and __ipc_rpc_at_arg 0' -a 'unix:/ unix:@ tcp:127.0.0.1: tcp:localhost:' -d 'Endpoint'

# Waiting (call, describe, wait).
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# serve
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s M -l method -x -d 'A method: NAME=COMMAND (repeatable)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s w -l workers -x -a '1 4 8' -d 'Calls run at once (default 4)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l call-timeout -x -a '10s 1m 5m inf' -d 'Time limit of one call (default 1m)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l max-request -x -a '64K 1M 16M' -d 'Largest request line (default 1M)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l max-connections -x -a '16 64 256' -d 'Connections served at once (default 64)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l allow-uid -x -a '(__fish_complete_users)' -d 'Admit this user too'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l allow-gid -x -a '(__fish_complete_groups)' -d 'Admit this group too'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l api-version -x -d 'The interface version rpc.describe reports'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s m -l mode -x -a '0600 0660 0666' -d 'Permissions of the socket (default 0600)'

# call
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l notify -d 'Send a notification: no reply'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l batch -d 'Send the JSON array of requests on stdin as one batch'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -s r -l retries -x -a '1 3 5' -d 'Connect again up to N times while unreachable'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call; and __ipc_rpc_at_arg 1' -a rpc.describe -d 'The built-in description method'

# wait
complete -c ipc-rpc -n '__ipc_rpc_verb_in wait' -l interval -x -a '50ms 100ms 1s' -d 'How often to try (default 100ms)'
