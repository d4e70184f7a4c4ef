#!/bin/sh
# SPDX-License-Identifier: MIT
# Exercises the shell completions of BINARY (ipc-pipe, ipc-mq, ...) with real
# completion calls: bash (the completion function, with COMP_WORDS/COMP_CWORD
# set) and fish (complete -C) must offer the verbs, exactly the options each
# verb's --help lists, and option values; the zsh one must parse and load
# through compinit. Per binary, its operands too: for ipc-pipe a FIFO in a
# temporary directory for `recv`; for ipc-mq a System V queue the test makes
# for `recv -i` and `recv -k` (and, when the mqueue file system is mounted, a
# POSIX queue for `recv`); for ipc-shm a segment, a semaphore and a channel in
# /dev/shm for `stat`, `read`, `post` and `recv`, and a System V segment and
# semaphore set for `-k` and `-i`.
# Usage: tests/cli/completion_test.sh BINARY SOURCE_DIR
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY SOURCE_DIR" >&2
    exit 64
fi
case $1 in /*) bin=$1 ;; */*) bin=$(pwd)/$1 ;; *) bin=$(command -v "$1") || bin=$1 ;; esac
src=$(cd "$2" && pwd) || exit 1
# The command is the binary's name; its bash function is _NAME with '_' for
# '-' (_ipc_pipe).
name=$(basename "$bin")
func=_$(printf '%s' "$name" | tr - _)
bash_comp=$src/completions/bash/$name
fish_comp=$src/completions/fish/$name.fish
zsh_comp=$src/completions/zsh/_$name
export name func

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ipc-completion.XXXXXX") || exit 1
# Queues and shared memory objects the test makes (ipc-mq, ipc-shm) are
# removed on the way out, however it ends.
cleanup_objects=
cleanup() {
    if [ -n "$cleanup_objects" ]; then eval "$cleanup_objects"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failures=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}

# expect_same WHAT EXPECTED_FILE ACTUAL_FILE: both hold the same set of lines.
expect_same() {
    sort -u "$2" >"$tmp/expected.sorted"
    sort -u "$3" >"$tmp/actual.sorted"
    if ! cmp -s "$tmp/expected.sorted" "$tmp/actual.sorted"; then
        fail "$1: expected (<) and offered (>) differ:"
        diff "$tmp/expected.sorted" "$tmp/actual.sorted" | grep '^[<>]' | sed 's/^/    /' >&2
    fi
}

# has_verb VERB: the binary's --help lists VERB.
has_verb() {
    grep -Fqx -e "$1" "$tmp/verbs"
}

# expect_line WHAT FILE LINE: FILE has LINE.
expect_line() {
    grep -Fqx -e "$3" "$2" || fail "$1: '$3' not offered (got: $(tr '\n' ' ' <"$2"))"
}

# expect_no_line WHAT FILE LINE: FILE does not have LINE.
expect_no_line() {
    if grep -Fqx -e "$3" "$2"; then fail "$1: '$3' offered but should not be"; fi
}

for f in "$bin" "$bash_comp" "$fish_comp" "$zsh_comp"; do
    [ -e "$f" ] || fail "missing: $f"
done
for sh in bash fish zsh; do
    command -v "$sh" >/dev/null 2>&1 || fail "$sh is not installed (tools/deps.sh test installs it)"
done
[ "$failures" -eq 0 ] || exit 1

# What the binary says: its verbs and, per verb, its options.
"$bin" --help >"$tmp/help" || fail "$bin --help failed"
awk '/^Subcommands:/ { on = 1; next } /^[^ ]/ { on = 0 } on && NF { print $1 }' "$tmp/help" >"$tmp/verbs"
verbs=$(cat "$tmp/verbs")
[ -n "$verbs" ] || fail "no verbs in '$bin --help'"
for verb in $verbs; do
    "$bin" "$verb" --help >"$tmp/help.$verb" || fail "$bin $verb --help failed"
    awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 }
         on && $1 ~ /^-/ { n = split($1, a, ","); for (i = 1; i <= n; i++) print a[i] }' \
        "$tmp/help.$verb" >"$tmp/options.$verb"
    [ -s "$tmp/options.$verb" ] || fail "no options in '$bin $verb --help'"
done

# Fixtures. ipc-pipe: a FIFO, a plain file, FIFOs in a subdirectory and in
# one whose name has a space. ipc-mq: a System V queue (its key and id), and a
# POSIX queue when the mqueue file system is mounted (`ipc-mq ls` works).
# ipc-shm: a segment, a semaphore (/dev/shm/sem.NAME, offered as /NAME) and a
# channel in /dev/shm; a System V segment and a System V semaphore set (their
# keys and ids).
fixtures=$tmp/fixtures
case $name in
ipc-pipe)
    if ! { mkdir "$fixtures" "$fixtures/sub" "$fixtures/with space" &&
        mkfifo "$fixtures/in.fifo" "$fixtures/sub/nested.fifo" "$fixtures/with space/spaced.fifo" &&
        : >"$fixtures/plain.txt"; }; then
        fail "cannot make the fixtures in $fixtures"
        exit 1
    fi
    ;;
ipc-mq)
    # A key of our own: a few tries, in case another process holds one.
    mq_key='' mq_id=''
    for try in 0 1 2 3 4 5 6 7; do
        k=$(printf '0x7e%06x' $((($$ * 8 + try) % 16777216)))
        if "$bin" create -q -x --key "$k" 2>/dev/null; then
            mq_key=$k
            break
        fi
    done
    if [ -z "$mq_key" ]; then
        fail "cannot make a System V queue with '$bin create --key'"
        exit 1
    fi
    cleanup_objects="\"\$bin\" rm -q --key $mq_key"
    # Its id: /proc/sysvipc/msg lists the key in decimal, the columns are
    # named by the header line.
    mq_id=$(awk -v key=$((mq_key)) 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["key"] == key { print $c["msqid"] }' /proc/sysvipc/msg)
    [ -n "$mq_id" ] || fail "queue $mq_key is not in /proc/sysvipc/msg"
    mq_name=
    if "$bin" ls >/dev/null 2>&1; then
        mq_name=/ipc-completion-test.$$
        if "$bin" create -q -x "$mq_name"; then
            cleanup_objects="$cleanup_objects; \"\$bin\" rm -q $mq_name"
        else
            fail "cannot make the POSIX queue $mq_name"
            mq_name=
        fi
    fi
    ;;
ipc-shm)
    shm_seg=/ipc-completion-test.$$
    shm_sem=/ipc-completion-test-sem.$$
    shm_chan=/ipc-completion-test-chan.$$
    if ! "$bin" create -q -x --size 1 "$shm_seg"; then
        fail "cannot make the segment $shm_seg"
        exit 1
    fi
    cleanup_objects="\"\$bin\" rm -q $shm_seg"
    if ! "$bin" create -q -x --semaphore "$shm_sem"; then
        fail "cannot make the semaphore $shm_sem"
        exit 1
    fi
    cleanup_objects="$cleanup_objects; \"\$bin\" rm -q $shm_sem"
    if ! "$bin" create -q -x --channel --max-bytes 4K "$shm_chan"; then
        fail "cannot make the channel $shm_chan"
        exit 1
    fi
    cleanup_objects="$cleanup_objects; \"\$bin\" rm -q $shm_chan"
    # Keys of our own (the segment's and the semaphore set's differ): a few
    # tries, in case another process holds one.
    shm_key='' sem_key=''
    for try in 0 1 2 3 4 5 6 7; do
        k=$(printf '0x7d%06x' $((($$ * 8 + try) % 16777216)))
        if "$bin" create -q -x --key "$k" --size 1 2>/dev/null; then
            shm_key=$k
            break
        fi
    done
    if [ -z "$shm_key" ]; then
        fail "cannot make a System V segment with '$bin create --key'"
        exit 1
    fi
    cleanup_objects="$cleanup_objects; \"\$bin\" rm -q --key $shm_key"
    for try in 0 1 2 3 4 5 6 7; do
        k=$(printf '0x7c%06x' $((($$ * 8 + try) % 16777216)))
        if "$bin" create -q -x --semaphore --key "$k" 2>/dev/null; then
            sem_key=$k
            break
        fi
    done
    if [ -z "$sem_key" ]; then
        fail "cannot make a System V semaphore set with '$bin create --semaphore --key'"
        exit 1
    fi
    cleanup_objects="$cleanup_objects; \"\$bin\" rm -q --semaphore --key $sem_key"
    # Their ids: /proc/sysvipc/shm and /proc/sysvipc/sem list the keys in
    # decimal, the columns are named by the header line.
    shm_id=$(awk -v key=$((shm_key)) 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["key"] == key { print $c["shmid"] }' /proc/sysvipc/shm)
    [ -n "$shm_id" ] || fail "segment $shm_key is not in /proc/sysvipc/shm"
    sem_id=$(awk -v key=$((sem_key)) 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["key"] == key { print $c["semid"] }' /proc/sysvipc/sem)
    [ -n "$sem_id" ] || fail "semaphore set $sem_key is not in /proc/sysvipc/sem"
    ;;
esac

# ---- bash -------------------------------------------------------------------

cat >"$tmp/harness.bash" <<'EOF'
# comp WORD...: what the completion function $func offers for the last WORD,
# one per line.
comp() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$func"
    ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"
    return 0
}
EOF

# bash_complete MODE WORD...: prints what bash offers. MODE is plain, or bc
# to load bash-completion first.
bash_complete() {
    mode=$1
    shift
    bash --norc --noprofile -c '
        if [ "$1" = bc ]; then . "$bash_completion" || exit 1; fi
        . "$2" || exit 1
        . "$3" || exit 1
        [ "$(complete -p "$name")" = "complete -F $func $name" ] || { echo "not registered" >&2; exit 1; }
        shift 3
        comp "$@"' bash "$mode" "$tmp/harness.bash" "$bash_comp" "$@"
}

# bash_checks_ipc_pipe MODE TAG: FIFOs (and '-') for the operands, PIDs for
# ls -p.
bash_checks_ipc_pipe() {
    mode=$1 tag=$2
    bash_complete "$mode" ipc-pipe recv "$fixtures/" >"$out" || fail "$tag: ipc-pipe recv DIR/<TAB> failed"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/in.fifo"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/sub"
    expect_line "$tag: recv DIR/" "$out" "$fixtures/with space"
    expect_no_line "$tag: recv DIR/" "$out" "$fixtures/plain.txt"

    bash_complete "$mode" ipc-pipe recv "$fixtures/sub/" >"$out" || fail "$tag: ipc-pipe recv DIR/SUB/<TAB> failed"
    expect_line "$tag: recv DIR/SUB/" "$out" "$fixtures/sub/nested.fifo"

    # bash-completion's _filedir dequotes only inside a real completion.
    if [ "$mode" = plain ]; then
        (cd "$fixtures" && bash_complete "$mode" ipc-pipe recv 'with\ space/') >"$out" ||
            fail "$tag: ipc-pipe recv with\\ space/<TAB> failed"
        expect_line "$tag: recv with\\ space/" "$out" "with space/spaced.fifo"
    fi

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe recv '') >"$out" || fail "$tag: ipc-pipe recv <TAB> failed"
    expect_line "$tag: recv in the fixtures" "$out" in.fifo
    expect_line "$tag: recv in the fixtures" "$out" -
    expect_no_line "$tag: recv in the fixtures" "$out" plain.txt

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe rm '') >"$out" || fail "$tag: ipc-pipe rm <TAB> failed"
    expect_line "$tag: rm in the fixtures" "$out" in.fifo
    expect_no_line "$tag: rm in the fixtures" "$out" -

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe create '') >"$out" || fail "$tag: ipc-pipe create <TAB> failed"
    expect_line "$tag: create in the fixtures" "$out" plain.txt

    (cd "$fixtures" && bash_complete "$mode" ipc-pipe ls '') >"$out" || fail "$tag: ipc-pipe ls <TAB> failed"
    printf '%s\n' sub 'with space' >"$tmp/expected"
    expect_same "$tag: ls in the fixtures" "$tmp/expected" "$out"

    bash_complete "$mode" ipc-pipe ls -p "$$" >"$out" || fail "$tag: ipc-pipe ls -p PID<TAB> failed"
    expect_line "$tag: values of -p" "$out" "$$"
}

# bash_checks_ipc_mq MODE TAG: the test's System V queue for -i and -k, the
# test's POSIX queue (when there is one) for the NAME, values of -T, sizes.
bash_checks_ipc_mq() {
    mode=$1 tag=$2
    bash_complete "$mode" "$name" recv -i '' >"$out" || fail "$tag: $name recv -i <TAB> failed"
    expect_line "$tag: recv -i" "$out" "$mq_id"
    bash_complete "$mode" "$name" recv --id= >"$out" || fail "$tag: $name recv --id=<TAB> failed"
    expect_line "$tag: recv --id=" "$out" "$mq_id"
    bash_complete "$mode" "$name" recv -k '' >"$out" || fail "$tag: $name recv -k <TAB> failed"
    expect_line "$tag: recv -k" "$out" "$mq_key"

    bash_complete "$mode" "$name" recv -T '' >"$out" || fail "$tag: $name recv -T <TAB> failed"
    printf '%s\n' 0 1 -1 >"$tmp/expected"
    expect_same "$tag: values of recv -T" "$tmp/expected" "$out"

    bash_complete "$mode" "$name" set-capacity '' >"$out" || fail "$tag: $name set-capacity <TAB> failed"
    printf '%s\n' 4K 8K 16K >"$tmp/expected"
    expect_same "$tag: sizes of set-capacity" "$tmp/expected" "$out"

    if [ -n "$mq_name" ]; then
        bash_complete "$mode" "$name" recv '' >"$out" || fail "$tag: $name recv <TAB> failed"
        expect_line "$tag: recv NAME" "$out" "$mq_name"
        bash_complete "$mode" "$name" recv -k "$mq_key" '' >"$out" || fail "$tag: $name recv -k KEY <TAB> failed"
        expect_no_line "$tag: recv -k KEY" "$out" "$mq_name"
    fi
}

# bash_checks_ipc_shm MODE TAG: the test's objects for the NAMEs of the verbs
# that take them (semaphores as /NAME for post, wait, run and stat), the
# System V segment and semaphore set for -k and -i, option values, and
# commands after run's '--'.
bash_checks_ipc_shm() {
    mode=$1 tag=$2
    bash_complete "$mode" "$name" stat '' >"$out" || fail "$tag: $name stat <TAB> failed"
    expect_line "$tag: stat" "$out" "$shm_seg"
    expect_line "$tag: stat" "$out" "$shm_sem"
    expect_line "$tag: stat" "$out" "$shm_chan"
    bash_complete "$mode" "$name" stat "${shm_seg#/}" >"$out" || fail "$tag: $name stat NAME<TAB> failed"
    printf '%s\n' "${shm_seg#/}" >"$tmp/expected"
    expect_same "$tag: stat NAME without its /" "$tmp/expected" "$out"
    bash_complete "$mode" "$name" stat -k "$shm_key" '' >"$out" || fail "$tag: $name stat -k KEY <TAB> failed"
    expect_no_line "$tag: stat -k KEY" "$out" "$shm_seg"

    bash_complete "$mode" "$name" create '' >"$out" || fail "$tag: $name create <TAB> failed"
    expect_no_line "$tag: create" "$out" "$shm_seg"
    bash_complete "$mode" "$name" post '' >"$out" || fail "$tag: $name post <TAB> failed"
    expect_line "$tag: post" "$out" "$shm_sem"
    expect_no_line "$tag: post" "$out" "$shm_seg"
    bash_complete "$mode" "$name" wait --exists '' >"$out" || fail "$tag: $name wait --exists <TAB> failed"
    expect_line "$tag: wait --exists" "$out" "$shm_seg"
    bash_complete "$mode" "$name" recv '' >"$out" || fail "$tag: $name recv <TAB> failed"
    expect_line "$tag: recv" "$out" "$shm_chan"
    expect_no_line "$tag: recv" "$out" "$shm_seg"
    expect_no_line "$tag: recv" "$out" "$shm_sem"
    bash_complete "$mode" "$name" read '' >"$out" || fail "$tag: $name read <TAB> failed"
    expect_line "$tag: read" "$out" "$shm_seg"
    expect_no_line "$tag: read" "$out" "$shm_chan"
    expect_no_line "$tag: read" "$out" "$shm_sem"

    bash_complete "$mode" "$name" read -k '' >"$out" || fail "$tag: $name read -k <TAB> failed"
    expect_line "$tag: read -k" "$out" "$shm_key"
    expect_no_line "$tag: read -k" "$out" "$sem_key"
    bash_complete "$mode" "$name" read --id= >"$out" || fail "$tag: $name read --id=<TAB> failed"
    expect_line "$tag: read --id=" "$out" "$shm_id"
    bash_complete "$mode" "$name" post -k '' >"$out" || fail "$tag: $name post -k <TAB> failed"
    expect_line "$tag: post -k" "$out" "$sem_key"
    expect_no_line "$tag: post -k" "$out" "$shm_key"
    bash_complete "$mode" "$name" post -i '' >"$out" || fail "$tag: $name post -i <TAB> failed"
    expect_line "$tag: post -i" "$out" "$sem_id"
    bash_complete "$mode" "$name" stat --semaphore -k '' >"$out" || fail "$tag: $name stat --semaphore -k <TAB> failed"
    expect_line "$tag: stat --semaphore -k" "$out" "$sem_key"

    bash_complete "$mode" "$name" recv -w '' >"$out" || fail "$tag: $name recv -w <TAB> failed"
    printf '%s\n' spin block adaptive >"$tmp/expected"
    expect_same "$tag: values of -w" "$tmp/expected" "$out"
    bash_complete "$mode" "$name" ls --kind '' >"$out" || fail "$tag: $name ls --kind <TAB> failed"
    printf '%s\n' segment consistent channel semaphore mailbox other >"$tmp/expected"
    expect_same "$tag: values of --kind" "$tmp/expected" "$out"
    bash_complete "$mode" "$name" create -s '' >"$out" || fail "$tag: $name create -s <TAB> failed"
    printf '%s\n' 4K 64K 1M >"$tmp/expected"
    expect_same "$tag: values of -s" "$tmp/expected" "$out"
    bash_complete "$mode" "$name" watch --interval '' >"$out" || fail "$tag: $name watch --interval <TAB> failed"
    printf '%s\n' 50ms 200ms 1s >"$tmp/expected"
    expect_same "$tag: values of --interval" "$tmp/expected" "$out"

    bash_complete "$mode" "$name" run "$shm_sem" '' >"$out" || fail "$tag: $name run NAME <TAB> failed"
    printf '%s\n' -- >"$tmp/expected"
    expect_same "$tag: run NAME" "$tmp/expected" "$out"
    # bash-completion's _command_offset calls compopt, which complains
    # outside a real completion.
    bash_complete "$mode" "$name" run "$shm_sem" -- ech 2>/dev/null >"$out" ||
        fail "$tag: $name run NAME -- ech<TAB> failed"
    expect_line "$tag: run NAME -- COMMAND" "$out" echo
}

# Without bash-completion, and with it when it is installed (or named by
# $IPC_BASH_COMPLETION).
bash_completion=${IPC_BASH_COMPLETION:-/usr/share/bash-completion/bash_completion}
export bash_completion
bash_modes=plain
[ -r "$bash_completion" ] && bash_modes="plain bc"
for mode in $bash_modes; do
    tag="bash ($mode)"
    out=$tmp/bash.out

    bash_complete "$mode" "$name" '' >"$out" || fail "$tag: $name <TAB> failed"
    expect_same "$tag: verbs" "$tmp/verbs" "$out"

    bash_complete "$mode" "$name" re >"$out" || fail "$tag: $name re<TAB> failed"
    grep -e '^re' "$tmp/verbs" >"$tmp/expected"
    expect_same "$tag: verbs starting with re" "$tmp/expected" "$out"

    for verb in $verbs; do
        bash_complete "$mode" "$name" "$verb" - >"$out" || fail "$tag: $name $verb -<TAB> failed"
        grep -vx -e - "$out" >"$out.options"
        expect_same "$tag: options of $verb" "$tmp/options.$verb" "$out.options"
    done

    if has_verb recv; then
        bash_complete "$mode" "$name" recv -- >"$out" || fail "$tag: $name recv --<TAB> failed"
        grep -e '^--' "$tmp/options.recv" >"$tmp/expected"
        expect_same "$tag: long options of recv" "$tmp/expected" "$out"

        bash_complete "$mode" "$name" recv -o '' >"$out" || fail "$tag: $name recv -o <TAB> failed"
        printf '%s\n' text json jsonl csv >"$tmp/expected"
        expect_same "$tag: values of -o" "$tmp/expected" "$out"
    fi

    if has_verb send; then
        bash_complete "$mode" "$name" send --timeout '' >"$out" || fail "$tag: $name send --timeout <TAB> failed"
        printf '%s\n' 250ms 1s 5s inf 0 >"$tmp/expected"
        expect_same "$tag: values of --timeout" "$tmp/expected" "$out"
    fi

    case $name in
    ipc-pipe) bash_checks_ipc_pipe "$mode" "$tag" ;;
    ipc-mq) bash_checks_ipc_mq "$mode" "$tag" ;;
    ipc-shm) bash_checks_ipc_shm "$mode" "$tag" ;;
    esac
done

# ---- fish -------------------------------------------------------------------

# fish_complete LINE: what fish offers: candidate, tab, description.
# shellcheck disable=SC2016 # $argv is fish's, not ours
fish_complete() {
    fish --no-config -c 'source $argv[1]; or exit 1; complete -C"$argv[2]"' "$fish_comp" "$1"
}
# shellcheck disable=SC2016
fish_escape() {
    fish --no-config -c 'string escape -- $argv[1]' "$1"
}

# fish_checks_ipc_pipe: FIFOs (and '-') for the operands, directories for ls.
fish_checks_ipc_pipe() {
    fish_complete "ipc-pipe recv $(fish_escape "$fixtures/")" >"$out" || fail "$tag: ipc-pipe recv DIR/<TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv DIR/" "$out.words" "$fixtures/in.fifo"
    expect_line "$tag: recv DIR/" "$out.words" "$fixtures/sub/"
    expect_line "$tag: recv DIR/" "$out.words" "$fixtures/with space/"
    expect_no_line "$tag: recv DIR/" "$out.words" "$fixtures/plain.txt"

    fish_complete "ipc-pipe recv $(fish_escape "$fixtures/with space/")" >"$out" ||
        fail "$tag: ipc-pipe recv DIR/with\\ space/<TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv DIR/with\\ space/" "$out.words" "$fixtures/with space/spaced.fifo"

    (cd "$fixtures" && fish_complete 'ipc-pipe recv ') >"$out" || fail "$tag: ipc-pipe recv <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv in the fixtures" "$out.words" in.fifo
    expect_line "$tag: recv in the fixtures" "$out.words" -
    expect_no_line "$tag: recv in the fixtures" "$out.words" plain.txt

    (cd "$fixtures" && fish_complete 'ipc-pipe ls ') >"$out" || fail "$tag: ipc-pipe ls <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' sub/ 'with space/' >"$tmp/expected"
    expect_same "$tag: ls in the fixtures" "$tmp/expected" "$out.words"

    fish_complete 'ipc-pipe relay --timeout ' >"$out" || fail "$tag: ipc-pipe relay --timeout <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 250ms 1s 5s inf 0 >"$tmp/expected"
    expect_same "$tag: values of relay --timeout" "$tmp/expected" "$out.words"
}

# fish_checks_ipc_mq: the test's System V queue for -i and -k, the test's POSIX
# queue (when there is one) for the NAME, values of -T, sizes.
fish_checks_ipc_mq() {
    fish_complete "$name recv -i " >"$out" || fail "$tag: $name recv -i <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv -i" "$out.words" "$mq_id"
    fish_complete "$name recv --id=" >"$out" || fail "$tag: $name recv --id=<TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv --id=" "$out.words" "--id=$mq_id"
    fish_complete "$name recv -k " >"$out" || fail "$tag: $name recv -k <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv -k" "$out.words" "$mq_key"

    fish_complete "$name recv -T " >"$out" || fail "$tag: $name recv -T <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 0 1 -1 >"$tmp/expected"
    expect_same "$tag: values of recv -T" "$tmp/expected" "$out.words"

    fish_complete "$name set-capacity " >"$out" || fail "$tag: $name set-capacity <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 4K 8K 16K >"$tmp/expected"
    expect_same "$tag: sizes of set-capacity" "$tmp/expected" "$out.words"

    if [ -n "$mq_name" ]; then
        fish_complete "$name recv " >"$out" || fail "$tag: $name recv <TAB> failed"
        cut -f1 "$out" >"$out.words"
        expect_line "$tag: recv NAME" "$out.words" "$mq_name"
        fish_complete "$name recv -k $mq_key " >"$out" || fail "$tag: $name recv -k KEY <TAB> failed"
        cut -f1 "$out" >"$out.words"
        expect_no_line "$tag: recv -k KEY" "$out.words" "$mq_name"
    fi
}

# fish_checks_ipc_shm: the test's objects for the NAMEs of the verbs that take
# them, the System V segment and semaphore set for -k and -i, option values,
# and commands after run's '--'.
fish_checks_ipc_shm() {
    fish_complete "$name stat " >"$out" || fail "$tag: $name stat <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: stat" "$out.words" "$shm_seg"
    expect_line "$tag: stat" "$out.words" "$shm_sem"
    expect_line "$tag: stat" "$out.words" "$shm_chan"
    fish_complete "$name stat ${shm_seg#/}" >"$out" || fail "$tag: $name stat NAME<TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' "${shm_seg#/}" >"$tmp/expected"
    expect_same "$tag: stat NAME without its /" "$tmp/expected" "$out.words"
    fish_complete "$name stat -k $shm_key " >"$out" || fail "$tag: $name stat -k KEY <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_no_line "$tag: stat -k KEY" "$out.words" "$shm_seg"

    fish_complete "$name create " >"$out" || fail "$tag: $name create <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_no_line "$tag: create" "$out.words" "$shm_seg"
    fish_complete "$name post " >"$out" || fail "$tag: $name post <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: post" "$out.words" "$shm_sem"
    expect_no_line "$tag: post" "$out.words" "$shm_seg"
    fish_complete "$name wait --exists " >"$out" || fail "$tag: $name wait --exists <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: wait --exists" "$out.words" "$shm_seg"
    fish_complete "$name recv " >"$out" || fail "$tag: $name recv <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: recv" "$out.words" "$shm_chan"
    expect_no_line "$tag: recv" "$out.words" "$shm_seg"
    expect_no_line "$tag: recv" "$out.words" "$shm_sem"
    fish_complete "$name read " >"$out" || fail "$tag: $name read <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: read" "$out.words" "$shm_seg"
    expect_no_line "$tag: read" "$out.words" "$shm_chan"
    expect_no_line "$tag: read" "$out.words" "$shm_sem"

    fish_complete "$name read -k " >"$out" || fail "$tag: $name read -k <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: read -k" "$out.words" "$shm_key"
    expect_no_line "$tag: read -k" "$out.words" "$sem_key"
    fish_complete "$name read --id=" >"$out" || fail "$tag: $name read --id=<TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: read --id=" "$out.words" "--id=$shm_id"
    fish_complete "$name post -k " >"$out" || fail "$tag: $name post -k <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: post -k" "$out.words" "$sem_key"
    expect_no_line "$tag: post -k" "$out.words" "$shm_key"
    fish_complete "$name post -i " >"$out" || fail "$tag: $name post -i <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: post -i" "$out.words" "$sem_id"
    fish_complete "$name stat --semaphore -k " >"$out" || fail "$tag: $name stat --semaphore -k <TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: stat --semaphore -k" "$out.words" "$sem_key"

    fish_complete "$name recv -w " >"$out" || fail "$tag: $name recv -w <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' spin block adaptive >"$tmp/expected"
    expect_same "$tag: values of -w" "$tmp/expected" "$out.words"
    fish_complete "$name ls --kind " >"$out" || fail "$tag: $name ls --kind <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' segment consistent channel semaphore mailbox other >"$tmp/expected"
    expect_same "$tag: values of --kind" "$tmp/expected" "$out.words"
    fish_complete "$name create -s " >"$out" || fail "$tag: $name create -s <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 4K 64K 1M >"$tmp/expected"
    expect_same "$tag: values of -s" "$tmp/expected" "$out.words"
    fish_complete "$name watch --interval " >"$out" || fail "$tag: $name watch --interval <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 50ms 200ms 1s >"$tmp/expected"
    expect_same "$tag: values of --interval" "$tmp/expected" "$out.words"

    fish_complete "$name run $shm_sem " >"$out" || fail "$tag: $name run NAME <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' -- >"$tmp/expected"
    expect_same "$tag: run NAME" "$tmp/expected" "$out.words"
    fish_complete "$name run $shm_sem -- ech" >"$out" || fail "$tag: $name run NAME -- ech<TAB> failed"
    cut -f1 "$out" >"$out.words"
    expect_line "$tag: run NAME -- COMMAND" "$out.words" echo
}

tag=fish
out=$tmp/fish.out
fish -n "$fish_comp" || fail "fish -n $fish_comp"

fish_complete "$name " >"$out" || fail "$tag: $name <TAB> failed"
cut -f1 "$out" >"$out.words"
expect_same "$tag: verbs" "$tmp/verbs" "$out.words"
awk -F '\t' 'NF < 2 || $2 == "" { print }' "$out" >"$out.bare"
[ -s "$out.bare" ] && fail "$tag: verbs without a description: $(tr '\n' ' ' <"$out.bare")"

for verb in $verbs; do
    fish_complete "$name $verb -" >"$out" || fail "$tag: $name $verb -<TAB> failed"
    cut -f1 "$out" | grep -vx -e - >"$out.options"
    expect_same "$tag: options of $verb" "$tmp/options.$verb" "$out.options"
done

if has_verb recv; then
    fish_complete "$name recv --" >"$out" || fail "$tag: $name recv --<TAB> failed"
    cut -f1 "$out" >"$out.words"
    grep -e '^--' "$tmp/options.recv" >"$tmp/expected"
    expect_same "$tag: long options of recv" "$tmp/expected" "$out.words"

    fish_complete "$name recv -o " >"$out" || fail "$tag: $name recv -o <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' text json jsonl csv >"$tmp/expected"
    expect_same "$tag: values of -o" "$tmp/expected" "$out.words"
fi

if has_verb send; then
    fish_complete "$name send --timeout " >"$out" || fail "$tag: $name send --timeout <TAB> failed"
    cut -f1 "$out" >"$out.words"
    printf '%s\n' 250ms 1s 5s inf 0 >"$tmp/expected"
    expect_same "$tag: values of --timeout" "$tmp/expected" "$out.words"
fi

case $name in
ipc-pipe) fish_checks_ipc_pipe ;;
ipc-mq) fish_checks_ipc_mq ;;
ipc-shm) fish_checks_ipc_shm ;;
esac

# ---- zsh --------------------------------------------------------------------

zsh -n "$zsh_comp" || fail "zsh -n $zsh_comp"
if ! { mkdir "$tmp/zfunc" && cp "$zsh_comp" "$tmp/zfunc/"; }; then fail "cannot copy $zsh_comp"; fi
zsh -f -c '
    fpath=("$1" $fpath)
    autoload -U compinit && compinit -u -d "$2" || exit 1
    [[ ${_comps[$3]-} == _$3 ]] || { print -u2 "_$3 is not the completer of $3"; exit 1; }
    autoload +X _$3 || exit 1' zsh "$tmp/zfunc" "$tmp/zcompdump" "$name" >"$tmp/zsh.out" 2>&1 ||
    fail "zsh: the completion does not load: $(cat "$tmp/zsh.out")"
[ -s "$tmp/zsh.out" ] && fail "zsh: loading printed: $(cat "$tmp/zsh.out")"

if [ "$failures" -ne 0 ]; then
    echo "completion_test: $failures failure(s)" >&2
    exit 1
fi
echo "completion_test: ok"
