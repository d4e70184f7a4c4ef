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
# take a value: -o -M -I -w -m -s -r -e -t -f and the long ones below.
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
        else if contains -- $t --output --method --interface --workers --call-timeout --max-request \
                --max-connections --allow-uid --allow-gid --api-version --state --reply-cache --idle-timeout \
                --register --registry --services --mode --semantics --retries --client-id --id --lease \
                --encoding --timeout --interval --lang --output-file --callback
            set skip 1
        else if string match -qr -- '^-[^-oMIwmsretf]*[oMIwmsretf]$' $t
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

# The service names of the services file (the one --services names,
# $IPC_RPC_SERVICES, or the default one): NAME[@VERSION] ENDPOINT lines.
function __ipc_rpc_services
    set -l file $IPC_RPC_SERVICES
    if test -z "$file"
        if test -n "$XDG_CONFIG_HOME"
            set file $XDG_CONFIG_HOME/ipc-rpc/services
        else
            set file $HOME/.config/ipc-rpc/services
        end
    end
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case '--services=*'
                set file (string replace -- '--services=' '' $tokens[$i])
            case --services
                test $i -lt (count $tokens); and set file $tokens[(math $i + 1)]
        end
    end
    test -f "$file" -a -r "$file"; or return
    sed -e 's/#.*//' -- $file | awk 'NF >= 2 { print $1 }'
end

complete -c ipc-rpc -f

# Before the verb.
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -s h -l help -d 'Print help and exit'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -s V -l version -d 'Print the version and exit'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a serve -d 'Serve methods, each run as a command per call'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a call -d 'Call a method and print its result'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a describe -d "List a server's methods and its interface version"
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a wait -d 'Wait until a server answers'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a replies -d 'List the calls and replies a server recorded for a client id'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a registry -d 'Run the registry that binds service names to endpoints'
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a ls -d "List services: the registry's entries and the services file's"
complete -c ipc-rpc -n 'not __ipc_rpc_verb_seen' -a gen -d 'Write C++ client and server stubs for an interface file'

# Every verb.
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s h -l help -d 'Print help and exit'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s o -l output -x -a 'text json jsonl csv' -d 'Output format'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -l json -d 'Same as -o json'
complete -c ipc-rpc -n __ipc_rpc_verb_seen -s q -l quiet -d 'No output on success'

# The endpoint, or the target (an endpoint or a service); gen's interface file.
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve call describe wait replies; and __ipc_rpc_at_arg 0' -a 'unix:/ unix:@ tcp:127.0.0.1: tcp:localhost: udp:127.0.0.1: udp:localhost:' -d 'Endpoint'
complete -c ipc-rpc -n '__ipc_rpc_verb_in registry; and __ipc_rpc_at_arg 0' -a 'unix:/ unix:@ tcp:127.0.0.1: tcp:localhost:' -d 'Endpoint'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait replies; and __ipc_rpc_at_arg 0' -a '(__ipc_rpc_services)' -d 'Service'
complete -c ipc-rpc -n '__ipc_rpc_verb_in gen; and __ipc_rpc_at_arg 0' -F -d 'Interface file'

# Waiting (call, describe, wait, replies, ls).
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait replies ls' -s t -l timeout -x -a '250ms 1s 5s inf 0' -d 'How long one wait may last'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait replies ls' -s n -l nonblock -d 'Do not wait: same as --timeout 0'

# Binding (call, describe, wait, replies, ls; serve has --registry too).
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve call describe wait replies ls' -l registry -x -a 'unix:@ tcp:127.0.0.1: tcp:localhost:' -d 'The registry to use'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe wait replies ls' -l services -r -F -d 'The services file'

# Encoding (call, describe, replies).
complete -c ipc-rpc -n '__ipc_rpc_verb_in call describe replies' -s e -l encoding -x -a 'json cbor msgpack' -d 'json, cbor or msgpack (default json)'

# serve
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s M -l method -x -d 'A method: NAME=COMMAND (repeatable)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s I -l interface -r -F -d 'Methods, typed params and version from an interface file'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -s w -l workers -x -a '1 4 8' -d 'Calls run at once (default 4)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l call-timeout -x -a '10s 1m 5m inf' -d 'Time limit of one call (default 1m)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l max-request -x -a '64K 1M 16M' -d 'Largest request (default 1M)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve registry' -l max-connections -x -a '16 64 256' -d 'Connections served at once (default 64)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve registry' -l allow-uid -x -a '(__fish_complete_users)' -d 'Admit this user too'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve registry' -l allow-gid -x -a '(__fish_complete_groups)' -d 'Admit this group too'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l api-version -x -d 'The interface version rpc.describe reports'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l state -x -a '(__fish_complete_directories)' -d 'Record calls and replies durably in DIR (exactly-once)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l reply-cache -x -a '1024 4096 65536' -d 'Calls and replies kept (default 4096)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l idle-timeout -x -a '1m 5m 1h inf' -d 'Close a connection silent this long with no call running (default 5m)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve' -l register -x -d 'Register in the registry while serving: NAME[@VERSION]'
complete -c ipc-rpc -n '__ipc_rpc_verb_in serve registry' -s m -l mode -x -a '0600 0660 0666' -d 'Permissions of the socket (default 0600)'

# call
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l notify -d 'Send a notification: no reply'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l batch -d 'Send the JSON array of requests on stdin as one batch'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -s s -l semantics -x -a 'at-most-once at-least-once exactly-once' -d 'How often the call may run when something fails'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -s r -l retries -x -a '0 3 10' -d 'Attempts after the first (default 0 at-most-once, 10 otherwise)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l id -x -d 'The request id'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l lease -x -a '1s 10s 1m' -d 'Ask the server to cancel the call when this client is silent this long'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -s I -l interface -r -F -d 'The interface file that says which methods are idempotent'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l by-value -d 'Send KEY=@FILE params inline as text, also over a Unix socket'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call' -l callback -x -d 'A procedure the server may call back: NAME=COMMAND (repeatable)'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call; and __ipc_rpc_at_arg 1' -a rpc.describe -d 'The built-in description method'
complete -c ipc-rpc -n '__ipc_rpc_verb_in call; and __ipc_rpc_at_arg 1' -a rpc.replies -d 'The recorded replies of a client id'

# call, replies
complete -c ipc-rpc -n '__ipc_rpc_verb_in call replies' -l client-id -x -d "The client id of recorded replies"

# gen
complete -c ipc-rpc -n '__ipc_rpc_verb_in gen' -l lang -x -a cpp -d "The stubs' language"
complete -c ipc-rpc -n '__ipc_rpc_verb_in gen' -s f -l output-file -r -F -d 'Write the header here (default: standard output)'

# wait
complete -c ipc-rpc -n '__ipc_rpc_verb_in wait' -l interval -x -a '50ms 100ms 1s' -d 'How often to try (default 100ms)'
